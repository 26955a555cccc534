"""SPSC shared-memory rings, across real processes.

No wall-clock assertions: every wait is bounded by a generous timeout (the machine has 2
cores shared with other work) and fails with a message, and every process is killed in a
finally. A compiled (njit) loop is bounded by a watchdog thread that sets the ring's STOP word at
its deadline, so a wait that never ends returns STOPPED and fails its test; pytest-timeout's
thread method (which ends the run even while the main thread is inside compiled code, where a
SIGALRM handler never runs) backs that up should the STOP word be missed too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

from engine.records import ORDER_DTYPE, RECORD_SIZE
from offload import ring as R
from offload.ring import PeerGone, RingLayoutError, RingTimeout, Segment

PY = sys.executable
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 90


def name():
    return f"tickbook-test-{uuid.uuid4().hex[:10]}"


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, *args, **kw):
        p = subprocess.Popen(
            [PY, "-m", "testkit.ringtool", *map(str, args)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kw,
        )
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except Exception:
                pass


@pytest.fixture
def procs():
    ps = Procs()
    try:
        yield ps
    finally:
        ps.kill_all()


class Watchdog:
    """Sets the STOP word of `ring` after `seconds` (unless cancelled first): an njit loop that
    polls STOP then returns STOPPED instead of spinning forever. `fired` says whether it had to."""

    def __init__(self, ring, seconds: float):
        self.ring, self.fired = ring, False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self):
        self.fired = True
        self.ring.request_stop()

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


@pytest.fixture(scope="module", autouse=True)
def warm_cache():
    """Compile (or load) the njit peers once here, so spawned processes load the cache
    instead of compiling concurrently. Each call runs on data that is already there; a
    watchdog stops a call that would wait anyway."""
    from testkit import ringtool

    with Segment.create(name(), [("raw", 16), ("raw", 16)]) as seg:
        r, r2 = seg.ring(0), seg.ring(1)
        with Watchdog(r, TIMEOUT) as dog:  # compiling takes a while on a cold cache
            done, status = ringtool.produce(r.ctrl, r.words, 0, 10, 4, 1, 0.0, 10, 1)
            assert (done, status) == (10, R.OK), "warm-up producer did not push its 10 records"
            done, status, bad = ringtool.consume(r.ctrl, r.words, 0, 10, 4, 1, 0.0, 10, 1)
            assert (done, status, bad) == (10, R.OK, -1), "warm-up consumer did not get its 10 records"
            shutdown = np.zeros((1, 8), np.int64)
            shutdown[0, 5] = 255 << 48
            r.push(shutdown, timeout=5)
            n, status = ringtool.echo(r.ctrl, r.words, r2.ctrl, r2.words, 1)
        assert not dog.fired and (n, status) == (1, R.OK), f"warm-up echo returned {(n, status)}"
    yield


def out(p, timeout=TIMEOUT):
    try:
        o, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        o, _ = p.communicate()
        pytest.fail(f"peer did not finish in {timeout} s:\n{o}")
    return o


def wait_for(pred, timeout=TIMEOUT, what="condition"):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def wait_line(p, text, timeout=TIMEOUT):
    """Read the peer's stdout until a line containing text."""
    box = []

    def rd():
        for line in p.stdout:
            box.append(line)
            if text in line:
                return

    t = threading.Thread(target=rd, daemon=True)
    t.start()
    t.join(timeout)
    if not any(text in line for line in box):
        pytest.fail(f"peer never said {text!r}: {''.join(box)}")


# --- layout


def test_layout_cursors_on_separate_lines_and_aligned():
    assert R.HEAD * 8 == 128 and R.TAIL * 8 == 256 and R.STOP * 8 == 384
    assert (R.TAIL - R.HEAD) * 8 >= 128  # 128 bytes apart: no false sharing via the pair prefetcher
    with Segment.create(name(), [("orders", 8), ("events", 32)]) as seg:
        for r in seg.rings:
            assert r.ctrl.ctypes.data % 4096 == 0
            assert r.words.ctypes.data % 4096 == 0
            assert r.recs.dtype.itemsize == RECORD_SIZE
        assert seg.ring(0).recs.dtype == ORDER_DTYPE


