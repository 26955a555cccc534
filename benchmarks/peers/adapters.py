"""The PyPI order books replaying the shared operation stream (runs in build/peers-venv).

    build/peers-venv/bin/python benchmarks/peers/adapters.py STREAM.npy --json OUT.json \\
        [--peers liquibook,lightmatchingengine,pyorderbook,fastlob] [--rounds N]

Imports only numpy and the peer libraries (tickbook is not installed in that venv). The stream is
benchmarks/peers/stream.py's STREAM_DTYPE: op (1 add GTC limit, 2 cancel, 3 market IOC), side
(1 buy, 2 sell), id, price (integer ticks), qty. Prices go to every library as integer ticks.

Each peer runs in a child process of its own (`--child NAME`), so one library's import side
effects cannot slow another (pyorderbook calls logging.basicConfig(level=INFO) on import, which
would turn on fastlob's info logging) and one library's leftover heap does not weigh on the next.
A child replays the stream `rounds` times, each on a fresh book built before the clock starts,
and times only the loop over the operations (time.perf_counter): not the import, not the stream
load, not the book's construction or teardown. Inside the loop: building the library's own order
object from the operation's fields, the call, and reading back what traded (the same a user's
code does per message). The stream is turned into a list of Python int tuples before the clock.

What each adapter does where the library lacks a feature (none of them has an IOC flag except
liquibook, and none has tickbook's collar; the stream never lets the collar bind):

- liquibook 2.0.1 (C++ Liquibook, SWIG): `liquibook_book_OrderBook` (the matching book; the
  DepthOrderBook of its README also aggregates depth, slower) with an OrderListener subclass in
  Python, the only way to learn what traded: its on_fill sums fill_qty. Market IOC: price 0 (its
  market price) with `add(order, oc_immediate_or_cancel)`. Cancel: `cancel(order)`.
- lightmatchingengine 2019.1.4: `add_order(instmt, price, qty, side)`, price 0 for a market
  order; it has no IOC, so a market order's remainder (it would rest at price 0) is cancelled at
  once with `cancel_order`. Traded: the incoming order's cum_qty. Ids: its own, mapped.
- pyorderbook 0.4.9: `Book.match(Order)`; no market orders and no IOC: a market order is a limit
  at a price nothing reaches (MARKET_BUY_PRICE / MARKET_SELL_PRICE ticks) whose remainder is
  cancelled with `Book.cancel`. Traded: the incoming order's quantity before minus after.
- fastlob 0.0.24: `Orderbook.process(OrderParams(side, price, qty))` (GTC), `cancel(id)`; market
  orders as for pyorderbook; the book runs between `start()` and `stop()` (its GTD thread).
  Traded: the sum of the result's execprices for MARKET / PARTIAL_MARKET results.

A cancel the library does not find (never, when it matches as tickbook does: the stream cancels
only orders resting in a correct book) is counted as `missed_cancels`, not raised.

Output JSON: {"stream", "ops", "python", "peers": {name: {"status": "ok", "version", "rounds",
"round_seconds", "seconds" (median), "best_seconds", "traded_qty", "ops", "missed_cancels"}}};
a peer that cannot be imported: {"status": "unavailable", "reason"}; one that crashed or
returned nonsense: {"status": "failed", "reason"}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OP_ADD, OP_CANCEL, OP_MARKET = 1, 2, 3  # benchmarks/peers/stream.py (tests check they agree)
BUY, SELL = 1, 2
STREAM_FIELDS = ("op", "side", "id", "price", "qty")
SYMBOL = "AAPL"
MARKET_BUY_PRICE = 10**9  # ticks: above any price of the stream (fastlob's ceiling is 1e11)
MARKET_SELL_PRICE = 1  # the lowest price every peer accepts

PEERS = ("liquibook", "lightmatchingengine", "pyorderbook", "fastlob")  # fastest first
# Rounds per peer: fastlob takes ~17 s for 1M operations, so one round by default.
DEFAULT_ROUNDS = {"liquibook": 3, "lightmatchingengine": 3, "pyorderbook": 3, "fastlob": 1}


def read_stream(path: str | Path) -> list[tuple[int, int, int, int, int]]:
    """The .npy stream as (op, side, id, price, qty) tuples of Python ints."""
    ops = np.load(path, allow_pickle=False)
    names = ops.dtype.names or ()
    missing = [f for f in STREAM_FIELDS if f not in names]
    if missing:
        raise ValueError(f"{path}: not a peers stream: fields {missing} missing (dtype {ops.dtype})")
    bad = np.setdiff1d(np.unique(ops["op"]), [OP_ADD, OP_CANCEL, OP_MARKET])
    if len(bad):
        raise ValueError(f"{path}: unknown op codes {bad.tolist()}")
    return list(zip(*(ops[f].tolist() for f in STREAM_FIELDS)))


def summarize(peer: str, version: str, runs: list[tuple[float, int, int, int]]) -> dict:
    """One peer's result from its rounds [(seconds, traded, ops, missed_cancels), ...]."""
    if not runs:
        return failed("no round ran")
    traded = {r[1] for r in runs}
    if len(traded) != 1:
        return failed(f"traded quantity differs between rounds: {sorted(traded)}")
    secs = [r[0] for r in runs]
    return {
        "status": "ok",
        "version": version,
        "rounds": len(runs),
        "round_seconds": secs,
        "seconds": statistics.median(secs),
        "best_seconds": min(secs),
        "traded_qty": runs[0][1],
        "ops": runs[0][2],
        "missed_cancels": max(r[3] for r in runs),
    }


