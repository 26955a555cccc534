"""The matcher's whole state: one NamedTuple of preallocated numpy arrays.

Sizes come from the venue's `[engine]` capacities; nothing grows after `make_state`. Every
column is allocated zeroed, so the kernel maps its pages on first use: a venue sized for
millions of orders costs only what its flow touches (docs/performance.md#memory).
A NamedTuple of arrays is what Numba caches well; a call that is not inlined passes every
array's fields on the stack, which is why the matcher's handlers are inlined (matcher.py).

Structures (all linked by int32/int64 indices, -1 = none):
- order pool: per-order columns, FIFO links within a price level and a second list per
  account in acceptance order (KILL walks it); slots are handed out from a high-water mark
  (C_UNUSED) and freed ones reused first from a stack (book.take_slot);
- id table: (id, slot + 1) pairs in one array, 0 = empty, open addressing with linear probing and
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

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from engine.accounts import account_layout, init_accounts, track_listed
from engine.config import ConfigError, VenueConfig, profile_tables

# ctr[] slots
C_SEQ = 0  # last event seq written
C_RESTING = 1  # orders resting now
C_FREE_TOP = 2  # order slots on the free stack (freed, to be reused first)
C_LVL_FREE_TOP = 3  # level slots on the free stack
C_MAX_LEVELS = 4
C_MAX_ORDERS = 5
C_UNUSED = 6  # order slots handed out so far; slots from here on were never used
C_LVL_UNUSED = 7
N_CTR = 8  # the account table's counters are a_ctr (engine/accounts.py)


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


PROFILE_COLUMNS = ("prof_max_qty", "prof_max_pos", "prof_max_open", "prof_max_rate", "prof_enabled", "prof_notional")


def _pow2_at_least(n: int) -> int:
    return 1 << max(4, (n - 1).bit_length())


def _layout(venue: VenueConfig, prof: dict[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], type, str]]:
    """Shape, dtype and the `[engine]` capacity it grows with, for every column (prof: the
    venue's profile_tables)."""
    n_sym = len(venue.symbols)
    n_ord, n_acct = venue.max_orders, venue.max_accounts
    # A side can never hold more levels than orders.
    n_lvl_side = min(venue.max_levels, n_ord)
    n_lvl = min(n_sym * 2 * n_lvl_side, n_ord)
    orders = dict(
        o_id=np.uint64, o_price=np.int64, o_leaves=np.int64, o_acct=np.int32, o_sym=np.int32,
        o_side=np.int8, o_tif=np.int8, o_level=np.int32, o_prev=np.int32, o_next=np.int32,
        o_aprev=np.int32, o_anext=np.int32, o_free=np.int32,
    )
    levels = dict(l_price=np.int64, l_qty=np.int64, l_head=np.int32, l_tail=np.int32, l_free=np.int32)
    layout = {"ctr": ((N_CTR,), np.int64, "")}
    layout |= {k: ((n_sym,), np.int64, "") for k in ("sym_tick", "sym_band_bps", "sym_ref")}
    layout |= {k: (prof[k].shape, prof[k].dtype, "") for k in PROFILE_COLUMNS}
    layout |= {k: ((n_ord,), dt, "max_orders") for k, dt in orders.items()}
    layout["id_tab"] = ((_pow2_at_least(2 * n_ord), 2), np.int64, "max_orders")
    layout |= {k: ((n_lvl,), dt, "max_levels") for k, dt in levels.items()}
    layout["ladder"] = ((n_sym * 2, n_lvl_side), np.int32, "max_levels")
    layout["ladder_n"] = ((n_sym * 2,), np.int64, "")
    accounts = account_layout(n_acct, n_sym, _pow2_at_least(2 * n_acct))
    layout |= {k: (shape, dt, "max_accounts") for k, (shape, dt) in accounts.items()}
    assert list(layout) == list(EngineState._fields)
    return layout


def state_bytes(venue: VenueConfig) -> dict[str, int]:
    """Bytes of state the venue's capacities reserve, by `[engine]` key ('' = the rest)."""
    return _bytes_by_key(_layout(venue, profile_tables(venue)))


def _bytes_by_key(layout) -> dict[str, int]:
    by_key: dict[str, int] = {}
    for shape, dt, key in layout.values():
        by_key[key] = by_key.get(key, 0) + int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize
    return by_key


def machine_memory() -> int:
    """Physical memory in bytes (the cgroup's limit when lower, as in a container)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def check_fits(venue: VenueConfig, layout=None) -> None:
    """Refuse capacities whose state could not fit in this machine's memory, naming the key
    that reserves the most. The columns are allocated zeroed and touched only as they are
    used, so a small flow costs little whatever the capacities; this check is for the flow
    that would use them."""
    by_key = state_bytes(venue) if layout is None else _bytes_by_key(layout)
    total, avail = sum(by_key.values()), machine_memory()
    if total > avail:
        key = max((k for k in by_key if k), key=by_key.__getitem__)
        raise ConfigError(
            f"{venue.source}: [engine] {key} = {getattr(venue, key):,}: the venue's state would need "
            f"{total / 2**30:,.1f} GiB ({by_key[key] / 2**30:,.1f} GiB for {key}), more than this "
            f"machine's {avail / 2**30:,.1f} GiB of memory"
        )


# Columns indexed by a hash, whose pages any message may touch; every other column fills from
# its start (pool slots from a high-water mark, ladders best-last, account slots in order).
HASHED = ("id_tab", "a_key", "a_val")


def prefault(st: EngineState, layout, n_messages: int | None = None) -> None:
    """Touch now the pages that a flow of up to n_messages would fault on at random
    (None: every page, for the live engine). np.zeros maps pages lazily, and a page fault
    (a 2 MiB huge page is cleared on first write) should land neither on an order's latency
    nor in the matcher's timings. A column that fills from its start faults once per page
    as it grows, a few faults per thousand orders: a replay leaves those to first use, so
    its memory follows the flow's resting orders, not the venue's capacities.
    layout: the state's _layout, for the capacity each column grows with."""
    for name, a in zip(EngineState._fields, st):
        if n_messages is None or not layout[name][2]:
            part = a
        elif name == "id_tab":
            # ids land anywhere in the table, 8 consecutive ids to a line: a flow of
            # more than rows / 32 messages reaches most of its pages
            part = a if n_messages * 32 >= len(a) else a[:0]
        elif name in HASHED:
            part = a
        else:
            continue
        flat = part.reshape(-1)
        step = max(1, 4096 // a.itemsize)
        flat[::step] += 0  # a write: a read would map the shared zero page


def make_state(venue: VenueConfig, n_messages: int | None = 0) -> EngineState:
    """An empty book for the venue. Every column is allocated zeroed (pages are mapped on
    first use), then the pages that a flow of up to n_messages would fault on at random are
    touched (prefault): 0 touches nothing, None everything (the live engine)."""
    prof = profile_tables(venue)
    layout = _layout(venue, prof)
    check_fits(venue, layout)
    st = EngineState(**{name: np.zeros(shape, dt) for name, (shape, dt, _) in layout.items()})
    for name in PROFILE_COLUMNS:
        getattr(st, name)[...] = prof[name]
    st.sym_tick[:] = [s.tick_units for s in venue.symbols]
    st.sym_band_bps[:] = [s.band_bps for s in venue.symbols]
    st.sym_ref[:] = [s.ref_ticks for s in venue.symbols]
    st.ctr[C_MAX_LEVELS] = venue.max_levels
    st.ctr[C_MAX_ORDERS] = venue.max_orders
    init_accounts(st, venue.default_account is not None)
    if n_messages != 0:
        prefault(st, layout, n_messages)
    track_listed(st, prof["listed_ids"], prof["prof_enabled"])
    return st


def state_nbytes(st: EngineState) -> int:
    return sum(a.nbytes for a in st)
