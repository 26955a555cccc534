"""The engine against the reference, byte for byte, on many seeded flows.

Per run: >= 200,000 messages over random, adversarial, deep-book and syntax-fuzz flows (see testkit/flows.py).
On a difference the report gives the flow kind and seed, the first differing event line with
context, and a shrunk flow (rows removed while the two matchers still disagree) to paste into
a test.
"""

from __future__ import annotations

import time

import pytest

from testkit.flows import FLOW_HEADER, adversarial_flow, deep_book_flow, random_flow, syntax_fuzz_flow
from reference import replay as reference_replay
from reference.harness import engine_replay, first_difference

# (generator, seeds, messages per flow): 32*3500 + 32*2500 + 4*5000 + 16*2500 = 252,000 messages
GROUPS = {
    "random": (random_flow, range(0, 32), 3500),
    "adversarial": (adversarial_flow, range(1000, 1032), 2500),
    "deep": (deep_book_flow, range(2000, 2004), 5000),
    "syntax": (syntax_fuzz_flow, range(3000, 3016), 2500),
}
CHUNK = 8  # seeds per test item, so a failure names a small group and the rest still run


def _items():
    for kind, (_, seeds, _) in GROUPS.items():
        seeds = list(seeds)
        for i in range(0, len(seeds), CHUNK):
            yield pytest.param(kind, seeds[i : i + CHUNK], id=f"{kind}-{seeds[i]}")


def shrink(rows: list[str], venue: str, differs, budget_s: float = 20.0) -> list[str]:
    """Delta debugging: drop chunks of rows while `differs(rows)` holds."""
    deadline = time.monotonic() + budget_s
    n = 2
    while len(rows) >= 2 and time.monotonic() < deadline:
        size = max(1, len(rows) // n)
        removed = False
        for start in range(0, len(rows), size):
            trial = rows[:start] + rows[start + size :]
            if trial and differs(trial):
                rows, n, removed = trial, max(n - 1, 2), True
                break
            if time.monotonic() >= deadline:
                break
        if not removed:
            if size == 1:
                break
            n = min(len(rows), n * 2)
    return rows


def _text(rows):
    return FLOW_HEADER + "\n" + "\n".join(rows) + "\n"


def _report(kind, seed, flow, venue, ref_out, eng_out, engine):
    diff = first_difference(ref_out, eng_out)
    rows = flow.split("\n")[1:-1]

    def differs(trial):
        t = _text(trial)
        try:
            return reference_replay(t, venue) != engine(t, venue)
        except Exception:
            return True

    small = shrink(rows, venue, differs)
    t = _text(small)
    return (
        f"{kind} flow, seed {seed}: engine and reference differ\n{diff}\n\n"
        f"shrunk flow ({len(small)} rows):\n{t}\nvenue:\n{venue}\n"
        f"reference:\n{reference_replay(t, venue)}\nengine:\n{engine(t, venue)}"
    )


@pytest.mark.parametrize("kind,seeds", list(_items()))
def test_engine_matches_reference(kind, seeds):
    engine = engine_replay()
    gen, _, n = GROUPS[kind]
    for seed in seeds:
        flow, venue = gen(seed, n)
        ref_out = reference_replay(flow, venue)
        eng_out = engine(flow, venue)
        if ref_out != eng_out:
            pytest.fail(_report(kind, seed, flow, venue, ref_out, eng_out, engine), pytrace=False)


def test_volume_is_at_least_200k():
    assert sum(len(list(seeds)) * n for _, seeds, n in GROUPS.values()) >= 200_000
