"""Pre-trade risk (njit): the account table and the per-account checks of the rulebook.

Each check returns a reason code (R_NONE when it passes); the matcher calls them in the
rulebook's order. Quantities and prices are int64 ticks; notional limits are held as
floor(max_notional / tick) per profile and symbol, compared by division so that
price x qty never overflows.
"""

import numpy as np
from numba import njit

from engine.records import (
    R_ACCOUNT_DISABLED,
    R_CAPACITY,
    R_MAX_NOTIONAL,
    R_MAX_OPEN_ORDERS,
    R_MAX_POSITION,
    R_NONE,
    R_RATE_LIMIT,
    R_UNKNOWN_ACCOUNT,
    SIDE_BUY,
)
from engine.state import C_ACCOUNTS, C_HAS_DEFAULT, C_MAX_ACCOUNTS

# _nrt=False: nothing here allocates, and with reference counting on, every call that is not
# inlined increfs/decrefs each array of EngineState (~650 ns a call; docs/benchmarks.md).
_JIT = dict(cache=True, nogil=True, boundscheck=False, _nrt=False)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
NS_PER_SEC = np.uint64(1_000_000_000)


@njit(**_JIT)
def find_account(st, acct_id):
    """Slot of a tracked account, or -1."""
    mask = len(st.a_val) - 1
    i = np.int64(((np.uint64(acct_id) * _GOLDEN) >> np.uint64(17)) & np.uint64(mask))
    while True:
        if st.a_key[i] < 0:
            return -1
        if st.a_key[i] == acct_id:
            return np.int64(st.a_val[i])
        i = (i + 1) & mask


@njit(**_JIT)
def track_account(st, acct_id, profile):
    """Start tracking an account (never removed); -1 when max_accounts are tracked."""
    n = st.ctr[C_ACCOUNTS]
    if n >= st.ctr[C_MAX_ACCOUNTS]:
        return -1
    mask = len(st.a_val) - 1
    i = np.int64(((np.uint64(acct_id) * _GOLDEN) >> np.uint64(17)) & np.uint64(mask))
    while st.a_key[i] >= 0:
        i = (i + 1) & mask
    st.a_key[i] = acct_id
    st.a_val[i] = n
    st.a_id[n] = acct_id
    st.a_prof[n] = profile
    st.ctr[C_ACCOUNTS] = n + 1
    return n


@njit(**_JIT)
def account_gate(st, acct_id, needs_slot):
    """Check 1 (UNKNOWN_ACCOUNT, ACCOUNT_DISABLED), then the slot the message needs.

    Returns (reason, slot); slot is -1 when the account is untracked and needs_slot is
    False (a CANCEL never needs one). An account that must be tracked but cannot be is
    CAPACITY, right after check 1 (docs/rulebook.md, section 7).
    """
    slot = find_account(st, acct_id)
    if slot >= 0:
        if st.a_disabled[slot] != 0:
            return R_ACCOUNT_DISABLED, slot
        return R_NONE, slot
    if st.ctr[C_HAS_DEFAULT] == 0:
        return R_UNKNOWN_ACCOUNT, -1
    if st.prof_enabled[0] == 0:
        return R_ACCOUNT_DISABLED, -1
    if not needs_slot:
        return R_NONE, -1
    slot = track_account(st, acct_id, 0)
    if slot < 0:
        return R_CAPACITY, -1
    return R_NONE, slot


@njit(**_JIT)
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


@njit(**_JIT)
def max_order_qty(st, slot):
    return st.prof_max_qty[st.a_prof[slot]]


@njit(**_JIT)
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


@njit(**_JIT)
def check_open_orders(st, slot):
    limit = st.prof_max_open[st.a_prof[slot]]
    if limit > 0 and st.a_open[slot] >= limit:
        return R_MAX_OPEN_ORDERS
    return R_NONE


@njit(**_JIT)
def on_fill(st, slot, sym, side, qty, resting):
    """Positions move with every fill; a resting order's open quantity shrinks with it."""
    if side == SIDE_BUY:
        st.pos[slot, sym] += qty
        if resting:
            st.open_buy[slot, sym] -= qty
    else:
        st.pos[slot, sym] -= qty
        if resting:
            st.open_sell[slot, sym] -= qty


@njit(**_JIT)
def add_open(st, slot, sym, side, qty):
    if side == SIDE_BUY:
        st.open_buy[slot, sym] += qty
    else:
        st.open_sell[slot, sym] += qty
