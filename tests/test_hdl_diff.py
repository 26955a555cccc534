"""Differential: the same flows through the Verilog order book (Icarus, file-driven) and the
Numba engine configured with the hardware's capacities; events identical field by field.

At least 100,000 messages per run (the sum of the cases below); `make hdl-soak` runs
HDL_SOAK_N (default 1,000,000) more. The area build (hdl/rtl/tickbook_book_area.v) runs its own
cases, among them the configuration `make synth` puts on the iCE40 (NSYM=1, NORD=4, NLVL=2).
"""

import os

import numpy as np
import pytest

from engine.api import replay_records
from engine.config import parse_venue
from engine.records import EV_FILL, EV_REJECT, R_CAPACITY
from testkit.flows import DIFF_VENUE_TOML, diff_venue, random_records
from engine.compare import first_divergence
from hdl.sim.driver import engine_venue, simulate

pytestmark = pytest.mark.hdl

CASES = [
    # n, nord, nlvl, flow options, idle %, stall %
    (15_000, 4, 2, {}, 0, 0),
    (20_000, 8, 3, {"spread": 3}, 20, 30),
    (25_000, 16, 4, {}, 0, 0),
    (20_000, 16, 8, {"weird": 0.15, "n_accounts": 2}, 0, 50),
    (20_000, 32, 16, {"spread": 10, "cancel": 0.15}, 10, 10),
]


# the area build: its priced messages take ~55 cycles, so fewer messages per case
AREA_CASES = [
    (6_000, 4, 2, {}, 0, 0),
    (5_000, 8, 3, {"weird": 0.15, "n_accounts": 2, "spread": 3}, 10, 30),
    (3_000, 16, 5, {"spread": 10, "cancel": 0.15}, 0, 20),
]

# extremes of the price arithmetic: a collar half-width beyond 54 bits (saturates), a reference
# near 2**53 units, a tick of 10**11 units, a 1-bps collar
EDGE_VENUE_TOML = """
[symbols.HUGE]
tick = "0.00000001"
ref_price = "50000000.00000000"
band_bps = 1000000

[symbols.BIGTICK]
tick = "1000"
ref_price = "5000000"
band_bps = 3

[symbols.ONEBPS]
tick = "0.01"
ref_price = "250.00"
band_bps = 1

[accounts.default]
"""


def _check(n, nord, nlvl, opts, idle, stall, seed, venue=None, area=False):
    v = venue or diff_venue()
    flow = random_records(seed, n, v, nord=nord, nlvl=nlvl, **opts)
    res = simulate(flow, v, nord=nord, nlvl=nlvl, idle=idle, stall=stall, seed=seed + 7, area=area)
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


def test_single_symbol_build():
    """NSYM = 1 build (the venue's only symbol), tiny capacities."""
    v = parse_venue(DIFF_VENUE_TOML.split("[symbols.ESZ6]")[0] + "[accounts.default]\n")
    _check(5_000, 3, 2, {"spread": 2}, 0, 0, seed=5, venue=v)


@pytest.mark.parametrize("n,nord,nlvl,opts,idle,stall", AREA_CASES)
def test_area_build_random_flows_match_engine(n, nord, nlvl, opts, idle, stall):
    res, eng = _check(n, nord, nlvl, opts, idle, stall, seed=2000 + nord * 10 + nlvl, area=True)
    kinds = eng["kind"]
    assert (kinds == EV_FILL).sum() > n // 50, "the flow should trade"
    assert ((kinds == EV_REJECT) & (eng["reason"] == R_CAPACITY)).any(), "the flow should hit CAPACITY"
    assert res.messages == n


def test_area_build_synthesized_configuration():
    """The configuration `make synth` places on the HX8K: one symbol, NORD=4, NLVL=2; once with
    the narrow-collar symbol, once with the wide one (MARKET SELL protection clamped at 1 tick)."""
    for sym, seed in (("ESZ6", 6), ("PENNY", 7)):
        body = DIFF_VENUE_TOML.split(f"[symbols.{sym}]")[1].split("[")[0]
        v = parse_venue(f"[symbols.{sym}]" + body + "[accounts.default]\n")
        res, eng = _check(4_000, 4, 2, {"spread": 3, "weird": 0.1}, 5, 25, seed=seed, venue=v, area=True)
        assert (eng["kind"] == EV_FILL).any()


@pytest.mark.parametrize("area", [False, True], ids=["fast", "area"])
def test_price_arithmetic_extremes(area):
    v = parse_venue(EDGE_VENUE_TOML, "<hdl edge venue>")
    res, eng = _check(3_000, 8, 3, {"spread": 4, "weird": 0.1}, 0, 0, seed=31, venue=v, area=area)
    assert (eng["kind"] == EV_FILL).any()


@pytest.mark.skipif(not os.environ.get("HDL_SOAK"), reason="soak: make hdl-soak")
def test_soak():
    n = int(os.environ.get("HDL_SOAK_N", "1000000"))
    _check(n // 2, 16, 4, {}, 0, 0, seed=424242)
    _check(n - n // 2, 8, 3, {"spread": 4, "weird": 0.1}, 5, 5, seed=434343)
