"""Measurement kit for the ring benchmarks (benchmarks/bench_ring.py, bench_roundtrip.py).

Round trip = write one record into ring 0, publish HEAD, wait until the server has moved ring
0's TAIL past it (the engine moves TAIL only after the record's events are published; the
echo peer after the copy), read every record it put in ring 1, publish ring 1's TAIL. One
record in flight. Timed with the TSC from Numba, perf_counter_ns from Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import numpy as np
from numba import njit

from offload.atomics import cpu_relax, load_acquire, load_relaxed, rdtsc, store_release, tsc_ghz
from offload.ring import HEAD, OK, TAIL, Segment, nb_push_blocking

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPIN_LIMIT = 1 << 31


@njit(cache=True, nogil=True)
def rtt_numba(in_ctrl, in_words, out_ctrl, out_words, src, lat):
    """len(lat) round trips with src records in turn; lat[i] in TSC ticks. Returns the number
    of round trips completed (short when a wait exceeded SPIN_LIMIT polls) and a checksum."""
    mask_in = in_words.shape[0] - 1
    mask_out = out_words.shape[0] - 1
    head = load_relaxed(in_ctrl, HEAD)
    out_tail = load_relaxed(out_ctrl, TAIL)
    n_src = src.shape[0]
    acc = 0
    for i in range(lat.shape[0]):
        t0 = rdtsc()
        s = head & mask_in
        r = i % n_src
        for j in range(8):
            in_words[s, j] = src[r, j]
        head += 1
        store_release(in_ctrl, HEAD, head)
        spins = 0
        while load_acquire(in_ctrl, TAIL) != head:
            cpu_relax()
            spins += 1
            if spins > SPIN_LIMIT:
                return i, acc
        oh = load_acquire(out_ctrl, HEAD)
        for c in range(out_tail, oh):
            acc += out_words[c & mask_out, 0]
        out_tail = oh
        store_release(out_ctrl, TAIL, out_tail)
        lat[i] = rdtsc() - t0
    return lat.shape[0], acc


def round_trips(r_in, r_out, src, n: int, who: str = "server") -> np.ndarray:
    """n round trips of rtt_numba (src's records in turn), TSC ticks each; raises when `who`
    stopped answering before the n-th."""
    lat = np.empty(n, np.int64)
    done, _ = rtt_numba(r_in.ctrl, r_in.words, r_out.ctrl, r_out.words, src, lat)
    if done != n:
        raise RuntimeError(f"{who} stopped answering after {done} of {n} round trips")
    return lat


def rtt_python(r_in, r_out, recs: list[bytes], n: int, timeout: float = 60.0) -> np.ndarray:
    """The same loop in plain Python over memoryviews of the segment (x86 TSO makes the
    interpreter's ordered stores and loads release/acquire)."""
    q_in, q_out, b_in, b_out = r_in._q, r_out._q, r_in._b, r_out._b
    mask_in, mask_out = r_in.mask, r_out.mask
    head, out_tail = q_in[HEAD], q_out[TAIL]
    lat = np.empty(n, np.int64)
    pc = time.perf_counter_ns
    k = len(recs)
    got = []
    deadline = time.monotonic() + timeout
    for i in range(n):
        rec = recs[i % k]
        t0 = pc()
        off = (head & mask_in) << 6
        b_in[off : off + 64] = rec
        head += 1
        q_in[HEAD] = head
        spins = 0
        while q_in[TAIL] != head:
            spins += 1
            if spins > 1_000_000 and time.monotonic() > deadline:
                raise TimeoutError("server stopped answering")
        oh = q_out[HEAD]
        while out_tail < oh:
            off = (out_tail & mask_out) << 6
            got.append(b_out[off : off + 64].tobytes())
            out_tail += 1
        q_out[TAIL] = out_tail
        lat[i] = pc() - t0
        if len(got) > 4096:
            got.clear()
    r_in._head = head
    r_out._tail = out_tail
    return lat


@njit(cache=True, nogil=True)
def stream_numba(ctrl, words, src, n, batch):
    """Push n records (src repeated) in batches, one HEAD publish per batch; wait until the
    consumer has taken them all. Returns (ticks, status)."""
    head = load_relaxed(ctrl, HEAD)
    tail_c = load_acquire(ctrl, TAIL)
    start_head = head
    t0 = rdtsc()
    k = 0
    n_src = src.shape[0]
    while k < n:
        b = min(batch, n - k, n_src)
        head, tail_c, pushed, st = nb_push_blocking(ctrl, words, src, 0, b, head, tail_c, SPIN_LIMIT, 1 << 62)
        k += pushed
        if st != OK:
            return rdtsc() - t0, st
    spins = 0
    while load_acquire(ctrl, TAIL) != start_head + n:
        cpu_relax()
        spins += 1
        if spins > SPIN_LIMIT:
            return rdtsc() - t0, -2
    return rdtsc() - t0, OK


def jitter_ns(lat_ns: np.ndarray) -> float:
    """The QuantCup score of a latency sample: (mean + standard deviation) / 2, in ns, from the
    raw latencies (not the histogram's buckets)."""
    lat = np.asarray(lat_ns, np.float64)
    return round((float(lat.mean()) + float(lat.std())) / 2, 1) if len(lat) else 0.0


def histogram(lat_ns: np.ndarray, curve: tuple[float, ...] = ()) -> dict:
    """HDR percentiles of per-message (round-trip) latencies in ns, with the QuantCup jitter
    score (jitter_ns) of the same raw latencies; with `curve`, also [percentile, ns] at each of
    those percentiles (a percentile distribution, for plots)."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 60_000_000_000, 3)
    for v in np.maximum(lat_ns, 1).astype(np.int64).tolist():
        h.record_value(v)
    return {
        "n": int(h.get_total_count()),
        "p50_ns": h.get_value_at_percentile(50),
        "p99_ns": h.get_value_at_percentile(99),
        "p99.9_ns": h.get_value_at_percentile(99.9),
        "max_ns": h.get_max_value(),
        "mean_ns": round(h.get_mean_value(), 1),
        "jitter_ns": jitter_ns(lat_ns),
        **({"curve": [[p, h.get_value_at_percentile(p)] for p in curve]} if curve else {}),
    }


def fmt(name: str, h: dict) -> str:
    def us(v):
        return f"{v / 1000:8.3f}"

    # jitter: the QuantCup score, (mean + sd) / 2 of the raw latencies
    jit = f"  jitter {us(h['jitter_ns'])}" if "jitter_ns" in h else ""
    return (f"{name:<44} n={h['n']:>8,}  p50 {us(h['p50_ns'])}  p99 {us(h['p99_ns'])}  "
            f"p99.9 {us(h['p99.9_ns'])}  max {us(h['max_ns'])}{jit} us")


class Peer:
    """A server process (ringtool echo / engine) pinned to `cpu`, on a segment we own."""

    def __init__(self, argv, seg: Segment):
        self.seg = seg
        self.proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def wait_line(self, text: str, timeout: float = 300):
        t0 = time.monotonic()
        lines = []
        while time.monotonic() - t0 < timeout:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if text in line:
                return lines
        raise RuntimeError(f"peer never said {text!r}: {''.join(lines)}")

    def finish(self, timeout: float = 30) -> str:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def seg_name(tag: str) -> str:
    return f"tickbook-bench-{tag}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def save(results: dict, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)


def ghz() -> float:
    return tsc_ghz()
