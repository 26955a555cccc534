"""Synthetic order flows that look like a venue's day, for research and benchmarks.

Poisson arrivals; several symbols and accounts; limit prices clustered a few ticks from
a drifting mid (geometric distance), a share of them marketable; most orders later
cancelled or replaced, as on real venues; a few market, IOC, FOK and post-only orders,
and rare kills. Generated as order records in njit (1M orders in well under a second).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.config import VenueConfig
from engine.records import (
    ACTION_CANCEL,
    ACTION_KILL,
    ACTION_NEW,
    ACTION_REPLACE,
    ORDER_DTYPE,
    PRICE_NONE,
    SIDE_BUY,
    SIDE_SELL,
    TIF_FOK,
    TIF_GTC,
    TIF_IOC,
    TIF_POST,
    TYPE_LIMIT,
    TYPE_MARKET,
)

POOL = 4096  # recently submitted orders that cancels and replaces pick from
LOTS = np.array([1, 5, 10, 20, 50, 100, 100, 100, 200, 300, 500, 1000], np.int64)


@njit(cache=True)
def _generate(out, seed, tick_units, ref_ticks, accounts, msgs_per_sec, lots):
    np.random.seed(seed)
    n_sym = len(tick_units)
    mid = ref_ticks.copy()
    p_id = np.zeros(POOL, np.uint64)
    p_acct = np.zeros(POOL, np.int64)
    p_sym = np.zeros(POOL, np.int64)
    p_side = np.zeros(POOL, np.int64)
    p_price = np.zeros(POOL, np.int64)
    p_n = 0
    next_id = np.uint64(1)
    ts = np.uint64(34_200_000_000_000)  # 09:30 in ns after midnight
    mean_gap = 1e9 / msgs_per_sec
    for i in range(len(out)):
        r = out[i]
        ts += np.uint64(1 + np.random.exponential(mean_gap))
        r.ts = ts
        r.msg_seq = i + 1
        u = np.random.random()
        if u < 0.00002:
            r.action = ACTION_KILL
            r.account = accounts[np.random.randint(len(accounts))]
            continue
        if p_n > 0 and u < 0.40:
            # Cancel a recent order (it may have traded away meanwhile: UNKNOWN_ORDER).
            k = np.random.randint(p_n)
            r.action = ACTION_CANCEL
            r.order_id = p_id[k]
            r.account = p_acct[k] if np.random.random() > 0.002 else accounts[0]
            p_n -= 1
            p_id[k], p_acct[k], p_sym[k] = p_id[p_n], p_acct[p_n], p_sym[p_n]
            p_side[k], p_price[k] = p_side[p_n], p_price[p_n]
            continue
        if p_n > 0 and u < 0.55:
            k = np.random.randint(p_n)
            s = p_sym[k]
            step = np.random.randint(-2, 3)
            price = max(np.int64(1), p_price[k] + (step if p_side[k] == SIDE_BUY else -step))
            p_price[k] = price
            r.action = ACTION_REPLACE
            r.order_id = p_id[k]
            r.account = p_acct[k]
            r.price = price * tick_units[s]
            r.qty = lots[np.random.randint(len(lots))]
            continue
        # NEW
        s = np.random.randint(n_sym)
        if np.random.random() < 0.02:
            mid[s] = max(np.int64(10), mid[s] + np.random.randint(-1, 2))
        side = SIDE_BUY if np.random.random() < 0.5 else SIDE_SELL
        sign = 1 if side == SIDE_BUY else -1
        r.action = ACTION_NEW
        r.order_id = next_id
        next_id += np.uint64(1)
        r.account = accounts[np.random.randint(len(accounts))]
        r.symbol = s
        r.side = side
        r.qty = lots[np.random.randint(len(lots))]
        v = np.random.random()
        if v < 0.03:
            r.type = TYPE_MARKET
            r.tif = TIF_IOC if v < 0.025 else TIF_FOK
            r.price = PRICE_NONE
            continue
        r.type = TYPE_LIMIT
        if v < 0.12:
            # Marketable: through the mid by a few ticks.
            price = mid[s] + sign * np.random.randint(0, 4)
            r.tif = TIF_IOC if v < 0.08 else (TIF_FOK if v < 0.10 else TIF_GTC)
        else:
            # Passive: a geometric number of ticks behind the touch.
            price = max(np.int64(1), mid[s] - sign * (1 + np.random.geometric(0.25)))
            r.tif = TIF_POST if v < 0.19 else TIF_GTC
        r.price = price * tick_units[s]
        if r.tif == TIF_GTC or r.tif == TIF_POST:
            if p_n == POOL:
                k = np.random.randint(POOL)
            else:
                k = p_n
                p_n += 1
            p_id[k], p_acct[k], p_sym[k], p_side[k], p_price[k] = r.order_id, r.account, s, side, price
    return out


def generate(venue: VenueConfig, n_orders: int, seed: int = 1, n_accounts: int = 48, msgs_per_sec: float = 200_000.0):
    """n_orders order records for `venue` (its symbols and listed accounts among others)."""
    if n_orders < 0:
        raise ValueError("the number of orders must be >= 0")
    rng = np.random.default_rng(seed)
    accounts = sorted(set(range(100, 100 + n_accounts)) | set(venue.accounts))
    accounts = np.array(accounts, np.int64)
    rng.shuffle(accounts)
    out = np.zeros(n_orders, ORDER_DTYPE)
    tick_units = np.array([s.tick_units for s in venue.symbols], np.int64)
    ref_ticks = np.array([s.ref_ticks for s in venue.symbols], np.int64)
    return _generate(out, seed, tick_units, ref_ticks, accounts, float(msgs_per_sec), LOTS)
