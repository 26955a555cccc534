"""The order-id table (engine/book.py) against a dict, on id patterns chosen to collide.

Consecutive ids share a block of the table by design, so the patterns that matter are the
ones that defeat that: ids that differ only in high bits, multiples of the block size and
of the table size, ids near 2^64 - 1, and deletes in the middle of long probe runs (the
backward shift must keep every other id findable)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import ID_EMPTY, id_delete, id_find, id_insert
from engine.config import load_venue
from engine.state import make_state

MAX_ORDERS = 64  # a 128-slot table: probe runs get long quickly


def _state():
    return make_state(load_venue(None).with_capacity(max_orders=MAX_ORDERS, max_levels=8, max_accounts=16))


def _check(state, live):
    for oid, slot in live.items():
        assert id_find(state, np.uint64(oid)) == slot
    assert int((state.id_tab[:, 1] != ID_EMPTY).sum()) == len(live)


PATTERNS = st.sampled_from(
    [
        lambda k: k,  # a client counting up
        lambda k: k << 3,  # one id per block
        lambda k: k << 7,  # multiples of the table size
        lambda k: k << 40,  # only high bits differ
        lambda k: (1 << 64) - 1 - k,  # the top of the range
        lambda k: (k * 0x9E3779B97F4A7C15) % (1 << 64),  # scattered
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    pattern=PATTERNS,
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 90)), min_size=1, max_size=400),
)
def test_id_table_matches_a_dict(pattern, ops):
    state = _state()
    live: dict[int, int] = {}
    next_slot = 0
    for insert, k in ops:
        oid = pattern(k)
        if insert and oid not in live and len(live) < MAX_ORDERS:
            id_insert(state, np.uint64(oid), next_slot)
            live[oid] = next_slot
            next_slot += 1
        elif not insert and oid in live:
            id_delete(state, np.uint64(oid))
            del live[oid]
        assert id_find(state, np.uint64(oid)) == live.get(oid, -1)
    _check(state, live)


def test_full_pool_of_colliding_ids_then_delete_every_other():
    state = _state()
    live = {}
    for k in range(MAX_ORDERS):
        oid = k << 40
        id_insert(state, np.uint64(oid), k)
        live[oid] = k
    _check(state, live)
    for k in range(0, MAX_ORDERS, 2):
        id_delete(state, np.uint64(k << 40))
        del live[k << 40]
    _check(state, live)
    assert id_find(state, np.uint64(1 << 40 | 1)) == -1
