"""Entry points the `tickbook` CLI delegates to.

    engine_main(argv)                         tickbook engine --rings NAME [--cpu N] ...
    replay_shm(flow, venue, offload) -> events  tickbook replay FLOW --transport shm --offload sw|hw|shadow

`replay_shm` owns the segments: it creates them, starts the engine process (sw), the hardware
bridge (hw) or both (shadow), streams the flow through the order ring while draining the
event ring (never blocking on one while the other is full), sends SHUTDOWN, collects every
event until the server closes its event ring, and removes the segments whatever happens.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

from engine.records import ACTION_SHUTDOWN, EVENT_DTYPE, ORDER_DTYPE
from offload.ring import PeerGone, RingError, RingTimeout, Segment, as_words, nb_pop_words, nb_push_words, ready_path, remove_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# replay is about results, not latency: a server that has been idle a while lets other work
# on its core run (benchmarks start the engine without this)
POLITE = ("--yield-after", "4096")


class ShadowMismatch(RuntimeError):
    """sw and hw disagree; the message names the first differing event and its order."""


def engine_main(argv=None) -> int:
    from offload.engine_process import main

    return main(argv)


def shutdown_record() -> np.ndarray:
    r = np.zeros(1, ORDER_DTYPE)
    r["action"] = ACTION_SHUTDOWN
    return r


class Server:
    """A server process (engine or bridge) on a segment this process owns."""

    def __init__(self, module: str, venue, orders_cap=1 << 14, events_cap=1 << 16, cpu=None, extra=(),
                 name_prefix="tickbook"):
        self.name = f"{name_prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.seg = Segment.create(self.name, [("orders", orders_cap), ("events", events_cap)])
        fd, self.venue_file = tempfile.mkstemp(prefix="tickbook-venue-", suffix=".pickle")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(venue, f)
        args = [sys.executable, "-m", module, "--rings", self.name, "--venue-pickle", self.venue_file, *extra]
        if cpu is not None:
            args += ["--cpu", str(cpu)]
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self, timeout: float = 120.0) -> None:
        t0 = time.monotonic()
        while self.seg.peer_pid != self.proc.pid:
            if not self.alive():
                raise PeerGone(f"{self.name}: server exited before it was ready:\n{self.output()}")
            if time.monotonic() - t0 > timeout:
                raise RingTimeout(f"{self.name}: server not ready after {timeout} s:\n{self.output()}")
            time.sleep(0.005)

    def close(self, timeout: float = 20.0) -> str:
        try:
            if self.alive():
                try:
                    self.seg.request_stop()
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            self.seg.close()
            remove_file(ready_path(self.name))  # a SIGKILLed engine leaves its ready file
            try:
                os.unlink(self.venue_file)
            except FileNotFoundError:
                pass
        out = self.output()
        self.log.close()
        return out


def stream(seg: Segment, orders: np.ndarray, alive, timeout: float = 60.0, shutdown: bool = True) -> np.ndarray:
    """Push every order (then SHUTDOWN) into ring 0 while draining ring 1; return every event
    once the server closes ring 1. `timeout` bounds any stretch without progress."""
    r_in, r_out = seg.ring(0), seg.ring(1)
    r_in.register("producer")
    r_out.register("consumer")
    src = as_words(np.ascontiguousarray(orders))
    if shutdown:
        src = np.concatenate([src, as_words(shutdown_record())])
    n = len(src)
    chunks = []
    buf = np.empty(r_out.capacity, EVENT_DTYPE)
    bw = as_words(buf)
    head, tail_c = r_in.head(), r_in.tail()
    ohead_c, otail = r_out.head(), r_out.tail()
    pushed = 0
    last = time.monotonic()
    idle = 0
    while True:
        moved = False
        if pushed < n:
            head, tail_c, k = nb_push_words(r_in.ctrl, r_in.words, src, pushed, n, head, tail_c)
            pushed += k
            moved |= k > 0
        closed = r_out.closed()  # read before draining: a drain after it is final
        ohead_c, otail, k = nb_pop_words(r_out.ctrl, r_out.words, bw, 0, len(bw), ohead_c, otail)
        if k:
            chunks.append(buf[:k].copy())
            moved = True
        elif closed:
            break
        if moved:
            idle = 0
            last = time.monotonic()
            continue
        idle += 1
        if idle > 100:
            os.sched_yield()
        if (idle & 255) == 0:
            if not alive():
                raise PeerGone(f"server on {seg.name} exited after {pushed} of {n} records")
            if time.monotonic() - last > timeout:
                raise RingTimeout(f"no progress on {seg.name} for {timeout} s ({pushed} of {n} records pushed)")
    return np.concatenate(chunks) if chunks else np.empty(0, EVENT_DTYPE)


def run_server(module: str, orders: np.ndarray, venue, timeout: float = 60.0, cpu=None, extra=()) -> tuple[np.ndarray, str]:
    """One server process, the whole flow through it: (events, the server's report)."""
    srv = Server(module, venue, cpu=cpu, extra=extra)
    try:
        srv.wait_ready()
        events = stream(srv.seg, orders, srv.alive, timeout)
        srv.proc.wait(timeout)
        return events, srv.close()
    except BaseException:
        report = srv.close()
        sys.stderr.write(report)
        raise


def hw_available() -> tuple[bool, str]:
    """Whether the Verilog book can run here, and why not."""
    import shutil

    try:
        import hdl.sim  # noqa: F401
    except Exception as e:  # the hdl package is another engineer's: absent or broken
        return False, f"hdl.sim not importable: {e}"
    if not hasattr(hdl.sim, "run_flow"):
        return False, "hdl.sim has no run_flow"
    for tool in ("iverilog", "vvp"):
        if shutil.which(tool) is None:
            return False, f"{tool} not installed"
    return True, "ok"


def first_divergence(sw: np.ndarray, hw: np.ndarray, orders: np.ndarray) -> str | None:
    """None when identical; else a description of the first differing event and its order."""
    n = min(len(sw), len(hw))
    a, b = as_words(np.ascontiguousarray(sw[:n])), as_words(np.ascontiguousarray(hw[:n]))
    diff = np.nonzero((a != b).any(axis=1))[0]
    if len(diff) == 0 and len(sw) == len(hw):
        return None
    i = int(diff[0]) if len(diff) else n
    ev = sw[i] if i < len(sw) else hw[i]
    msg_seq = int(ev["msg_seq"])
    which = np.nonzero(orders["msg_seq"] == msg_seq)[0]
    order = orders[which[0]] if len(which) else None
    return (
        f"first divergence at event {i} (sw has {len(sw)} events, hw {len(hw)}):\n"
        f"  sw: {sw[i] if i < len(sw) else '<none>'}\n  hw: {hw[i] if i < len(hw) else '<none>'}\n"
        f"  message msg_seq={msg_seq}: {order}"
    )


def replay_shm(flow, venue, offload_mode: str = "sw", timeout: float = 120.0) -> np.ndarray:
    """`tickbook replay FLOW --transport shm --offload MODE`: the flow through the rings."""
    from engine.api import as_venue

    orders = flow.orders if hasattr(flow, "orders") else flow
    if orders.dtype != ORDER_DTYPE:
        raise TypeError(f"orders must have ORDER_DTYPE, got {orders.dtype}")
    venue = as_venue(venue)
    if offload_mode == "sw":
        events, report = run_server("offload.engine_process", orders, venue, timeout, extra=POLITE)
        _say(report)
        return events
    ok, why = hw_available()
    if not ok:
        raise RuntimeError(f"--offload {offload_mode} needs the Verilog simulation: {why}")
    if offload_mode == "hw":
        events, report = run_server("offload.bridge", orders, venue, timeout)
        _say(report)
        return events
    if offload_mode == "shadow":
        from hdl.sim import engine_venue

        sw_venue = engine_venue(venue)  # the hardware's capacities, so CAPACITY rejects agree
        sw, rep_sw = run_server("offload.engine_process", orders, sw_venue, timeout, extra=POLITE)
        hw, rep_hw = run_server("offload.bridge", orders, venue, timeout)
        _say(rep_sw + rep_hw)
        d = first_divergence(sw, hw, orders)
        if d is not None:
            raise ShadowMismatch(d)
        print(f"shadow: {len(sw):,} events identical in sw and hw", file=sys.stderr)
        return sw
    raise ValueError(f"unknown offload mode {offload_mode!r}: sw, hw or shadow")


def _say(report: str) -> None:
    for line in report.splitlines():
        if line.startswith(("engine[", "bridge[")):
            print(line, file=sys.stderr)
