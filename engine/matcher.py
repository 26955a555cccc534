"""The matcher (njit): one function processes one order record and appends its events.

`process_one` is the only entry point that changes state; batch replay
(`process_batch`), the pinned live engine and the LOBSTER replayer all call it, so there
is one matcher. Checks run in the rulebook's order (docs/rulebook.md, section 4).
"""

import sys

import numpy as np
from numba import njit

from engine import accounts, book, fifo, risk

from engine.accounts import account_gate, add_open, disable_account, join_account, leave_account, on_fill
from engine.book import (
    alloc_order,
    best_level,
    book_of,
    dequeue,
    enqueue,
    find_level,
    free_order,
    id_delete,
    id_delete_row,
    id_find,
    id_insert,
    id_row,
    id_prefetch,
    id_prefetch_next_block,
    level_for,
    PREFETCH_AHEAD,
    remove_level,
)
from engine.jit import API, HOT, INLINE
from engine.jitcache import flush_engine_if_changed
from engine.records import (
    ACTION_CANCEL,
    ACTION_KILL,
    ACTION_NEW,
    ACTION_REPLACE,
    EV_ACK,
    EV_CANCELED,
    EV_FILL,
    EV_KILLED,
    EV_REJECT,
    EV_REPLACED,
    MAX_PRICE_UNITS,
    MAX_QTY,
    PRICE_NONE,
    R_BAD_PRICE,
    R_BAD_QTY,
    R_BAD_TIF,
    R_CAPACITY,
    R_DUPLICATE_ORDER_ID,
    R_FOK,
    R_IOC,
    R_KILL,
    R_MAKER,
    R_MALFORMED,
    R_MAX_QTY,
    R_NONE,
    R_NOT_OWNER,
    R_POST_ONLY,
    R_PRICE_BAND,
    R_SELF_TRADE,
    R_TAKER,
    R_UNKNOWN_ORDER,
    R_UNKNOWN_SYMBOL,
    R_USER,
    SIDE_BUY,
    SIDE_SELL,
    SYMBOL_UNKNOWN,
    TIF_FOK,
    TIF_GTC,
    TIF_POST,
    TYPE_LIMIT,
    TYPE_MARKET,
)
from engine.risk import check_exposure, check_open_orders, check_rate, max_order_qty
from engine.state import C_MAX_LEVELS, C_MAX_ORDERS, C_RESTING, C_SEQ

# The message handlers are inlined (INLINE) into whoever calls process_one: the three calls
# of a NEW (batch -> process_one -> process_new -> take) left out of line cost ~300 ns of a
# ~400 ns message. Inlined, only the fields each path reads are loaded (docs/benchmarks.md).

NO_LIMIT_BUY = np.int64(2**62)  # a MARKET order without a collar crosses everything
NO_LIMIT_SELL = np.int64(-(2**62))


# emit and reject are inlined too: called with constant kinds and reasons, they would be
# compiled again for each combination of constants, 29 copies (engine/jit.py).
@njit(**INLINE)
def emit(st, out, n, kind, msg_seq, sym, order_id, acct_id, side, price, qty, leaves, contra, reason):
    seq = st.ctr[C_SEQ] + 1
    st.ctr[C_SEQ] = seq
    ev = out[n]
    ev.seq = seq
    ev.msg_seq = msg_seq
    ev.order_id = order_id
    ev.contra_id = contra
    ev.price = price
    ev.qty = qty
    ev.leaves = leaves
    ev.account = acct_id
    ev.symbol = sym
    ev.kind = kind
    ev.side = side
    ev.reason = reason
    return n + 1


@njit(**INLINE)
def reject(st, out, n, r, reason):
    return emit(st, out, n, EV_REJECT, r.msg_seq, r.symbol, r.order_id, r.account, 0, PRICE_NONE, 0, 0, 0, reason)


