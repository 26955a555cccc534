"""`tickbook` command line: the top of the house. replay, gen, book and demo run here; lobster,
engine, gateway and bridge are handed to their part (the SERVERS table) with their raw arguments.

Errors a user can fix (a missing file, a bad venue, a wrong header) end with one line
on stderr naming the file, row and field, and exit status 2.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engine.config import ConfigError, VenueConfig, load_venue
from engine.diagnostics import EXIT_FAILURE, EXIT_USAGE
from tickbook.report import Summary, print_books

PROGRESS_EVERY = 1 << 18  # messages between progress lines on long flows


def _venue(args) -> VenueConfig:
    from engine.state import check_fits

    venue = load_venue(args.config)
    check_fits(venue)  # capacities beyond this machine's memory: one line, before any work
    return venue


@contextmanager
def _output(path: str | None):
    """The binary file to write (stdout for None or '-'), closed afterwards or, stdout, flushed.
    A path that cannot be opened, or a write, flush or close that fails, is one 'cannot write'
    line, whatever is written to it: a full disk answers only at a write, often the flush of
    the last buffer at close."""
    to_stdout = path is None or path == "-"
    try:
        if to_stdout:
            try:
                yield sys.stdout.buffer
            finally:
                sys.stdout.flush()  # the text layer too: `book` prints through it
        else:
            with open(path, "wb") as fh:
                yield fh
    except BrokenPipeError:
        raise  # a reader that went away: main() ends quietly
    except OSError as e:
        if to_stdout:
            _discard_stdout()
        raise ConfigError(f"{'<stdout>' if to_stdout else path}: cannot write: {e.strerror or e}") from None


def _discard_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's last flush of what stdout still buffers
    would fail again, with a message of its own, after our one line."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to flush at exit
        pass


# Flow and events files read and written by engine.columnar (pyarrow, imported only for them;
# engine.columnar.SUFFIXES holds the same suffixes); anything else is CSV, or .npy for a flow.
COLUMNAR_SUFFIXES = (".parquet", ".arrow", ".feather")


def _columnar(path) -> bool:
    return path is not None and Path(path).suffix.lower() in COLUMNAR_SUFFIXES


def _read_flow(path, venue: VenueConfig):
    """The whole flow in memory (for the paths that need it at once: --offload, --transport)."""
    if _columnar(path):
        from engine.columnar import read_columnar_flow

        return read_columnar_flow(path, venue)
    from engine.codec import read_flow

    return read_flow(path, venue)


def _flow_blocks(path, venue: VenueConfig):
    """(blocks, most messages): a CSV or .npy flow streams a block at a time (engine.stream);
    a columnar one is read whole, as one block."""
    if _columnar(path):
        flow = _read_flow(path, venue)
        return [flow], len(flow)
    from engine.stream import FlowReader

    reader = FlowReader(path, venue)
    return reader, reader.messages_bound


def _event_writer(fh, venue: VenueConfig, path):
    """The events writer for the file named path (CSV unless columnar): bind(block) before the
    block's events (a REJECT echoes its row from it), write(events), then close()."""
    if _columnar(path):
        from engine.columnar import event_writer

        return event_writer(fh, venue, None, path)
    from engine.codec import EventWriter

    return EventWriter(fh, venue)


def replay_flow(blocks, venue: VenueConfig, fh, progress: bool, events_path=None, most: int | None = None):
    """Replay the blocks of a flow (codec.Flow pieces, in order) with progress lines; most:
    the most messages the flow can hold, for the pages the state touches up front.
    Returns (Venue, Summary, messages, seconds in the matcher)."""
    from engine.api import Venue

    v = Venue(venue, n_messages=most)
    summary = Summary()
    writer = _event_writer(fh, venue, events_path) if fh is not None else None

    def sink(events):
        summary.add(events)
        if writer is not None:
            writer.write(events)

    n = 0
    match_s = 0.0
    started = time.perf_counter()
    for block in blocks:
        if writer is not None:
            writer.bind(block)
        # the events are counted and written on a second core while the matcher goes on
        match_s += v.process(block.orders, sink, overlap=True)
        n += len(block.orders)
        if progress and n > PROGRESS_EVERY:
            rate = n / (time.perf_counter() - started)
            print(f"\r  replayed {n:,} messages ({rate:,.0f} msg/s)", end="", file=sys.stderr, flush=True)
    if progress and n > PROGRESS_EVERY:
        print(file=sys.stderr)
    if writer is not None:
        writer.close()
    return v, summary, n, match_s


