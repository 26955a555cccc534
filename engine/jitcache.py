"""Numba's on-disk cache and the inlined matcher.

`cache=True` keys a compiled function on its own source file only. A function in another
module that inlines the matcher (the LOBSTER replay, the live engine loop, a benchmark loop)
keeps its cached machine code after the matcher changes and would run the old matcher.
`flush_if_engine_changed` drops such a function's cache when the engine's hot-path sources
differ from the ones its cache was built from (a stamp file per function).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parent
HOT_PATH = ("records.py", "fifo.py", "book.py", "state.py", "accounts.py", "risk.py", "matcher.py")

_checked: set[str] = set()


def engine_stamp() -> str:
    """A hash of the sources that the matcher's callers inline."""
    h = hashlib.sha256()
    for name in HOT_PATH:
        p = ENGINE_DIR / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def flush_if_engine_changed(dispatcher, name: str):
    """Return dispatcher, its on-disk cache flushed first (once per process) when the engine's
    sources changed since the cache was written; `name` names its stamp file."""
    if name in _checked:
        return dispatcher
    _checked.add(name)
    stamp_file = ENGINE_DIR / "__pycache__" / f"{name}.engine.stamp"
    stamp = engine_stamp()
    try:
        old = stamp_file.read_text()
    except OSError:
        old = ""
    if old != stamp:
        try:
            dispatcher._cache.flush()
            stamp_file.parent.mkdir(exist_ok=True)
            stamp_file.write_text(stamp)
        except (OSError, AttributeError):  # a read-only install: compile in memory instead
            pass
    return dispatcher
