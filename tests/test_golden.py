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


# Regression goldens: flows from testkit/flows.py frozen with the reference's output at the time
# they were made. They are not hand-checked truth (test_rules.py is); they make any change of
# behaviour in either matcher visible. Regenerate deliberately, after a rulebook decision
# changes, with:  cd tests && python test_golden.py
REGRESSION = {
    "random": ("random_flow", 7, 2000),
    "adversarial": ("adversarial_flow", 7, 2000),
    "syntax": ("syntax_fuzz_flow", 7, 1000),
}


@pytest.mark.parametrize("matcher", MATCHERS)
@pytest.mark.parametrize("name", list(REGRESSION))
def test_regression_golden(matcher, name):
    replay = get_replay(matcher)
    # bytes, not read_text(): universal newlines would turn the flows' stray '\r' into '\n'
    flow = (GOLDEN / f"{name}_flow.csv").read_bytes().decode()
    venue = (GOLDEN / f"{name}_venue.toml").read_bytes().decode()
    expected = (GOLDEN / f"{name}_events.csv").read_bytes().decode()
    out = replay(flow, venue)
    if out != expected:
        from reference.harness import first_difference

        pytest.fail(first_difference(expected, out, label=("golden", matcher)), pytrace=False)


def _regenerate():
    from testkit import flows as flowgen
    from reference import replay

    for name, (gen, seed, n) in REGRESSION.items():
        flow, venue = getattr(flowgen, gen)(seed, n)
        (GOLDEN / f"{name}_flow.csv").write_bytes(flow.encode())
        (GOLDEN / f"{name}_venue.toml").write_bytes(venue.encode())
        (GOLDEN / f"{name}_events.csv").write_bytes(replay(flow, venue).encode())


if __name__ == "__main__":
    _regenerate()