@njit(**HOT)
def band_ticks(st, sym):
    ref = st.sym_ref[sym]
    bps = st.sym_band_bps[sym]
    # floor(ref * bps / 10000) without overflowing for large references
    return (ref // 10000) * bps + ((ref % 10000) * bps) // 10000


@njit(**HOT)
def check_limit_price(st, sym, price_units):
    """Check 7 for a limit price: (reason, ticks)."""
    if price_units == PRICE_NONE or price_units <= 0 or price_units > MAX_PRICE_UNITS:
        return R_BAD_PRICE, 0
    tick = st.sym_tick[sym]
    if price_units % tick != 0:
        return R_BAD_PRICE, 0
    ticks = price_units // tick
    if st.sym_band_bps[sym] > 0 and abs(ticks - st.sym_ref[sym]) > band_ticks(st, sym):
        return R_PRICE_BAND, 0
    return R_NONE, ticks


@njit(**HOT)
def check_qty(st, slot, qty):
    """Check 6: (reason)."""
    if qty <= 0:
        return R_BAD_QTY
    mq = max_order_qty(st, slot)
    if qty > MAX_QTY or (mq > 0 and qty > mq):
        return R_MAX_QTY
    return R_NONE


@njit(**HOT)
def out_price(st, sym, ticks):
    return ticks * st.sym_tick[sym]


@njit(**HOT)
def crosses(side, limit, price):
    return price <= limit if side == SIDE_BUY else price >= limit


@njit(**HOT)
def unlink_resting(st, o):
    """Take a resting order out of every structure and free its slot."""
    unlink_resting_at(st, o, id_row(st, st.o_id[o]))


@njit(**HOT)
def unlink_resting_at(st, o, row):
    """unlink_resting, for a caller that has the id's table row already (id_row)."""
    lvl = dequeue(st, o)
    sym = np.int64(st.o_sym[o])
    side = np.int64(st.o_side[o])
    book = book_of(sym, side)
    if st.l_head[lvl] < 0:
        remove_level(st, book, side, lvl)
    add_open(st, np.int64(st.o_acct[o]), sym, side, -st.o_leaves[o])
    leave_account(st, o)
    id_delete_row(st, row)
    free_order(st, o)


@njit(**HOT)
def rest(st, o, sym, side, price):
    """Put order o (leaves set) at the back of its level, creating the level if needed."""
    book = book_of(sym, side)
    lvl = level_for(st, book, side, price)
    st.o_price[o] = price
    enqueue(st, lvl, o)
    add_open(st, np.int64(st.o_acct[o]), sym, side, st.o_leaves[o])


@njit(**HOT)
def fok_available(st, sym, side, limit, slot, wanted):
    """Quantity a FOK could trade within its limit before its own account's first order."""
    opp = book_of(sym, 3 - side)
    n = st.ladder_n[opp]
    row = st.ladder[opp]
    total = 0
    k = n - 1
    while k >= 0 and total < wanted:
        lvl = row[k]
        if not crosses(side, limit, st.l_price[lvl]):
            break
        o = st.l_head[lvl]
        while o >= 0:
            if st.o_acct[o] == slot:
                return total
            total += st.o_leaves[o]
            if total >= wanted:
                return total
            o = st.o_next[o]
        k -= 1
    return total


@njit(**INLINE)
def take(st, out, n, msg_seq, sym, side, order_id, acct_id, slot, limit, qty):
    """Trade qty against the opposite side within limit. Returns (n, remaining, stopped):
    stopped is True when self-trade prevention cancelled the remainder."""
    opp_side = 3 - side
    opp = book_of(sym, opp_side)
    rem = qty
    while rem > 0:
        lvl = best_level(st, opp)
        if lvl < 0:
            break
        price = st.l_price[lvl]
        if not crosses(side, limit, price):
            break
        o = np.int64(st.l_head[lvl])
        if st.o_acct[o] == slot:
            return n, rem, True
        t = min(rem, st.o_leaves[o])
        rem -= t
        st.o_leaves[o] -= t
        st.l_qty[lvl] -= t
        st.sym_ref[sym] = price
        on_fill(st, slot, sym, side, t, np.bool_(False))
        maker_slot = np.int64(st.o_acct[o])
        on_fill(st, maker_slot, sym, opp_side, t, np.bool_(True))
        px = out_price(st, sym, price)
        n = emit(st, out, n, EV_FILL, msg_seq, sym, order_id, acct_id, side, px, t, rem, st.o_id[o], R_TAKER)
        n = emit(
            st, out, n, EV_FILL, msg_seq, sym, st.o_id[o], st.a_id[maker_slot], opp_side, px, t,
            st.o_leaves[o], order_id, R_MAKER,
        )
        if st.o_leaves[o] == 0:
            unlink_resting(st, o)
    return n, rem, False


@njit(**INLINE)
def process_new(st, r, out, n):
    reason, slot = account_gate(st, np.int64(r.account), np.bool_(False))
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    reason = check_rate(st, slot, r.ts)
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    sym = np.int64(r.symbol)
    if sym >= len(st.sym_tick):
        return reject(st, out, n, r, R_UNKNOWN_SYMBOL)
    if id_find(st, r.order_id) >= 0:
        return reject(st, out, n, r, R_DUPLICATE_ORDER_ID)
    id_prefetch_next_block(st, r.order_id)
    otype = r.type
    tif = r.tif
    side = np.int64(r.side)
    if otype == TYPE_MARKET and (tif == TIF_GTC or tif == TIF_POST):
        return reject(st, out, n, r, R_BAD_TIF)
    qty = r.qty
    reason = check_qty(st, slot, qty)
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    if otype == TYPE_LIMIT:
        reason, limit = check_limit_price(st, sym, r.price)
        if reason != R_NONE:
            return reject(st, out, n, r, reason)
        value = limit
    else:
        if r.price != PRICE_NONE:
            return reject(st, out, n, r, R_BAD_PRICE)
        ref = st.sym_ref[sym]
        if st.sym_band_bps[sym] > 0:
            band = band_ticks(st, sym)
            limit = ref + band if side == SIDE_BUY else max(1, ref - band)
            value = limit
        else:
            limit = NO_LIMIT_BUY if side == SIDE_BUY else NO_LIMIT_SELL
            value = ref
    reason = check_exposure(st, slot, sym, side, value, qty, np.int64(0))
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    reason = check_open_orders(st, slot)
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    may_rest = tif == TIF_GTC or tif == TIF_POST
    if may_rest:
        if st.ctr[C_RESTING] >= st.ctr[C_MAX_ORDERS]:
            return reject(st, out, n, r, R_CAPACITY)
        book = book_of(sym, side)
        if st.ladder_n[book] >= st.ctr[C_MAX_LEVELS] and find_level(st, book, side, limit) < 0:
            return reject(st, out, n, r, R_CAPACITY)

    ack_price = out_price(st, sym, limit) if otype == TYPE_LIMIT else PRICE_NONE
    acct_id = r.account
    oid = r.order_id
    n = emit(st, out, n, EV_ACK, r.msg_seq, sym, oid, acct_id, side, ack_price, qty, qty, 0, R_NONE)

    opp = book_of(sym, 3 - side)
    if tif == TIF_POST:
        best = best_level(st, opp)
        if best >= 0 and crosses(side, limit, st.l_price[best]):
            return emit(st, out, n, EV_CANCELED, r.msg_seq, sym, oid, acct_id, side, ack_price, qty, 0, 0, R_POST_ONLY)
    elif tif == TIF_FOK:
        if fok_available(st, sym, side, limit, slot, qty) < qty:
            return emit(st, out, n, EV_CANCELED, r.msg_seq, sym, oid, acct_id, side, ack_price, qty, 0, 0, R_FOK)

    n, rem, stopped = take(st, out, n, r.msg_seq, sym, side, oid, acct_id, slot, limit, qty)
    if rem == 0:
        return n
    if stopped:
        return emit(st, out, n, EV_CANCELED, r.msg_seq, sym, oid, acct_id, side, ack_price, rem, 0, 0, R_SELF_TRADE)
    if not may_rest:
        return emit(st, out, n, EV_CANCELED, r.msg_seq, sym, oid, acct_id, side, ack_price, rem, 0, 0, R_IOC)
    o = alloc_order(st)
    st.o_id[o] = oid
    st.o_leaves[o] = rem
    st.o_acct[o] = slot
    st.o_sym[o] = sym
    st.o_side[o] = side
    st.o_tif[o] = tif
    id_insert(st, oid, o)
    join_account(st, o, slot)
    rest(st, o, sym, side, limit)
    return n


@njit(**INLINE)
def process_cancel(st, r, out, n):
    row = id_row(st, r.order_id)
    if row < 0:
        return reject(st, out, n, r, R_UNKNOWN_ORDER)
    o = np.int64(st.id_tab[row, 1] - 1)
    if st.a_id[st.o_acct[o]] != np.int64(r.account):
        return reject(st, out, n, r, R_NOT_OWNER)
    sym = np.int64(st.o_sym[o])
    n = emit(
        st, out, n, EV_CANCELED, r.msg_seq, sym, r.order_id, r.account, np.int64(st.o_side[o]),
        out_price(st, sym, st.o_price[o]), st.o_leaves[o], 0, 0, R_USER,
    )
    unlink_resting_at(st, o, row)
    return n


@njit(**INLINE)
def process_replace(st, r, out, n):
    reason, slot = account_gate(st, np.int64(r.account), np.bool_(False))
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    reason = check_rate(st, slot, r.ts)
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    o = id_find(st, r.order_id)
    if o < 0:
        return reject(st, out, n, r, R_UNKNOWN_ORDER)
    if st.o_acct[o] != slot:
        return reject(st, out, n, r, R_NOT_OWNER)
    qty = r.qty
    reason = check_qty(st, slot, qty)
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    sym = np.int64(st.o_sym[o])
    side = np.int64(st.o_side[o])
    reason, price = check_limit_price(st, sym, r.price)
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    old_leaves = st.o_leaves[o]
    reason = check_exposure(st, slot, sym, side, price, qty, old_leaves)
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    book = book_of(sym, side)
    old_price = st.o_price[o]
    if price != old_price and st.ladder_n[book] >= st.ctr[C_MAX_LEVELS] and find_level(st, book, side, price) < 0:
        return reject(st, out, n, r, R_CAPACITY)

    oid = r.order_id
    acct_id = r.account
    px = out_price(st, sym, price)
    n = emit(st, out, n, EV_REPLACED, r.msg_seq, sym, oid, acct_id, side, px, qty, qty, 0, R_NONE)
    if price == old_price and qty <= old_leaves:
        # Keeps its place: only the quantities shrink.
        lvl = st.o_level[o]
        st.l_qty[lvl] -= old_leaves - qty
        st.o_leaves[o] = qty
        add_open(st, slot, sym, side, qty - old_leaves)
        return n
    # Loses its place: out of the book, then in again at the back (after trading).
    lvl = dequeue(st, o)
    if st.l_head[lvl] < 0:
        remove_level(st, book, side, lvl)
    add_open(st, slot, sym, side, -old_leaves)
    opp = book_of(sym, 3 - side)
    best = best_level(st, opp)
    rem = qty
    if best >= 0 and crosses(side, price, st.l_price[best]):
        if st.o_tif[o] == TIF_POST:
            n = emit(st, out, n, EV_CANCELED, r.msg_seq, sym, oid, acct_id, side, px, qty, 0, 0, R_POST_ONLY)
            rem = 0
        else:
            n, rem, stopped = take(st, out, n, r.msg_seq, sym, side, oid, acct_id, slot, price, qty)
            if stopped:
                n = emit(st, out, n, EV_CANCELED, r.msg_seq, sym, oid, acct_id, side, px, rem, 0, 0, R_SELF_TRADE)
                rem = 0
    if rem == 0:
        leave_account(st, o)
        id_delete(st, oid)
        free_order(st, o)
        return n
    st.o_leaves[o] = rem
    rest(st, o, sym, side, price)
    return n


@njit(**INLINE)
def process_kill(st, r, out, n):
    reason, slot = account_gate(st, np.int64(r.account), np.bool_(True))
    if reason != R_NONE:
        return reject(st, out, n, r, reason)
    o = np.int64(st.a_head[slot])
    while o >= 0:
        nxt = np.int64(st.o_anext[o])
        sym = np.int64(st.o_sym[o])
        n = emit(
            st, out, n, EV_CANCELED, r.msg_seq, sym, st.o_id[o], r.account, np.int64(st.o_side[o]),
            out_price(st, sym, st.o_price[o]), st.o_leaves[o], 0, 0, R_KILL,
        )
        unlink_resting(st, o)
        o = nxt
    disable_account(st, slot)
    return emit(st, out, n, EV_KILLED, r.msg_seq, SYMBOL_UNKNOWN, 0, r.account, 0, PRICE_NONE, 0, 0, 0, R_NONE)


@njit(**HOT)
def well_formed(r):
    """Enum fields in range; a binary record with garbage is MALFORMED, like a bad CSV row."""
    a = r.action
    if a == ACTION_NEW:
        return (
            (r.side == SIDE_BUY or r.side == SIDE_SELL)
            and (r.type == TYPE_LIMIT or r.type == TYPE_MARKET)
            and r.tif >= TIF_GTC
            and r.tif <= TIF_POST
        )
    return a == ACTION_CANCEL or a == ACTION_REPLACE or a == ACTION_KILL


@njit(**INLINE)
def process_one(st, orders, i, out, n_out):
    """Process the record orders[i]; append its events at out[n_out:]; return the new count.

    The caller keeps at least events_bound(st) free slots in out.
    """
    r = orders[i]
    if not well_formed(r):
        return reject(st, out, n_out, r, R_MALFORMED)
    a = r.action
    if a == ACTION_NEW:
        return process_new(st, r, out, n_out)
    if a == ACTION_CANCEL:
        return process_cancel(st, r, out, n_out)
    if a == ACTION_REPLACE:
        return process_replace(st, r, out, n_out)
    return process_kill(st, r, out, n_out)


@njit(**API)
def events_bound(st):
    """Most events one message can ever emit: a sweep of every resting order (two fills
    each) plus ACK and a final CANCELED, or a KILL of them all plus KILLED. Size a live
    engine's event buffer with this."""
    return 2 * st.ctr[C_MAX_ORDERS] + 3


@njit(**API)
def events_needed(st):
    """Most events the next message can emit, given how many orders rest now."""
    return 2 * st.ctr[C_RESTING] + 3


@njit(**API)
def process_batch(st, orders, start, stop, out, n_out):
    """Process orders[start:stop] while out has room for the next message's worst case.

    Returns (next index, event count); the caller drains out and calls again (and grows
    out when it made no progress on an empty buffer)."""
    cap = len(out)
    for k in range(start + 1, min(stop, start + PREFETCH_AHEAD)):
        id_prefetch(st, orders[k].order_id)
    i = start
    while i < stop and cap - n_out >= events_needed(st):
        if i + PREFETCH_AHEAD < stop:
            id_prefetch(st, orders[i + PREFETCH_AHEAD].order_id)
        n_out = process_one(st, orders, i, out, n_out)
        i += 1
    return i, n_out


# Cached code here holds the helpers of book.py, accounts.py, ... (engine/jitcache.py).
flush_engine_if_changed([fifo, book, accounts, risk, sys.modules[__name__]])
