"""Ingress: a client's request frames checked whole and turned into order records, or refused
with the reason its ERR reply gives (docs/offload.md#gateway). Nothing here touches a socket
or a ring."""

from __future__ import annotations

import zlib

import numpy as np

from engine.records import (
    ACTION_CANCEL,
    ACTION_KILL,
    ACTION_MALFORMED,
    ACTION_NEW,
    ACTION_REPLACE,
    ACTION_SHUTDOWN,
    ORDER_DTYPE,
    RECORD_SIZE,
)
from offload.gateway.wire import K_CSV, K_ORD, MAX_CSV_BYTES, MAX_RECORDS, MAX_TOKEN

VALID_ACTIONS = (ACTION_NEW, ACTION_CANCEL, ACTION_REPLACE, ACTION_KILL, ACTION_MALFORMED)
_VALID_ACTION = np.zeros(256, bool)
_VALID_ACTION[list(VALID_ACTIONS)] = True
_VALID_SET = frozenset(VALID_ACTIONS)
SMALL = 16  # messages of at most this many records are handled in plain Python, not numpy
_ZERO14 = bytes(14)


class Refused(Exception):
    """A request refused whole: the ERR reply's token and reason."""

    def __init__(self, token: bytes, reason: str, code: str = "malformed"):
        super().__init__(reason)
        self.token, self.reason, self.code = token, reason, code  # code: the metrics' label


def shard_of(symbol: str, count: int) -> int:
    """docs/deploy.md#scale-out: crc32(UTF-8 name) mod count."""
    return zlib.crc32(symbol.encode()) % count


class Ingress:
    def __init__(self, venue, shard=None):
        self.venue = venue
        self.names = [s.name for s in venue.symbols]
        self.shard = shard
        self.owned = None
        if shard is not None:
            k, n = shard
            self.owned = np.array([shard_of(s, n) == k for s in self.names], bool)

    def parse(self, body):
        """(token, data, n) of a request's frames after the client's identity: data = the n
        records' bytes (a zero-copy view of the frame for ORD). Raises Refused."""
        if len(body) == 1:
            token, kind, payload = b"", K_ORD, body[0]
        elif len(body) == 3:
            kind, token, payload = body[0].bytes, body[1].bytes, body[2]
        else:
            raise Refused(b"", f"expected frames [ORD|CSV, token, payload] or one frame of records; "
                               f"got {len(body)} frames")
        if len(token) > MAX_TOKEN:
            raise Refused(token[:MAX_TOKEN], f"token of {len(token)} bytes: at most {MAX_TOKEN}")
        if kind == K_ORD:
            data = payload.buffer
            n_bytes = len(data)
            if n_bytes == 0 or n_bytes % RECORD_SIZE:
                raise Refused(token, f"message of {n_bytes} bytes is not a whole number of {RECORD_SIZE}-byte "
                                     "order records (ORDER_DTYPE, docs/protocol.md): refused")
            n = n_bytes // RECORD_SIZE
        elif kind == K_CSV:
            from engine.codec import FlowError, parse_flow_bytes

            size = len(payload.buffer)
            if size > MAX_CSV_BYTES:
                raise Refused(token, f"CSV message of {size} bytes: at most {MAX_CSV_BYTES}", "too_large")
            text = payload.bytes
            rows = text.count(b"\n")  # one pass in C: nothing is allocated per row before the count passes
            if rows > MAX_RECORDS + 1:
                raise Refused(token, f"CSV message of {rows} lines: at most {MAX_RECORDS} rows and a header",
                              "too_large")
            try:
                recs = parse_flow_bytes(text, self.venue, "CSV message").orders
            except FlowError as e:
                raise Refused(token, str(e)) from None
            if len(recs) == 0:
                raise Refused(token, "CSV message has a header but no rows")
            data, n = recs.tobytes(), len(recs)
        else:
            raise Refused(token, f"unknown message kind {kind[:16]!r}: ORD (records) or CSV (rows)")
        if n > MAX_RECORDS:
            raise Refused(token, f"{n} records in one message: at most {MAX_RECORDS}", "too_large")
        why = self.validate(data, n)
        if why:
            raise Refused(token, why + ": message refused, none of its records was sent")
        return token, data, n

    def _refusal(self, i, action, sym) -> str:
        if action not in _VALID_SET:
            what = "SHUTDOWN is a control record, not accepted from clients" if action == ACTION_SHUTDOWN else (
                "not NEW 1, CANCEL 2, REPLACE 3, KILL 4 or MALFORMED 5")
            return f"record {i}: action {action} ({what})"
        if sym is not None:
            name = self.names[sym]
            k, n = self.shard
            return (f"record {i}: symbol {name} belongs to shard {shard_of(name, n)} of {n}, "
                    f"this gateway is shard {k} (docs/deploy.md#scale-out)")
        return f"record {i}: reserved bytes 50..63 must be zero"

    def validate(self, data, n) -> str | None:
        owned = self.owned
        if n <= SMALL:  # plain Python on the bytes: cheaper than numpy for a few records
            for i in range(n):
                o = i * RECORD_SIZE
                a = data[o + 46]
                if a not in _VALID_SET:
                    return self._refusal(i, a, None)
                if data[o + 50 : o + 64] != _ZERO14:
                    return self._refusal(i, a, None)
                if owned is not None and a == ACTION_NEW:
                    sym = data[o + 44] | data[o + 45] << 8
                    if sym < len(owned) and not owned[sym]:
                        return self._refusal(i, a, sym)
            return None
        recs = np.frombuffer(data, ORDER_DTYPE)
        act = recs["action"]
        bad = ~_VALID_ACTION[act] | recs["reserved"].any(axis=1)
        if owned is not None:
            sym = recs["symbol"].astype(np.int64)
            foreign = (act == ACTION_NEW) & (sym < len(owned))
            foreign[foreign] = ~np.asarray(owned)[sym[foreign]]
            bad |= foreign
        if bad.any():
            i = int(np.argmax(bad))
            s = int(recs["symbol"][i])
            return self._refusal(i, int(act[i]), s if owned is not None and _VALID_ACTION[act[i]] and
                                 not recs["reserved"][i].any() else None)
        return None
