"""Fresh engine books for timings.

engine/state.py allocates the book zeroed and lets the kernel map its pages on first use.
A timing that starts on a fresh book would then measure page faults as well as matching,
and the figure would depend on how much of the book a flow happens to reach. Benchmarks
time the book the live engine has: every page touched before the clock starts. This runs
on older trees too (the latency gate runs the change's harness on the baseline's code).
"""

from __future__ import annotations


def touch_all(st) -> None:
    """Fault in every page of every column of an EngineState (writes back what is there)."""
    for a in st:
        flat = a.reshape(-1)
        step = max(1, 4096 // a.itemsize)
        flat[::step] += 0  # a write: numpy skips a copy onto itself, and a read maps the zero page


def fresh_venue(venue):
    """An engine.api.Venue on a new book with every page touched."""
    from engine.api import Venue

    v = Venue(venue)
    touch_all(v.state)
    return v


def fresh_book(venue):
    """A new EngineState for the venue with every page touched."""
    return fresh_venue(venue).state
