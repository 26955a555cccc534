"""The client side of a server on rings: start one, stream a flow through it, stop it.

    srv = Server("offload.engine_process", venue)   # or "hdl.sim.bridge": the same protocol
    srv.wait_ready()
    events = stream(srv.seg, orders, srv.alive)     # orders in, SHUTDOWN, every event out
    report = srv.close()

A `Server` owns its segment: it creates it, starts the server process on it, and removes it
(and the ready file a killed server leaves) whatever happens. `stream` pushes the flow through
the order ring while draining the event ring, never blocking on one while the other is full,
and returns once the server closes its event ring.
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

from engine.records import ACTION_MALFORMED, ACTION_SHUTDOWN, EVENT_DTYPE, ORDER_DTYPE
from offload.ring import (
    PeerGone,
    RingTimeout,
    Segment,
    as_words,
    nb_pop_words,
    nb_push_words,
    pid_alive,
    ready_path,
    reap_stale,
    remove_file,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Unanswered(RuntimeError):
    """The server closed its event ring before taking every record of the flow (a STOP, or a
    record it took for SHUTDOWN): the messages after that point got no events."""


def shutdown_record() -> np.ndarray:
    r = np.zeros(1, ORDER_DTYPE)
    r["action"] = ACTION_SHUTDOWN
    return r


VENUE_FILE_PREFIX = "tickbook-venue-"  # then the owner's pid: tickbook-venue-<pid>-<random>.pickle


def remove_dead_venue_files() -> list[str]:
    """Venue files in the temporary directory whose owner process is dead (killed before its
    close() could remove them)."""
    gone = []
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        if name.startswith(VENUE_FILE_PREFIX) and name.endswith(".pickle"):
            pid = name[len(VENUE_FILE_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                remove_file(os.path.join(tmp, name))
                gone.append(name)
    return gone


class Server:
    """A server process (engine or bridge) on a segment this process owns."""

    def __init__(self, module: str, venue, orders_cap=1 << 14, events_cap=1 << 16, cpu=None, extra=(),
                 name_prefix="tickbook"):
        self.name = f"{name_prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        reap_stale(name_prefix)  # what a replay killed with SIGKILL left: its segment, its venue file
        remove_dead_venue_files()
        self.seg = Segment.create(self.name, [("orders", orders_cap), ("events", events_cap)])
        fd, self.venue_file = tempfile.mkstemp(prefix=f"{VENUE_FILE_PREFIX}{os.getpid()}-", suffix=".pickle")
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

    def wait_ready(self, timeout: float = 300.0) -> None:
        # 300 s: a hardware bridge may compile its simulation first (a cold Verilator build of
        # the book took 25-60 s on this project's 2 shared cores); a server that dies says so
        # at once (PeerGone), so the bound only matters for one that hangs
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
    once the server closes ring 1, or raise Unanswered when it closed it before taking every
    record. `timeout` bounds any stretch without progress."""
    r_in, r_out = seg.ring(0), seg.ring(1)
    r_in.register("producer")
    r_out.register("consumer")
    recs = np.ascontiguousarray(orders)
    control = recs["action"] == ACTION_SHUTDOWN
    if control.any():
        # A flow record with action 255 would read as the SHUTDOWN control record and end the
        # server there. The matcher answers it REJECT MALFORMED from the record's other fields,
        # as it does action 5 (engine.matcher.well_formed), so it travels as 5: the same events
        # as batch replay, and the hot loop keeps its one test.
        recs = recs.copy()
        recs["action"][control] = ACTION_MALFORMED
    src = as_words(recs)
    if shutdown:
        src = np.concatenate([src, as_words(shutdown_record())])
    n = len(src)
    chunks = []
    buf = np.empty(r_out.capacity, EVENT_DTYPE)
    bw = as_words(buf)
    head, tail_c = r_in.head(), r_in.tail()
    first = head  # ring position of orders[0]
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
    # ring 0's TAIL moves past a record only once its events are published (docs/offload.md)
    unanswered = len(recs) - min(max(r_in.tail() - first, 0), len(recs))
    if unanswered:
        raise Unanswered(f"server on {seg.name} closed its event ring with {unanswered:,} of "
                         f"{len(recs):,} messages unanswered")
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
