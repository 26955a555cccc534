"""`tickbook` command line: replay, gen, book, demo, and the doors to lobster/engine/gateway/bridge.

Errors a user can fix (a missing file, a bad venue, a wrong header) end with one line
on stderr naming the file, row and field, and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.config import ConfigError, VenueConfig, load_venue
from engine.records import (
    EV_ACK,
    EV_CANCELED,
    EV_KILLED,
    EV_REJECT,
    EV_REPLACED,
    EVENT_NAMES,
    R_USER,
    REASON_NAMES,
)

USAGE_ERROR = 2
PROGRESS_EVERY = 1 << 18  # messages between progress lines on long flows


class Summary:
    """Counts by event and reason, accumulated chunk by chunk."""

    def __init__(self):
        self.counts = np.zeros((8, 64), np.int64)
        self.events = 0

    def add(self, events: np.ndarray) -> None:
        self.events += len(events)
        np.add.at(self.counts, (events["kind"].astype(np.int64), events["reason"].astype(np.int64)), 1)

    def kind(self, k: int) -> int:
        return int(self.counts[k].sum())

    def report(self, messages: int, match_s: float, total_s: float | None, out=None, start_s=None) -> None:
        out = out or sys.stderr  # looked up now: a caller may have redirected sys.stderr
        c = self.counts
        print(f"messages   {messages:,}", file=out)
        print(f"events     {self.events:,}", file=out)
        for k, name in EVENT_NAMES.items():
            n = self.kind(k)
            if not n:
                continue
            reasons = [f"{REASON_NAMES[r]} {int(c[k, r]):,}" for r in range(64) if c[k, r] and r]
            print(f"  {name:<9}{n:>12,}" + (f"   ({', '.join(reasons)})" if reasons else ""), file=out)
        # Every message ends in exactly one of these: nothing is dropped silently.
        answered = self.kind(EV_ACK) + self.kind(EV_REJECT) + self.kind(EV_REPLACED) + self.kind(EV_KILLED)
        answered += int(c[EV_CANCELED, R_USER])
        status = "every message answered" if answered == messages else f"MISMATCH: {answered:,} answered"
        print(f"accounting {status} (ACK + REJECT + REPLACED + CANCELED USER + KILLED = {answered:,})", file=out)
        if messages and match_s > 0:
            print(f"matcher    {match_s * 1e9 / messages:,.1f} ns/message, {messages / match_s:,.0f} messages/s", file=out)
        if messages and total_s:
            print(f"end to end {messages / total_s:,.0f} messages/s ({total_s:.3f} s parse + match + write)", file=out)
        if start_s is not None:
            print(f"start      {start_s:.2f} s (compiled code loaded or compiled, before the timings above)", file=out)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS   {peak:,.0f} MiB", file=out)


def _venue(args) -> VenueConfig:
    return load_venue(args.config)


def _open_events(path: str | None):
    if path is None or path == "-":
        return sys.stdout.buffer, False
    try:
        return open(path, "wb"), True
    except OSError as e:
        raise ConfigError(f"{path}: cannot write: {e.strerror}") from None


def replay_flow(flow, venue: VenueConfig, fh, progress: bool):
    """Replay with progress lines; returns (Venue, Summary, seconds in the matcher)."""
    from engine.api import Venue
    from engine.codec import EventWriter

    v = Venue(venue)
    summary = Summary()
    writer = EventWriter(fh, venue, flow) if fh is not None else None

    sink_s = 0.0

    def sink(events):
        nonlocal sink_s
        t = time.perf_counter()
        summary.add(events)
        if writer is not None:
            writer.write(events)
        sink_s += time.perf_counter() - t

    n = len(flow.orders)
    match_s = 0.0
    started = time.perf_counter()
    for start in range(0, n, PROGRESS_EVERY):
        chunk = flow.orders[start : start + PROGRESS_EVERY]
        t0 = time.perf_counter()
        v.process(chunk, sink)
        match_s += time.perf_counter() - t0
        if progress and n > PROGRESS_EVERY:
            done = start + len(chunk)
            rate = done / (time.perf_counter() - started)
            print(f"\r  replayed {done:,}/{n:,} ({rate:,.0f} msg/s)", end="", file=sys.stderr, flush=True)
    if progress and n > PROGRESS_EVERY:
        print(file=sys.stderr)
    return v, summary, match_s - sink_s  # the matcher alone: counting and writing taken out


def time_matcher(flow, venue: VenueConfig) -> float:
    """Seconds the matcher alone takes on the flow (events kept in memory, not written)."""
    from engine.api import Venue

    v = Venue(venue)
    t0 = time.perf_counter()
    v.process(flow.orders, lambda ev: None)
    return time.perf_counter() - t0


def print_books(v, levels: int, out) -> None:
    for s in v.config.symbols:
        d = v.depth(s.name, levels)
        print(f"{s.name}  (ref {s.tick * int(v.state.sym_ref[v.config.symbol_index[s.name]])})", file=out)
        print(f"  {'bid orders':>10} {'bid qty':>10} {'bid':>12} | {'ask':<12} {'ask qty':<10} {'ask orders':<10}", file=out)
        fmt = f"{{:.{s.decimals}f}}"
        for i in range(max(len(d["bids"]), len(d["asks"]))):
            b = d["bids"][i] if i < len(d["bids"]) else None
            a = d["asks"][i] if i < len(d["asks"]) else None
            left = f"{b[2]:>10} {b[1]:>10} {fmt.format(b[0]):>12}" if b else " " * 34
            right = f"{fmt.format(a[0]):<12} {a[1]:<10} {a[2]:<10}" if a else ""
            print(f"  {left} | {right}".rstrip(), file=out)


def cmd_replay(args) -> int:
    from engine.codec import read_flow

    venue = _venue(args)
    if args.offload != "sw" or args.transport != "inproc":
        return _replay_offloaded(args, read_flow(args.flow, venue), venue)
    from engine.api import warm_up

    start_s = warm_up(venue)
    t0 = time.perf_counter()
    flow = read_flow(args.flow, venue)
    fh, close = _open_events(args.events)
    try:
        v, summary, match_s = replay_flow(flow, venue, fh, progress=not args.quiet)
    finally:
        if close:
            fh.close()
        else:
            fh.flush()
    total = time.perf_counter() - t0
    if not args.quiet:
        summary.report(len(flow.orders), match_s, total, start_s=start_s)
    if args.book:
        print_books(v, args.levels, sys.stderr)
    return 0


def _replay_offloaded(args, flow, venue) -> int:
    """--offload hw (Verilog simulation) or --transport shm (rings to the engine process)."""
    from engine.codec import EventWriter

    t0 = time.perf_counter()
    if args.transport == "shm":
        from offload.cli import replay_shm

        events = replay_shm(flow, venue, args.offload)
    else:
        from hdl.sim import run_flow

        events = run_flow(flow.orders, venue)
    fh, close = _open_events(args.events)
    try:
        EventWriter(fh, venue, flow).write(events)
    finally:
        if close:
            fh.close()
        else:
            fh.flush()
    if not args.quiet:
        summary = Summary()
        summary.add(events)
        summary.report(len(flow.orders), 0.0, time.perf_counter() - t0)
    return 0


def cmd_book(args) -> int:
    from engine.codec import read_flow

    venue = _venue(args)
    flow = read_flow(args.flow, venue)
    v, _, _ = replay_flow(flow, venue, None, progress=False)
    print_books(v, args.levels, sys.stdout)
    return 0


def cmd_gen(args) -> int:
    from engine.codec import write_flow_csv
    from engine.gen import generate

    venue = _venue(args)
    orders = generate(venue, args.orders, args.seed)
    if args.output and args.output.endswith(".npy"):
        np.save(args.output, orders)
        return 0
    fh, close = _open_events(args.output)
    try:
        write_flow_csv(fh, orders, venue)
    finally:
        if close:
            fh.close()
        else:
            fh.flush()
    return 0


def cmd_demo(args) -> int:
    from engine.codec import read_flow, write_flow_csv
    from engine.gen import generate

    venue = _venue(args)
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="tickbook-demo-") as tmp:
        flow_path = Path(tmp) / "flow.csv"
        events_path = Path(tmp) / "events.csv"
        t0 = time.perf_counter()
        orders = generate(venue, args.orders, args.seed)
        with open(flow_path, "wb") as fh:
            write_flow_csv(fh, orders, venue)
        print(f"generated {args.orders:,} messages in {time.perf_counter() - t0:.2f} s -> {flow_path.stat().st_size / 2**20:.0f} MiB CSV", file=out)
        from engine.api import warm_up

        start_s = warm_up(venue)
        t0 = time.perf_counter()
        flow = read_flow(flow_path, venue)
        with open(events_path, "wb") as fh:
            v, summary, match_s = replay_flow(flow, venue, fh, progress=True)
        total = time.perf_counter() - t0
        print(f"replayed flow.csv -> events.csv ({events_path.stat().st_size / 2**20:.0f} MiB)", file=out)
        pure = time_matcher(flow, venue)
        summary.report(len(flow.orders), pure, total, out=out, start_s=start_s)
        print(f"resting    {v.resting:,} orders at the end", file=out)
        print(file=out)
        print_books(v, args.levels, out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tickbook", description="tickbook: a price-time order matcher with hardware offload")
    sub = p.add_subparsers(dest="command", required=True)

    def venue_opt(sp):
        sp.add_argument("--config", metavar="VENUE.toml", help="venue configuration (default: the built-in venue)")

    r = sub.add_parser("replay", help="replay an order flow (CSV or .npy) and write its events CSV")
    r.add_argument("flow", metavar="FLOW")
    venue_opt(r)
    r.add_argument("--events", metavar="OUT.csv", help="events file (default: stdout)")
    r.add_argument("--book", action="store_true", help="print the final book of every symbol to stderr")
    r.add_argument("--levels", type=int, default=5, help="levels shown with --book (default 5)")
    r.add_argument("--offload", choices=["sw", "hw", "shadow"], default="sw", help="sw: Numba; hw: Verilog simulation; shadow: both, compared")
    r.add_argument("--transport", choices=["inproc", "shm"], default="inproc", help="shm: through shared-memory rings to a pinned engine process")
    r.add_argument("-q", "--quiet", action="store_true", help="no summary")
    r.set_defaults(func=cmd_replay)

    g = sub.add_parser("gen", help="generate a realistic synthetic order flow")
    g.add_argument("--orders", type=int, required=True, metavar="N")
    g.add_argument("--seed", type=int, default=1, metavar="S")
    g.add_argument("-o", "--output", metavar="FLOW.csv", help="output (.csv or .npy; default: stdout)")
    venue_opt(g)
    g.set_defaults(func=cmd_gen)

    b = sub.add_parser("book", help="replay a flow and print the final depth of every symbol")
    b.add_argument("flow", metavar="FLOW")
    b.add_argument("--levels", type=int, default=10)
    venue_opt(b)
    b.set_defaults(func=cmd_book)

    d = sub.add_parser("demo", help="generate ~1M messages, replay them, print the summary and the books")
    d.add_argument("--orders", type=int, default=1_000_000)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--levels", type=int, default=5)
    venue_opt(d)
    d.set_defaults(func=cmd_demo)

    lob = sub.add_parser("lobster", help="replay LOBSTER (NASDAQ) data and compare books", add_help=False)
    lob.add_argument("rest", nargs=argparse.REMAINDER)
    lob.set_defaults(func=lambda a: _delegate("engine.lobster", a.rest))

    eng = sub.add_parser("engine", help="run the pinned engine process on shared-memory rings", add_help=False)
    eng.add_argument("rest", nargs=argparse.REMAINDER)
    eng.set_defaults(func=lambda a: _delegate("offload.cli", a.rest, "engine_main"))

    gw = sub.add_parser("gateway", help="run the pyzmq gateway (ROUTER orders, PUB market data) on an engine's rings", add_help=False)
    gw.add_argument("rest", nargs=argparse.REMAINDER)
    gw.set_defaults(func=lambda a: _delegate("offload.gateway", a.rest))

    br = sub.add_parser("bridge", help="run the hardware bridge (the Verilog book in Icarus) on a hardware segment", add_help=False)
    br.add_argument("rest", nargs=argparse.REMAINDER)
    br.set_defaults(func=lambda a: _delegate("offload.bridge", a.rest))
    return p


def _delegate(module: str, argv: list[str], func: str = "main") -> int:
    import importlib

    return importlib.import_module(module).__dict__[func](argv)


def main(argv: list[str] | None = None) -> int:
    from engine.codec import FlowError

    argv = sys.argv[1:] if argv is None else argv
    # lobster and engine own their options: hand them the raw arguments.
    if argv and argv[0] == "lobster":
        return _delegate("engine.lobster", argv[1:])
    if argv and argv[0] == "engine":
        return _delegate("offload.cli", argv[1:], "engine_main")
    if argv and argv[0] == "gateway":
        return _delegate("offload.gateway", argv[1:])
    if argv and argv[0] == "bridge":
        return _delegate("offload.bridge", argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FlowError) as e:
        print(f"tickbook: {e}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
