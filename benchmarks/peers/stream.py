"""The operation stream that tickbook and the PyPI order books replay for `make bench-peers`.

    ops = peers_stream(seed, n)             # numpy structured array, STREAM_DTYPE (saved as .npy)
    orders = to_records(ops)                # the same stream as tickbook ORDER_DTYPE records
    save_stream(path, ops); load_stream(path)

One symbol (the built-in venue's first, AAPL: tick 0.01, reference 185.00 = 18,500 ticks, collar
1000 bps = 1,850 ticks), integer tick prices. The mix, in the generator style of engine/gen.py
(njit, `np.random.seed(seed)`, one pass):

- OP_ADD (~55%): a GTC limit order, random side, a lot from engine.gen.LOTS, the price a
  geometric number of ticks behind a mid that random-walks within +-MID_WALK ticks of the
  reference; some are marketable (up to 2 ticks through the mid: MARKETABLE, more often as the
  book deepens, which holds it at a few hundred resting orders) and trade on entry;
- OP_CANCEL (~42% of all operations): a cancel of an order chosen at random among the orders
  resting *at that moment* in a correct book (see "live" below);
- OP_MARKET (~3%): a market order, immediate-or-cancel, random side and lot.

Live: the generator runs each operation through tickbook's matcher as it writes it
(`engine.matcher.process_one` on the built-in venue, a fresh book) and drops from its pool
every order whose FILL event leaves 0, so a cancel always names an order with leaves > 0. The
tickbook run shows it: no REJECT at all (tests/test_bench_peers.py checks that, and replays the
stream through a small independent price-time book as well).

Market orders: tickbook's MARKET IOC (type MARKET, price PRICE_NONE, tif IOC), not aggressive
IOC limits. tickbook gives a market order the collar's protection price as its limit
(ref +- 1,850 ticks, docs/rulebook.md section 5); the peers give it no limit (price 0 in
lightmatchingengine and liquibook) or a limit no price reaches (pyorderbook, fastlob). The two
agree only if the collar never binds, and here it cannot: every price is within
MID_WALK + MAX_DEPTH + 2 = 102 ticks of the reference, so every trade (the reference moves to
each trade's price) and every resting order are within 204 ticks of each other, far inside the
1,850-tick collar. `peers_stream` asserts that bound against the venue. The same bound keeps
every limit inside the PRICE_BAND check. MARKET keeps the comparison honest about what the
peers are: order books with a market order and no collar.

Self-trade prevention (tickbook cancels a taker that meets its own account) does not exist in
the peers, so buys come from account 1 and sells from account 2 (the venue's default account,
no limits): a taker never meets its own account.

Stream columns (STREAM_DTYPE; benchmarks/peers/adapters.py reads the same names with numpy
only): op (1 add, 2 cancel, 3 market), side (1 buy, 2 sell; for a cancel the side of the order
cancelled), id (a new order's id, 1, 2, 3, ...; a cancel's target), price (ticks; 0 for cancels
and market orders), qty (0 for cancels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from engine.config import VenueConfig, load_venue
from engine.gen import LOTS
from engine.jitcache import flush_if_engine_changed
from engine.matcher import process_one
from engine.records import (
    ACTION_CANCEL,
    ACTION_NEW,
    EV_FILL,
    EV_REJECT,
    EVENT_DTYPE,
    ORDER_DTYPE,
    PRICE_NONE,
    R_TAKER,
    SIDE_BUY,
    SIDE_SELL,
    TIF_GTC,
    TIF_IOC,
    TYPE_LIMIT,
    TYPE_MARKET,
)
from engine.state import make_state

OP_ADD = 1
OP_CANCEL = 2
OP_MARKET = 3

STREAM_DTYPE = np.dtype(
    [("op", "u1"), ("side", "u1"), ("id", "<u8"), ("price", "<i8"), ("qty", "<i8")]
)

CANCEL_SHARE = 0.42  # of all operations (a cancel is drawn whenever an order rests)
MARKET_SHARE = 0.03
MARKETABLE = 0.12  # of the adds, with the book at DEPTH: limit orders priced through the mid
DEPTH = 2000  # the marketable share is MARKETABLE x resting/DEPTH (at most 2x): the book stays
# at a few hundred resting orders, ~20 levels a side (400-750 in the 1M stream of seed 1)
MID_WALK = 40  # the mid stays within +- this many ticks of the reference
MAX_DEPTH = 60  # a passive add sits at most this many ticks behind the mid
BUY_ACCOUNT = 1
SELL_ACCOUNT = 2
TS0 = 34_200_000_000_000  # 09:30 in ns after midnight; one operation a microsecond


@njit(cache=True)
def _write_record(op, r, i, tick_units, symbol):
    """One operation as an order record (one definition, used by both the generator and to_records)."""
    r.ts = TS0 + 1000 * i
    r.msg_seq = i + 1
    r.order_id = op.id
    r.symbol = symbol
    r.account = BUY_ACCOUNT if op.side == SIDE_BUY else SELL_ACCOUNT
    if op.op == OP_CANCEL:
        r.action = ACTION_CANCEL
        return
    r.action = ACTION_NEW
    r.side = op.side
    r.qty = op.qty
    if op.op == OP_ADD:
        r.type = TYPE_LIMIT
        r.tif = TIF_GTC
        r.price = op.price * tick_units
    else:
        r.type = TYPE_MARKET
        r.tif = TIF_IOC
        r.price = PRICE_NONE


@njit(cache=True)
def _records(ops, out, tick_units, symbol):
    for i in range(len(ops)):
        _write_record(ops[i], out[i], i, tick_units, symbol)
    return out


@njit(cache=True)
def _generate(ops, recs, st, ev, seed, ref, tick_units, symbol, p_cancel, p_market, p_marketable, depth, lots):
    """Fill ops and recs; returns (resting at the end, traded quantity, REJECT events)."""
    np.random.seed(seed)
    n = len(ops)
    pool = np.zeros(n, np.uint64)  # ids resting now, in no order
    pos = np.full(n + 1, -1, np.int64)  # id -> its index in pool, -1 when not resting
    side_of = np.zeros(n + 1, np.uint8)
    pool_n = 0
    next_id = 1
    mid = ref
    traded = 0
    rejects = 0
    for i in range(n):
        op = ops[i]
        u = np.random.random()
        if pool_n > 0 and u < p_cancel:
            k = np.random.randint(pool_n)
            oid = pool[k]
            op.op = OP_CANCEL
            op.id = oid
            op.side = side_of[oid]
            pool_n -= 1
            pool[k] = pool[pool_n]
            pos[pool[k]] = k
            pos[oid] = -1
        else:
            side = SIDE_BUY if np.random.random() < 0.5 else SIDE_SELL
            sign = 1 if side == SIDE_BUY else -1
            op.side = side
            op.id = next_id
            side_of[next_id] = side
            op.qty = lots[np.random.randint(len(lots))]
            if u < p_cancel + p_market:
                op.op = OP_MARKET
            else:
                if np.random.random() < 0.02:
                    mid = min(ref + MID_WALK, max(ref - MID_WALK, mid + np.random.randint(-1, 2)))
                op.op = OP_ADD
                # marketable more often when the book is deeper than its target: keeps it near it
                if np.random.random() < p_marketable * min(2.0, pool_n / depth):
                    op.price = mid + sign * np.random.randint(0, 3)
                else:
                    op.price = mid - sign * min(MAX_DEPTH, np.random.geometric(0.25))
                pool[pool_n] = next_id
                pos[next_id] = pool_n
                pool_n += 1
            next_id += 1
        _write_record(op, recs[i], i, tick_units, symbol)
        # the order's fate in a correct book: whatever a FILL leaves at 0 no longer rests
        n_ev = process_one(st, recs, i, ev, 0)
        for j in range(n_ev):
            e = ev[j]
            if e.kind == EV_FILL:
                if e.reason == R_TAKER:
                    traded += e.qty
                if e.leaves == 0:
                    k = pos[e.order_id]
                    if k >= 0:
                        pool_n -= 1
                        pool[k] = pool[pool_n]
                        pos[pool[k]] = k
                        pos[e.order_id] = -1
            elif e.kind == EV_REJECT:
                rejects += 1
    return pool_n, traded, rejects


def _venue(venue: VenueConfig | None) -> VenueConfig:
    return venue if venue is not None else load_venue(None)


def generate(seed: int, n: int, venue: VenueConfig | None = None, symbol: int = 0,
             cancel_share: float = CANCEL_SHARE, market_share: float = MARKET_SHARE, depth: int = DEPTH):
    """(ops, records, info): the stream, the same as ORDER_DTYPE records, and what tickbook did
    with it while it was generated: {"resting", "traded_qty", "rejects"}."""
    if n < 0:
        raise ValueError("the number of operations must be >= 0")
    if not (cancel_share >= 0 and market_share >= 0 and cancel_share + market_share < 1):
        raise ValueError("cancel_share + market_share must be in [0, 1)")
    if depth < 1:
        raise ValueError("depth must be >= 1")
    v = _venue(venue)
    sym = v.symbols[symbol]
    band = sym.ref_ticks * sym.band_bps // 10000
    reach = MID_WALK + MAX_DEPTH + 2  # farthest price from the reference (ticks)
    if sym.band_bps and not 2 * reach < band:
        raise ValueError(f"{sym.name}: a collar of {band} ticks could bind on prices within {reach} ticks "
                         "of the reference; the peers have no collar, the comparison would not hold")
    if sym.ref_ticks - reach < 1:
        raise ValueError(f"{sym.name}: reference {sym.ref_ticks} ticks is too low for prices +-{reach} ticks")
    ops = np.zeros(n, STREAM_DTYPE)
    recs = np.zeros(n, ORDER_DTYPE)
    st = make_state(v)
    ev = np.zeros(2 * int(LOTS.max()) + 16, EVENT_DTYPE)  # ACK, 2 FILLs per unit at most, CANCELED
    gen = flush_if_engine_changed(_generate, "bench_peers_generate")  # it inlines the matcher
    resting, traded, rejects = gen(ops, recs, st, ev, seed, sym.ref_ticks, sym.tick_units, symbol,
                                   cancel_share, market_share, MARKETABLE, float(depth), LOTS)
    return ops, recs, {"resting": int(resting), "traded_qty": int(traded), "rejects": int(rejects)}


def peers_stream(seed: int, n: int, venue: VenueConfig | None = None, symbol: int = 0,
                 cancel_share: float = CANCEL_SHARE, market_share: float = MARKET_SHARE,
                 depth: int = DEPTH) -> np.ndarray:
    """n operations (STREAM_DTYPE), the same for the same arguments."""
    return generate(seed, n, venue, symbol, cancel_share, market_share, depth)[0]


def to_records(ops: np.ndarray, venue: VenueConfig | None = None, symbol: int = 0) -> np.ndarray:
    """The stream as tickbook ORDER_DTYPE records (action, type, tif, account, price in 1e-8 units)."""
    if ops.dtype != STREAM_DTYPE:
        raise TypeError(f"ops must have STREAM_DTYPE, got {ops.dtype}")
    v = _venue(venue)
    return _records(ops, np.zeros(len(ops), ORDER_DTYPE), v.symbols[symbol].tick_units, symbol)


def mix(ops: np.ndarray) -> dict[str, float]:
    """Each kind's share of the operations."""
    n = max(len(ops), 1)
    return {name: float(np.count_nonzero(ops["op"] == code)) / n
            for name, code in (("add", OP_ADD), ("cancel", OP_CANCEL), ("market", OP_MARKET))}


def save_stream(path: str | Path, ops: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, ops, allow_pickle=False)
    return path


def load_stream(path: str | Path) -> np.ndarray:
    ops = np.load(path, allow_pickle=False)
    if ops.dtype != STREAM_DTYPE:
        raise ValueError(f"{path}: not a peers stream (dtype {ops.dtype})")
    return ops
