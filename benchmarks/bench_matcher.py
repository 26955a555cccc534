"""Matcher throughput and per-message latency on the realistic mixed flow of `tickbook gen`,
with the pure-Python reference measured in the same run for the ratio.

Run: make bench (prints figures; nothing here asserts a time)."""

import sys
import time
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

from engine.api import Venue
from engine.codec import write_flow_csv
from engine.config import load_venue
from engine.gen import generate
from engine.matcher import process_batch, process_one
from engine.records import EVENT_DTYPE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

N = 200_000


def _flow():
    venue = load_venue(None)
    return venue, generate(venue, N, seed=7)


def test_matcher_batch(benchmark):
    venue, orders = _flow()
    out = np.zeros(8 * N, EVENT_DTYPE)

    def run():
        v = Venue(venue)
        return process_batch(v.state, orders, 0, len(orders), out, 0)

    run()  # compile / load cache
    benchmark.pedantic(run, rounds=5, iterations=1)
    med = benchmark.stats.stats.median
    print(f"\nmatcher batch: {med * 1e9 / N:,.1f} ns/message, {N / med:,.0f} messages/s (median of 5, {N:,} messages; "
          "other engineers' jobs may share the 2 cores)")


def test_matcher_latency_percentiles():
    venue, orders = _flow()
    v = Venue(venue)
    out = np.zeros(1 << 16, EVENT_DTYPE)
    hist = HdrHistogram(1, 10_000_000, 3)
    process_one(v.state, orders, 0, out, 0)
    v = Venue(venue)
    clock = time.perf_counter_ns
    for i in range(len(orders)):
        t0 = clock()
        process_one(v.state, orders, i, out, 0)
        hist.record_value(max(1, clock() - t0))
    print(f"\nper-message latency incl. the Python->njit call (~100s of ns): p50 {hist.get_value_at_percentile(50)} ns, "
          f"p99 {hist.get_value_at_percentile(99)} ns, p99.9 {hist.get_value_at_percentile(99.9)} ns, max {hist.get_max_value()} ns")


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
