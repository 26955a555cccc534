"""Replies to clients over the ROUTER: sent without blocking, queued per client while its pipe is
full, and counted, never silently dropped, when the client is gone or does not read."""

from __future__ import annotations

import collections

import zmq

from engine.records import RECORD_SIZE
from offload.gateway.wire import K_ERR, K_REP

# What the gateway queues for one client that does not read, beyond libzmq's own pipe (the ROUTER's
# SNDHWM), before that client is cut off: its replies are then counted as undeliverable.
MAX_BACKLOG = 10_000  # replies
MAX_BACKLOG_BYTES = 64 << 20


def _size(frames) -> int:
    return sum(f.nbytes if hasattr(f, "nbytes") else len(f) for f in frames)


class ClientState:
    __slots__ = ("requests", "records", "events", "errors", "backlog", "backlog_bytes", "gone", "undeliverable")

    def __init__(self):
        self.requests = self.records = self.events = self.errors = self.undeliverable = 0
        self.backlog = collections.deque()
        self.backlog_bytes = 0
        self.gone = None


class Replies:
    def __init__(self, router, log, stats: collections.Counter):
        self.router, self.log, self.stats = router, log, stats
        self.clients: dict[bytes, ClientState] = {}
        self.backlogged: set[bytes] = set()
        self.metrics = None  # GatewayMetrics (offload/gateway/metrics.py), set by the server

    def client(self, ident: bytes) -> ClientState:
        cs = self.clients.get(ident)
        if cs is None:
            cs = self.clients[ident] = ClientState()
        return cs

    def heard_from(self, ident: bytes) -> None:
        """A client that was cut off sends again (a named session reconnected): deliver to it."""
        cs = self.clients.get(ident)
        if cs is not None and cs.gone is not None:
            self.log(f"client {ident.hex()} is back (it had {cs.gone}): its replies are delivered again")
            cs.gone = None

    def send(self, ident: bytes, frames: list, n_events: int = 0) -> None:
        cs = self.client(ident)
        cs.events += n_events
        m = self.metrics
        if m is not None and frames[0] != K_REP:  # a request's reply (EV, ERR, SNAP): its latency
            m.replied(ident, frames[1])
        if cs.gone is not None:
            cs.undeliverable += n_events
            self.stats["undeliverable messages"] += 1
            if m is not None:
                m.lost(n_events)
            return
        if cs.backlog:
            cs.backlog.append((frames, n_events))
            cs.backlog_bytes += _size(frames)
            if len(cs.backlog) > MAX_BACKLOG or cs.backlog_bytes > MAX_BACKLOG_BYTES:
                self.cut_off(ident, cs, f"{len(cs.backlog)} replies ({cs.backlog_bytes >> 20} MiB) queued, more than "
                                        f"{MAX_BACKLOG} or {MAX_BACKLOG_BYTES >> 20} MiB (the client does not read)")
            return
        try:
            self.router.send_multipart([ident, *frames], flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            cs.backlog.append((frames, n_events))
            cs.backlog_bytes += _size(frames)
            self.backlogged.add(ident)
        except zmq.ZMQError as e:
            if e.errno != zmq.EHOSTUNREACH:
                raise
            cs.undeliverable += n_events
            self.stats["undeliverable messages"] += 1
            if m is not None:
                m.lost(n_events)
            self.cut_off(ident, cs, "disconnected")
        else:
            if m is not None:
                m.delivered_to(ident, n_events)

    def error(self, ident, token, reason, events=None, seqs=None, *, code: str = "refused") -> None:
        """An ERR reply; `code` is a short snake_case word for the metrics' errors_total{code}
        (e.g. "unauthorized", "rate_limit", "in_flight", "too_large", "malformed", "engine_gone",
        "journal"), the free-text `reason` is what the client reads."""
        self.client(ident).errors += 1
        self.stats["errors"] += 1
        if self.metrics is not None:
            self.metrics.error(ident, code)
        ev = events if events is not None else b""
        sq = seqs if seqs is not None else b""
        self.send(ident, [K_ERR, token, reason.encode(), ev, sq], len(ev) // RECORD_SIZE)

    def cut_off(self, ident, cs, why):
        lost = sum(n for _, n in cs.backlog)
        cs.undeliverable += lost
        if self.metrics is not None:
            self.metrics.lost(lost)
        self.stats["undeliverable messages"] += len(cs.backlog)
        cs.backlog.clear()
        cs.backlog_bytes = 0
        self.backlogged.discard(ident)
        cs.gone = why
        self.log(f"client {ident.hex()} {why}: its replies and reports are undeliverable until it "
                 f"sends again (counted, {cs.undeliverable} events so far); its resting orders stay in the book")

    def flush(self) -> bool:
        """Send what the clients' pipes take now of their queued replies."""
        moved = False
        for ident in list(self.backlogged):
            cs = self.clients[ident]
            while cs.backlog:
                frames, n = cs.backlog[0]
                try:
                    self.router.send_multipart([ident, *frames], flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                except zmq.ZMQError as e:
                    if e.errno != zmq.EHOSTUNREACH:
                        raise
                    self.cut_off(ident, cs, "disconnected")
                    break
                cs.backlog.popleft()
                cs.backlog_bytes -= _size(frames)
                moved = True
                if self.metrics is not None:
                    self.metrics.delivered_to(ident, n)
            if not cs.backlog:
                self.backlogged.discard(ident)
        return moved

    def undeliverable(self) -> int:
        return sum(c.undeliverable for c in self.clients.values())
