"""Replies to clients over the ROUTER: sent without blocking, queued per client while its pipe is
full, and counted, never silently dropped, when the client is gone or does not read."""

from __future__ import annotations

import collections

import zmq

from engine.records import RECORD_SIZE
from offload.gateway.wire import K_ERR

MAX_BACKLOG = 100_000  # replies queued for one client that does not read before it is cut off


class ClientState:
    __slots__ = ("requests", "records", "events", "errors", "backlog", "gone", "undeliverable")

    def __init__(self):
        self.requests = self.records = self.events = self.errors = self.undeliverable = 0
        self.backlog = collections.deque()
        self.gone = None


class Replies:
    def __init__(self, router, log, stats: collections.Counter):
        self.router, self.log, self.stats = router, log, stats
        self.clients: dict[bytes, ClientState] = {}
        self.backlogged: set[bytes] = set()

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
        if cs.gone is not None:
            cs.undeliverable += n_events
            self.stats["undeliverable messages"] += 1
            return
        if cs.backlog:
            cs.backlog.append((frames, n_events))
            if len(cs.backlog) > MAX_BACKLOG:
                self.cut_off(ident, cs, f"more than {MAX_BACKLOG} replies queued (the client does not read)")
            return
        try:
            self.router.send_multipart([ident, *frames], flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            cs.backlog.append((frames, n_events))
            self.backlogged.add(ident)
        except zmq.ZMQError as e:
            if e.errno != zmq.EHOSTUNREACH:
                raise
            cs.undeliverable += n_events
            self.stats["undeliverable messages"] += 1
            self.cut_off(ident, cs, "disconnected")

    def error(self, ident, token, reason, events=None, seqs=None) -> None:
        self.client(ident).errors += 1
        self.stats["errors"] += 1
        ev = events if events is not None else b""
        sq = seqs if seqs is not None else b""
        self.send(ident, [K_ERR, token, reason.encode(), ev, sq], len(ev) // RECORD_SIZE)

    def cut_off(self, ident, cs, why):
        lost = sum(n for _, n in cs.backlog)
        cs.undeliverable += lost
        self.stats["undeliverable messages"] += len(cs.backlog)
        cs.backlog.clear()
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
                moved = True
            if not cs.backlog:
                self.backlogged.discard(ident)
        return moved

    def undeliverable(self) -> int:
        return sum(c.undeliverable for c in self.clients.values())
