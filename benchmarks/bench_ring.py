"""Bare shared-memory ring: round trip between two pinned processes (Numba client and plain
Python client), streaming records/s, and a pyzmq round trip between the same two processes.

    .venv/bin/python benchmarks/bench_ring.py          # prints figures, writes .benchmarks/ring.json
    make bench-rings                                    # bench_roundtrip.py: all of this and the engine
    pytest benchmarks/bench_ring.py -s --benchmark-enable

Client pinned to cpu 0, peer (testkit.ringtool echo / sink) pinned to cpu 1, both
busy-polling (no sched_yield). The machine has 2 cores shared with other work: the output
starts with what else was running.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

# run as a script too: the test kit (testkit/) comes from the checkout, it is not installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine.records import ACTION_SHUTDOWN, ORDER_DTYPE
from testkit.latency import Peer, fmt, ghz, histogram, round_trips, rtt_python, save, seg_name, stream_numba
from offload.pinning import machine_load, pin, unpin
from offload.ring import Segment
from testkit.ringtool import pattern

NEVER = str(1 << 62)
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".benchmarks", "ring.json")


def sample_records(n=64) -> np.ndarray:
    src = np.zeros((n, 8), np.int64)
    for i in range(n):
        pattern(i, src[i])
    return src


def zmq_rtt(endpoint: str, n: int) -> np.ndarray:
    import zmq

    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.RCVTIMEO = 30_000
    s.connect(endpoint)
    msg = bytes(range(64))
    lat = np.empty(n, np.int64)
    pc = time.perf_counter_ns
    for _ in range(1000):
        s.send(msg)
        s.recv()
    for i in range(n):
        t0 = pc()
        s.send(msg)
        s.recv()
        lat[i] = pc() - t0
    s.send(b"")
    s.recv()
    s.close()
    return lat


def ring_and_zmq(n_numba=300_000, n_python=100_000, n_zmq=20_000, client_cpu=0, peer_cpu=1) -> dict:
    """Ring echo round trips (Numba, then Python client), then pyzmq REQ/REP round trips
    with the same peer process."""
    res = {}
    f = ghz()
    name = seg_name("echo")
    endpoint = f"ipc:///tmp/{name}.zmq"
    rep = pin(client_cpu)
    res["client"] = rep.summary()
    with Segment.create(name, [("raw", 1024), ("raw", 1024)]) as seg:
        peer = Peer(["testkit.ringtool", "echo", name, "--cpu", str(peer_cpu), "--yield-after", NEVER,
                     "--zmq", endpoint, "--timeout", "120"], seg)
        try:
            lines = peer.wait_line("attached")
            res["peer"] = "".join(lines).strip().replace("pinned: ", "")
            r_in, r_out = seg.ring(0), seg.ring(1)
            src = sample_records()
            round_trips(r_in, r_out, src, 20_000, "echo peer")  # warm-up
            lat = round_trips(r_in, r_out, src, n_numba, "echo peer")
            res["ring_rtt_numba"] = histogram(lat / f)
            recs = [src[i].tobytes() for i in range(len(src))]
            rtt_python(r_in, r_out, recs, 20_000)
            res["ring_rtt_python"] = histogram(rtt_python(r_in, r_out, recs, n_python))
            stop = np.zeros(1, ORDER_DTYPE)
            stop["action"] = ACTION_SHUTDOWN
            r_in.push(stop)
            peer.wait_line("zmq ready")
            res["zmq_rtt"] = histogram(zmq_rtt(endpoint, n_zmq))
            peer.finish()
        finally:
            peer.kill()
            try:
                os.unlink(endpoint[len("ipc://"):])
            except FileNotFoundError:
                pass
    unpin()
    # like for like: the pyzmq client and the ring client are both plain Python (rtt_python)
    res["ratio_zmq_over_ring_p50_python_clients"] = ratio_p50(res["zmq_rtt"], res["ring_rtt_python"])
    # not like for like: a Python pyzmq client against the compiled (Numba) ring client
    res["ratio_zmq_python_over_ring_numba_p50_mixed_clients"] = ratio_p50(res["zmq_rtt"], res["ring_rtt_numba"])
    return res


def ratio_p50(a: dict, b: dict) -> float:
    return round(a["p50_ns"] / max(1, b["p50_ns"]), 1)


def headline(res: dict) -> None:
    """The ratios, worded with what each compares."""
    if "ratio_zmq_over_ring_p50_python_clients" in res:
        print(f"pyzmq REQ/REP / bare ring round trip at p50, both clients plain Python: "
              f"{res['ratio_zmq_over_ring_p50_python_clients']}x")
        print(f"  (client languages mixed, not like for like: pyzmq Python client / Numba ring client: "
              f"{res['ratio_zmq_python_over_ring_numba_p50_mixed_clients']}x)")
    if "ratio_zmq_over_engine_p50_python_clients" in res:
        print(f"pyzmq REQ/REP / order through the rings and the engine at p50, both clients plain Python: "
              f"{res['ratio_zmq_over_engine_p50_python_clients']}x")
        print(f"  (client languages mixed, not like for like: pyzmq Python client / Numba engine client: "
              f"{res['ratio_zmq_python_over_engine_numba_p50_mixed_clients']}x)")


WARM = 1000  # records streamed before the timed part of a round (the peer counts them too)


class StreamRound:
    """One streaming round, set up outside any timing: a fresh segment, the consumer process
    (testkit.ringtool sink, pinned to peer_cpu) attached, WARM records already through it.
    stream() is the timed part: n - WARM records, TSC ticks from the first push until the
    consumer has taken the last one; close() checks the consumer's report."""

    def __init__(self, n: int, capacity: int, batch: int, src: np.ndarray, peer_cpu: int):
        self.n, self.batch, self.src = n, batch, src
        self.ticks = None
        self.seg = Segment.create(seg_name("stream"), [("raw", capacity)])
        self.peer = Peer(["testkit.ringtool", "sink", self.seg.name, "--n", str(n), "--cpu", str(peer_cpu),
                          "--yield-after", NEVER, "--timeout", "120"], self.seg)
        try:
            self.peer.wait_line("attached")
            self.ring = self.seg.ring(0)
            stream_numba(self.ring.ctrl, self.ring.words, src, WARM, batch)  # compile + warm
        except BaseException:
            self.close(check=False)
            raise

    def stream(self) -> int:
        ticks, st = stream_numba(self.ring.ctrl, self.ring.words, self.src, self.n - WARM, self.batch)
        if st != 0:
            raise RuntimeError(f"streaming stalled (status {st})")
        self.ticks = ticks
        return ticks

    def records_per_s(self, ghz_: float) -> float:
        return (self.n - WARM) / (self.ticks / ghz_) * 1e9

    def close(self, check: bool = True) -> None:
        if self.peer is None:
            return
        peer, self.peer = self.peer, None
        try:
            out = peer.finish() if self.ticks is not None else ""
            if check and self.ticks is not None and "ok sink" not in out:
                raise RuntimeError(out)
        finally:
            peer.kill()
            self.ring = None
            self.seg.close()


