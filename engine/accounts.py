"""The account table (njit): which accounts are tracked, and the bookkeeping of each.

This module owns every account column of EngineState and the only code that writes them,
apart from the rate counter that check 2 keeps (risk.py):

- a_key/a_val: open addressing from account id to slot (Fibonacci hash, linear probing);
  a_key holds the id + 1, so that a zeroed bucket is empty.
  Accounts are never removed, so there is no deletion and no tombstone;
- per slot: id, limit profile, disabled flag, rate bucket and count, resting orders and the
  oldest and newest of them (a second list through the order pool, o_aprev/o_anext, in
  acceptance order: KILL walks it);
- per slot and symbol: position (buys positive) and the open quantity of resting buys and
  sells, which MAX_POSITION counts;
- a_ctr: the table's counters (A_TRACKED, A_HAS_DEFAULT, A_MAX). They live here rather than in
  state.ctr so that this module needs nothing from state.py: state.py builds the table from
  `account_columns` and tracks the listed accounts with `track_account`, and imports one way.

Quantities are int64; nothing here allocates.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.fifo import link_last, unlink
from engine.jit import API, HOT
from engine.records import R_ACCOUNT_DISABLED, R_CAPACITY, R_NONE, R_UNKNOWN_ACCOUNT, SIDE_BUY


# a_ctr[] slots
A_TRACKED = 0  # accounts tracked (slots 0 .. A_TRACKED-1 are in use)
A_HAS_DEFAULT = 1  # 1 when [accounts.default] exists
A_MAX = 2  # max_accounts
N_A_CTR = 3

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def account_layout(n_acct: int, n_sym: int, table_size: int) -> dict[str, tuple[tuple[int, ...], type]]:
    """Shape and dtype of each account column of EngineState: n_acct slots, a hash table of
    table_size buckets (a power of two above n_acct, so a probe always ends at an empty
    bucket). Every column starts zeroed; a slot's fields are set when it is tracked."""
    return dict(
        a_ctr=((N_A_CTR,), np.int64),
        a_key=((table_size,), np.int64),
        a_val=((table_size,), np.int32),
        a_id=((n_acct,), np.int64),
        a_prof=((n_acct,), np.int32),
        a_disabled=((n_acct,), np.int8),
        a_bucket=((n_acct,), np.int64),
        a_count=((n_acct,), np.int64),
        a_open=((n_acct,), np.int64),
        a_head=((n_acct,), np.int32),
        a_tail=((n_acct,), np.int32),
        pos=((n_acct, n_sym), np.int64),
        open_buy=((n_acct, n_sym), np.int64),
        open_sell=((n_acct, n_sym), np.int64),
    )


def init_accounts(st, has_default: bool) -> None:
    """The table's counters; its buckets start empty (zero), slots are set by track_account."""
    st.a_ctr[A_HAS_DEFAULT] = 1 if has_default else 0
    st.a_ctr[A_MAX] = len(st.a_id)


def track_listed(st, listed_ids, prof_enabled) -> None:
    """Listed accounts are tracked from the start, with their own profile (1, 2, ...)."""
    for k, acct_id in enumerate(listed_ids):
        slot = track_account(st, np.int64(acct_id), np.int32(k + 1))
        st.a_disabled[slot] = 0 if prof_enabled[k + 1] else 1


# --- the table -------------------------------------------------------------------------


@njit(**API)
def find_account(st, acct_id):
    """Slot of a tracked account, or -1."""
    mask = len(st.a_val) - 1
    i = np.int64(((np.uint64(acct_id) * _GOLDEN) >> np.uint64(17)) & np.uint64(mask))
    while True:
        if st.a_key[i] == 0:
            return -1
        if st.a_key[i] == acct_id + 1:
            return np.int64(st.a_val[i])
        i = (i + 1) & mask


@njit(**API)
def track_account(st, acct_id, profile):
    """Start tracking an account (never removed); -1 when max_accounts are tracked."""
    n = st.a_ctr[A_TRACKED]
    if n >= st.a_ctr[A_MAX]:
        return -1
    mask = len(st.a_val) - 1
    i = np.int64(((np.uint64(acct_id) * _GOLDEN) >> np.uint64(17)) & np.uint64(mask))
    while st.a_key[i] != 0:
        i = (i + 1) & mask
    st.a_key[i] = acct_id + 1
    st.a_val[i] = n
    st.a_id[n] = acct_id
    st.a_prof[n] = profile
    st.a_head[n] = -1  # no resting orders
    st.a_tail[n] = -1
    st.a_ctr[A_TRACKED] = n + 1
    return n


@njit(**HOT)
def account_gate(st, acct_id, kill):
    """Check 1 (UNKNOWN_ACCOUNT, ACCOUNT_DISABLED) and the account's slot, tracked now if new.

    Returns (reason, slot). NEW and REPLACE pass kill=False. A KILL (kill=True) is only
    refused for an unknown account: killing a disabled or killed account is accepted
    (docs/rulebook.md, section 4). An account that must be tracked but cannot be is
    CAPACITY, right after check 1 (section 7).
    """
    slot = find_account(st, acct_id)
    if slot >= 0:
        if st.a_disabled[slot] != 0 and not kill:
            return R_ACCOUNT_DISABLED, slot
        return R_NONE, slot
    if st.a_ctr[A_HAS_DEFAULT] == 0:
        return R_UNKNOWN_ACCOUNT, -1
    if st.prof_enabled[0] == 0 and not kill:
        return R_ACCOUNT_DISABLED, -1
    slot = track_account(st, acct_id, np.int32(0))
    if slot < 0:
        return R_CAPACITY, -1
    return R_NONE, slot


@njit(**HOT)
def disable_account(st, slot):
    """From now on check 1 rejects the account ACCOUNT_DISABLED (a KILL does this)."""
    st.a_disabled[slot] = 1


# --- an account's resting orders (a FIFO list through the order pool: engine/fifo.py) -------


@njit(**HOT)
def join_account(st, o, slot):
    """A resting order joins its account: last in the acceptance list, one more open order."""
    link_last(st.a_head, st.a_tail, st.o_aprev, st.o_anext, slot, o)
    st.a_open[slot] += 1


@njit(**HOT)
def leave_account(st, o):
    """The order leaves its account's list and open-order count (not its open quantity)."""
    slot = np.int64(st.o_acct[o])
    unlink(st.a_head, st.a_tail, st.o_aprev, st.o_anext, slot, o)
    st.a_open[slot] -= 1


# --- quantities ------------------------------------------------------------------------


@njit(**HOT)
def add_open(st, slot, sym, side, qty):
    """Open quantity of the account's resting orders on one side; qty < 0 takes it out."""
    if side == SIDE_BUY:
        st.open_buy[slot, sym] += qty
    else:
        st.open_sell[slot, sym] += qty


@njit(**HOT)
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
