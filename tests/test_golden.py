"""The venue rulebook's example (its section 6) must come out byte for byte, from every matcher."""

from pathlib import Path

import pytest

from reference.harness import MATCHERS, get_replay

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("matcher", MATCHERS)
def test_rulebook_example(matcher):
    replay = get_replay(matcher)
    flow = (GOLDEN / "example_flow.csv").read_text()
    venue = (GOLDEN / "example_venue.toml").read_text()
    expected = (GOLDEN / "example_events.csv").read_bytes()
    out = replay(flow, venue)
    assert isinstance(out, str)
    assert out.encode() == expected


def test_golden_matches_venue_rulebook(shared_dir):
    """The golden files are copied from the venue rulebook: keep them in step with it."""
    text = (shared_dir / "RULEBOOK.md").read_text()
    example = text.split("## 6. Example", 1)[1]
    blocks = example.split("```")[1::2]
    assert blocks[0].strip() == (GOLDEN / "example_flow.csv").read_text().strip()
    assert blocks[1].strip() == (GOLDEN / "example_events.csv").read_text().strip()
