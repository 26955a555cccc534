"""The market data feed on the PUB socket: trades, top of book and heartbeats, per symbol topic,
from the gateway's own copy of the book (l2book.py)."""

from __future__ import annotations

import collections
import time

import zmq

from offload.gateway.l2book import MarketDataBook
from offload.gateway.wire import HB, HEARTBEAT_TOPIC, MD_HEARTBEAT, MD_TOP, MD_TRADE, SEQ, TOP

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

    def bind(self, endpoint: str) -> str:
        self.pub.bind(endpoint)
        return self.pub.getsockopt_string(zmq.LAST_ENDPOINT)

    def _send(self, sym: int, kind: bytes, payload: bytes) -> None:
        topic = self.topics[sym] if sym < len(self.topics) else b"?"
        self.count[topic] += 1
        self.pub.send_multipart([topic, kind, SEQ.pack(self.count[topic]), payload], copy=False)

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
        """The messages applied so far are complete: publish each changed top of book."""
        book = self.book
        book.finish()
        if not book.dirty:
            return
        ts = time.time_ns()
        for sym in sorted(book.dirty):
            top = book.top(sym)
            if self.last_top.get(sym) == top:
                continue
            self.last_top[sym] = top
            bp, bq, bn, ap, aq, an = top
            self._send(sym, MD_TOP, TOP.pack(book.last_seq, ts, bp, bq, ap, aq, bn, an, sym))
        book.dirty.clear()

    def heartbeat(self, serving: bool) -> None:
        hb = HB.pack(time.time_ns(), self.book.last_seq, int(serving))
        self.count[HEARTBEAT_TOPIC] += 1
        self.pub.send_multipart([HEARTBEAT_TOPIC, MD_HEARTBEAT, SEQ.pack(self.count[HEARTBEAT_TOPIC]), hb])

    def close(self) -> None:
        self.pub.close()



