"""End to end through the rings: the pinned engine process (sw), the hardware bridge (hw) and
shadow mode give the events of the in-process replay. Processes are always cleaned up; no
wall-clock assertions (bounded waits only)."""

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

from engine.api import as_venue, replay_records
from engine.codec import read_flow
from engine.gen import generate
from engine.compare import first_divergence
from engine.diagnostics import EXIT_USAGE
from hdl.sim.driver import simulator_available
from offload import ring as R
from offload.ring import PeerGone, Segment
from offload.server import Server, stream
from tickbook.offloaded import POLITE, ShadowMismatch, replay_offloaded

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"


def same(a, b):
    return len(a) == len(b) and np.array_equal(a.view(np.int64), b.view(np.int64))


@pytest.fixture(scope="module", autouse=True)
def warm_engine():
    """Compile (or load) the live loop once here; engine processes then load the cache."""
    from offload.engine_process import warm_up

    warm_up(as_venue(None))
    yield
    R.reap_stale()


@pytest.mark.parametrize("seed,n", [(1, 30_000), (2, 120_000)])
def test_shm_sw_equals_inprocess_generated(seed, n):
    v = as_venue(None)
    orders = generate(v, n, seed=seed)
    assert same(replay_offloaded(orders, v, "shm", "sw"), replay_records(orders, v))


@pytest.mark.parametrize("stem", ["example", "adversarial", "random", "syntax"])
def test_shm_sw_equals_inprocess_golden(stem):
    flow_p, venue_p = GOLDEN / f"{stem}_flow.csv", GOLDEN / f"{stem}_venue.toml"
    if not flow_p.exists():
        pytest.skip(f"{flow_p.name} not in tests/golden")
    v = as_venue(venue_p if venue_p.exists() else None)
    flow = read_flow(flow_p, v)
    assert same(replay_offloaded(flow.orders, v, "shm", "sw"), replay_records(flow.orders, v))