def test_push_pop_wraps_and_peek_is_zero_copy():
    with Segment.create(name(), [("orders", 8)]) as seg:
        r = seg.ring(0)
        src = np.zeros(1000, ORDER_DTYPE)
        src["msg_seq"] = np.arange(1000)
        got = []
        i = 0
        while i < 1000:
            k = min(5, 1000 - i)
            r.push(src[i : i + k], timeout=1)
            i += k
            v = r.peek()
            assert np.shares_memory(v, r.recs)
            got.extend(v["msg_seq"].tolist())
            r.advance(len(v))
            del v
            got.extend(r.pop()["msg_seq"].tolist())
        assert got == list(range(1000))
        assert r.head() == r.tail() == 1000


def test_full_ring_times_out_instead_of_dropping():
    with Segment.create(name(), [("raw", 4)]) as seg:
        r = seg.ring(0)
        r.push(np.ones((4, 8), np.int64))
        assert not r.try_push_bytes(bytes(64))
        with pytest.raises(RingTimeout):
            r.push(np.ones((1, 8), np.int64), timeout=0.2)
        assert r.head() == 4


POLL_DEADLINE = 30.0  # s the njit poll may wait for a write that comes after 0.2 s


@pytest.mark.timeout(POLL_DEADLINE + 60, method="thread")  # if even the STOP word were not seen
def test_njit_poll_sees_a_write_from_another_thread():
    """The acquire-load intrinsic keeps LLVM from hoisting the load out of the spin loop: the
    njit poll (never yielding, no spin limit) sees HEAD move when another thread pushes. A
    hoisted load would spin forever; the watchdog's STOP word then ends it and the test fails."""
    with Segment.create(name(), [("raw", 4)]) as seg:
        r = seg.ring(0)
        head, status = R.nb_wait_readable(r.ctrl, 1, 0, 1000, 1 << 40)  # compile before the clock runs
        assert (head, status) == (1, R.OK)
        t = threading.Timer(0.2, lambda: r.push(np.ones((1, 8), np.int64)))
        t.start()
        with Watchdog(r, POLL_DEADLINE) as dog:
            head, status = R.nb_wait_readable(r.ctrl, 0, 0, 1 << 62, 1 << 62)
        t.join()
        assert not dog.fired, (f"the njit poll did not see HEAD move within {POLL_DEADLINE} s "
                               f"(status {status}, HEAD in memory {r.head()}): the load was hoisted")
        assert (head, status) == (1, R.OK)


def test_njit_poll_returns_on_the_stop_word_when_nothing_comes():
    """The other half of the bound the test above relies on: with no write at all, the poll
    returns STOPPED once STOP is set (the spin limit is out of reach)."""
    with Segment.create(name(), [("raw", 4)]) as seg:
        r = seg.ring(0)
        with Watchdog(r, 0.2) as dog:
            head, status = R.nb_wait_readable(r.ctrl, 0, 0, 1 << 62, 1 << 62)
        assert dog.fired and (head, status) == (0, R.STOPPED)


def test_close_with_live_view_does_not_unmap_under_it():
    seg = Segment.create(name(), [("raw", 4)])
    v = seg.ring(0).words
    seg.close()
    assert v.sum() == 0  # would segfault if close() had unmapped
    del v


# --- across processes


@pytest.mark.parametrize("capacity,n,stall", [(1024, 2_000_000, 0.002), (8, 300_000, 0.01)])
def test_millions_of_records_in_order_no_loss_with_stalls(procs, capacity, n, stall):
    """Producer and consumer in two processes, random batch sizes and random stalls on
    both sides; every word of every record is checked; thousands of wrap-arounds."""
    nm = name()
    with Segment.create(nm, [("raw", capacity)]) as seg:
        c = procs.start("consume", nm, "--n", n, "--stall", stall, "--seed", 3, "--timeout", TIMEOUT)
        p = procs.start("produce", nm, "--n", n, "--stall", stall, "--seed", 4, "--timeout", TIMEOUT)
        po, co = out(p), out(c)
        assert f"ok produce {n}" in po, po
        assert f"ok consume {n}" in co, co
        r = seg.ring(0)
        assert r.head() == r.tail() == n
        assert n // capacity > 200
        assert r.closed()


