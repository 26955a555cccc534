"""engine/api.py, Venue.process(overlap=True): the events are handed on in a thread of their own
while the matcher fills the other buffer. The calls must see what the plain loop sees, in the
same order, each view unchanged until its call returns, and an error in one must surface."""

import hashlib
import time

import pytest

from engine.api import Venue
from engine.config import load_venue
from engine.gen import generate

VENUE = load_venue(None)
ORDERS = generate(VENUE, 60_000, seed=3)


def _chunks(overlap: bool, slow: bool = False) -> list[bytes]:
    v = Venue(VENUE, n_messages=len(ORDERS))
    v._out = v._out[:4096]  # many chunks, so both buffers take turns
    seen = []

    def sink(events):
        first = hashlib.sha256(events.tobytes()).digest()
        if slow:
            time.sleep(0.002)  # the matcher runs on meanwhile, into the other buffer
        assert hashlib.sha256(events.tobytes()).digest() == first, "the view changed during its call"
        seen.append(events.tobytes())

    v.process(ORDERS, sink, overlap=overlap)
    return seen


def test_overlap_hands_on_the_same_chunks_in_the_same_order():
    plain = _chunks(False)
    assert len(plain) > 10
    assert _chunks(True) == plain
    assert _chunks(True, slow=True) == plain


def test_an_error_in_the_sink_is_raised_by_process():
    v = Venue(VENUE, n_messages=len(ORDERS))
    v._out = v._out[:4096]
    calls = []

    def sink(events):
        calls.append(len(events))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        v.process(ORDERS, sink, overlap=True)
    assert len(calls) == 3  # nothing was handed on after the failed call was seen