def test_cli_replay_transport_shm_writes_the_same_csv(tmp_path):
    flow = GOLDEN / "example_flow.csv"
    cfg = GOLDEN / "example_venue.toml"
    outs = []
    for extra in ([], ["--transport", "shm"]):
        out = tmp_path / f"ev{len(outs)}.csv"
        r = subprocess.run(
            [sys.executable, "-m", "tickbook.cli", "replay", str(flow), "--config", str(cfg), "--events", str(out), "-q", *extra],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_engine_stops_on_sigterm_and_reports():
    srv = Server("offload.engine_process", as_venue(None), extra=POLITE)
    try:
        srv.wait_ready()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(60) == 0
    finally:
        out = srv.close()
    assert "stop (SIGTERM)" in out and "processed 0 orders" in out, out


def test_engine_with_sched_fifo_gets_ready_serves_and_stops():
    # SCHED_FIFO goes to the polling thread alone: a FIFO main thread on the loop's core
    # never ran again, so the engine never got ready. Yielding keeps this test polite.
    v = as_venue(None)
    orders = generate(v, 2000, seed=5)
    srv = Server("offload.engine_process", v, extra=(*POLITE, "--fifo", "1"))
    try:
        srv.wait_ready(timeout=60)
        events = stream(srv.seg, orders, srv.alive, timeout=60)  # ends with a SHUTDOWN record
        assert srv.proc.wait(60) == 0
    finally:
        out = srv.close()
    assert "loop thread: SCHED_FIFO 1" in out or "loop thread: SCHED_FIFO refused" in out, out
    np.testing.assert_array_equal(events, replay_records(orders, v))


def test_engine_refuses_a_segment_of_another_layout():
    nm = f"tickbook-test-layout-{os.getpid()}"
    with Segment.create(nm, [("orders", 64), ("events", 64)]) as seg:
        seg.hdr[R.H_VERSION] = 99
        r = subprocess.run(
            [sys.executable, "-m", "offload.engine_process", "--rings", nm, "--attach-timeout", "5"],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == EXIT_USAGE and len(lines) == 1, r.stderr
    assert re.fullmatch(rf"engine\[\d+\]: cannot attach {nm}: .*ring layout version 99.*", lines[0]), r.stderr


def test_engine_with_a_venue_it_cannot_read_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "venue.toml"
    bad.write_text('[symbols.X]\ntick = "0.01"\nref_price = "100.005"\n')  # off tick
    for config, names in ((tmp_path / "missing.toml", ["missing.toml", "cannot read"]), (bad, ["venue.toml", "ref_price"])):
        r = subprocess.run(
            [sys.executable, "-m", "offload.engine_process", "--rings", f"tickbook-test-novenue-{os.getpid()}",
             "--config", str(config), "--attach-timeout", "1"],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == EXIT_USAGE and len(lines) == 1, r.stderr
        assert re.fullmatch(r"engine\[\d+\]: cannot load the venue: .*", lines[0]), r.stderr
        for name in names:
            assert name in lines[0], r.stderr


def test_engine_unlinks_the_segment_when_its_owner_dies():
    nm = f"tickbook-test-orphan-{os.getpid()}"
    own = subprocess.Popen([sys.executable, "-m", "testkit.ringtool", "own", nm], cwd=REPO,
                           stdout=subprocess.PIPE, text=True)
    eng = None
    try:
        assert own.stdout.readline().strip() == "ready"
        eng = subprocess.Popen([sys.executable, "-m", "offload.engine_process", "--rings", nm, *POLITE],
                               cwd=REPO, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        with Segment.attach(nm) as seg:
            while seg.peer_pid != eng.pid:
                assert eng.poll() is None and time.monotonic() - t0 < 120
                time.sleep(0.01)
        own.kill()
        own.wait(10)
        _, err = eng.communicate(timeout=60)
        assert "owner" in err and "unlinked" in err, err
        assert not R.segment_exists(nm)
    finally:
        for p in (own, eng):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
        R.reap_stale(nm)


def test_client_sees_an_engine_crash_and_cleans_up():
    v = as_venue(None)
    srv = Server("offload.engine_process", v, orders_cap=64, events_cap=64, extra=POLITE)
    name = srv.name
    try:
        srv.wait_ready()
        srv.proc.kill()
        with pytest.raises(PeerGone):
            stream(srv.seg, generate(v, 100_000, seed=4), srv.alive, timeout=60)
    finally:
        srv.close()
    assert not R.segment_exists(name)


def test_first_divergence_names_the_message():
    v = as_venue(None)
    orders = generate(v, 200, seed=9)
    ev = replay_records(orders, v)
    bad = ev.copy()
    bad[5]["qty"] += 1
    assert first_divergence(ev, ev, orders) is None
    d = first_divergence(ev, bad, orders)
    assert "event 5" in d and f"msg_seq={int(ev[5]['msg_seq'])}" in d


# --- hardware (skipped, with the reason, when the Verilog simulation is not available)

HW_OK, HW_WHY = simulator_available()
needs_hw = pytest.mark.skipif(not HW_OK, reason=f"hdl simulation unavailable: {HW_WHY}")


def hw_venue():
    """The built-in venue, every account limit as it is, with small capacities: the hardware is
    built with exactly these, and the engine runs them too."""
    return as_venue(None).with_capacity(max_orders=64, max_levels=16)


def small_flow(n=400, seed=11):
    """A flow the hardware runs exactly, with a KILL of one of its three busiest accounts every
    130 records (the generator's own kills are once in 50,000)."""
    from testkit.flows import with_kills

    v = hw_venue()
    orders = generate(v, n, seed=seed)
    acct, count = np.unique(orders["account"], return_counts=True)
    busiest = [int(a) for a in acct[np.argsort(-count, kind="stable")][:3]]
    return with_kills(orders, busiest, 130), v


@pytest.mark.hdl
@needs_hw
def test_hw_through_the_bridge_equals_the_engine():
    """The bridge serves the risk stage and the book: the flow's disabled account (13) and
    account 7's max_order_qty give rejects only the stage decides, and its KILLs cancel orders."""
    from engine.records import EV_KILLED, R_ACCOUNT_DISABLED, R_KILL, R_MAX_QTY

    orders, v = small_flow()
    eng = replay_records(orders, v)
    assert {R_ACCOUNT_DISABLED, R_MAX_QTY, R_KILL} <= set(eng["reason"].tolist())
    assert (eng["kind"] == EV_KILLED).sum() == 3
    assert same(replay_offloaded(orders, v, "shm", "hw"), eng)


@pytest.mark.hdl
@needs_hw
@pytest.mark.parametrize("transport", ["inproc", "shm"])
def test_shadow_compares_every_event(transport, capfd):
    orders, v = small_flow(seed=12)
    assert same(replay_offloaded(orders, v, transport, "shadow"), replay_records(orders, v))
    assert f"shadow: {len(replay_records(orders, v)):,} events identical in sw and hw" in capfd.readouterr().err


@pytest.mark.hdl
@needs_hw
@pytest.mark.parametrize("transport", ["inproc", "shm"])
def test_shadow_reports_the_first_divergence_and_the_count(transport, capfd):
    """A hardware book of 8 orders (the --hw-max-orders what-if) against the venue's 64: the
    flow fills it, the hardware answers CAPACITY where the engine rests the order, and shadow
    names the first differing message and how many differ."""
    from tickbook.offloaded import differing_messages

    orders, v = small_flow(seed=13)
    sw = replay_records(orders, v)
    hw = replay_records(orders, v.with_capacity(max_orders=8, max_levels=3))
    first = first_divergence(sw, hw, orders)
    assert first is not None  # the setup diverges
    with pytest.raises(ShadowMismatch) as err:
        replay_offloaded(orders, v, transport, "shadow", hw_capacity=(8, 3))
    msg = str(err.value)
    assert msg.startswith(first) and msg.endswith(f"; {differing_messages(sw, hw)} of {len(orders):,} messages differ")
    assert differing_messages(sw, hw) >= 1
    assert "the hardware book is built with max_orders = 8, max_levels = 3 (the venue: 64, 16)" in capfd.readouterr().err


@needs_hw
@pytest.mark.parametrize("transport", ["inproc", "shm"])
def test_a_venue_beyond_the_hardware_is_refused_before_any_record(transport):
    """The built-in venue with more resting orders and more accounts than a simulation holds:
    refused in one line naming both, and no server is started (nothing to clean up, nothing half
    sent)."""
    from hdl.sim.driver import MAX_ACCOUNTS, MAX_ORDERS
    from hdl.sim.scope import Unrepresentable

    v = as_venue(None).with_capacity(max_orders=2 * MAX_ORDERS["bram"], max_accounts=MAX_ACCOUNTS + 1)
    with pytest.raises(Unrepresentable) as err:
        replay_offloaded(generate(v, 50, seed=1), v, transport, "hw")
    msg = str(err.value)
    assert "\n" not in msg and f"max_orders = {2 * MAX_ORDERS['bram']:,}" in msg, msg
    assert f"max_accounts = {MAX_ACCOUNTS + 1:,} accounts" in msg, msg


def test_pinning_parses_cpusets_and_reports_what_it_got():
    import threading

    from offload.pinning import allowed_cpus, parse_cpulist, pin

    assert parse_cpulist("0-3,6,8-9\n") == [0, 1, 2, 3, 6, 8, 9]
    box = {}

    def worker():  # pin a throwaway thread, not the test process
        box["rep"] = pin(None, fifo=0, mlock=False)
        box["aff"] = os.sched_getaffinity(0)

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    rep = box["rep"]
    assert rep.cpu in allowed_cpus() and box["aff"] == {rep.cpu}
    assert "SCHED_OTHER" in rep.summary() and not rep.fifo


def test_a_killed_replays_segment_and_venue_file_are_removed_at_the_next_start(tmp_path):
    """`replay --transport shm` killed with SIGKILL cannot clean up: its segment (in /dev/shm) and
    its venue file (in the temporary directory) stay behind. The next server start removes
    both, because their owner is dead."""
    prefix = f"tickbook-killtest{os.getpid()}"
    code = ("import sys, time; from offload.server import Server; from engine.api import as_venue; "
            f"s = Server('offload.engine_process', as_venue(None), extra=['--no-pin'], name_prefix={prefix!r}); "
            "print(s.name, s.venue_file, flush=True); time.sleep(120)")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                             stdout=subprocess.PIPE, text=True)
    try:
        name, venue_file = child.stdout.readline().split()
    finally:
        child.kill()
        child.wait(10)
    assert R.segment_exists(name) and os.path.exists(venue_file), "nothing was left to clean"
    s = Server("offload.engine_process", as_venue(None), extra=["--no-pin"], name_prefix=prefix)
    try:
        assert not R.segment_exists(name), "the dead replay's segment is still in /dev/shm"
        assert not os.path.exists(venue_file), "the dead replay's venue file is still there"
    finally:
        s.close()
