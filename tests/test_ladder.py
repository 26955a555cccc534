"""The price ladders (engine/book.py) against a sorted list: one side of one symbol, best last.

The search walks NEAR_TOUCH entries from the touch, then bisects the rest, so the cases that
matter are prices at each end, at the boundary between the walk and the bisection, between
two levels, and ladders deeper than the walk. Both sides: asks sort by minus the price."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from engine.book import NEAR_TOUCH, book_of, find_level, level_for, remove_level
from engine.config import load_venue
from engine.records import SIDE_BUY, SIDE_SELL
from engine.state import make_state

MAX_LEVELS = 4 * NEAR_TOUCH


@njit
def _apply(st, side, ops, found):
    """ops[k] = (price, add): add the level at price (level_for), or remove it if there is one.
    found[k] = the level find_level saw at price before the op, -1 for none."""
    book = book_of(np.int64(0), np.int64(side))
    for k in range(len(ops)):
        price = ops[k, 0]
        lvl = find_level(st, book, np.int64(side), price)
        found[k] = lvl
        if ops[k, 1] == 1:
            if lvl >= 0 or st.ladder_n[book] < MAX_LEVELS:
                level_for(st, book, np.int64(side), price)
        elif lvl >= 0:
            remove_level(st, book, np.int64(side), lvl)


def _ladder_prices(state, side):
    book = (0 * 2) + side - 1
    row = state.ladder[book][: state.ladder_n[book]]
    return [int(state.l_price[lvl]) for lvl in row]


@settings(max_examples=300, deadline=None)
@given(
    side=st.sampled_from([SIDE_BUY, SIDE_SELL]),
    ops=st.lists(st.tuples(st.integers(1, 3 * MAX_LEVELS), st.sampled_from([1, 1, 1, 0])), min_size=1, max_size=300),
)
def test_ladder_matches_a_sorted_list(side, ops):
    venue = load_venue(None).with_capacity(max_orders=64, max_levels=MAX_LEVELS, max_accounts=4)
    state = make_state(venue)
    arr = np.array(ops, np.int64)
    found = np.zeros(len(ops), np.int64)
    _apply(state, side, arr, found)

    model: set[int] = set()
    for k, (price, add) in enumerate(ops):
        assert (found[k] >= 0) == (price in model), f"op {k}: find_level at {price}"
        if add and (price in model or len(model) < MAX_LEVELS):
            model.add(price)
        elif not add:
            model.discard(price)
    best_last = sorted(model, reverse=(side == SIDE_SELL))  # bids ascending, asks descending
    assert _ladder_prices(state, side) == best_last