def unavailable(reason: str) -> dict:
    return {"status": "unavailable", "reason": reason}


def failed(reason: str) -> dict:
    return {"status": "failed", "reason": reason}


# ----------------------------------------------------------------------------------- adapters
# Each takes the stream (tuples) and returns (seconds of the loop, traded quantity, operations,
# missed cancels) for one round on a fresh book.


def replay_liquibook(stream):
    import liquibook as lb

    class Listener(lb.OrderListener):
        def __init__(self):
            lb.OrderListener.__init__(self)
            self.traded = 0
            self.cancel_rejects = 0

        def on_fill(self, order, matched_order, fill_qty, fill_cost):
            self.traded += fill_qty

        # the C++ listener's methods are pure virtual: every one needs a Python body
        def on_accept(self, order):
            pass

        def on_reject(self, order, reason):
            pass

        def on_cancel(self, order):
            pass

        def on_cancel_reject(self, order, reason):
            self.cancel_rejects += 1

        def on_replace(self, order, size_delta, new_price):
            pass

        def on_replace_reject(self, order, reason):
            pass

        def on_trigger_stop(self, order):
            pass

    book = lb.liquibook_book_OrderBook()
    listener = Listener()
    book.set_order_listener(listener)
    book.set_symbol(SYMBOL)
    add, cancel, Order, ioc = book.add, book.cancel, lb.SimpleOrder, lb.oc_immediate_or_cancel
    resting = {}
    t0 = time.perf_counter()
    for op, side, oid, price, qty in stream:
        if op == OP_ADD:
            order = Order(side == BUY, price, qty)
            add(order)
            resting[oid] = order
        elif op == OP_CANCEL:
            cancel(resting.pop(oid))  # one it cannot find comes back through on_cancel_reject
        else:
            add(Order(side == BUY, 0, qty), ioc)
    seconds = time.perf_counter() - t0
    return seconds, listener.traded, len(stream), listener.cancel_rejects


def replay_lightmatchingengine(stream):
    from lightmatchingengine.lightmatchingengine import LightMatchingEngine

    lme = LightMatchingEngine()
    add, cancel = lme.add_order, lme.cancel_order
    ids = {}
    traded = 0
    missed = 0
    sym = SYMBOL
    t0 = time.perf_counter()
    for op, side, oid, price, qty in stream:
        if op == OP_ADD:
            order, _trades = add(sym, price, qty, side)
            traded += order.cum_qty
            if order.leaves_qty:
                ids[oid] = order.order_id
        elif op == OP_CANCEL:
            if cancel(ids.pop(oid), sym) is None:
                missed += 1
        else:
            order, _trades = add(sym, 0, qty, side)  # price 0: its market order, no limit
            traded += order.cum_qty
            if order.leaves_qty:
                cancel(order.order_id, sym)  # IOC: the remainder would rest at price 0
    seconds = time.perf_counter() - t0
    return seconds, traded, len(stream), missed


def replay_pyorderbook(stream):
    from pyorderbook import Book, Order, Side

    book = Book()
    match, cancel = book.match, book.cancel
    sides = {BUY: Side.BID, SELL: Side.ASK}
    market_price = {BUY: MARKET_BUY_PRICE, SELL: MARKET_SELL_PRICE}
    resting = {}
    traded = 0
    missed = 0
    sym = SYMBOL
    t0 = time.perf_counter()
    for op, side, oid, price, qty in stream:
        if op == OP_ADD:
            order = Order(sides[side], sym, price, qty)
            match(order)
            left = order.quantity
            traded += qty - left
            if left:
                resting[oid] = order
        elif op == OP_CANCEL:
            try:
                cancel(resting.pop(oid))
            except (KeyError, ValueError):
                missed += 1
        else:
            order = Order(sides[side], sym, market_price[side], qty)
            match(order)
            left = order.quantity
            traded += qty - left
            if left:
                cancel(order)  # no IOC in pyorderbook: take the remainder out at once
    seconds = time.perf_counter() - t0
    return seconds, traded, len(stream), missed


