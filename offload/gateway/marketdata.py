"""The market data feed on the PUB socket: trades, top of book, L2 depth updates and heartbeats,
per symbol topic, from the gateway's own copy of the book (l2book.py); and the depth snapshot a
client asks for over the order socket (docs/offload.md#market-data)."""

from __future__ import annotations

import collections
import time

import zmq

from offload.gateway.l2book import MarketDataBook
from offload.gateway.wire import (
    DEPTH,
    HB,
    HEARTBEAT_TOPIC,
    K_ERR,
    K_SNAP,
    MAX_TOKEN,
    MD_DEPTH,
    MD_HEARTBEAT,
    MD_TOP,
    MD_TRADE,
    SEQ,
    TOP,
)

PUB_HWM = 1_000_000


class Feed:
    def __init__(self, ctx: zmq.Context, names: list[str]):
        self.pub = ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        self.pub.setsockopt(zmq.LINGER, 500)
        self.topics = [n.encode() for n in names]
        self.book = MarketDataBook(len(names))
        self.queued: collections.deque[list] = collections.deque()  # events of unfinished messages
        self.last_top: dict[int, tuple] = {}
        self.count: dict[bytes, int] = collections.defaultdict(int)
        self.depth_seq = [0] * len(names)  # per symbol: the number of the last depth message sent
        self.index = {t: i for i, t in enumerate(self.topics)}

    def bind(self, endpoint: str) -> str:
        self.pub.bind(endpoint)
        return self.pub.getsockopt_string(zmq.LAST_ENDPOINT)

    def _send(self, sym: int, kind: bytes, payload: bytes) -> None:
        topic = self.topics[sym] if sym < len(self.topics) else b"?"
        self.count[topic] += 1
        self.pub.send_multipart([topic, kind, SEQ.pack(self.count[topic]), payload])  # small frames: copying is cheaper than tracking them

    def trades(self, sym: int, payload: bytes) -> None:
        self._send(sym, MD_TRADE, payload)

    def apply(self, rows, t) -> None:
        """Apply events of finished messages only (ring positions < t: a message's events may
        straddle two publishes of the event ring when it is nearly full); keep the rest."""
        if self.queued:
            self.queued.append(rows)
            return
        k = self.book.apply(rows, t)
        if k < len(rows):
            self.queued.append(rows[k:])

    def catch_up(self, t) -> None:
        q = self.queued
        while q:
            k = self.book.apply(q[0], t)
            if k < len(q[0]):
                q[0] = q[0][k:]
                return
            q.popleft()

    def publish_tops(self) -> None:
        """The messages applied so far are complete: publish each symbol's changed levels (one
        `depth` message a symbol, numbered 1, 2, 3 ... per symbol) and each changed top of book."""
        book = self.book
        book.finish()
        if not book.changed:
            return
        touched = sorted(book.changed)  # the symbols whose top may have moved (level_changes clears it)
        for sym, ups in book.level_changes().items():
            if sym >= len(self.topics):
                continue
            seq = self.depth_seq[sym] = self.depth_seq[sym] + 1
            self._send(sym, MD_DEPTH, b"".join([DEPTH.pack(seq, p, q, n, sym, side) for side, p, q, n in ups]))
        ts = time.time_ns()
        for sym in touched:
            top = book.top(sym)
            if self.last_top.get(sym) == top:
                continue
            self.last_top[sym] = top
            bp, bq, bn, ap, aq, an = top
            self._send(sym, MD_TOP, TOP.pack(book.last_seq, ts, bp, bq, ap, aq, bn, an, sym))

    def snapshot_request(self, frames) -> list | None:
        """The answer when a request's frames (identity first) are [SNAP, token, symbol], else None."""
        if len(frames) != 4 or frames[1].bytes != K_SNAP:
            return None
        return self.snapshot(frames[2].bytes, frames[3].bytes)

    def snapshot(self, token: bytes, what: bytes) -> list:
        """The answer to [SNAP, token, symbol]: [SNAP, token, seq, levels], every level of the
        symbol (DEPTH_DTYPE, each with seq) as the book stands after exactly the depth messages
        numbered <= seq; or an ERR. `what` is the symbol's name, or its index in decimal digits."""
        if len(token) > MAX_TOKEN:
            return [K_ERR, token[:MAX_TOKEN], f"token of {len(token)} bytes: at most {MAX_TOKEN}".encode(), b"", b""]
        sym = self.index.get(what)
        if sym is None and what.isdigit() and int(what) < len(self.topics):
            sym = int(what)
        if sym is None:
            name = what[:64].decode("utf-8", "replace")
            why = f"snapshot: unknown symbol {name!r}: a symbol name of the venue or its index"
            return [K_ERR, token, why.encode(), b"", b""]
        self.publish_tops()  # changes applied but not yet sent go out first, under their own numbers
        seq = self.depth_seq[sym]
        levels = b"".join([DEPTH.pack(seq, p, q, n, sym, side) for side, p, q, n in self.book.depth(sym)])
        return [K_SNAP, token, SEQ.pack(seq), levels]

    def heartbeat(self, serving: bool) -> None:
        hb = HB.pack(time.time_ns(), self.book.last_seq, int(serving))
        self.count[HEARTBEAT_TOPIC] += 1
        self.pub.send_multipart([HEARTBEAT_TOPIC, MD_HEARTBEAT, SEQ.pack(self.count[HEARTBEAT_TOPIC]), hb])

    def close(self) -> None:
        self.pub.close()



