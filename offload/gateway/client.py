"""The Python side of the gateway (notebooks, tests, benchmarks): one DEALER for orders and
reports, and a SUB for market data."""

from __future__ import annotations

import collections
import struct
import time
from dataclasses import dataclass

import numpy as np
import zmq
from zmq.auth import load_certificate

from engine.records import EVENT_DTYPE, ORDER_DTYPE
from offload.gateway.depth import DepthBook
from offload.gateway.wire import (
    DEPTH_DTYPE,
    HEARTBEAT_DTYPE,
    HEARTBEAT_TOPIC,
    K_CSV,
    K_ERR,
    K_EV,
    K_ORD,
    K_REP,
    K_SNAP,
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
    kind: str  # "trade", "top", "depth", "hb"
    count: int  # per topic 1, 2, 3 ...: a gap means PUB dropped messages (slow subscriber)
    records: np.ndarray  # TRADE_DTYPE, TOP_DTYPE, DEPTH_DTYPE or HEARTBEAT_DTYPE


class Client:
    """One DEALER connection to a gateway (plus a SUB socket after `subscribe`). Not thread
    safe: one Client per thread.

        c = Client("tcp://127.0.0.1:5555")
        events = c.submit(orders)              # ORDER_DTYPE records (or c.submit_csv(text))
        c.reports()                            # maker fills etc. of our resting orders
        c.subscribe(["AAPL"], "tcp://127.0.0.1:5556"); md = c.market_data(timeout=1.0)
    """

    MD_DTYPES = {"trade": TRADE_DTYPE, "top": TOP_DTYPE, "depth": DEPTH_DTYPE, "hb": HEARTBEAT_DTYPE}
    # depth (made on first use, so that __init__ stays as it is): symbol -> DepthBook; snapshot
    # token -> the book that asked (None: Client.snapshot); answers to Client.snapshot by token
    _books: dict | None = None
    _snap_asked: dict | None = None
    _snaps: dict | None = None
    md_endpoint: str | None = None

    def __init__(self, orders: str = "tcp://127.0.0.1:5555", timeout: float = 30.0, context=None,
                 session: str | None = None, key: str | None = None, server_key: str | None = None):
        """session: a name that outlives this connection (offload/sessions.py): the records'
        msg_seq must then increase over the session's life, and a message sent again, after a
        timeout or a restart of the venue, is answered from the venue's records. With keys, a
        session is named after the key: NAME or NAME/ANYTHING.
        key, server_key: this client's secret key file (NAME.key_secret) and the gateway's public
        key file (server.key), both made by `tickbook keys`: CURVE on both sockets. A gateway that
        does not know the key never completes the handshake: submit() then times out."""
        self.ctx = context or zmq.Context.instance()
        self.timeout = timeout
        self._curve = None
        if (key is None) != (server_key is None):
            raise ValueError("key and server_key go together: this client's secret key file and the gateway's public one")
        if key is not None:
            pub, sec = load_certificate(key)
            if sec is None:
                raise ValueError(f"{key} holds no secret key: pass the NAME.key_secret file")
            self._curve = (pub, sec, load_certificate(server_key)[0])
        self.sock = self._socket(zmq.DEALER)
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

    def _socket(self, kind):
        s = self.ctx.socket(kind)
        if self._curve is not None:
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = self._curve
        return s

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
        elif kind == K_SNAP:
            self._snapped(f[1], struct.unpack("<q", f[2])[0], np.frombuffer(f[3], DEPTH_DTYPE))
        elif kind == K_ERR and self._snap_asked and f[1] in self._snap_asked:
            book = self._snap_asked.pop(f[1])
            if book is None:
                self._snaps[f[1]] = f[2].decode(errors="replace")
            elif book.token == f[1]:
                book.on_error(f[2].decode(errors="replace"))
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
            self.sub = self._socket(zmq.SUB)
            self.sub.setsockopt(zmq.LINGER, 0)
            self.sub.setsockopt(zmq.RCVHWM, 0)
            self.sub.connect(md)
            self.md_endpoint = md
        self._want = {s.encode() for s in symbols} or None
        for s in symbols or [""]:
            self.sub.setsockopt(zmq.SUBSCRIBE, s.encode())
        if symbols:
            self.sub.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_TOPIC)
        if wait:
            deadline = time.monotonic() + wait
            held = collections.deque()  # kept for market_data() (not in _md meanwhile: it reads _md first)
            try:
                while True:
                    m = self.market_data(max(0.0, deadline - time.monotonic()), heartbeats=True)
                    if m is None:
                        raise TimeoutError(f"no market data heartbeat from {md} within {wait} s")
                    if m.kind == "hb":
                        return
                    held.append(m)
            finally:
                self._md.extend(held)

    def market_data(self, timeout: float = 0.0, heartbeats: bool = False) -> MarketData | None:
        """The next market data message (None when none came within timeout s). Depth messages
        of a symbol with a depth_book are applied to it as they are read (and returned too)."""
        if self._snap_asked:
            self._pump(0)  # snapshot answers the depth books wait for
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
                m = MarketData("" if topic == HEARTBEAT_TOPIC else topic.decode(), k,
                               struct.unpack("<q", cnt)[0], np.frombuffer(payload, self.MD_DTYPES[k]))
                if k == "depth" and self._books and m.symbol in self._books:
                    self._books[m.symbol].on_depth(m.records)
                return m
            if time.monotonic() >= deadline:
                return None

    # -- L2 depth
    def request_snapshot(self, symbol: str | int, book: DepthBook | None = None) -> bytes:
        """Ask the gateway for one symbol's depth (its name, or its index); returns the token.
        The answer goes to `book`, or is kept for snapshot()."""
        if self._snap_asked is None:
            self._snap_asked, self._snaps = {}, {}
        self._n += 1
        token = struct.pack("<Q", self._n)
        self._snap_asked[token] = book
        self.sock.send_multipart([K_SNAP, token, str(symbol).encode()])
        return token

    def _snapped(self, token: bytes, seq: int, levels: np.ndarray) -> None:
        book = self._snap_asked.pop(token, False) if self._snap_asked else False
        if book is None:
            self._snaps[token] = (seq, levels)
        elif book is not False and book.token == token:  # (an answer a newer request replaced is dropped)
            book.on_snapshot(seq, levels)

    def snapshot(self, symbol: str | int, timeout: float | None = None) -> tuple[int, np.ndarray]:
        """(seq, levels): every level of the symbol (DEPTH_DTYPE, bids best first, then asks) as
        the gateway's book stands after exactly the depth messages numbered <= seq."""
        token = self.request_snapshot(symbol)
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while token not in self._snaps:
            left = deadline - time.monotonic()
            if left <= 0:
                self._snap_asked.pop(token, None)
                raise TimeoutError(f"no snapshot from the gateway within {wait} s")
            self._pump(max(1, int(left * 1000)))
        got = self._snaps.pop(token)
        if isinstance(got, str):
            raise GatewayError(got)
        return got

    def depth_book(self, symbol: str, md: str | None = None, max_buffer: int = 100_000,
                   timeout: float | None = None) -> DepthBook:
        """A local L2 book of `symbol` kept from the depth messages (offload/gateway/depth.py):
        subscribes to the symbol (on `md`, or the endpoint already subscribed to), asks for a
        snapshot and returns once it is applied (GatewayError for an unknown symbol). The book
        is kept up to date by every market_data() or book.update() call afterwards."""
        if self._books is None:
            self._books = {}
        if symbol in self._books:
            return self._books[symbol]
        wait = self.timeout if timeout is None else timeout
        if self.sub is None:
            self.subscribe([symbol], md or "tcp://127.0.0.1:5556", wait)
        elif self._want is not None and symbol.encode() not in self._want:
            want = sorted(w.decode() for w in self._want | {symbol.encode()})
            self.subscribe(want, self.md_endpoint, wait)
        book = self._books[symbol] = DepthBook(self, symbol, max_buffer)
        book.request()
        try:
            book.wait_synced(wait)
        except BaseException:
            del self._books[symbol]
            raise
        return book

    def update_depth(self, timeout: float = 0.0) -> int:
        """Read the snapshot answers and the market data that arrive within timeout s (what is
        there now at least), keeping the depth books; the market data read here is dropped.
        Returns the number of market data messages read."""
        n = 0
        deadline = time.monotonic() + timeout
        while True:
            m = self.market_data(0.0, heartbeats=True)
            if m is not None:
                n += 1
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return n
            self._pump(0)
            if self.sub.poll(max(1, min(10, int(left * 1000)))):
                continue

    def close(self) -> None:
        self.sock.close(0)
        if self.sub is not None:
            self.sub.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

