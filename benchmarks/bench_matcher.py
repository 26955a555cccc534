"""Matcher throughput and per-message latency on the realistic mixed flow of `tickbook gen`,
with the pure-Python reference measured in the same run for the ratio.

Every timed run is checked before its time is printed: its event count and the SHA-256 of its
events (formatted as the events CSV) must equal those of the pure-Python reference
(tests/reference) on the same flow, computed in the same run. A matcher that rejected every
order would fail here instead of reading as a speed-up.

Run: make bench (prints figures; nothing here asserts a time)."""

import functools
import hashlib
import io
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram
from numba import njit

from engine.codec import EventWriter, Flow, parse_flow_bytes, write_flow_csv
from engine.config import VenueConfig, load_venue
from engine.gen import generate
from engine.jit import NO_WRAPAROUND
from engine.jitcache import flush_if_engine_changed
from engine.matcher import process_batch, process_one
from engine.records import EVENT_DTYPE
from engine.state import state_bytes
from offload.atomics import rdtsc, tsc_ghz

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test kit, when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from testkit.books import fresh_book, fresh_venue  # noqa: E402
from testkit.latency import jitter_ns  # noqa: E402

N = 200_000
N_REF = 20_000  # the reference ratio's flow: the first N_REF messages of the same flow
REF_ROUNDS = 5


@functools.lru_cache(maxsize=None)
def _orders():
    venue = load_venue(None)
    return venue, generate(venue, N, seed=7)


@dataclass(frozen=True)
class Case:
    """A flow as CSV text and as parsed records, with the reference's events on it."""

    venue: VenueConfig
    venue_text: str
    data: bytes  # the flow CSV
    flow: Flow  # data parsed by tickbook's codec (orders equal to the generated records)
    ref_text: str  # the reference's events CSV
    ref_events: int
    ref_sha256: str
    ref_s: float  # one reference run, end to end (for information)


@functools.lru_cache(maxsize=None)
def _case(n: int = N) -> Case:
    """The first n messages of the flow, and the pure-Python reference's events on them: the
    expected output, from an implementation that shares no code with the engine."""
    from reference import replay as reference_replay

    venue, orders = _orders()
    orders = orders[:n]
    buf = io.BytesIO()
    write_flow_csv(buf, orders, venue)
    data = buf.getvalue()
    flow = parse_flow_bytes(data, venue, "<bench flow>")
    assert np.array_equal(flow.orders, orders), "the flow CSV does not parse back to the generated records"
    venue_text = Path(venue.source).read_text()
    t0 = time.perf_counter()
    ref_text = reference_replay(data.decode(), venue_text)
    ref_s = time.perf_counter() - t0
    return Case(venue, venue_text, data, flow, ref_text, ref_text.count("\n") - 1,
                hashlib.sha256(ref_text.encode()).hexdigest(), ref_s)


def _events_csv(case: Case, events: np.ndarray) -> bytes:
    buf = io.BytesIO()
    EventWriter(buf, case.venue, case.flow).write(events)
    return buf.getvalue()


def check_events(case: Case, events: np.ndarray, what: str) -> str:
    """Assert that events are the reference's, event for event (count, then SHA-256 of the
    events CSV); returns the digest."""
    assert len(events) == case.ref_events, (
        f"{what}: {len(events):,} events, the reference gives {case.ref_events:,} on the same flow")
    text = _events_csv(case, events)
    digest = hashlib.sha256(text).hexdigest()
    if digest != case.ref_sha256:
        a, b = case.ref_text.split("\n"), text.decode().split("\n")
        i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        raise AssertionError(f"{what}: events differ from the reference's at events line {i}:\n"
                             f"  reference | {a[i] if i < len(a) else '<end>'}\n"
                             f"  engine    | {b[i] if i < len(b) else '<end>'}")
    return digest


