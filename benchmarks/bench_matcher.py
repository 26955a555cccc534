"""Matcher throughput and per-message latency on the realistic mixed flow of `tickbook gen`,
with the pure-Python reference measured in the same run for the ratio.

Run: make bench (prints figures; nothing here asserts a time)."""

import sys
import time
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram
from numba import njit

from engine.api import Venue
from engine.codec import write_flow_csv
from engine.config import load_venue
from engine.gen import generate
from engine.jitcache import flush_if_engine_changed
from engine.matcher import process_batch, process_one
from engine.records import EVENT_DTYPE
from offload.atomics import rdtsc, tsc_ghz

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

N = 200_000


def _flow():
    venue = load_venue(None)
    return venue, generate(venue, N, seed=7)


def test_matcher_batch(benchmark):
    venue, orders = _flow()
    out = np.zeros(8 * N, EVENT_DTYPE)

    def fresh():
        # A new book each round, built outside the timing (it is ~90 MiB of arrays).
        return (Venue(venue).state, orders, 0, len(orders), out, 0), {}

    process_batch(*fresh()[0])  # compile / load cache
    benchmark.pedantic(process_batch, setup=fresh, rounds=9, iterations=1)
    med = benchmark.stats.stats.median
    benchmark.extra_info.update(messages=N, ns_per_message=med * 1e9 / N, messages_per_s=N / med)
    print(f"\nmatcher batch: {med * 1e9 / N:,.1f} ns/message, {N / med:,.0f} messages/s (median of 9, {N:,} messages; "
          "other engineers' jobs may share the 2 cores)")


@njit(cache=True, nogil=True, _nrt=False)
def _timed_batch(st, orders, out, lat):
    """process_one per message between two reads of the time-stamp counter (~20 cycles
    each, included); the event buffer is reused, as the live engine drains it."""
    for i in range(len(orders)):
        t0 = rdtsc()
        process_one(st, orders, i, out, 0)
        lat[i] = rdtsc() - t0


def test_matcher_latency_percentiles(benchmark):
    venue, orders = _flow()
    out = np.zeros(1 << 16, EVENT_DTYPE)
    lat = np.zeros(len(orders), np.int64)
    timed = flush_if_engine_changed(_timed_batch, "bench_matcher_timed_batch")  # it inlines the matcher
    timed(Venue(venue).state, orders[:1000], out, lat)  # compile / load cache
    ghz = tsc_ghz()
    benchmark.pedantic(timed, setup=lambda: ((Venue(venue).state, orders, out, lat), {}), rounds=3, iterations=1)
    hist = HdrHistogram(1, 10_000_000, 3)  # the last round's messages
    for ns in np.maximum(1, np.rint(lat / ghz)).astype(np.int64):
        hist.record_value(int(ns))
    pct = {f"p{p}_ns": hist.get_value_at_percentile(p) for p in (50, 99, 99.9)}
    benchmark.extra_info.update(pct, max_ns=hist.get_max_value(), tsc_ghz=ghz)
    print(f"\nper-message latency in njit (rdtsc at {ghz:.2f} GHz): p50 {pct['p50_ns']} ns, p99 {pct['p99_ns']} ns, "
          f"p99.9 {pct['p99.9_ns']} ns, max {hist.get_max_value()} ns ({len(orders):,} messages)")


def test_reference_ratio(tmp_path):
    from reference import replay as reference_replay

    venue, orders = _flow()
    n = 20_000
    flow = tmp_path / "flow.csv"
    with open(flow, "wb") as fh:
        write_flow_csv(fh, orders[:n], venue)
    text = flow.read_text()
    venue_text = Path(venue.source).read_text()
    t0 = time.perf_counter()
    reference_replay(text, venue_text)
    ref_s = time.perf_counter() - t0
    out = np.zeros(8 * n, EVENT_DTYPE)
    sub = orders[:n].copy()
    Venue(venue)  # warm
    best = min(_once(venue, sub, out) for _ in range(5))
    print(f"\nreference {ref_s * 1e9 / n:,.0f} ns/message vs matcher {best * 1e9 / n:,.0f} ns/message: ratio {ref_s / best:,.1f}x ({n:,} messages)")


def _once(venue, orders, out):
    v = Venue(venue)
    t0 = time.perf_counter()
    process_batch(v.state, orders, 0, len(orders), out, 0)
    return time.perf_counter() - t0
