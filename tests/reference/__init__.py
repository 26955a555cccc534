"""Independent pure-Python reference matcher (see matcher.py and NOTES.md).

    from reference import replay      # with tests/ on sys.path (pytest does this)
    events_csv = replay(flow_csv_text, venue_toml_text)   # venue None = engine/default_venue.toml
"""

from .matcher import HEADER_IN, HEADER_OUT, replay

__all__ = ["replay", "HEADER_IN", "HEADER_OUT"]
