"""Routing of the engine's events: each event to the message that caused it (one EV reply when
the message is finished, in the sender's own msg_seq numbering) or to the owner of the resting
order it concerns (an unsolicited REP), and each taker fill to the trade feed. A fill's contra_id
(the other order) reaches a client only when that order is the client's own; otherwise it is
zeroed: nobody learns a counterparty's order id (docs/offload.md#gateway)."""

from __future__ import annotations

import collections
import struct
import time

import numpy as np

from engine.records import EV_ACK, EV_CANCELED, EV_FILL, EV_REPLACED, R_TAKER, RECORD_SIZE, event_from_words
from offload.gateway.wire import K_EV, K_REP, TRADE

_SEQ = struct.Struct("<q")
_ZERO8 = bytes(8)
GATEWAY = b"\x00gateway"  # the sender of the gateway's own messages: anonymous, never a client's identity


class Request:
    """A client's message in flight: its records are ring positions start .. end - 1."""

    __slots__ = ("client", "token", "start", "end", "cseqs", "accts", "chunks", "cut")

    def __init__(self, client, token, start, n, cseqs, accts):
        self.client, self.token, self.start, self.end = client, token, start, start + n
        self.cseqs, self.accts, self.chunks = cseqs, accts, []
        self.cut = None  # why the records from `end` on were refused (a failed journal write)


class Routing:
    def __init__(self, replies, feed, stats: collections.Counter):
        self.replies, self.feed, self.stats = replies, feed, stats
        self.pending: collections.deque[Request] = collections.deque()
        self.owner: dict[int, bytes] = {}  # order_id -> client that placed it
        self.orphans = 0  # events of no request in flight
        # orders whose last event was routed while the message at ring position gone_pos was
        # open: the maker's FILL follows the taker's, whose order may be gone by then
        self.gone: dict[int, bytes] = {}
        self.gone_pos = -1
        # cancel on disconnect (disconnect.py): the resting orders of the connections that asked for it
        self.watched: set[bytes] = set()
        self.placed: dict[bytes, dict[int, int]] = {}  # connection -> {order_id: account}

    def route(self, view, rows) -> None:
        """Rows are the events of `view` as 8 int64 words (engine/records.py)."""
        pending, owner = self.pending, self.owner
        raw = view.tobytes()
        i = 0
        req = pending[0] if pending else None
        to_req: dict[int, list] = {}
        to_owner: dict[bytes, list] = {}
        trades: dict[int, list] = {}
        gone, gpos = self.gone, self.gone_pos
        ts = 0
        for j, w in enumerate(rows):
            seq, msg_seq, oid, price, qty, leaves, acct, sym, kind, side, reason = event_from_words(w)
            pos = msg_seq - 1
            if pos != gpos:
                if gone:
                    gone.clear()
                gpos = pos
            while req is not None and pos >= req.end:
                i += 1
                req = pending[i] if i < len(pending) else None
            sender = rc = None  # rc: the client whose message caused the event
            o = j * RECORD_SIZE
            if req is not None and pos >= req.start:
                rc = req.client
            contra = w[3]
            if contra:  # a FILL: who owns the other order (the taker's is the message's client)
                cc = owner.get(contra) or gone.get(contra) or (rc if reason != R_TAKER else None)
                tail_hidden = raw[o + 16 : o + 24] + _ZERO8 + raw[o + 32 : o + 64]
            if rc is not None:
                if acct == req.accts[pos - req.start]:
                    sender = rc
                    to_req.setdefault(i, []).append(raw[o : o + 8] + _SEQ.pack(req.cseqs[pos - req.start]) +
                                                    (raw[o + 16 : o + 64] if not contra or cc == rc else tail_hidden))
                # else: another account's order (the maker of a fill)
            else:
                self.orphans += 1
            if kind == EV_ACK:
                if sender is not None:
                    owner[oid] = sender
                    if sender in self.watched:
                        self.placed.setdefault(sender, {})[oid] = acct
            elif kind == EV_FILL or kind == EV_CANCELED or kind == EV_REPLACED:
                c = owner.get(oid)
                if c is not None and c != sender:
                    body = raw[o + 16 : o + 64] if not contra or cc == c else tail_hidden
                    if c == rc:  # the maker is another account of the same client: in the reply
                        to_req.setdefault(i, []).append(raw[o : o + 8] + _SEQ.pack(req.cseqs[pos - req.start]) + body)
                    else:
                        to_owner.setdefault(c, []).append(raw[o : o + 8] + _ZERO8 + body)
                if kind == EV_CANCELED or (kind == EV_FILL and leaves == 0):
                    c = owner.pop(oid, None)
                    if c is not None:
                        gone[oid] = c
                        if c in self.watched:
                            self.placed.get(c, {}).pop(oid, None)
                if kind == EV_FILL and reason == R_TAKER:
                    ts = ts or time.time_ns()
                    trades.setdefault(sym, []).append(TRADE.pack(seq, ts, price, qty, sym, side))
        self.gone_pos = gpos
        for i, pieces in to_req.items():
            pending[i].chunks += pieces
        for ident, pieces in to_owner.items():
            self.stats["reports"] += 1
            self.replies.send(ident, [K_REP, b"".join(pieces)], len(pieces))
        for sym, recs in trades.items():
            self.feed.trades(sym, b"".join(recs))

    def complete(self, t) -> None:
        """Reply to every message whose records are all processed (ring positions < t)."""
        pending = self.pending
        while pending and pending[0].end <= t:
            req = pending.popleft()
            if req.client == GATEWAY:  # the gateway's own message (a cancel on disconnect): nobody to answer
                continue
            seqs = np.arange(req.start + 1, req.end + 1, dtype=np.int64)
            if req.cut is not None:
                self.replies.error(req.client, req.token, req.cut, b"".join(req.chunks), seqs, code="journal")
                continue
            self.replies.send(req.client, [K_EV, req.token, b"".join(req.chunks), seqs], len(req.chunks))
