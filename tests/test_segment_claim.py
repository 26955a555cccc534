"""One server per segment, and the server's heartbeat word (offload/ring.py, docs/offload.md).

- A second `tickbook engine` (or `tickbook bridge`) on a segment a live process serves is refused
  with one line naming the segment and the live server's pid, exit 2, before it touches anything;
  the first keeps serving; after the first is SIGKILLed, a new one is accepted (the claim is an
  flock the kernel drops with its holder).
- A stuck engine (alive, its loop frozen by SIGSTOP) turns the gateway's /ready to 503 with
  "engine pid N stuck: no heartbeat for X s" while /live stays 200; SIGCONT brings /ready back.

Every wait is bounded and fails with the processes' logs; no wall-clock assertions beyond the
bounds the brief sets (a refusal within a few seconds).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from engine.api import as_venue
from engine.diagnostics import EXIT_OK, EXIT_USAGE
from engine.records import EV_ACK
from offload.engine_process import engine_segment
from testkit import gatewayproc
from testkit.gatewayproc import GatewayProcess
from offload.ring import C_CONSUMER_PID, CLOSED, HEAD, STOP, TAIL, H_PEER_PID, pid_alive, ready_path, remove_file

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 400.0  # a cold Numba compile of the live loop (tests/test_gateway.py)
STEP = 60.0
ENGINE_ARGS = ["--no-pin", "--yield-after", "4096", "--attach-timeout", "60"]


@pytest.fixture(scope="module", autouse=True)
def warm_engine():
    """Compile (or load) the live loop once; the engine processes then load the cache."""
    from offload.engine_process import warm_up

    warm_up(as_venue(None))


def wait(cond, what, logs, timeout=STEP):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out ({timeout} s) waiting for {what}:\n{logs()}")
        time.sleep(0.01)


def order(oid, acct=700, price=180.0, qty=1):
    return gatewayproc.order(oid, acct, price=price, qty=qty, msg_seq=oid)


def round_trip(seg, oid, ack=True):
    """One NEW through ring 0, its first event back from ring 1 (the test is the segment's
    client): the engine's ACK (the hardware book's answer, whatever it is, with ack=False)."""
    r0, r1 = seg.ring(0), seg.ring(1)
    r0.register("producer")
    r1.register("consumer")
    t = r0.head()
    r0.push(order(oid), timeout=STEP)
    ev = r1.pop_exactly(1, timeout=STEP)
    assert int(ev["order_id"][0]) == oid and (not ack or int(ev["kind"][0]) == EV_ACK), ev
    t0 = time.monotonic()
    while r0.tail() <= t:  # TAIL past it: all its events are published
        assert time.monotonic() - t0 < STEP, "the server took the record but never moved TAIL past it"
        time.sleep(0.001)
    r1.pop()  # the rest of its events, if any


def new_book(seg):
    """What the owner does for a server that replaces a dead one: empty rings (a SIGKILLed
    engine's book died with it; a restart on ring positions past 0 needs a journal)."""
    for r in seg.rings:
        r.ctrl[HEAD] = r.ctrl[TAIL] = r.ctrl[CLOSED] = r.ctrl[STOP] = 0
    seg.hdr[H_PEER_PID] = 0


class Procs:
    def __init__(self, tmp: Path):
        self.tmp, self.procs, self.files = tmp, [], []

    def start(self, module, name, *extra):
        f = open(self.tmp / f"{module.rsplit('.', 1)[1]}{len(self.procs)}.log", "w+")
        self.files.append(f)
        p = subprocess.Popen([sys.executable, "-m", module, "--rings", name, *extra], cwd=REPO, stdout=f,
                             stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def logs(self) -> str:
        out = []
        for f in self.files:
            f.flush()
            f.seek(0)
            out.append(f"--- {f.name}\n{f.read()}")
        return "\n".join(out)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait(10)
        for f in self.files:
            f.close()


def refused_second(module, name, live_pid, extra, timeout=STEP):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", module, "--rings", name, *extra], cwd=REPO, capture_output=True,
                       text=True, timeout=timeout)
    took = time.monotonic() - t0
    lines = r.stderr.splitlines()
    assert r.returncode == EXIT_USAGE, (r.returncode, r.stderr)
    assert len(lines) == 1, r.stderr
    who = "engine" if module.endswith("engine_process") else "bridge"
    assert re.fullmatch(rf"{who}\[\d+\]: cannot serve {name}: segment {name} is already served by pid {live_pid}: "
                        r"one server per segment, refused \(stop that server first\)", lines[0]), lines[0]
    return took


def test_a_second_engine_is_refused_the_first_keeps_serving_and_a_restart_after_sigkill_is_accepted(tmp_path):
    name = f"tickbook-claimtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    seg = engine_segment(name, orders_cap=1 << 10, events_cap=1 << 12)  # the test owns it
    ps = Procs(tmp_path)
    try:
        e1 = ps.start("offload.engine_process", name, *ENGINE_ARGS)
        wait(lambda: seg.peer_pid == e1.pid, "the first engine to be ready", ps.logs, READY_TIMEOUT)
        round_trip(seg, 1)
        beat = seg.heartbeat()
        wait(lambda: seg.heartbeat() != beat, "the idle engine's heartbeat to move", ps.logs, 5)

        took = refused_second("offload.engine_process", name, e1.pid, ENGINE_ARGS)
        assert took < 30, f"the refusal took {took:.1f} s"
        # it touched nothing: the first one's pid words, ready file and cursors are as they were
        assert seg.peer_pid == e1.pid and int(seg.ring(0).ctrl[C_CONSUMER_PID]) == e1.pid
        with open(ready_path(name)) as f:
            assert f.readline().strip() == str(e1.pid)
        assert e1.poll() is None, ps.logs()
        round_trip(seg, 2)  # the first keeps serving

        e1.send_signal(signal.SIGKILL)
        e1.wait(STEP)
        new_book(seg)
        e2 = ps.start("offload.engine_process", name, *ENGINE_ARGS)
        wait(lambda: seg.peer_pid == e2.pid, "the restarted engine to be ready", ps.logs, READY_TIMEOUT)
        round_trip(seg, 3)
        e2.send_signal(signal.SIGTERM)
        assert e2.wait(STEP) == EXIT_OK, ps.logs()
    finally:
        ps.close()
        seg.close()
        remove_file(ready_path(name))


def _simulator():
    from hdl.sim.driver import simulator_available

    ok, why = simulator_available()
    if ok:
        try:
            import cocotb_tools.runner  # noqa: F401
        except ImportError:
            ok, why = False, "cocotb is not installed"
    return ok, why


# a venue the Verilog book runs exactly (the built-in one, a million orders, is refused)
BRIDGE_VENUE = ("--config", str(REPO / "k8s" / "overlays" / "sim" / "venue.toml"))


@pytest.mark.hdl
def test_a_second_bridge_is_refused_and_a_restart_after_sigkill_is_accepted(tmp_path):
    ok, why = _simulator()
    if not ok:
        pytest.skip(f"hdl simulation unavailable: {why}")
    name = f"tickbook-claimtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    seg = engine_segment(name, orders_cap=1 << 10, events_cap=1 << 12)
    ps = Procs(tmp_path)
    try:
        b1 = ps.start("hdl.sim.bridge", name, *BRIDGE_VENUE)
        wait(lambda: seg.peer_pid == b1.pid, "the first bridge to be ready", ps.logs, READY_TIMEOUT)
        sim1 = int(seg.ring(0).ctrl[C_CONSUMER_PID])  # the simulator (the bridge's child) consumes ring 0
        round_trip(seg, 1, ack=False)
        beat = seg.heartbeat()
        wait(lambda: seg.heartbeat() != beat, "the idle bridge's heartbeat to move", ps.logs, 5)

        took = refused_second("hdl.sim.bridge", name, b1.pid, list(BRIDGE_VENUE))
        assert took < 30, f"the refusal took {took:.1f} s"
        assert seg.peer_pid == b1.pid and int(seg.ring(0).ctrl[C_CONSUMER_PID]) == sim1
        round_trip(seg, 2, ack=False)

        b1.send_signal(signal.SIGKILL)
        b1.wait(STEP)
        wait(lambda: not pid_alive(sim1), "the dead bridge's simulator to end", ps.logs)
        new_book(seg)
        b2 = ps.start("hdl.sim.bridge", name, *BRIDGE_VENUE)
        wait(lambda: seg.peer_pid == b2.pid, "the restarted bridge to be ready", ps.logs, READY_TIMEOUT)
        round_trip(seg, 3, ack=False)
        b2.send_signal(signal.SIGTERM)
        assert b2.wait(STEP) == EXIT_OK, ps.logs()
    finally:
        ps.close()
        seg.close()


# ------------------------------------------------------------------ the heartbeat, through the gateway


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().strip()


def test_a_stuck_engine_makes_the_gateway_not_ready_until_it_turns_again(tmp_path):
    g = GatewayProcess(tmp_path, "--health", "127.0.0.1:0", step=STEP, tag="claimtest")
    eng = None
    try:
        port = int(re.search(r"health: GET /live.* on port (\d+)", g.logs()).group(1))
        with open(ready_path(g.name)) as f:
            eng = int(f.readline())
        assert get(port, "/ready") == (200, "ready")

        os.kill(eng, signal.SIGSTOP)
        t0 = time.monotonic()
        wait(lambda: get(port, "/ready")[0] == 503, "/ready to say the engine is stuck", g.logs, 15)
        status, why = get(port, "/ready")
        assert re.fullmatch(rf"engine pid {eng} stuck: no heartbeat for \d+\.\d s", why), why
        assert get(port, "/live") == (200, "alive")  # the gateway itself is fine
        assert g.proc.poll() is None and pid_alive(eng), "a stuck engine was taken for a dead one"
        stuck_for = time.monotonic() - t0

        os.kill(eng, signal.SIGCONT)
        wait(lambda: get(port, "/ready") == (200, "ready"), "/ready to return once the engine turns", g.logs, 15)
        with g.client() as c:
            assert list(c.submit(order(10))["kind"]) == [EV_ACK]
        out = g.logs()
        assert len(re.findall(rf"engine pid {eng} stuck: no heartbeat for", out)) == 1, out
        assert len(re.findall(rf"engine pid {eng} turns again: heartbeat after", out)) == 1, out
        assert stuck_for < 15
        g.proc.send_signal(signal.SIGTERM)
        assert g.proc.wait(STEP) == EXIT_OK, g.logs()
    finally:
        if eng is not None and pid_alive(eng):
            os.kill(eng, signal.SIGCONT)
        g.close()