def test_matcher_batch(benchmark):
    case = _case(N)
    venue, orders = case.venue, case.flow.orders
    out = np.zeros(8 * N, EVENT_DTYPE)
    results = []  # (next index, event count) of every round
    digests = []  # SHA-256 of every round's raw event bytes (hashed before the next round)

    def fresh():
        # A new book each round, built outside the timing (it is ~90 MiB of arrays); the
        # previous round's events are hashed here, before the round overwrites them.
        if results:
            digests.append(hashlib.sha256(out[: results[-1][1]].tobytes()).hexdigest())
        return (fresh_book(venue), orders, 0, len(orders), out, 0), {}

    def run(*args):
        r = process_batch(*args)
        results.append(r)
        return r

    process_batch(*fresh()[0])  # compile / load cache
    benchmark.pedantic(run, setup=fresh, rounds=9, iterations=1)
    digests.append(hashlib.sha256(out[: results[-1][1]].tobytes()).hexdigest())
    # the output, before any time is printed: all messages, the reference's events, every round
    assert all(r == results[0] for r in results), f"rounds disagree: {sorted(set(results))}"
    assert len(set(digests)) == 1, "rounds produced different events"
    nxt, n_ev = results[0]
    assert nxt == N, f"process_batch stopped at message {nxt:,} of {N:,}"
    digest = check_events(case, out[:n_ev], "batch")
    if benchmark.stats is None:  # --benchmark-disable: one untimed round, checked
        return
    med = benchmark.stats.stats.median
    benchmark.extra_info.update(messages=N, events=int(n_ev), events_csv_sha256=digest,
                                ns_per_message=med * 1e9 / N, messages_per_s=N / med)
    print(f"\nmatcher batch: {med * 1e9 / N:,.1f} ns/message, {N / med:,.0f} messages/s (median of 9, {N:,} messages; "
          f"{n_ev:,} events, equal to the pure-Python reference's, sha256 {digest[:12]}; "
          "other engineers' jobs may share the 2 cores)")
    reserved = sum(state_bytes(case.venue).values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  memory: the venue reserves {reserved / 2**20:,.0f} MiB of book, touched as used; "
          f"this process's peak RSS so far {peak:,.0f} MiB")


@njit(**NO_WRAPAROUND, cache=True, nogil=True, _nrt=False)
def _timed_batch(st, orders, out, lat):
    """process_one per message between two reads of the time-stamp counter (~20 cycles
    each, included); the event buffer is reused, as the live engine drains it. Returns the
    number of events (counted outside the timed window)."""
    n_ev = 0
    for i in range(len(orders)):
        t0 = rdtsc()
        k = process_one(st, orders, i, out, 0)
        lat[i] = rdtsc() - t0
        n_ev += k
    return n_ev


def test_matcher_latency_percentiles(benchmark):
    case = _case(N)
    venue, orders = case.venue, case.flow.orders
    out = np.zeros(1 << 16, EVENT_DTYPE)
    lat = np.zeros(len(orders), np.int64)
    timed = flush_if_engine_changed(_timed_batch, "bench_matcher_timed_batch")  # it inlines the matcher
    timed(fresh_book(venue), orders[:1000], out, lat)  # compile / load cache
    ghz = tsc_ghz()
    counts = []

    def run(*args):
        n_ev = timed(*args)
        counts.append(n_ev)
        return n_ev

    benchmark.pedantic(run, setup=lambda: ((fresh_book(venue), orders, out, lat), {}), rounds=3, iterations=1)
    # one message at a time, the buffer reused: the event count is what can be checked
    assert counts == [case.ref_events] * len(counts), (
        f"per-message run: {counts} events, the reference gives {case.ref_events:,} on the same flow")
    lat_ns = lat / ghz  # the last round's messages
    hist = HdrHistogram(1, 10_000_000, 3)
    for ns in np.maximum(1, np.rint(lat_ns)).astype(np.int64):
        hist.record_value(int(ns))
    pct = {f"p{p}_ns": hist.get_value_at_percentile(p) for p in (50, 99, 99.9)}
    jit = jitter_ns(lat_ns)
    benchmark.extra_info.update(pct, max_ns=hist.get_max_value(), jitter_ns=jit, mean_ns=round(float(lat_ns.mean()), 1),
                                events=counts[-1], tsc_ghz=ghz)
    print(f"\nper-message latency in njit (rdtsc at {ghz:.2f} GHz): p50 {pct['p50_ns']} ns, p99 {pct['p99_ns']} ns, "
          f"p99.9 {pct['p99.9_ns']} ns, max {hist.get_max_value()} ns, jitter (mean + sd) / 2 {jit:,.1f} ns "
          f"({len(orders):,} messages, {counts[-1]:,} events, as many as the reference's)")


