"""Random and adversarial order flows (ORDER_DTYPE records) for the hardware differential tests.

Dense on purpose: few accounts (self-trades), a small id space (duplicates, cancels and replaces
of live and dead orders), prices a few ticks around the reference (crossing, sweeps, collars),
every TIF, market orders, malformed records and every reject reason the book knows, and more
resting orders than the hardware holds (CAPACITY).
"""

from __future__ import annotations

import numpy as np

from engine.records import (
    ACTION_CANCEL,
    ACTION_MALFORMED,
    ACTION_NEW,
    ACTION_REPLACE,
    ORDER_DTYPE,
    PRICE_INVALID,
    PRICE_NONE,
    QTY_CLAMP,
    QTY_INVALID,
    SYMBOL_UNKNOWN,
)

# A venue without account limits (the hardware has no risk checks yet): four ticks, a symbol
# without collar, a wide collar (MARKET SELL protection clamps at 1 tick) and a narrow one.
DIFF_VENUE_TOML = """
[symbols.AAPL]
tick = "0.01"
ref_price = "100.00"
band_bps = 1000

[symbols.ESZ6]
tick = "0.25"
ref_price = "6050.00"
band_bps = 5

[symbols.BTCUSD]
tick = "0.5"
ref_price = "91000.0"
band_bps = 0

[symbols.PENNY]
tick = "0.00000003"
ref_price = "0.00000030"
band_bps = 15000

[accounts.default]
"""


def diff_venue():
    from engine.config import parse_venue

    return parse_venue(DIFF_VENUE_TOML, "<hdl diff venue>")


def random_flow(n: int, venue=None, seed: int = 0, *, nord: int = 16, nlvl: int = 8,
                n_accounts: int = 3, spread: int = 6, cancel: float = 0.22, replace: float = 0.2,
                weird: float = 0.06, batch: int = 32) -> np.ndarray:
    """n records. Cancel and replace targets are picked mostly among the orders resting now,
    which the generator learns by running the Numba engine (with the hardware capacities
    nord/nlvl) alongside, one batch of records at a time. spread: prices within +-spread ticks
    of the symbol's current reference price."""
    from engine.api import Venue
    from engine.records import EV_ACK, EV_CANCELED, EV_FILL

    v = venue if venue is not None else diff_venue()
    eng = Venue(v.with_capacity(max_orders=nord, max_levels=nlvl))
    rng = np.random.default_rng(seed)
    syms = v.symbols
    ns = len(syms)
    tick = [s.tick_units for s in syms]
    ref = [s.ref_ticks for s in syms]
    live: dict[int, tuple[int, int]] = {}  # id -> (account, symbol)
    dead: list[int] = []
    out = np.zeros(n, ORDER_DTYPE)
    nxt = 1
    for b0 in range(0, n, batch):
        blk = out[b0 : b0 + batch]
        for j in range(len(blk)):
            r = blk[j]
            i = b0 + j
            r["ts"] = i + 1
            r["msg_seq"] = i + 1
            u = rng.random()
            act = ACTION_CANCEL if u < cancel else ACTION_REPLACE if u < cancel + replace else ACTION_NEW
            acct = int(rng.integers(1, n_accounts + 1))
            sym = int(rng.integers(0, ns))
            if act == ACTION_NEW:
                if rng.random() < 0.04 and (live or dead):
                    pool = list(live) if live and rng.random() < 0.7 else dead or list(live)
                    oid = pool[int(rng.integers(0, len(pool)))]
                else:
                    oid, nxt = nxt, nxt + 1
            else:
                if live and rng.random() < 0.85:
                    keys = list(live)
                    oid = keys[int(rng.integers(0, len(keys)))]
                    a, sym = live[oid]
                    if rng.random() < 0.93:
                        acct = a
                else:
                    oid = dead[int(rng.integers(0, len(dead)))] if dead else nxt + 1000
            otype = 2 if (act == ACTION_NEW and rng.random() < 0.12) else 1
            tif = int(rng.choice([1, 2, 3, 4], p=[0.05, 0.5, 0.4, 0.05] if otype == 2 else [0.55, 0.15, 0.15, 0.15]))
            qty = int(rng.integers(1, 12))
            ticks = max(1, ref[sym] + int(rng.integers(-spread, spread + 1)))
            price = PRICE_NONE if otype == 2 else ticks * tick[sym]
            r["symbol"] = sym if act == ACTION_NEW else (SYMBOL_UNKNOWN if rng.random() < 0.5 else sym)
            if rng.random() < weird:
                k = int(rng.integers(0, 9))
                if k == 0:
                    act = ACTION_MALFORMED
                elif k == 1:
                    r["symbol"] = SYMBOL_UNKNOWN if rng.random() < 0.5 else ns
                elif k == 2:
                    qty = [0, -3, QTY_INVALID, QTY_CLAMP, 2**32 - 1, 2**40][int(rng.integers(0, 6))]
                elif k == 3:
                    price = [PRICE_NONE, PRICE_INVALID, 0, -tick[sym], 2**53, ticks * tick[sym] + 1,
                             2**53 - 1][int(rng.integers(0, 7))]
                elif k == 4:  # outside the collar
                    price = (ref[sym] * (3 if rng.random() < 0.5 else 1) // 2 + 1) * tick[sym]
                elif k == 5:  # MARKET with a price, or MARKET GTC/POST
                    otype = 2
                    if rng.random() < 0.5:
                        price = ticks * tick[sym]
                    else:
                        price = PRICE_NONE
                        tif = int(rng.choice([1, 4]))
                elif k == 6:  # a sweep
                    qty = int(rng.integers(20, 200))
                elif k == 7:
                    oid = 2**64 - 1 - int(rng.integers(0, 3))
                elif k == 8:
                    acct = 2**32 - 1
            r["action"] = act
            r["account"] = np.uint32(acct)
            r["order_id"] = np.uint64(oid)
            r["side"] = int(rng.integers(1, 3))
            r["type"] = otype
            r["tif"] = tif
            r["qty"] = qty
            r["price"] = price
        ev = eng.submit(blk)
        for e in ev:
            k, oid = int(e["kind"]), int(e["order_id"])
            if k == EV_ACK:
                live[oid] = (int(e["account"]), int(e["symbol"]))
            elif k == EV_CANCELED or (k == EV_FILL and e["leaves"] == 0):
                if live.pop(oid, None) is not None:
                    dead.append(oid)
                    if len(dead) > 64:
                        dead.pop(0)
            if k == EV_FILL:
                ref[int(e["symbol"])] = int(e["price"]) // tick[int(e["symbol"])]
    return out
