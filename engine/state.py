"""The matcher's whole state: one NamedTuple of preallocated numpy arrays.

Sizes come from the venue's `[engine]` capacities; nothing grows after `make_state`.
A NamedTuple of arrays is what Numba caches well; a call that is not inlined passes every
array's fields on the stack, which is why the matcher's handlers are inlined (matcher.py).

Structures (all linked by int32/int64 indices, -1 = none):
- order pool: per-order columns, a free stack, FIFO links within a price level and a
  second list per account in acceptance order (KILL walks it);
- id table: (id, slot) pairs in one array, open addressing with linear probing and
  backward-shift deletion, 2x the pool, power of two, so a probe run stays short and
  never fills; runs of 8 consecutive ids share a block (book.py, hash_u64);
- price levels: a pool of levels and, per symbol and side, a ladder of level indices
  sorted worst to best (best last: most traffic is near the touch, so inserts and
  removals shift few entries);
- accounts: an open-addressing table from account id to a slot holding risk
  counters, positions and open quantities per symbol; engine/accounts.py builds its
  columns and owns their bookkeeping (this module imports it, never the reverse).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine.accounts import account_columns, track_listed
from engine.config import VenueConfig, profile_tables

# ctr[] slots
C_SEQ = 0  # last event seq written
C_RESTING = 1  # orders resting now
C_FREE_TOP = 2  # entries on the order free stack
C_LVL_FREE_TOP = 3  # entries on the level free stack
C_MAX_LEVELS = 4
C_MAX_ORDERS = 5
N_CTR = 6  # the account table's counters are a_ctr (engine/accounts.py)


class EngineState(NamedTuple):
    ctr: np.ndarray
    # symbols
    sym_tick: np.ndarray  # tick in 1e-8 units
    sym_band_bps: np.ndarray
    sym_ref: np.ndarray  # current reference price, ticks
    # limit profiles (index 0 = default)
    prof_max_qty: np.ndarray
    prof_max_pos: np.ndarray
    prof_max_open: np.ndarray
    prof_max_rate: np.ndarray
    prof_enabled: np.ndarray
    prof_notional: np.ndarray  # [profile, symbol] floor(max_notional / tick), -1 = none
    # order pool
    o_id: np.ndarray
    o_price: np.ndarray  # ticks
    o_leaves: np.ndarray
    o_acct: np.ndarray  # account slot
    o_sym: np.ndarray
    o_side: np.ndarray
    o_tif: np.ndarray
    o_level: np.ndarray
    o_prev: np.ndarray
    o_next: np.ndarray
    o_aprev: np.ndarray
    o_anext: np.ndarray
    o_free: np.ndarray
    # id -> order slot: [size, 2] of (id bits, slot or -1)
    id_tab: np.ndarray
    # levels
    l_price: np.ndarray
    l_qty: np.ndarray
    l_head: np.ndarray
    l_tail: np.ndarray
    l_free: np.ndarray
    ladder: np.ndarray  # [symbol * 2 + side - 1, max_levels] level indices, best last
    ladder_n: np.ndarray
    # accounts: columns from accounts.account_columns
    a_ctr: np.ndarray  # A_TRACKED, A_HAS_DEFAULT, A_MAX
    a_key: np.ndarray  # account id, -1 = empty bucket
    a_val: np.ndarray  # slot
    a_id: np.ndarray
    a_prof: np.ndarray
    a_disabled: np.ndarray
    a_bucket: np.ndarray
    a_count: np.ndarray
    a_open: np.ndarray  # resting orders
    a_head: np.ndarray  # oldest resting order
    a_tail: np.ndarray
    pos: np.ndarray  # [slot, symbol] net filled, buys positive
    open_buy: np.ndarray  # [slot, symbol] leaves of resting buys
    open_sell: np.ndarray


def _pow2_at_least(n: int) -> int:
    return 1 << max(4, (n - 1).bit_length())


def _empty_id_table(size: int) -> np.ndarray:
    tab = np.zeros((size, 2), np.int64)
    tab[:, 1] = -1
    return tab


def _prefault(st: EngineState) -> None:
    """Touch every page now: np.zeros maps pages lazily, and a page fault (a 2 MiB huge
    page is cleared on first write) must not land on the first orders that reach them."""
    for a in st:
        flat = a.reshape(-1)
        step = max(1, 4096 // a.itemsize)
        flat[::step] = flat[::step]


def make_state(venue: VenueConfig) -> EngineState:
    n_sym = len(venue.symbols)
    n_ord, n_lvl_side, n_acct = venue.max_orders, venue.max_levels, venue.max_accounts
    # A side can never hold more levels than orders.
    n_lvl_side = min(n_lvl_side, n_ord)
    n_lvl = min(n_sym * 2 * n_lvl_side, n_ord)
    id_size = _pow2_at_least(2 * n_ord)
    acct_size = _pow2_at_least(2 * n_acct)
    prof = profile_tables(venue)

    ctr = np.zeros(N_CTR, np.int64)
    ctr[C_FREE_TOP] = n_ord
    ctr[C_LVL_FREE_TOP] = n_lvl
    ctr[C_MAX_LEVELS] = venue.max_levels
    ctr[C_MAX_ORDERS] = n_ord

    def full(n, v, dt=np.int64):
        return np.full(n, v, dt)

    st = EngineState(
        ctr=ctr,
        sym_tick=np.array([s.tick_units for s in venue.symbols], np.int64),
        sym_band_bps=np.array([s.band_bps for s in venue.symbols], np.int64),
        sym_ref=np.array([s.ref_ticks for s in venue.symbols], np.int64),
        prof_max_qty=prof["prof_max_qty"],
        prof_max_pos=prof["prof_max_pos"],
        prof_max_open=prof["prof_max_open"],
        prof_max_rate=prof["prof_max_rate"],
        prof_enabled=prof["prof_enabled"],
        prof_notional=prof["prof_notional"],
        o_id=np.zeros(n_ord, np.uint64),
        o_price=np.zeros(n_ord, np.int64),
        o_leaves=np.zeros(n_ord, np.int64),
        o_acct=full(n_ord, -1, np.int32),
        o_sym=np.zeros(n_ord, np.int32),
        o_side=np.zeros(n_ord, np.int8),
        o_tif=np.zeros(n_ord, np.int8),
        o_level=full(n_ord, -1, np.int32),
        o_prev=full(n_ord, -1, np.int32),
        o_next=full(n_ord, -1, np.int32),
        o_aprev=full(n_ord, -1, np.int32),
        o_anext=full(n_ord, -1, np.int32),
        # Free stacks pop from the top; filling them in reverse hands out slot 0 first.
        o_free=np.arange(n_ord - 1, -1, -1, dtype=np.int32),
        id_tab=_empty_id_table(id_size),
        l_price=np.zeros(n_lvl, np.int64),
        l_qty=np.zeros(n_lvl, np.int64),
        l_head=full(n_lvl, -1, np.int32),
        l_tail=full(n_lvl, -1, np.int32),
        l_free=np.arange(n_lvl - 1, -1, -1, dtype=np.int32),
        ladder=full((n_sym * 2, n_lvl_side), -1, np.int32).reshape(n_sym * 2, n_lvl_side),
        ladder_n=np.zeros(n_sym * 2, np.int64),
        **account_columns(n_acct, n_sym, acct_size, venue.default_account is not None),
    )
    _prefault(st)
    track_listed(st, prof["listed_ids"], prof["prof_enabled"])
    return st


def state_nbytes(st: EngineState) -> int:
    return sum(a.nbytes for a in st)
