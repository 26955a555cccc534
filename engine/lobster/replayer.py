"""Stage 3 of the LOBSTER import: the flow through the engine, the book compared after every message.

    rep = replay(data, conv)     # rep.identical == rep.compared when every row agrees

One njit loop (`replay_compare`) runs the records through the engine's own `process_one`, the
function the batch replay and the live engine run too, and after every message i with
`compare[i]` reads both sides with `top_levels` and compares them, level by level, with orderbook
row i (an empty engine level must be LOBSTER's dummy). The comparison sits inside the loop, not in
Python between calls, so that GOOG 10's replay with its 148k 10-level comparisons takes about half
a second (docs/lobster.md). The engine's maker fills are collected for match mode's
comparison, rejects counted, and the first divergent rows kept for the report.

Numba caches `replay_compare` keyed on this file only, while it inlines the matcher: `_replay_fn`
goes through engine/jitcache.py, which flushes the cached machine code when the engine's hot-path
sources change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from engine.book import top_levels
from engine.config import parse_venue
from engine.jit import NO_WRAPAROUND
from engine.jitcache import flush_if_engine_changed
from engine.lobster.converter import Conversion, venue_toml
from engine.lobster.read import EMPTY_ASK, EMPTY_BID, LobsterData
from engine.matcher import process_one
from engine.records import EV_FILL, EV_REJECT, EVENT_DTYPE, R_MAKER, SIDE_BUY, SIDE_SELL
from engine.state import make_state

MAX_DIVERGENCES = 10  # divergent rows (and rejected records) kept for the report

# res[] slots of replay_compare
RES_COMPARED, RES_IDENTICAL, RES_REJECTS, RES_FILLS, RES_DIVERGENT, RES_FIRST_REJECT = range(6)


@njit(**NO_WRAPAROUND, cache=True, nogil=True)
def replay_compare(st, orders, msg_end, book, compare, out, fills, res, div_rows, div_levels, reject_at):
    """Run every record through the engine; after each message i with compare[i], compare both
    sides' top levels with orderbook row i. Maker fills go to fills[k] = (msg_seq, order_id,
    price units, qty); the first divergent rows and the engine's levels there go to div_rows /
    div_levels; the first rejected records to reject_at."""
    n_lv = book.shape[1] // 4
    ap = np.zeros(n_lv, np.int64)
    aq = np.zeros(n_lv, np.int64)
    bp = np.zeros(n_lv, np.int64)
    bq = np.zeros(n_lv, np.int64)
    o = 0
    n_fill = 0
    for i in range(len(msg_end)):
        while o < msg_end[i]:
            n = process_one(st, orders, o, out, 0)
            for k in range(n):
                kind = out[k].kind
                if kind == EV_REJECT:
                    if res[RES_REJECTS] < len(reject_at):
                        reject_at[res[RES_REJECTS]] = o
                    res[RES_REJECTS] += 1
                elif kind == EV_FILL and out[k].reason == R_MAKER:
                    fills[n_fill, 0] = out[k].msg_seq
                    fills[n_fill, 1] = np.int64(out[k].order_id)
                    fills[n_fill, 2] = out[k].price
                    fills[n_fill, 3] = out[k].qty
                    n_fill += 1
            o += 1
        if not compare[i]:
            continue
        res[RES_COMPARED] += 1
        na = top_levels(st, 0, SIDE_SELL, n_lv, ap, aq)
        nb = top_levels(st, 0, SIDE_BUY, n_lv, bp, bq)
        ok = True
        for k in range(n_lv):
            if k < na:
                if book[i, 4 * k] != ap[k] or book[i, 4 * k + 1] != aq[k]:
                    ok = False
            elif book[i, 4 * k + 1] != 0:
                ok = False
            if k < nb:
                if book[i, 4 * k + 2] != bp[k] or book[i, 4 * k + 3] != bq[k]:
                    ok = False
            elif book[i, 4 * k + 3] != 0:
                ok = False
        if ok:
            res[RES_IDENTICAL] += 1
        else:
            d = res[RES_DIVERGENT]
            if d < len(div_rows):
                div_rows[d] = i
                for k in range(n_lv):
                    div_levels[d, 4 * k] = ap[k] if k < na else EMPTY_ASK
                    div_levels[d, 4 * k + 1] = aq[k] if k < na else 0
                    div_levels[d, 4 * k + 2] = bp[k] if k < nb else EMPTY_BID
                    div_levels[d, 4 * k + 3] = bq[k] if k < nb else 0
            res[RES_DIVERGENT] = d + 1
    res[RES_FILLS] = n_fill


def _replay_fn():
    """replay_compare, its on-disk cache dropped first when the engine's sources changed
    (it inlines the matcher; engine/jitcache.py)."""
    return flush_if_engine_changed(replay_compare, "lobster_replay_compare")


@dataclass
class Replay:
    compared: int
    identical: int
    rejects: int
    reject_at: np.ndarray
    fills: np.ndarray  # [k, 4] msg_seq (1-based message), order_id, price units, qty
    divergent: int
    div_rows: np.ndarray
    div_levels: np.ndarray
    seconds: float


def replay(data: LobsterData, conv: Conversion, venue=None) -> Replay:
    """Replay conv.orders on a fresh engine state (venue: venue_toml(data) unless given)."""
    if venue is None:
        venue = parse_venue(venue_toml(data, max_orders=max(1024, int(len(conv.orders)) + 16)), "<lobster venue>")
    st = make_state(venue, len(conv.orders))
    fn = _replay_fn()
    out = np.zeros(2 * len(conv.orders) + 8, EVENT_DTYPE)
    fills = np.zeros((len(conv.orders) + 1, 4), np.int64)
    res = np.zeros(8, np.int64)
    div_rows = np.zeros(MAX_DIVERGENCES, np.int64)
    div_levels = np.zeros((MAX_DIVERGENCES, data.book.shape[1]), np.int64)
    reject_at = np.zeros(MAX_DIVERGENCES, np.int64)
    t0 = time.perf_counter()
    fn(st, conv.orders, conv.msg_end, data.book, conv.compare, out, fills, res, div_rows, div_levels, reject_at)
    secs = time.perf_counter() - t0
    nd = int(min(res[RES_DIVERGENT], MAX_DIVERGENCES))
    return Replay(
        compared=int(res[RES_COMPARED]),
        identical=int(res[RES_IDENTICAL]),
        rejects=int(res[RES_REJECTS]),
        reject_at=reject_at[: min(int(res[RES_REJECTS]), MAX_DIVERGENCES)],
        fills=fills[: res[RES_FILLS]],
        divergent=int(res[RES_DIVERGENT]),
        div_rows=div_rows[:nd],
        div_levels=div_levels[:nd],
        seconds=secs,
    )