def stream_summary(rates: list[float], n: int, capacity: int, batch: int) -> dict:
    """The figures of streaming(): records/s from the TSC ticks of the timed part only (not the
    peer's start, the segment or the warm-up)."""
    rates = sorted(rates)
    return {"records": n - WARM, "capacity": capacity, "batch": batch, "rounds": len(rates),
            "records_per_s_best": round(rates[-1]), "records_per_s_median": round(rates[len(rates) // 2]),
            "bytes_per_s_best": round(rates[-1] * 64)}


def streaming(n=20_000_000, capacity=4096, batch=256, client_cpu=0, peer_cpu=1, rounds=3) -> dict:
    """Producer (this process, njit, one HEAD publish per batch) -> consumer process (njit,
    reads a word of every record, one TAIL publish per run). Best and median of rounds; each
    round times only the streaming of n - WARM records (StreamRound.stream)."""
    f = ghz()
    rates = []
    src = sample_records(batch)
    pin(client_cpu)
    try:
        for _ in range(rounds):
            r = StreamRound(n, capacity, batch, src, peer_cpu)
            try:
                r.stream()
            finally:
                r.close()
            rates.append(r.records_per_s(f))
    finally:
        unpin()
    return stream_summary(rates, n, capacity, batch)


def report(res: dict) -> None:
    for k, v in res.items():
        if k.startswith("ratio_"):
            continue  # headline() words them
        if isinstance(v, dict) and "p50_ns" in v:
            print(fmt(k, v))
        elif isinstance(v, dict):
            print(f"{k:<44} " + ", ".join(f"{a}={b:,}" if isinstance(b, int) else f"{a}={b}" for a, b in v.items()))
        else:
            print(f"{k:<44} {v}")
    headline(res)


def main() -> dict:
    res = {"machine": machine_load(), "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    res.update(ring_and_zmq())
    res["streaming"] = streaming()
    res["machine_after"] = machine_load()
    report(res)
    save(res, OUT)
    return res


def test_ring_round_trip_and_zmq():
    res = ring_and_zmq(n_numba=100_000, n_python=30_000, n_zmq=5_000)
    report(res)
    assert res["ring_rtt_numba"]["n"] == 100_000


def test_ring_streaming(benchmark):
    """pytest-benchmark times StreamRound.stream only: n - WARM records streamed (the peer's
    start, the segment and the warm-up are in setup/teardown, outside the timing)."""
    n, capacity, batch = 5_000_000, 4096, 256
    f = ghz()
    src = sample_records(batch)
    made: list[StreamRound] = []

    def setup():
        made.append(StreamRound(n, capacity, batch, src, peer_cpu=1))
        return (made[-1],), {}

    pin(0)
    try:
        benchmark.pedantic(StreamRound.stream, setup=setup, teardown=lambda r: r.close(), rounds=3, iterations=1)
    finally:
        for r in made:  # teardown is skipped when a round fails or benchmarks are disabled
            r.close()
        unpin()
    res = stream_summary([r.records_per_s(f) for r in made if r.ticks is not None], n, capacity, batch)
    benchmark.extra_info.update(res)
    report({"streaming": res})
    if benchmark.stats:
        med = benchmark.stats.stats.median
        print(f"streaming, wall time of the timed part (pytest-benchmark, median of 3): {med * 1e3:.1f} ms for "
              f"{n - WARM:,} records = {(n - WARM) / med:,.0f} records/s")


if __name__ == "__main__":
    main()
    sys.exit(0)
