"""The Python side of the gateway (notebooks, tests, benchmarks): one DEALER for orders and
reports, and a SUB for market data."""

from __future__ import annotations

import collections
import struct
import time
from dataclasses import dataclass

import numpy as np
import zmq

from engine.records import EVENT_DTYPE, ORDER_DTYPE
from offload.gateway.wire import (
    HEARTBEAT_DTYPE,
    HEARTBEAT_TOPIC,
    K_CSV,
    K_ERR,
    K_EV,
    K_ORD,
    K_REP,
    TOP_DTYPE,
    TRADE_DTYPE,
)



class GatewayError(RuntimeError):
    """An ERR reply: the message was refused, or the engine went away; `.events` holds the
    events of the records that were processed before that."""

    def __init__(self, reason, events=None, venue_seqs=None):
        super().__init__(reason)
        self.reason = reason
        self.events = events if events is not None else np.empty(0, EVENT_DTYPE)
        self.venue_seqs = venue_seqs if venue_seqs is not None else np.empty(0, np.int64)


@dataclass
class Reply:
    token: bytes
    events: np.ndarray  # EVENT_DTYPE, msg_seq = the client's own msg_seq
    venue_seqs: np.ndarray  # int64: the venue-wide message number given to each record
    error: str | None = None


@dataclass
class MarketData:
    symbol: str  # "" for a heartbeat
    kind: str  # "trade", "top", "hb"
    count: int  # per topic 1, 2, 3 ...: a gap means PUB dropped messages (slow subscriber)
    records: np.ndarray  # TRADE_DTYPE, TOP_DTYPE or HEARTBEAT_DTYPE