def replay_fastlob(stream):
    from fastlob import OrderParams, OrderSide, Orderbook, ResultType

    lob = Orderbook("peers")
    lob.start()  # starts its GTD expiry thread (sleeps 0.1 s between looks)
    try:
        process, cancel = lob.process, lob.cancel
        sides = {BUY: OrderSide.BID, SELL: OrderSide.ASK}
        market_price = {BUY: MARKET_BUY_PRICE, SELL: MARKET_SELL_PRICE}
        executed = (ResultType.MARKET, ResultType.PARTIAL_MARKET)
        MARKET = ResultType.MARKET
        ids = {}
        traded = 0
        missed = 0
        errors = 0
        t0 = time.perf_counter()
        for op, side, oid, price, qty in stream:
            if op == OP_CANCEL:
                if not cancel(ids.pop(oid)).success():
                    missed += 1
                continue
            result = process(OrderParams(sides[side], price if op == OP_ADD else market_price[side], qty))
            if not result.success():
                errors += 1
                continue
            kind = result.kind()
            if kind in executed:
                traded += sum(result.execprices().values())
            if kind is not MARKET:  # (part of) it rests
                if op == OP_ADD:
                    ids[oid] = result.orderid()
                else:
                    cancel(result.orderid())  # no IOC in fastlob
        seconds = time.perf_counter() - t0
    finally:
        lob.stop()
    if errors:
        raise RuntimeError(f"fastlob refused {errors} orders")
    return seconds, int(traded), len(stream), missed


ADAPTERS = {
    "liquibook": replay_liquibook,
    "lightmatchingengine": replay_lightmatchingengine,
    "pyorderbook": replay_pyorderbook,
    "fastlob": replay_fastlob,
}
MODULES = {"liquibook": "liquibook", "lightmatchingengine": "lightmatchingengine",
           "pyorderbook": "pyorderbook", "fastlob": "fastlob"}


# ----------------------------------------------------------------------------------- running


def _install_log_tail(peer: str, lines: int = 3) -> str:
    log = Path(sys.prefix) / f"install-{peer}.log"
    try:
        tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return f" (pip, {log}: {' | '.join(tail)})" if tail else ""


def run_peer(peer: str, stream_path: str | Path, rounds: int) -> dict:
    """In this process: import the peer, replay the stream `rounds` times."""
    import gc
    import importlib
    from importlib import metadata

    try:
        importlib.import_module(MODULES[peer])
    except Exception as e:  # ImportError, or a wheel that does not load
        return unavailable(f"{type(e).__name__}: {e}" + _install_log_tail(peer))
    try:
        version = metadata.version(peer)
    except metadata.PackageNotFoundError:
        version = "?"
    stream = read_stream(stream_path)
    runs = []
    try:
        for _ in range(rounds):
            gc.collect()  # the previous round's book goes before the clock starts
            runs.append(ADAPTERS[peer](stream))
    except Exception as e:
        return failed(f"{type(e).__name__}: {e}")
    return summarize(peer, version, runs)


def run_child(peer: str, stream_path: str | Path, rounds: int, timeout: float | None = None) -> dict:
    """Run one peer in a fresh interpreter (this one), its result back as JSON on stdout."""
    cmd = [sys.executable, os.path.abspath(__file__), str(stream_path), "--child", peer, "--rounds", str(rounds)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return failed(f"timed out after {timeout} s")
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return failed(f"exit status {proc.returncode}: {tail}")
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return failed(f"no result on stdout: {proc.stdout[-200:]!r}")


def parse_peers(text: str | None) -> list[str]:
    if not text:
        return list(PEERS)
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in ADAPTERS]
    if unknown:
        raise SystemExit(f"adapters.py: unknown peers {unknown}; known: {', '.join(PEERS)}")
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stream", help="the .npy operation stream (benchmarks/peers/stream.py)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--peers", help=f"comma-separated, of {','.join(PEERS)} (default: all)")
    ap.add_argument("--rounds", type=int, help="rounds per peer (default: " +
                    ", ".join(f"{k} {v}" for k, v in DEFAULT_ROUNDS.items()) + ")")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if args.child:
        peer = parse_peers(args.child)[0]
        print(json.dumps(run_peer(peer, args.stream, args.rounds or DEFAULT_ROUNDS[peer])))
        return 0
    n_ops = len(np.load(args.stream, mmap_mode="r", allow_pickle=False))
    out = {"stream": str(args.stream), "ops": n_ops, "python": sys.version.split()[0], "peers": {}}
    for peer in parse_peers(args.peers):
        res = run_child(peer, args.stream, args.rounds or DEFAULT_ROUNDS[peer])
        out["peers"][peer] = res
        if res["status"] == "ok":
            ns = res["seconds"] * 1e9 / max(n_ops, 1)
            print(f"adapters.py: {peer} {ns:,.0f} ns/op, traded {res['traded_qty']:,} (median of {res['rounds']})",
                  file=sys.stderr)
        else:
            print(f"adapters.py: {peer} {res['status']}: {res['reason']}", file=sys.stderr)
    text = json.dumps(out, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
