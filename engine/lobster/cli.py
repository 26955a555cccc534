"""The LOBSTER import's report and command line: the stages run in order on one file pair.

    tickbook lobster ZIP_OR_MESSAGE_CSV [--orderbook ORDERBOOK_CSV] [--mode book|match] [--flow OUT.csv]
    python -m engine.lobster ...      # the same, without the tickbook entry point

`run` reads, converts, replays and compares, timing each stage; `report` prints what a reader
needs to trust the figures: the message types, the flow, rows identical, every out-of-view
adjustment and guess counted (none is hidden in the agreement), rejects, match mode's share of
executions reproduced, and the first divergent rows with the message and both books.

Exit status (engine.diagnostics): EXIT_OK when every compared row is identical and the engine
rejected nothing, EXIT_FAILURE when not, EXIT_USAGE on bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from engine.codec import write_flow_csv
from engine.config import parse_venue
from engine.diagnostics import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from engine.lobster.compare import MatchResult, compare_executions
from engine.lobster.converter import EVIDENCE, Conversion, convert, venue_toml
from engine.lobster.read import (
    M_DIR,
    M_ID,
    M_PRICE,
    M_SIZE,
    M_TS,
    M_TYPE,
    LobsterData,
    LobsterError,
    read_lobster,
    side_of_row,
)
from engine.lobster.replayer import Replay, replay
from engine.records import ACTION_CANCEL, ACTION_NEW, ACTION_REPLACE, SIDE_BUY, SIDE_SELL


def _fmt_levels(row: np.ndarray) -> str:
    """'bid size@price ... | ask size@price ...' of an orderbook row (best first)."""
    parts = []
    for side, label in ((SIDE_BUY, "bid"), (SIDE_SELL, "ask")):
        prices, sizes = side_of_row([int(x) for x in row], side)
        parts.append(label + " " + (" ".join(f"{s}@{p / 10000:.4f}" for p, s in zip(prices, sizes)) or "-"))
    return " | ".join(parts)


def _fmt_message(m: np.ndarray) -> str:
    ts = int(m[M_TS])
    return f"{ts // 10**9}.{ts % 10**9:09d},{int(m[M_TYPE])},{int(m[M_ID])},{int(m[M_SIZE])},{int(m[M_PRICE])},{int(m[M_DIR])}"


def report(data: LobsterData, conv: Conversion, rep: Replay, mode: str, timings: dict, match: MatchResult | None, out) -> None:
    n = len(data.messages)
    st = conv.stats
    tc = data.type_counts
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"{data.name}: {data.ticker}, {data.levels} level(s), {n:,} messages, mode {mode}")
    p("  types     " + "  ".join(f"{t}: {tc.get(t, 0):,}" for t in range(1, 8))
      + (f"; {data.times_rounded} time(s) with more than 9 decimals rounded to the ns" if data.times_rounded else ""))
    p(f"            type 5 (hidden executions) and 6 (cross trades) leave the visible book alone; "
      f"type 7 (halts): {st['type7']} (halt {data.halts['halt']}, quoting {data.halts['quoting']}, resume {data.halts['resume']})")
    n_new = int((conv.orders["action"] == ACTION_NEW).sum())
    n_can = int((conv.orders["action"] == ACTION_CANCEL).sum())
    n_rep = int((conv.orders["action"] == ACTION_REPLACE).sum())
    p(f"  flow      {len(conv.orders):,} records: NEW {n_new:,}, CANCEL {n_can:,}, REPLACE {n_rep:,}; seed {st['seed_orders']} orders")
    p(f"  rows      compared {rep.compared:,}, identical {rep.identical:,} ({100 * rep.identical / max(1, rep.compared):.3f}%)"
      + (f"; {n - rep.compared:,} rows inside execution runs not compared" if mode == "match" else ""))
    adj = st["adj_seeded"] + st["adj_reduced"] + st["adj_dropped"]
    p(f"  adjusted  {adj:,} levels outside the previous row's view, on {st['adj_rows']:,} rows: "
      f"{st['adj_seeded']:,} seeded, {st['adj_reduced']:,} reduced, {st['adj_dropped']:,} dropped")
    p(f"  unknown   events on ids not in the book that had to take from named orders: {st['orphan_from_known']:,}; "
      f"events larger than the named order: {st['short_named']:,}; deletions smaller than the order: {st['delete_excess']:,}; "
      f"size nowhere to take: {st['unplaced_size']:,}")
    if rep.rejects:
        p(f"  REJECTS   {rep.rejects:,} records rejected by the engine (first at records {', '.join(str(int(x)) for x in rep.reject_at)})")
    if match is not None:
        p(f"  match     {match.runs:,} runs ({match.hidden_runs:,} also hit hidden liquidity); executions as evidence ({conv.evidence}): "
          f"{st['moved_ahead']:,} levels reordered, {st['grown']:,} executed orders given size from younger ones; "
          f"{st['repairs']:,} repairs after IOCs")
        p(f"  executions outside hidden runs: {match.reproduced:,} / {match.compared:,} reproduced "
          f"({100 * match.reproduced / max(1, match.compared):.2f}%); on orders submitted in the file: "
          f"{match.known_reproduced:,} / {match.known:,} ({100 * match.known_reproduced / max(1, match.known):.2f}%); "
          f"in hidden runs: {match.hidden_reproduced:,} / {match.hidden_executions:,}")
    rate = n / max(1e-9, timings["read"] + timings["convert"] + timings["replay"])
    p(f"  time      read {timings['read']:.2f} s, convert {timings['convert']:.2f} s, replay+compare {timings['replay']:.2f} s "
      f"({rate:,.0f} messages/s end to end)")
    for k in range(len(rep.div_rows)):
        i = int(rep.div_rows[k])
        p(f"  DIVERGENCE at message {i + 1}: {_fmt_message(data.messages[i])}")
        p(f"    expected {_fmt_levels(data.book[i])}")
        p(f"    actual   {_fmt_levels(rep.div_levels[k])}")
    if match is not None:
        for row, nas, eng in match.examples[:5]:
            fmt = lambda gs: " ".join(f"{'id ' + str(k) if k else 'anon'}:{s}@{pr / 10000:.4f}" for k, pr, s, _ in gs)  # noqa: E731
            p(f"  execution run ending at message {row + 1}: NASDAQ {fmt(nas)} | engine {fmt(eng)}")


def run(src: str, orderbook: str | None = None, mode: str = "book", flow_out: str | None = None, out=sys.stdout, evidence: str = "full"):
    """Read, convert, replay and compare one file pair; returns (data, conv, replay, match,
    timings): match is None in book mode, timings the seconds of each stage."""
    t0 = time.perf_counter()
    data = read_lobster(src, orderbook)
    t1 = time.perf_counter()
    conv = convert(data, mode, evidence)
    t2 = time.perf_counter()
    vtext = venue_toml(data, max_orders=max(1024, len(conv.orders) + 16))
    venue = parse_venue(vtext, "<lobster venue>")
    rep = replay(data, conv, venue)
    t3 = time.perf_counter()
    match = compare_executions(conv, rep) if mode == "match" else None
    if flow_out:
        fp = Path(flow_out)
        with open(fp, "wb") as fh:
            write_flow_csv(fh, conv.orders, venue)
        fp.with_suffix(".venue.toml").write_text(vtext)
    timings = {"read": t1 - t0, "convert": t2 - t1, "replay": t3 - t2}
    if out is not None:
        report(data, conv, rep, mode, timings, match, out)
        if flow_out:
            print(f"  flow      written to {flow_out} (venue: {Path(flow_out).with_suffix('.venue.toml')})", file=out)
    return data, conv, rep, match, timings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="tickbook lobster",
        description="Replay LOBSTER (NASDAQ) data through the engine and compare the book after every message.",
    )
    ap.add_argument("source", metavar="ZIP_OR_MESSAGE_CSV")
    ap.add_argument("--orderbook", metavar="ORDERBOOK_CSV", help="orderbook file of a message CSV (default: inferred)")
    ap.add_argument("--mode", choices=["book", "match"], default="book",
                    help="book: executions reduce the named order; match: each execution run is one aggressive IOC")
    ap.add_argument("--flow", metavar="OUT.csv", help="write the converted order flow (and OUT.venue.toml beside it)")
    ap.add_argument("--evidence", choices=EVIDENCE, default="full",
                    help="match mode: how NASDAQ's executions correct the reconstructed queue before each IOC: "
                         "none; ahead (orders ahead of the executed one go behind it); full (default: also give "
                         "the executed order the size it proves, taken from anonymous, then the youngest orders)")
    args = ap.parse_args(argv)
    try:
        _, _, rep, _, _ = run(args.source, args.orderbook, args.mode, args.flow, out=sys.stdout, evidence=args.evidence)
    except LobsterError as e:
        print(f"tickbook lobster: {e}", file=sys.stderr)
        return EXIT_USAGE
    ok = rep.identical == rep.compared and rep.rejects == 0
    return EXIT_OK if ok else EXIT_FAILURE