def time_matcher(orders, venue: VenueConfig) -> float:
    """Seconds the matcher alone takes on the records (events kept in memory, not written)."""
    from engine.api import Venue

    return Venue(venue, n_messages=len(orders)).process(orders, lambda ev: None)


def _warm_up(venue: VenueConfig, columnar: bool = False) -> float:
    """Load the compiled code a replay runs; returns the seconds it took. On a cold cache the
    codec compiles in a second process while this one compiles the matcher (precompile.py)."""
    from engine.api import warm_up, warm_up_matcher
    from tickbook.precompile import codec_aside

    t0 = time.perf_counter()
    codec_ready = codec_aside()
    if codec_ready is not None:
        warm_up_matcher(venue)
        codec_ready()
    warm_up(venue)
    if columnar:
        from engine.columnar import warm_up as warm_up_columnar

        warm_up_columnar(venue)
    return time.perf_counter() - t0


def cmd_replay(args) -> int:
    if args.offload == "sw" and (args.hw_max_orders or args.hw_max_levels):
        print("tickbook: --hw-max-orders/--hw-max-levels need --offload hw or shadow", file=sys.stderr)
        return EXIT_USAGE
    venue = _venue(args)
    if args.offload != "sw" or args.transport != "inproc":
        return _replay_offloaded(args, _read_flow(args.flow, venue), venue)
    start_s = _warm_up(venue, _columnar(args.flow) or _columnar(args.events))
    t0 = time.perf_counter()
    blocks, most = _flow_blocks(args.flow, venue)
    with _output(args.events) as fh:
        v, summary, n, match_s = replay_flow(blocks, venue, fh, not args.quiet, args.events, most)
    total = time.perf_counter() - t0
    if not args.quiet:
        summary.report(n, match_s, total, start_s=start_s)
    if args.book:
        print_books(v, args.levels, sys.stderr)
    return 0


