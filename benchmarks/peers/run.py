"""tickbook beside the PyPI order books a quant would otherwise pick (`make bench-peers`).

    .venv/bin/python benchmarks/peers/run.py [--ops 1000000] [--rounds 5] [--peer-rounds N]
                                             [--peers liquibook,...] [--json build/bench/peers.json]

1. `uptime` first: the box has 2 shared cores and other people's jobs move the figures.
2. The operation stream (benchmarks/peers/stream.py, seed SEED): ~55% GTC limit adds, ~42%
   cancels of resting orders, ~3% market IOC orders, one symbol; saved as
   build/bench/peers-stream.npy for the peers and turned into tickbook's ORDER_DTYPE records.
3. tickbook: the records already in memory through `engine.matcher.process_batch`, a fresh book
   (make_state of the built-in venue) each round built before the clock starts, events drained
   into a reused buffer; only the loop is timed (time.perf_counter); median of --rounds. Its
   traded quantity comes from a separate, untimed `Venue.submit` of the same records.
4. The peers' venv, build/peers-venv, built by benchmarks/peers/setup.sh when missing; then
   benchmarks/peers/adapters.py in it, in a subprocess (each peer in a child of its own; median
   of 3 rounds, fastlob 1: it takes ~17 s for 1M operations; --peer-rounds to change).
5. Every peer's traded quantity is checked against tickbook's before any time is printed: a peer
   that disagrees gets no time ("traded quantity disagrees: PEER vs TICKBOOK").
6. The table (peer, ns/op, ops/s, ratio = the peer's ns/op over tickbook's, traded quantity),
   and build/bench/peers.json.

peers.json (what the HTML report plots as bars: ns_per_op per peer, tickbook included):

    {"when": "2025-01-01T12:00:00+00:00",           # UTC, ISO 8601
     "machine": "12:00:00 up 3 days, ... load average: 0.52, 0.60, 0.71",   # uptime, before the run
     "ops": 1000000, "seed": 1, "mix": {"add": 0.55, "cancel": 0.42, "market": 0.03},
     "tickbook": {"status": "ok", "ns_per_op", "ops_per_s", "ratio": 1.0, "seconds", "rounds",
                  "round_seconds": [...], "traded_qty", "version"},
     "peers": {"liquibook": {the same keys, "ratio" = its ns_per_op / tickbook's,
                             "missed_cancels"}, ...}}

A peer whose status is not "ok" ("disagrees", "unavailable", "failed") has ns_per_op, ops_per_s
and ratio null and a "reason". seconds is the median round; ns_per_op = seconds / ops.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks.peers import adapters  # noqa: E402  (numpy only: its constants and peer list)
from benchmarks.peers.stream import generate, mix, save_stream  # noqa: E402

SEED = 1
DEFAULT_OPS = 1_000_000
PEERS_VENV = REPO / "build" / "peers-venv"
STREAM_PATH = REPO / "build" / "bench" / "peers-stream.npy"
JSON_PATH = REPO / "build" / "bench" / "peers.json"
EVENT_CHUNK = 1 << 18  # events drained per process_batch call (16 MiB, reused every round)


def uptime() -> str:
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
        if out:
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return "load average: " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "uptime unavailable"


# ----------------------------------------------------------------------------------- tickbook


def tickbook_traded(records, venue) -> int:
    """Traded quantity (the takers' FILLs) of a fresh venue that processes the records."""
    from engine.api import Venue
    from engine.records import EV_FILL, R_TAKER

    v = Venue(venue)
    traded = 0

    def count(ev):
        nonlocal traded
        traded += int(ev["qty"][(ev["kind"] == EV_FILL) & (ev["reason"] == R_TAKER)].sum(dtype=np.int64))

    v.process(records, count)
    return traded


def _replay(st, records, out) -> None:
    from engine.matcher import process_batch

    i, n = 0, len(records)
    while i < n:
        nxt, _ = process_batch(st, records, i, n, out, 0)
        if nxt == i:
            raise RuntimeError("the event buffer is too small for one message")
        i = nxt


def time_tickbook(records, venue, rounds: int) -> dict:
    """Median of `rounds` timed replays, each on a fresh book built before the clock starts."""
    from engine.records import EVENT_DTYPE
    from testkit.books import fresh_book

    out = np.zeros(EVENT_CHUNK, EVENT_DTYPE)
    _replay(fresh_book(venue), records[: min(len(records), 10_000)], out)  # compile or load the cache; fault in out
    secs = []
    for _ in range(rounds):
        st = fresh_book(venue)
        t0 = time.perf_counter()
        _replay(st, records, out)
        secs.append(time.perf_counter() - t0)
        del st
    return {"status": "ok", "rounds": rounds, "round_seconds": secs, "seconds": statistics.median(secs),
            "best_seconds": min(secs)}


# ----------------------------------------------------------------------------------- peers


def ensure_peers_venv(venv: Path = PEERS_VENV) -> None:
    if (venv / ".peers-installed").exists():
        return
    print(f"building {venv} (benchmarks/peers/setup.sh)", flush=True)
    subprocess.run(["bash", str(HERE / "setup.sh"), str(venv)], check=True)


def run_adapters(stream_path: Path, peers: list[str], rounds: int | None, venv: Path = PEERS_VENV) -> dict:
    """adapters.py in the peers' venv; its JSON back ({"peers": {name: result}})."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "adapters.json"
        cmd = [str(venv / "bin" / "python"), str(HERE / "adapters.py"), str(stream_path), "--json", str(out),
               "--peers", ",".join(peers)]
        if rounds:
            cmd += ["--rounds", str(rounds)]
        proc = subprocess.run(cmd)
        if proc.returncode != 0 or not out.exists():
            reason = f"adapters.py exited with status {proc.returncode}"
            return {"peers": {p: adapters.failed(reason) for p in peers}}
        return json.loads(out.read_text())


# ----------------------------------------------------------------------------------- checking


def rate(res: dict, ops: int, base_ns: float | None) -> dict:
    """res with ns_per_op, ops_per_s and ratio (to base_ns) from its seconds."""
    ns = res["seconds"] * 1e9 / ops if ops else None
    return dict(res, ns_per_op=ns, ops_per_s=(ops / res["seconds"]) if res["seconds"] > 0 else None,
                ratio=(ns / base_ns) if ns is not None and base_ns else None)


def check_peers(tickbook: dict, peers: dict, ops: int) -> dict:
    """Each peer's result, checked: an "ok" peer must have replayed all `ops` operations and traded
    exactly tickbook's quantity; one that did not becomes "disagrees" (or "failed") and loses its
    time. Every peer comes back with ns_per_op / ops_per_s / ratio (null unless ok)."""
    checked = {}
    for name, res in peers.items():
        res = dict(res)
        if res.get("status") == "ok":
            if res.get("ops") != ops:
                res = {"status": "failed", "reason": f"replayed {res.get('ops')} of {ops} operations",
                       "version": res.get("version")}
            elif res.get("traded_qty") != tickbook["traded_qty"]:
                res = {"status": "disagrees", "version": res.get("version"), "traded_qty": res.get("traded_qty"),
                       "reason": f"traded quantity disagrees: {res.get('traded_qty')} vs {tickbook['traded_qty']}"}
        if res.get("status") == "ok":
            res = rate(res, ops, tickbook["ns_per_op"])
        else:
            res.update(ns_per_op=None, ops_per_s=None, ratio=None)
            res.setdefault("reason", res.get("status", "no status"))
        checked[name] = res
    return checked


def table(report: dict) -> list[str]:
    rows = [f"{'peer':<21}{'ns/op':>9}{'ops/s':>13}{'x tickbook':>12}{'traded qty':>14}"]
    entries = [("tickbook", report["tickbook"])] + list(report["peers"].items())
    for name, r in entries:
        if r.get("status") == "ok":
            rows.append(f"{name:<21}{r['ns_per_op']:>9,.0f}{r['ops_per_s']:>13,.0f}{r['ratio']:>12,.1f}"
                        f"{r['traded_qty']:>14,}")
        elif r.get("status") == "disagrees":
            rows.append(f"{name:<21}{r['reason']}")
        else:
            rows.append(f"{name:<21}{r.get('status')}: {r.get('reason')}")
    return rows


def build_report(machine: str, ops: int, seed: int, mix_: dict, tickbook: dict, peers: dict) -> dict:
    tb = rate(tickbook, ops, None)
    tb["ratio"] = 1.0
    return {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "ops": ops,
        "seed": seed,
        "mix": mix_,
        "tickbook": tb,
        "peers": check_peers(tb, peers, ops),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=DEFAULT_OPS, help="operations in the stream (default 1,000,000)")
    ap.add_argument("--rounds", type=int, default=5, help="tickbook rounds (median; default 5)")
    ap.add_argument("--peer-rounds", type=int, help="rounds for every peer (default: 3, fastlob 1)")
    ap.add_argument("--peers", help=f"comma-separated, of {','.join(adapters.PEERS)} (default: all)")
    ap.add_argument("--json", default=str(JSON_PATH), help="where to write the report")
    args = ap.parse_args(argv)
    if args.ops < 1 or args.rounds < 1 or (args.peer_rounds is not None and args.peer_rounds < 1):
        ap.error("--ops, --rounds and --peer-rounds must be >= 1")
    peers = adapters.parse_peers(args.peers)

    machine = uptime()
    print(machine, flush=True)

    from engine.config import load_venue

    venue = load_venue(None)
    t0 = time.perf_counter()
    ops, records, info = generate(SEED, args.ops, venue)
    mix_ = mix(ops)
    save_stream(STREAM_PATH, ops)
    print(f"stream: {args.ops:,} operations (seed {SEED}): " + ", ".join(f"{k} {v:.1%}" for k, v in mix_.items())
          + f"; {info['resting']} orders resting at the end; made in {time.perf_counter() - t0:.1f} s", flush=True)

    traded = tickbook_traded(records, venue)
    if traded != info["traded_qty"] or info["rejects"]:
        raise SystemExit(f"run.py: the stream is not what the generator saw: traded {traded} vs "
                         f"{info['traded_qty']}, {info['rejects']} rejects")
    tickbook = time_tickbook(records, venue, args.rounds)
    tickbook.update(traded_qty=traded, ops=args.ops, version=_version("tickbook"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"tickbook: {tickbook['seconds'] * 1e9 / args.ops:,.1f} ns/op (median of {args.rounds}); "
          f"peak RSS of this process {peak:,.0f} MiB", flush=True)

    try:
        ensure_peers_venv()
    except (OSError, subprocess.CalledProcessError) as e:
        result = {"peers": {p: adapters.unavailable(f"{PEERS_VENV} could not be built: {e}") for p in peers}}
    else:
        result = run_adapters(STREAM_PATH, peers, args.peer_rounds)

    report = build_report(machine, args.ops, SEED, mix_, tickbook, result["peers"])
    print()
    print(machine)
    for row in table(report):
        print(row)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten: {args.json} (peer rounds: median; fastlob 1 round by default)")
    return 0


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
