"""Pre-trade risk (njit): the per-account limit checks of the rulebook (checks 2, 8, 9, 10,
and the account's max_order_qty for check 6).

Each check returns a reason code (R_NONE when it passes); the matcher calls them in the
rulebook's order, after check 1 (accounts.account_gate). They read the account table that
engine/accounts.py keeps and write nothing of it but check 2's own rate counter.
Quantities and prices are int64 ticks; notional limits are held as
floor(max_notional / tick) per profile and symbol, compared by division so that
price x qty never overflows.
"""

import numpy as np
from numba import njit

from engine.jit import HOT
from engine.records import (
    R_MAX_NOTIONAL,
    R_MAX_OPEN_ORDERS,
    R_MAX_POSITION,
    R_NONE,
    R_RATE_LIMIT,
    SIDE_BUY,
)


NS_PER_SEC = np.uint64(1_000_000_000)


@njit(**HOT)
def check_rate(st, slot, ts):
    """Check 2: one counter per account, restarted whenever the 1-second bucket changes."""
    bucket = np.int64(np.uint64(ts) // NS_PER_SEC)
    if st.a_bucket[slot] != bucket:
        st.a_bucket[slot] = bucket
        st.a_count[slot] = 0
    st.a_count[slot] += 1
    limit = st.prof_max_rate[st.a_prof[slot]]
    if limit > 0 and st.a_count[slot] > limit:
        return R_RATE_LIMIT
    return R_NONE


@njit(**HOT)
def max_order_qty(st, slot):
    return st.prof_max_qty[st.a_prof[slot]]


@njit(**HOT)
def check_exposure(st, slot, sym, side, value_price, qty, own_leaves):
    """Checks 8 and 9: MAX_NOTIONAL at value_price (ticks), then MAX_POSITION.

    own_leaves is the leaves a REPLACE takes out of its side's open quantity (0 for NEW).
    """
    prof = st.a_prof[slot]
    limit = st.prof_notional[prof, sym]
    if limit >= 0 and qty > limit // value_price:
        return R_MAX_NOTIONAL
    max_pos = st.prof_max_pos[prof]
    if max_pos > 0:
        if side == SIDE_BUY:
            if st.pos[slot, sym] + st.open_buy[slot, sym] - own_leaves + qty > max_pos:
                return R_MAX_POSITION
        elif st.open_sell[slot, sym] - own_leaves + qty - st.pos[slot, sym] > max_pos:
            return R_MAX_POSITION
    return R_NONE


@njit(**HOT)
def check_open_orders(st, slot):
    """Check 10: the account already has max_open_orders resting."""
    limit = st.prof_max_open[st.a_prof[slot]]
    if limit > 0 and st.a_open[slot] >= limit:
        return R_MAX_OPEN_ORDERS
    return R_NONE