def _reference_round(case: Case) -> tuple[float, str]:
    """The reference's `replay` minus building its venue and matcher: CSV text in (split into
    rows, each parsed, matched and its events formatted as it goes), events CSV text out."""
    from reference.matcher import HEADER_IN, Matcher, split_lines
    from reference.matcher import Venue as RefVenue

    m = Matcher(RefVenue(case.venue_text))  # outside the timing, as the engine's book
    text = case.data.decode()
    t0 = time.perf_counter()
    lines = split_lines(text)
    if not lines or lines[0] != HEADER_IN:
        raise ValueError("flow header")
    on_row = m.on_row
    for line in lines[1:]:
        on_row(line)
    result = "\n".join(m.out) + "\n"
    return time.perf_counter() - t0, result


def _engine_round(case: Case) -> tuple[float, float, str]:
    """tickbook's CSV path (engine.api.replay_csv_text minus building the venue): the same CSV
    text parsed (engine.codec), matched (process_batch), events formatted as CSV text.
    Returns (end-to-end seconds, seconds of the parse, text)."""
    v = fresh_venue(case.venue)  # outside the timing (~90 MiB of book arrays)
    t0 = time.perf_counter()
    flow = parse_flow_bytes(case.data, case.venue, "<bench flow>")
    t1 = time.perf_counter()
    buf = io.BytesIO()
    v.replay(flow, buf)
    result = buf.getvalue().decode()
    return time.perf_counter() - t0, t1 - t0, result


def _match_round(case: Case, out: np.ndarray) -> tuple[float, tuple]:
    """The matching step alone: process_batch on the records already parsed."""
    v = fresh_venue(case.venue)
    orders = case.flow.orders
    t0 = time.perf_counter()
    r = process_batch(v.state, orders, 0, len(orders), out, 0)
    return time.perf_counter() - t0, r


def test_reference_ratio():
    """Like for like: the reference and tickbook each take the same CSV text to the events CSV
    text (parse, match, format), book built outside the timing, REF_ROUNDS rounds each,
    alternating, median. The reference has no matching step of its own to time apart (on_row
    parses a row, matches it and formats its events in one go), so the engine's matching step
    alone is printed for scale, not as a ratio against the reference."""
    case = _case(N_REF)
    n = N_REF
    out = np.zeros(8 * n, EVENT_DTYPE)
    _engine_round(case)  # load the compiled parser, matcher and writer
    _reference_round(case)
    ref, eng, parse, match = [], [], [], []
    for _ in range(REF_ROUNDS):
        s, text = _reference_round(case)
        assert text == case.ref_text
        ref.append(s)
        s, p, text = _engine_round(case)
        assert text == case.ref_text, "tickbook's events CSV differs from the reference's"
        eng.append(s)
        parse.append(p)
        s, r = _match_round(case, out)
        assert r == (n, case.ref_events), f"process_batch returned {r}, expected {(n, case.ref_events)}"
        check_events(case, out[: r[1]], "matching step")
        match.append(s)
    ref_s, eng_s, parse_s, match_s = (statistics.median(x) for x in (ref, eng, parse, match))

    def ns(s):
        return f"{s * 1e9 / n:,.0f} ns/message"

    print(f"\nend to end, CSV text in -> events CSV text out (parse, match, format; book built outside the "
          f"timing), median of {REF_ROUNDS}, {n:,} messages, {case.ref_events:,} events, outputs identical: "
          f"reference {ns(ref_s)} vs tickbook {ns(eng_s)}: ratio {ref_s / eng_s:,.1f}x")
    print(f"  tickbook's share: parse {ns(parse_s)}; matching step alone (process_batch on the parsed "
          f"records, same rounds) {ns(match_s)}; the reference has no matching step to time apart")