class Client:
    """One DEALER connection to a gateway (plus a SUB socket after `subscribe`). Not thread
    safe: one Client per thread.

        c = Client("tcp://127.0.0.1:5555")
        events = c.submit(orders)              # ORDER_DTYPE records (or c.submit_csv(text))
        c.reports()                            # maker fills etc. of our resting orders
        c.subscribe(["AAPL"], "tcp://127.0.0.1:5556"); md = c.market_data(timeout=1.0)
    """

    MD_DTYPES = {"trade": TRADE_DTYPE, "top": TOP_DTYPE, "hb": HEARTBEAT_DTYPE}

    def __init__(self, orders: str = "tcp://127.0.0.1:5555", timeout: float = 30.0, context=None,
                 session: str | None = None):
        """session: a name that outlives this connection (offload/sessions.py): the records'
        msg_seq must then increase over the session's life, and a message sent again, after a
        timeout or a restart of the venue, is answered from the venue's records."""
        self.ctx = context or zmq.Context.instance()
        self.timeout = timeout
        self.sock = self.ctx.socket(zmq.DEALER)
        if session is not None:
            name = session.encode()
            if not 0 < len(name) <= 255:
                raise ValueError(f"session name {session!r}: 1 to 255 bytes of UTF-8")
            self.sock.setsockopt(zmq.ROUTING_ID, name)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)  # never make the gateway queue replies for us
        self.sock.setsockopt(zmq.RCVTIMEO, max(1, int(timeout * 1000)))
        self.sock.connect(orders)
        self.sub = None
        self._n = 0
        self._replies: dict[bytes, Reply] = {}
        self._reports: list[np.ndarray] = []
        self._md: collections.deque = collections.deque()

    # -- orders
    def send(self, records, kind: bytes = K_ORD) -> bytes:
        """Send one message without waiting; returns its token (see recv)."""
        self._n += 1
        token = struct.pack("<Q", self._n)
        if isinstance(records, str):
            records, kind = records.encode(), K_CSV
        elif isinstance(records, np.ndarray):
            if records.dtype != ORDER_DTYPE:
                raise TypeError(f"records must have ORDER_DTYPE, got {records.dtype}")
            records = np.ascontiguousarray(records)
        self.sock.send_multipart([kind, token, records], copy=False)
        return token

    def _take(self, f) -> None:
        kind = f[0]
        if kind == K_EV:
            self._replies[f[1]] = Reply(f[1], np.frombuffer(f[2], EVENT_DTYPE), np.frombuffer(f[3], np.int64))
        elif kind == K_ERR:
            self._replies[f[1]] = Reply(f[1], np.frombuffer(f[3], EVENT_DTYPE), np.frombuffer(f[4], np.int64),
                                        f[2].decode(errors="replace"))
        elif kind == K_REP:
            self._reports.append(np.frombuffer(f[1], EVENT_DTYPE))
        else:
            raise GatewayError(f"unexpected message {f[:1]!r} from the gateway")

    def _pump(self, timeout_ms: int) -> bool:
        """Take every message that has arrived, waiting up to timeout_ms for the first."""
        got = False
        while True:
            try:
                self._take(self.sock.recv_multipart(zmq.NOBLOCK))
                got = True
            except zmq.Again:
                if got or timeout_ms <= 0 or not self.sock.poll(timeout_ms):
                    return got

    def recv(self, token: bytes | None = None, timeout: float | None = None) -> Reply:
        """The reply to `token` (or the oldest reply of any), waiting up to timeout s
        (default: the Client's); reports that arrive meanwhile are kept for reports()."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            if token is None and self._replies:
                return self._replies.pop(next(iter(self._replies)))
            if token is not None and token in self._replies:
                return self._replies.pop(token)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply from the gateway within {wait} s")
            if timeout is None:  # one blocking recv per message (RCVTIMEO = the Client's timeout)
                try:
                    self._take(self.sock.recv_multipart())
                except zmq.Again:
                    raise TimeoutError(f"no reply from the gateway within {wait} s") from None
            else:
                self._pump(max(1, int(left * 1000)))

    def submit(self, records, timeout: float | None = None) -> np.ndarray:
        """Records (ORDER_DTYPE array, or CSV text with its header) in, this client's events
        of them out; raises GatewayError when the gateway refused the message."""
        r = self.recv(self.send(records), timeout)
        if r.error is not None:
            raise GatewayError(r.error, r.events, r.venue_seqs)
        return r.events

    def submit_csv(self, text: str, timeout: float | None = None) -> np.ndarray:
        return self.submit(text, timeout)

    def reports(self, timeout: float = 0.0) -> np.ndarray:
        """Unsolicited reports received so far (events of our resting orders caused by
        other clients' messages, msg_seq 0)."""
        self._pump(int(timeout * 1000))
        out = np.concatenate(self._reports) if self._reports else np.empty(0, EVENT_DTYPE)
        self._reports = []
        return out

    # -- market data
    def subscribe(self, symbols=(), md: str = "tcp://127.0.0.1:5556", wait: float | None = 10.0) -> None:
        """SUB to `symbols` (all when empty); with `wait`, return once the subscription is
        live (the gateway's heartbeat arrived), or raise TimeoutError."""
        if self.sub is None:
            self.sub = self.ctx.socket(zmq.SUB)
            self.sub.setsockopt(zmq.LINGER, 0)
            self.sub.setsockopt(zmq.RCVHWM, 0)
            self.sub.connect(md)
        self._want = {s.encode() for s in symbols} or None
        for s in symbols or [""]:
            self.sub.setsockopt(zmq.SUBSCRIBE, s.encode())
        if symbols:
            self.sub.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_TOPIC)
        if wait:
            deadline = time.monotonic() + wait
            while True:
                m = self.market_data(max(0.0, deadline - time.monotonic()), heartbeats=True)
                if m is None:
                    raise TimeoutError(f"no market data heartbeat from {md} within {wait} s")
                if m.kind == "hb":
                    return
                self._md.append(m)

    def market_data(self, timeout: float = 0.0, heartbeats: bool = False) -> MarketData | None:
        """The next market data message (None when none came within timeout s)."""
        if self._md:
            return self._md.popleft()
        deadline = time.monotonic() + timeout
        while True:
            if self.sub.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                topic, kind, cnt, payload = self.sub.recv_multipart()
                if topic == HEARTBEAT_TOPIC and not heartbeats:
                    continue
                if self._want is not None and topic != HEARTBEAT_TOPIC and topic not in self._want:
                    continue  # SUB matches prefixes: AAPL would also see AAPLX
                k = kind.decode()
                return MarketData("" if topic == HEARTBEAT_TOPIC else topic.decode(), k,
                                  struct.unpack("<q", cnt)[0], np.frombuffer(payload, self.MD_DTYPES[k]))
            if time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        self.sock.close(0)
        if self.sub is not None:
            self.sub.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

