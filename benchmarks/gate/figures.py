"""One run of the gate's headline figures, in the tree this process was started in.

    cd TREE && python -m benchmarks.gate.figures --inputs build/bench/inputs --json OUT.json [--only matcher]

The gate (benchmarks/gate/runner.py) starts this once per run, alternating between the change's
tree and the baseline's worktree, so that A and B run the same harness code (this file is copied
into the baseline's worktree, as airspeed velocity runs today's benchmarks on old commits) on the
same inputs (the flow, its CSV and the venue, written once by the gate). Only the product comes
from the tree: engine/, offload/, tickbook/.

Figures (lower is better unless said):
- matcher_ns: `process_batch` on the fixed flow, ns/message, the best of ROUNDS fresh books (this
  host's noise only ever slows a round down: other tenants, and where a fresh book's pages land;
  A/A runs of the best of 9 stray by 2 %, of the median by up to 20 %: docs/benchmarks.md);
- matcher_p50_ns, matcher_p99_ns: one message at a time inside njit, rdtsc around
  `process_one`, HDR histogram (and the QuantCup jitter score, (mean + sd) / 2, for the record);
- rtt_p50_ns, rtt_p99_ns: one order through the order ring, the pinned engine process and the
  event ring and back, Numba client, HDR histogram;
- replay_msgs_per_s (higher is better): `tickbook replay FLOW.csv --events FILE` in process
  after its warm-up, parse + match + write, the best of REPLAY_ROUNDS;
- hdl_cycles (`--only hdl`): simulated cycles by message type of the three Verilog builds, exact.
Each figure is kept only after its output is checked: every batch round gives the same events
(count and digest) and the per-message loop the same count; every replay round writes the same
number of events. The gate then compares these between the two trees.

TICKBOOK_GATE_INJECT=0.15 adds work equal to 15 % of the matcher's own time per message inside
the timed regions of the matcher figures: the known slowdown that proves the gate fails
(benchmarks/gate/cli.py prove).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

from engine.api import warm_up
from engine.config import load_venue
from engine.jitcache import flush_if_engine_changed

try:  # the tree's own lowering of the matcher, for the loop that inlines it (older trees lack it)
    from engine.jit import NO_WRAPAROUND
except ImportError:
    NO_WRAPAROUND = {}
from engine.matcher import process_batch, process_one
from engine.records import EVENT_DTYPE, ORDER_DTYPE
from offload.atomics import rdtsc, tsc_ghz
from testkit.books import fresh_book
from testkit.latency import histogram, jitter_ns

ROUNDS = 9
REPLAY_ROUNDS = 3
RTT_WARM, RTT_N = 20_000, 100_000
INJECT_ENV = "TICKBOOK_GATE_INJECT"

# Percentiles kept for the report's latency curves (HdrHistogram's percentile distribution).
CURVE = (50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999)


@njit(cache=True, nogil=True, _nrt=False)
def _burn(ticks):
    """Busy work for `ticks` TSC ticks (the injected slowdown)."""
    if ticks <= 0:
        return 0
    t_end = rdtsc() + ticks
    k = 0
    while rdtsc() < t_end:
        k += 1
    return k


@njit(**NO_WRAPAROUND, cache=True, nogil=True, _nrt=False)
def _per_message(st, orders, out, lat, extra_ticks):
    """process_one per message between two reads of the TSC; the event buffer is reused, as the
    live engine drains it. Returns the number of events."""
    n_ev = 0
    for i in range(len(orders)):
        t0 = rdtsc()
        n_ev += process_one(st, orders, i, out, 0)
        if extra_ticks > 0:
            _burn(extra_ticks)
        lat[i] = rdtsc() - t0
    return n_ev


def _latency(lat_ns: np.ndarray, name: str) -> dict:
    """name_p50_ns, name_p99_ns and name_curve from the HDR histogram of the latencies rounded to
    whole ns, and name_jitter_ns, the QuantCup score of the raw ones."""
    h = histogram(np.rint(lat_ns), curve=CURVE)
    return {f"{name}_p50_ns": h["p50_ns"], f"{name}_p99_ns": h["p99_ns"], f"{name}_jitter_ns": jitter_ns(lat_ns),
            f"{name}_curve": h["curve"]}


def matcher(inputs: Path, inject: float) -> dict:
    from offload.pinning import pin, unpin

    pin(sorted(os.sched_getaffinity(0))[-1])  # one core for the whole measurement: its caches, its TLB
    try:
        return _matcher(inputs, inject)
    finally:
        unpin()


def _matcher(inputs: Path, inject: float) -> dict:
    venue = load_venue(inputs / "venue.toml")
    orders = np.load(inputs / "flow.npy")
    if orders.dtype != ORDER_DTYPE:
        raise SystemExit(f"{inputs / 'flow.npy'}: the tree's ORDER_DTYPE differs from the inputs' (record layout changed)")
    n = len(orders)
    out = np.zeros(8 * n, EVENT_DTYPE)
    ghz = tsc_ghz()

    def batch(extra_ticks: int) -> tuple[float, int]:
        st = fresh_book(venue)  # a fresh book, built outside the timing
        t0 = time.perf_counter()
        done, k = process_batch(st, orders, 0, n, out, 0)
        if extra_ticks:
            _burn(extra_ticks * n)
        dt = time.perf_counter() - t0
        if done != n:
            raise SystemExit(f"the batch stopped at message {done} of {n}: its event buffer is too small")
        return dt, k

    batch(0)  # load the compiled code
    plain = sorted(batch(0)[0] for _ in range(2))
    extra = int(inject * plain[0] / n * ghz * 1e9) if inject else 0
    times, n_events = [], set()
    for _ in range(ROUNDS):
        dt, k = batch(extra)
        times.append(dt)
        n_events.add(k)
    if len(n_events) != 1:
        raise SystemExit(f"the matcher gave {sorted(n_events)} events on the same flow in different rounds")
    k = n_events.pop()
    digest = hashlib.sha256(out[:k].tobytes()).hexdigest()[:16]

    timed = flush_if_engine_changed(_per_message, "gate_figures_per_message")
    lat = np.zeros(n, np.int64)
    ring = np.zeros(1 << 12, EVENT_DTYPE)
    timed(fresh_book(venue), orders[:1000], ring, lat[:1000], 0)  # load the compiled code
    k1 = timed(fresh_book(venue), orders, ring, lat, extra)
    if k1 != k:
        raise SystemExit(f"per-message loop gave {k1} events, the batch {k}: the figures would time different work")
    return {
        "messages": n, "events": int(k), "digest": digest,
        "matcher_ns": min(times) * 1e9 / n,
        "matcher_median_ns": float(np.median(times)) * 1e9 / n,
        "matcher_rounds_ns": [t * 1e9 / n for t in times],
        **_latency(lat / ghz, "matcher"), "injected": inject,
    }


def rtt(inputs: Path, client_cpu: int = 0, engine_cpu: int = 1) -> dict:
    from offload.pinning import pin, unpin
    from offload.ring import as_words
    from offload.server import Server
    from testkit.latency import round_trips

    venue = load_venue(inputs / "venue.toml")
    orders = np.load(inputs / "flow.npy")[: RTT_WARM + RTT_N]
    words = as_words(orders)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("the round trip needs two cores (client and engine)")
    srv = Server("offload.engine_process", venue, orders_cap=1024, events_cap=1 << 16, cpu=cpus[engine_cpu])
    try:
        srv.wait_ready()
        pin(cpus[client_cpu])
        r_in, r_out = srv.seg.ring(0), srv.seg.ring(1)
        try:
            round_trips(r_in, r_out, words[:RTT_WARM], RTT_WARM, "the engine")  # warm-up
            lat = round_trips(r_in, r_out, words[RTT_WARM:], RTT_N, "the engine")
        except RuntimeError as e:
            raise SystemExit(f"{e}:\n{srv.output()}") from None
    finally:
        srv.close()
        unpin()
    return _latency(lat / tsc_ghz(), "rtt")


def replay(inputs: Path) -> dict:
    from tickbook.cli import main as tickbook

    flow = inputs / "flow.csv"
    rows = sum(1 for _ in open(flow, "rb")) - 1
    warm_up(inputs / "venue.toml")
    rates, counts = [], set()
    with tempfile.TemporaryDirectory(prefix="tickbook-gate-") as tmp:
        events = Path(tmp) / "events.csv"
        for _ in range(REPLAY_ROUNDS):
            t0 = time.perf_counter()
            rc = tickbook(["replay", str(flow), "--config", str(inputs / "venue.toml"), "--events", str(events), "--quiet"])
            dt = time.perf_counter() - t0
            if rc != 0:
                raise SystemExit(f"tickbook replay exited {rc}")
            rates.append(rows / dt)
            counts.add(sum(1 for _ in open(events, "rb")) - 1)
    if len(counts) != 1:
        raise SystemExit(f"tickbook replay wrote {sorted(counts)} events on the same flow in different rounds")
    return {"replay_msgs_per_s": max(rates), "replay_median_msgs_per_s": float(np.median(rates)), "replay_rows": rows,
            "replay_events": counts.pop()}


def hdl_cycles() -> dict:
    """Simulated clock cycles by message type of the three Verilog builds (benchmarks/bench_hdl.py's
    scenarios, Icarus): deterministic, so one run a tree is enough."""
    from benchmarks import bench_hdl

    out = {}
    for build in ("bram", "fast", "area"):
        for label, d in bench_hdl.run(build).items():
            if "cycles_per_message" in d:
                out[f"{build}: {label}, cycles/message"] = d["cycles_per_message"]
                continue
            if "cycles_per_cancel" in d:   # a KILL's, the mean over the orders it cancels
                out[f"{build}: {label}, cycles/cancelled order"] = d["cycles_per_cancel"]
                continue
            out[f"{build}: {label}, latency"] = d["latency_cycles"]
            if "from_accept_idle_cycles" in d:
                out[f"{build}: {label}, from accept (idle book)"] = d["from_accept_idle_cycles"]
            if d.get("interval_cycles_median") is not None:
                out[f"{build}: {label}, interval"] = d["interval_cycles_median"]
                out[f"{build}: {label}, max interval"] = d["interval_cycles_max"]
    return {"hdl_cycles": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", required=True, type=Path)
    ap.add_argument("--json", required=True, type=Path)
    ap.add_argument("--only", choices=["matcher", "rtt", "replay", "hdl"], action="append")
    args = ap.parse_args(argv)
    inject = float(os.environ.get(INJECT_ENV, "0") or 0)
    which = args.only or ["matcher", "rtt", "replay"]
    res = {"tree": str(Path.cwd()), "pid": os.getpid(), "engine": str(Path(sys.modules["engine"].__file__).parent)}
    for name in which:
        res.update({"matcher": lambda: matcher(args.inputs, inject), "rtt": lambda: rtt(args.inputs),
                    "replay": lambda: replay(args.inputs), "hdl": hdl_cycles}[name]())
    args.json.write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
