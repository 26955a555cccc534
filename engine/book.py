"""Order book primitives on EngineState (njit): id table, price ladders, FIFO queues.

Nothing here allocates; every structure was sized by `make_state`. Prices are ticks.
A ladder holds one side of one symbol, sorted worst to best with the best last; the
sort key is the price for bids and minus the price for asks, so one code path serves
both sides.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from engine.fifo import link_last, unlink
from engine.jit import API, HOT
from engine.records import SIDE_BUY
from engine.state import C_FREE_TOP, C_LVL_FREE_TOP, C_LVL_UNUSED, C_RESTING, C_UNUSED


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Ids come in runs (a client counts up; LOBSTER numbers orders in sequence): BLOCK
# consecutive ids share one aligned block of the table (BLOCK x 16 bytes = two cache
# lines), and Fibonacci hashing scatters the blocks. A NEW then finds its id's line
# already in cache most of the time, where a hash of every id costs a miss per NEW.
_BLOCK_BITS = np.uint64(3)
_BLOCK_MASK = np.uint64(7)
ID_EMPTY = 0  # a zeroed table is empty, so its pages are only touched when used


@njit(**HOT)
def hash_u64(key):
    k = np.uint64(key)
    block = ((k >> _BLOCK_BITS) * _GOLDEN) >> np.uint64(17)
    return (block << _BLOCK_BITS) | (k & _BLOCK_MASK)


# --- id -> order slot -------------------------------------------------------------------
# id_tab[i, 0] is the id (its uint64 bits as int64), id_tab[i, 1] the order slot + 1, or
# ID_EMPTY: key and value on the same cache line, one miss per probe at most.


@njit(**HOT)
def id_home(st, order_id):
    return np.int64(hash_u64(order_id) & np.uint64(len(st.id_tab) - 1))


@intrinsic
def _prefetch_row(typingctx, table, row):
    """A read prefetch (llvm.prefetch, keep in all cache levels) of table[row, 0]."""
    if not isinstance(table, types.Array) or table.ndim != 2 or not isinstance(row, types.Integer):
        return None
    sig = types.void(table, row)

    def codegen(context, builder, signature, args):
        tabty, rowty = signature.args
        tab = context.make_array(tabty)(context, builder, args[0])
        i = context.cast(builder, args[1], rowty, types.intp)
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, tabty, tab, [i, zero])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


# How many messages ahead a caller that sees its queue prefetches ids: a line from memory
# takes longer than one message (~60 ns), so the prefetch of the next message's id still
# stalled it. 1M mixed flow, medians of 7: 67 ns/message at 1 ahead, 61 at 4, 62 at 8, 63 at 16.
PREFETCH_AHEAD = 4


@njit(**HOT)
def id_prefetch(st, order_id):
    """Start loading the table line of an id a later message will look up: a NEW's id
    opens a new block every 8 ids, a miss to memory that the messages before it can hide."""
    _prefetch_row(st.id_tab, id_home(st, order_id))


@njit(**HOT)
def id_prefetch_next_block(st, order_id):
    """Ids come in runs: a NEW that opens a block of ids starts loading the next block's line,
    8 ids ahead of the run. One message at a time (the live engine with nothing queued) there is
    no later record to prefetch from, and the first id of each block missed to memory."""
    k = np.uint64(order_id)
    if k & _BLOCK_MASK == 0:
        _prefetch_row(st.id_tab, id_home(st, k + np.uint64(8)))


@njit(**API)
def id_find(st, order_id):
    i = id_row(st, order_id)
    return st.id_tab[i, 1] - 1 if i >= 0 else -1


@njit(**HOT)
def id_row(st, order_id):
    """The table row that holds order_id, or -1."""
    mask = len(st.id_tab) - 1
    key = np.int64(order_id)
    i = id_home(st, order_id)
    while True:
        if st.id_tab[i, 1] == ID_EMPTY:
            return -1
        if st.id_tab[i, 0] == key:
            return i
        i = (i + 1) & mask


@njit(**API)
def id_insert(st, order_id, slot):
    mask = len(st.id_tab) - 1
    i = id_home(st, order_id)
    while st.id_tab[i, 1] != ID_EMPTY:
        i = (i + 1) & mask
    st.id_tab[i, 0] = np.int64(order_id)
    st.id_tab[i, 1] = slot + 1


@njit(**API)
def id_delete(st, order_id):
    """Linear-probing delete with backward shift: no tombstones, probes stay short.
    The id is in the table."""
    id_delete_row(st, id_row(st, order_id))


@njit(**HOT)
def id_delete_row(st, i):
    """Empty row i (id_row's answer) and close the gap behind it."""
    mask = len(st.id_tab) - 1
    j = i
    while True:
        j = (j + 1) & mask
        if st.id_tab[j, 1] == ID_EMPTY:
            break
        home = id_home(st, np.uint64(st.id_tab[j, 0]))
        # Move j back into the hole at i unless its home lies cyclically in (i, j].
        if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
            st.id_tab[i, 0] = st.id_tab[j, 0]
            st.id_tab[i, 1] = st.id_tab[j, 1]
            i = j
    st.id_tab[i, 1] = ID_EMPTY


# --- price ladders ----------------------------------------------------------------------


@njit(**HOT)
def book_of(sym, side):
    return sym * 2 + side - 1


@njit(**HOT)
def sort_key(side, price):
    return price if side == SIDE_BUY else -price


# New orders land near the touch: on the 1M mixed flow, 80 % of the GTC adds that rest are
# within 8 ladder entries of it (ladders ~20 deep). A short walk from the best end finds those
# with one mispredicted branch; a binary search over the rest takes the far ones.
NEAR_TOUCH = 8


@njit(**HOT)
def ladder_search(st, book, side, price):
    """Position of the first ladder entry whose key is >= key(price)."""
    key = sort_key(side, price)
    n = st.ladder_n[book]
    row = st.ladder[book]
    hi = n
    stop = max(0, n - NEAR_TOUCH)
    while hi > stop:
        if sort_key(side, st.l_price[row[hi - 1]]) < key:
            return hi
        hi -= 1
    lo = 0
    while lo < hi:
        mid = (lo + hi) >> 1
        if sort_key(side, st.l_price[row[mid]]) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(**HOT)
def find_level(st, book, side, price):
    n = st.ladder_n[book]
    row = st.ladder[book]
    pos = ladder_search(st, book, side, price)
    if pos < n and st.l_price[row[pos]] == price:
        return np.int64(row[pos])
    return -1


@njit(**HOT)
def level_for(st, book, side, price):
    """The level at `price`, added if the ladder has none (the caller has checked that it
    has room): one search for both."""
    n = st.ladder_n[book]
    row = st.ladder[book]
    pos = ladder_search(st, book, side, price)
    if pos < n and st.l_price[row[pos]] == price:
        return np.int64(row[pos])
    lvl = take_slot(st.ctr, C_LVL_FREE_TOP, C_LVL_UNUSED, st.l_free)
    st.l_price[lvl] = price
    st.l_qty[lvl] = 0
    st.l_head[lvl] = -1
    st.l_tail[lvl] = -1
    for k in range(n, pos, -1):
        row[k] = row[k - 1]
    row[pos] = lvl
    st.ladder_n[book] = n + 1
    return np.int64(lvl)


@njit(**HOT)
def best_level(st, book):
    n = st.ladder_n[book]
    if n == 0:
        return -1
    return np.int64(st.ladder[book][n - 1])


@njit(**HOT)
def remove_level(st, book, side, lvl):
    n = st.ladder_n[book]
    row = st.ladder[book]
    if row[n - 1] == lvl:
        pos = n - 1
    else:
        pos = ladder_search(st, book, side, st.l_price[lvl])
    for k in range(pos, n - 1):
        row[k] = row[k + 1]
    st.ladder_n[book] = n - 1
    put_slot(st.ctr, C_LVL_FREE_TOP, st.l_free, lvl)


# --- orders in levels --------------------------------------------------------------------


@njit(**HOT)
def take_slot(ctr, top_at, unused_at, free):
    """A pool slot: the last one freed, else the next never used (slots are handed out
    0, 1, 2, ... so a pool's pages are touched only as far as it has been used)."""
    top = ctr[top_at]
    if top > 0:
        ctr[top_at] = top - 1
        return np.int64(free[top - 1])
    slot = ctr[unused_at]
    ctr[unused_at] = slot + 1
    return slot


@njit(**HOT)
def put_slot(ctr, top_at, free, slot):
    """A freed pool slot, on top of the free stack: the next take_slot hands it out."""
    top = ctr[top_at]
    free[top] = slot
    ctr[top_at] = top + 1


@njit(**HOT)
def alloc_order(st):
    st.ctr[C_RESTING] += 1
    return take_slot(st.ctr, C_FREE_TOP, C_UNUSED, st.o_free)


@njit(**HOT)
def free_order(st, o):
    put_slot(st.ctr, C_FREE_TOP, st.o_free, o)
    st.ctr[C_RESTING] -= 1


@njit(**HOT)
def enqueue(st, lvl, o):
    """Append order o at the back of level lvl."""
    link_last(st.l_head, st.l_tail, st.o_prev, st.o_next, lvl, o)
    st.o_level[o] = lvl
    st.l_qty[lvl] += st.o_leaves[o]


@njit(**HOT)
def dequeue(st, o):
    """Unlink order o from its level (its leaves leave the level's total)."""
    lvl = st.o_level[o]
    unlink(st.l_head, st.l_tail, st.o_prev, st.o_next, lvl, o)
    st.l_qty[lvl] -= st.o_leaves[o]
    st.o_level[o] = -1
    return np.int64(lvl)


@njit(**API)
def top_levels(st, sym, side, n_levels, prices_out, qtys_out):
    """The best n_levels of one side, best first (prices in ticks); returns how many."""
    book = book_of(sym, side)
    n = st.ladder_n[book]
    row = st.ladder[book]
    k = 0
    while k < n_levels and k < n:
        lvl = row[n - 1 - k]
        prices_out[k] = st.l_price[lvl]
        qtys_out[k] = st.l_qty[lvl]
        k += 1
    return k


@njit(**API)
def level_count(st, sym, side):
    return st.ladder_n[book_of(sym, side)]


@njit(**API)
def level_orders(st, sym, side, depth_index):
    """Number of orders at the depth_index-th best level of one side."""
    book = book_of(sym, side)
    n = st.ladder_n[book]
    lvl = st.ladder[book][n - 1 - depth_index]
    count = 0
    o = st.l_head[lvl]
    while o >= 0:
        count += 1
        o = st.o_next[o]
    return count