def _replay_offloaded(args, flow, venue) -> int:
    """--offload hw|shadow or --transport shm: the events come from elsewhere (tickbook.offloaded)."""
    from offload.server import Unanswered
    from hdl.sim.scope import Unrepresentable
    from tickbook.offloaded import ShadowMismatch, replay_offloaded

    t0 = time.perf_counter()
    try:
        events = replay_offloaded(flow.orders, venue, args.transport, args.offload,
                                  hw_capacity=(args.hw_max_orders, args.hw_max_levels))
    except Unanswered as e:  # a run that stopped short is a failure, not a short event file
        print(f"tickbook: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except Unrepresentable as e:  # before any record: the venue, not the run, is the problem
        print(f"tickbook: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ShadowMismatch as e:  # no events file: which of the two would it be?
        print(f"tickbook: shadow: sw and hw differ: {e}", file=sys.stderr)
        return EXIT_FAILURE
    with _output(args.events) as fh:
        writer = _event_writer(fh, venue, args.events)
        writer.bind(flow)
        writer.write(events)
        writer.close()
    if not args.quiet:
        summary = Summary()
        summary.add(events)
        summary.report(len(flow.orders), 0.0, time.perf_counter() - t0)
    return 0


def cmd_book(args) -> int:
    venue = _venue(args)
    blocks, most = _flow_blocks(args.flow, venue)
    v, _, _, _ = replay_flow(blocks, venue, None, False, most=most)
    with _output(None):  # stdout on a full disk: one 'cannot write' line
        print_books(v, args.levels, sys.stdout)
    return 0


def cmd_gen(args) -> int:
    from engine.codec import write_flow_csv
    from engine.gen import generate

    venue = _venue(args)
    orders = generate(venue, args.orders, args.seed)
    with _output(args.output) as fh:  # one "cannot write" line for either format
        if args.output and args.output.endswith(".npy"):
            np.save(fh, orders)
        else:
            write_flow_csv(fh, orders, venue)
    return 0


def cmd_demo(args) -> int:
    from engine.codec import write_flow_csv
    from engine.gen import generate

    venue = _venue(args)
    out = sys.stdout
    start_s = _warm_up(venue)
    with tempfile.TemporaryDirectory(prefix="tickbook-demo-") as tmp:
        flow_path = Path(tmp) / "flow.csv"
        events_path = Path(tmp) / "events.csv"
        t0 = time.perf_counter()
        orders = generate(venue, args.orders, args.seed)
        release_freed_memory()  # the generator's temporaries
        with open(flow_path, "wb") as fh:
            write_flow_csv(fh, orders, venue)
        print(f"generated {args.orders:,} messages in {time.perf_counter() - t0:.2f} s -> {flow_path.stat().st_size / 2**20:.0f} MiB CSV", file=out)
        pure = time_matcher(orders, venue)  # the records the CSV holds, before they are freed
        del orders  # the replay streams the CSV: a block of it in memory at a time
        release_freed_memory()
        t0 = time.perf_counter()
        blocks, most = _flow_blocks(flow_path, venue)
        with open(events_path, "wb") as fh:
            v, summary, n, _ = replay_flow(blocks, venue, fh, True, None, most)
        total = time.perf_counter() - t0
        print(f"replayed flow.csv -> events.csv ({events_path.stat().st_size / 2**20:.0f} MiB)", file=out)
        summary.report(n, pure, total, out=out, start_s=start_s)
        print(f"resting    {v.resting:,} orders at the end", file=out)
        print(file=out)
        print_books(v, args.levels, out)
    return 0


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim): numpy's freed
    temporaries of a few MiB stay in the heap otherwise, and count in the peak RSS."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim, nothing lost
        pass


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tickbook", description="tickbook: a price-time order matcher with hardware offload")
    sub = p.add_subparsers(dest="command", required=True)

    def venue_opt(sp):
        sp.add_argument("--config", metavar="VENUE.toml", help="venue configuration (default: the built-in venue)")

    r = sub.add_parser("replay", help="replay an order flow (CSV, .npy, Parquet or Arrow) and write its events")
    r.add_argument("flow", metavar="FLOW")
    venue_opt(r)
    r.add_argument("--events", metavar="OUT.csv", help="events file: CSV, or .parquet/.arrow/.feather (default: CSV on stdout)")
    r.add_argument("--book", action="store_true", help="print the final book of every symbol to stderr")
    r.add_argument("--levels", type=int, default=5, help="levels shown with --book (default 5)")
    r.add_argument("--offload", choices=["sw", "hw", "shadow"], default="sw", help="sw: Numba; hw: Verilog simulation; shadow: both, compared")
    r.add_argument("--transport", choices=["inproc", "shm"], default="inproc", help="shm: through shared-memory rings to a pinned engine process")
    r.add_argument("--hw-max-orders", type=_at_least_one, metavar="N",
                   help="hw/shadow what-if: build the hardware book with N resting orders, not the venue's max_orders")
    r.add_argument("--hw-max-levels", type=_at_least_one, metavar="N",
                   help="hw/shadow what-if: N price levels per side per symbol, not the venue's max_levels")
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

    for name, (_, _, text) in SERVERS.items():
        sp = sub.add_parser(name, help=text, add_help=False)
        sp.add_argument("rest", nargs=argparse.REMAINDER)  # main() hands these to the part itself
    return p


# Subcommands that own their options: the part's main(argv) gets the raw arguments.
SERVERS = {
    "lobster": ("engine.lobster", "main", "replay LOBSTER (NASDAQ) data and compare books"),
    "engine": ("offload.engine_process", "main", "run the pinned engine process on shared-memory rings"),
    "gateway": ("offload.gateway.cli", "main", "run the pyzmq gateway (ROUTER orders, PUB market data) on an engine's rings"),
    "bridge": ("hdl.sim.bridge", "main", "run the hardware bridge (the Verilog book simulated, Verilator or Icarus) on a hardware segment"),
    "compile": ("tickbook.precompile", "main", "compile the matcher for every caller into Numba's cache, once"),
    "journal": ("offload.journal_cli", "main", "summarise, verify and export a venue journal"),
    "keys": ("offload.gateway.keys", "main", "make CURVE key pairs for the gateway and its clients"),
}


def main(argv: list[str] | None = None) -> int:
    from engine.jitcache import cache_dir_problem

    why = cache_dir_problem()  # before the first import of compiled code
    if why:
        print(f"tickbook: {why}", file=sys.stderr)
        return EXIT_USAGE
    from engine.codec import FlowError

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SERVERS:
        module, func, _ = SERVERS[argv[0]]
        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FlowError) as e:
        print(f"tickbook: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