def test_full_ring_back_pressure_then_late_consumer(procs):
    """The producer fills the ring and waits (nothing dropped); a consumer attaching late
    gets every record from the first."""
    nm = name()
    n, cap = 50_000, 256
    with Segment.create(nm, [("raw", cap)]) as seg:
        r = seg.ring(0)
        p = procs.start("produce", nm, "--n", n, "--timeout", TIMEOUT)
        wait_for(lambda: r.head() == cap, what="the producer to fill the ring")
        time.sleep(0.2)
        assert p.poll() is None, "producer must wait on a full ring, not exit"
        assert r.head() == cap and r.tail() == 0
        c = procs.start("consume", nm, "--n", n, "--timeout", TIMEOUT)
        assert f"ok consume {n}" in out(c)
        assert f"ok produce {n}" in out(p)


def test_consumer_started_before_the_segment_exists(procs):
    nm = name()
    c = procs.start("consume", nm, "--n", 100_000, "--timeout", TIMEOUT)
    time.sleep(0.3)
    with Segment.create(nm, [("raw", 64)]):
        p = procs.start("produce", nm, "--n", 100_000, "--timeout", TIMEOUT)
        assert "ok consume 100000" in out(c)
        assert "ok produce 100000" in out(p)


@pytest.mark.parametrize("word,value,msg", [
    (R.H_VERSION, R.RING_LAYOUT_VERSION + 1, "ring layout version"),
    (R.H_REC_VERSION, 99, "record layout version"),
    (R.H_MAGIC, 0x1234, "not a tickbook ring segment"),
])
def test_peer_with_another_layout_is_refused(procs, word, value, msg):
    nm = name()
    with Segment.create(nm, [("raw", 64)]) as seg:
        seg.hdr[word] = value
        with pytest.raises(RingLayoutError, match=msg):
            Segment.attach(nm, timeout=1)
        c = procs.start("consume", nm, "--n", 10, "--timeout", 5)
        o = out(c)
        assert c.returncode != 0 and msg in o, o


def test_attacher_exit_does_not_unlink(procs):
    """The Python 3.11 resource-tracker trap: a process that merely attached must not
    remove the segment when it exits."""
    nm = name()
    with Segment.create(nm, [("raw", 64)]):
        p = procs.start("produce", nm, "--n", 10, "--timeout", TIMEOUT)
        assert "ok produce 10" in out(p)
        assert R.segment_exists(nm)
    assert not R.segment_exists(nm)


def test_owner_crash_attacher_cleans_up(procs):
    nm = name()
    own = procs.start("own", nm)
    wait_line(own, "ready")
    c = procs.start("consume", nm, "--n", 10**9, "--timeout", TIMEOUT, "--unlink-if-owner-dies")
    wait_line(c, "attached")
    own.send_signal(signal.SIGKILL)
    o = out(c)
    assert "peer gone" in o and "unlinked" in o, o
    assert not R.segment_exists(nm)


def test_owner_crash_without_attacher_is_reaped(procs):
    nm = name()
    own = procs.start("own", nm)
    wait_line(own, "ready")
    assert R.segment_exists(nm)
    assert nm not in R.reap_stale(nm)  # owner alive: left alone
    own.kill()
    own.wait(10)
    assert nm in R.reap_stale(nm)
    assert not R.segment_exists(nm)


def test_consumer_crash_owner_sees_peer_gone_and_cleans_up(procs):
    nm = name()
    with Segment.create(nm, [("raw", 64)]) as seg:
        c = procs.start("consume", nm, "--n", 10**9, "--stall", 0.5, "--timeout", TIMEOUT)
        wait_line(c, "attached")
        r = seg.ring(0)
        from testkit.ringtool import pattern

        data = np.zeros((1000, 8), np.int64)
        for i in range(1000):
            pattern(i, data[i])
        r.push(data[:100])
        c.kill()
        c.wait(10)
        alive = lambda: R.pid_alive(c.pid)  # noqa: E731
        with pytest.raises(PeerGone):
            for _ in range(100):
                r.push(data, timeout=TIMEOUT, alive=alive)
    assert not R.segment_exists(nm)
