"""The pyzmq gateway: order entry (ROUTER) and market data (PUB) in front of an engine's rings.

    tickbook gateway --rings NAME [--orders tcp://*:5555] [--md tcp://*:5556] [--config venue.toml]
                     [--offload sw|hw|shadow] [--hw-rings NAME-hw]
                     [--spawn-engine [--engine-cpu N]] [--attach] [--journal DIR]
                     [--health [HOST:]PORT] ...

The gateway binds its sockets, creates (owns) the engine's ring segment NAME (`--attach`: uses
an existing one), and waits for an engine to attach and warm up (`tickbook engine --rings
NAME`, started beside it as in the Kubernetes pod, or by the gateway with `--spawn-engine`).
It then creates `/dev/shm/NAME.gateway.ready` and serves:

- ROUTER: each request is one message of 64-byte order records (`ORDER_DTYPE`) or CSV rows;
  the gateway checks it whole (a refused message gets an `ERR` reply naming the reason, none
  of its records enter the ring), stamps every record (`msg_seq` := the venue-wide message
  number, `ts` := the gateway's clock) and writes them into ring 0. A full ring stops the
  gateway reading its socket (back-pressure through ZeroMQ's queues), nothing is dropped.
- Events from ring 1 are routed: the sender of a message gets its events in one `EV` reply,
  with its own `msg_seq` restored, once the engine has processed all its records; events of
  a client's resting orders caused by someone else's message (maker fills, kill-switch
  cancels) go to the order's owner as unsolicited `REP` messages.
- PUB: trades and top-of-book changes per symbol (topic = symbol name), a heartbeat.

Offload (docs/offload.md#gateway): `sw` (default) as above; `hw`: the gateway creates the
hardware segment NAME-hw instead (same two-ring layout) and waits for `tickbook bridge
--rings NAME-hw` (its pid in the header), which takes the engine's place; `shadow`: both
segments, every stamped record into both order rings (only what fits in both: the slower side
sets the pace), clients get the engine's events, and the hardware's are compared with them
record by record; the first divergence is logged with its message, divergent records are
counted in the ready file's status lines and the exit report.

Frames, formats and error replies: docs/offload.md#gateway. SIGTERM/SIGINT: the gateway
finishes the requests in flight, refuses new ones, sends the engine its SHUTDOWN record
(owned segment; `--attach` leaves the engine running), removes the segment and exits 0.
Engine death: every request in flight and every new one for `--grace` seconds gets an
`ERR` reply, then the gateway exits with status 3 (a supervisor restarts both).

`Client` is the Python side (notebooks, tests, benchmarks).
"""

from __future__ import annotations

import argparse
import collections
import heapq
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass

import numpy as np
import zmq

from engine.compare import first_divergence
from engine.diagnostics import EXIT_ENGINE_GONE, EXIT_OK, EXIT_USAGE, process_logger
from engine.records import (
    ACTION_CANCEL,
    ACTION_KILL,
    ACTION_MALFORMED,
    ACTION_NEW,
    ACTION_REPLACE,
    ACTION_SHUTDOWN,
    EV_ACK,
    EV_CANCELED,
    EV_FILL,
    EV_REPLACED,
    EVENT_DTYPE,
    ORDER_DTYPE,
    PRICE_NONE,
    R_TAKER,
    RECORD_SIZE,
)
from offload.eventlog import EventLog
from offload.journal import JournalError, JournalWriter
from offload.sessions import NEW, Sessions, is_named
from offload.ring import C_PRODUCER_PID, HEAD, TAIL, RingError, Segment, pid_alive, ready_path, remove_file

DEFAULT_ORDERS = "tcp://*:5555"
DEFAULT_MD = "tcp://*:5556"
MAX_RECORDS = 1 << 16  # records in one request message
MAX_TOKEN = 64  # bytes of a request token
MAX_BACKLOG = 100_000  # replies queued for one client that does not read before it is cut off
ROUTER_HWM = 100_000
PUB_HWM = 1_000_000
VALID_ACTIONS = (ACTION_NEW, ACTION_CANCEL, ACTION_REPLACE, ACTION_KILL, ACTION_MALFORMED)
OFFLOAD_MODES = ("sw", "hw", "shadow")
SHADOW_FINISH = 10.0  # s the stopping gateway waits for the hardware to catch up (shadow)
_VALID_ACTION = np.zeros(256, bool)
_VALID_ACTION[list(VALID_ACTIONS)] = True
_VALID_SET = frozenset(VALID_ACTIONS)
SMALL = 16  # messages of at most this many records are handled in plain Python, not numpy
_ZERO8, _ZERO14 = bytes(8), bytes(14)
_TS, _SEQ = struct.Struct("<Q"), struct.Struct("<q")
_SEQ_ACCT = struct.Struct("<32xqI20x")  # msg_seq and account of an order record

# frame kinds
K_ORD, K_CSV = b"ORD", b"CSV"  # client -> gateway
K_EV, K_ERR, K_REP = b"EV", b"ERR", b"REP"  # gateway -> client
MD_TRADE, MD_TOP, MD_HEARTBEAT = b"trade", b"top", b"hb"
HEARTBEAT_TOPIC = b"\x00"  # no symbol name contains NUL: subscribers to a symbol never see it

# Market data payloads (little-endian, packed). Prices in 1e-8 units like the records.
TRADE_DTYPE = np.dtype(
    [
        ("seq", "<i8"),  # 0  event seq of the taker's FILL
        ("ts", "<u8"),  # 8  gateway clock (ns since the epoch) when published
        ("price", "<i8"),  # 16
        ("qty", "<u4"),  # 24
        ("symbol", "<u2"),  # 28 venue symbol index
        ("side", "u1"),  # 30 aggressor: 1 BUY, 2 SELL
        ("reserved", "u1"),  # 31
    ]
)
TOP_DTYPE = np.dtype(
    [
        ("seq", "<i8"),  # 0  last event seq applied
        ("ts", "<u8"),  # 8
        ("bid_price", "<i8"),  # 16 PRICE_NONE when the side is empty
        ("bid_qty", "<i8"),  # 24
        ("ask_price", "<i8"),  # 32
        ("ask_qty", "<i8"),  # 40
        ("bid_orders", "<u4"),  # 48
        ("ask_orders", "<u4"),  # 52
        ("symbol", "<u2"),  # 56
        ("reserved", "u1", (6,)),  # 58
    ]
)
HEARTBEAT_DTYPE = np.dtype([("ts", "<u8"), ("last_seq", "<i8"), ("engine_ready", "<i8")])
_TRADE = struct.Struct("<qQqIHBx")  # TRADE_DTYPE
_TOP = struct.Struct("<qQqqqqIIH6x")  # TOP_DTYPE
_HB = struct.Struct("<Qqq")  # HEARTBEAT_DTYPE
assert _TRADE.size == TRADE_DTYPE.itemsize == 32 and _TOP.size == TOP_DTYPE.itemsize == 64
assert _HB.size == HEARTBEAT_DTYPE.itemsize


_log = process_logger("gateway")  # one write a line: the engine may share the file


def hw_segment(rings: str) -> str:
    """The hardware segment the gateway creates for --offload hw|shadow (the bridge's --rings)."""
    return f"{rings}-hw"


def write_ready(path: str, lines=()) -> None:
    """Atomically: the pid on line 1, then status lines (`key value`)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write("".join(f"{x}\n" for x in (os.getpid(), *lines)))
    os.replace(tmp, path)


def read_status(path: str) -> dict[str, str]:
    """The status lines of a gateway's ready file as a dict (`pid` included)."""
    with open(path) as f:
        lines = f.read().splitlines()
    out = {"pid": lines[0]} if lines else {}
    for line in lines[1:]:
        k, _, v = line.partition(" ")
        out[k] = v
    return out


def _open_segment(name, attach, orders_cap, events_cap, timeout, start=0) -> Segment:
    """The gateway's side of a ring pair: created (owned) or, with attach, an existing one
    without a live producer; registered as ring 0's producer and ring 1's consumer. start:
    ring 0's first position (= the msg_seq the venue has reached: a recovered journal's)."""
    if attach:
        seg = Segment.attach(name, timeout=timeout, expect_rings=2)
        prod = int(seg.ring(0)._q[C_PRODUCER_PID])
        if prod and prod != os.getpid() and pid_alive(prod):
            seg.close()
            raise RingError(f"ring 0 of {name} already has a live producer (pid {prod})")
    else:
        seg = Segment.create(name, [("orders", orders_cap), ("events", events_cap)], starts=(start,))
    r_in, r_out = seg.ring(0), seg.ring(1)
    if r_in.recs.dtype != ORDER_DTYPE or r_out.recs.dtype != EVENT_DTYPE:
        seg.close()
        raise RingError(f"segment {name}: ring 0 must carry orders and ring 1 events")
    r_in.register("producer")
    r_out.register("consumer")
    return seg


class Shadow:
    """--offload shadow: the hardware segment. It gets every stamped record the engine gets (the
    gateway writes only what fits in both order rings), its events are read as they come and
    kept, with the engine's and the records, until both sides have finished a record; then
    they are compared (`engine.compare.first_divergence`) and forgotten."""

    def __init__(self, seg: Segment):
        self.seg = seg
        self.r_in, self.r_out = seg.ring(0), seg.ring(1)
        self.head = self.r_in.head()
        self.tail_cache = self.r_in.tail()
        self.pid = 0
        self.sw: list[np.ndarray] = []  # engine events not compared yet (copies)
        self.hw: list[np.ndarray] = []  # hardware events not compared yet
        self.recs: list[np.ndarray] = []  # stamped records not compared yet
        self.compared = self.divergent = 0
        self.first = None  # the first divergence, described
        self.first_seq = 0

    def start(self, venue_head: int) -> None:
        self.off = self.head - venue_head  # hardware ring position - venue position (0 unless --attach)
        self.start_seq = self.done_to = self.compared_to = venue_head

    def free(self, want: int) -> int:
        cap = self.r_in.capacity
        free = cap - (self.head - self.tail_cache)
        if free < want:
            self.tail_cache = int(self.r_in.ctrl[TAIL])
            free = cap - (self.head - self.tail_cache)
        return free

    def put(self, data, keep: bool = True) -> None:
        """Copy stamped records (bytes, free slots checked) into the order ring; HEAD not yet.
        keep: also remember them until their events are compared (not the SHUTDOWN record)."""
        r = self.r_in
        n = len(data) // RECORD_SIZE
        if keep:
            self.recs.append(np.frombuffer(bytes(data), ORDER_DTYPE))
        done = 0
        while done < n:
            slot = (self.head + done) & r.mask
            m = min(n - done, r.capacity - slot)
            r._b[slot * RECORD_SIZE : (slot + m) * RECORD_SIZE] = data[done * RECORD_SIZE : (done + m) * RECORD_SIZE]
            done += m
        self.head += n

    def publish(self) -> None:
        self.r_in.ctrl[HEAD] = self.head

    def drain(self) -> bool:
        """Read the hardware's events; records before `done_to` (venue msg_seq) are finished."""
        t = int(self.r_in.ctrl[TAIL])  # before ring 1, as for the engine
        r = self.r_out
        n = r.available()
        done = 0
        while done < n:
            view = r.peek(n - done)
            self.hw.append(view.copy())
            r.advance(len(view))
            done += len(view)
        self.tail_cache = max(self.tail_cache, t)
        t_venue = t - self.off
        moved = bool(n) or t_venue != self.done_to
        self.done_to = t_venue
        return moved

    def ended(self) -> bool:
        return self.r_out.closed() or (self.pid != 0 and not pid_alive(self.pid))

    @staticmethod
    def _cat(parts, dtype):
        return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, dtype)

    def compare(self, upto: int, log) -> None:
        """Compare the events of the records with msg_seq <= upto (finished on both sides)."""
        if upto <= self.compared_to:
            return
        sw, hw = self._cat(self.sw, EVENT_DTYPE), self._cat(self.hw, EVENT_DTYPE)
        recs = self._cat(self.recs, ORDER_DTYPE)
        i = int(np.searchsorted(sw["msg_seq"], upto, "right"))
        j = int(np.searchsorted(hw["msg_seq"], upto, "right"))
        k = int(np.searchsorted(recs["msg_seq"], upto, "right"))
        a, b, rr = sw[:i], hw[:j], recs[:k]
        if first_divergence(a, b, rr) is not None:  # find the records that differ, one by one
            ms = rr["msg_seq"]
            alo, ahi = np.searchsorted(a["msg_seq"], ms, "left"), np.searchsorted(a["msg_seq"], ms, "right")
            blo, bhi = np.searchsorted(b["msg_seq"], ms, "left"), np.searchsorted(b["msg_seq"], ms, "right")
            for q in range(len(rr)):
                d = first_divergence(a[alo[q] : ahi[q]], b[blo[q] : bhi[q]], rr[q : q + 1])
                if d is None:
                    continue
                self.divergent += 1
                if self.first is None:
                    self.first_seq = int(ms[q])
                    self.first = f"shadow: engine (sw) and hardware (hw) differ on message msg_seq={int(ms[q])}: {d}"
                    log(self.first)
        self.compared += len(rr)
        self.compared_to = upto
        self.sw = [sw[i:]] if i < len(sw) else []
        self.hw = [hw[j:]] if j < len(hw) else []
        self.recs = [recs[k:]] if k < len(recs) else []


def shard_of(symbol: str, count: int) -> int:
    """docs/deploy.md#scale-out: crc32(UTF-8 name) mod count."""
    return zlib.crc32(symbol.encode()) % count


# --------------------------------------------------------------------------- the L2 view


class MarketDataBook:
    """The gateway's copy of the book, kept only to publish market data (`top` messages): per-symbol
    price levels rebuilt from the event stream alone (the engine publishes no book). An order
    rests once the events of the message that placed it are all seen and it is still alive, so
    a taker never shows in the book and no transient crossed book is published. Prices in 1e-8
    units."""

    def __init__(self, n_symbols: int):
        self.orders: dict[int, list] = {}  # order_id -> [sym, side, price, leaves, resting]
        self.levels = [({}, {}) for _ in range(n_symbols)]  # [sym][side-1]: price -> [qty, orders]
        self.heaps = [([], []) for _ in range(n_symbols)]  # bids as -price, asks as price
        self.open_pos = -1  # message whose events are being applied
        self.candidates: list[int] = []  # orders placed/moved by that message
        self.dirty: set[int] = set()
        self.last_seq = 0

    def seed(self, orders, last_seq: int) -> None:
        """Start from a recovered book: (order_id, symbol, side, price, leaves), resting."""
        for oid, sym, side, price, leaves in orders:
            self.orders[oid] = [sym, side, price, leaves, True]
            self._level_add(sym, side, price, leaves)
        self.last_seq = last_seq

    def _level_add(self, sym, side, price, qty):
        lv = self.levels[sym][side - 1]
        cur = lv.get(price)
        if cur is None:
            lv[price] = [qty, 1]
            hp = self.heaps[sym][side - 1]
            heapq.heappush(hp, -price if side == 1 else price)
            if len(hp) > 4 * len(lv) + 64:  # stale entries of removed levels: rebuild
                hp[:] = [-p if side == 1 else p for p in lv]
                heapq.heapify(hp)
        else:
            cur[0] += qty
            cur[1] += 1
        self.dirty.add(sym)

    def _level_sub(self, sym, side, price, qty, gone):
        lv = self.levels[sym][side - 1]
        cur = lv[price]
        cur[0] -= qty
        if gone:
            cur[1] -= 1
            if cur[1] == 0:
                del lv[price]
        self.dirty.add(sym)

    def event(self, pos, seq, kind, oid, sym, side, price, qty, leaves):
        if pos != self.open_pos:
            self.finish()
            self.open_pos = pos
        self.last_seq = seq
        if kind == EV_ACK:
            if price != PRICE_NONE and sym < len(self.levels):  # MARKET orders never rest
                self.orders[oid] = [sym, side, price, qty, False]
                self.candidates.append(oid)
        elif kind == EV_FILL:
            o = self.orders.get(oid)
            if o is None:
                return
            if o[4]:
                self._level_sub(o[0], o[1], o[2], qty, leaves == 0)
            o[3] = leaves
            if leaves == 0:
                del self.orders[oid]
        elif kind == EV_CANCELED:
            o = self.orders.pop(oid, None)
            if o is not None and o[4]:
                self._level_sub(o[0], o[1], o[2], o[3], True)
        elif kind == EV_REPLACED:
            o = self.orders.get(oid)
            if o is not None:
                if o[4]:
                    self._level_sub(o[0], o[1], o[2], o[3], True)
                o[2], o[3], o[4] = price, qty, False
                self.candidates.append(oid)

    def apply(self, rows: list, t: int) -> int:
        """Apply events (rows of 8 int64 words) while their message (ring position
        msg_seq - 1) is < t, i.e. finished; return how many were applied."""
        for j, w in enumerate(rows):
            pos = w[1] - 1
            if pos >= t:
                return j
            w6 = w[6]
            self.event(pos, w[0], (w6 >> 48) & 0xFF, w[2], (w6 >> 32) & 0xFFFF, (w6 >> 56) & 0xFF, w[4],
                       w[5] & 0xFFFFFFFF, (w[5] >> 32) & 0xFFFFFFFF)
        return len(rows)

    def finish(self):
        """The open message is complete: what it placed and is still alive rests now."""
        for oid in self.candidates:
            o = self.orders.get(oid)
            if o is not None and not o[4] and o[3] > 0:
                o[4] = True
                self._level_add(o[0], o[1], o[2], o[3])
        self.candidates.clear()
        self.open_pos = -1

    def top(self, sym) -> tuple:
        out = []
        for s in (0, 1):
            lv, hp = self.levels[sym][s], self.heaps[sym][s]
            while hp and (-hp[0] if s == 0 else hp[0]) not in lv:
                heapq.heappop(hp)
            if hp:
                p = -hp[0] if s == 0 else hp[0]
                out += [p, lv[p][0], lv[p][1]]
            else:
                out += [PRICE_NONE, 0, 0]
        return tuple(out)


# --------------------------------------------------------------------------- the gateway


class Request:
    __slots__ = ("client", "token", "start", "end", "cseqs", "accts", "chunks", "cut")

    def __init__(self, client, token, start, n, cseqs, accts):
        self.client, self.token, self.start, self.end = client, token, start, start + n
        self.cseqs, self.accts, self.chunks = cseqs, accts, []
        self.cut = None  # why the records from `end` on were refused (a failed journal write)


class ClientState:
    __slots__ = ("requests", "records", "events", "errors", "backlog", "gone", "undeliverable")

    def __init__(self):
        self.requests = self.records = self.events = self.errors = self.undeliverable = 0
        self.backlog = collections.deque()
        self.gone = None


class Gateway:
    def __init__(self, rings: str, venue, orders_addr=DEFAULT_ORDERS, md_addr=DEFAULT_MD, attach=False,
                 orders_cap=1 << 14, events_cap=1 << 16, journal=None, shard=None, grace=1.0,
                 engine_timeout=0.0, heartbeat=1.0, engine_cmd=None, log=None, spin=0.0, offload="sw",
                 hw_rings=None, fsync="batch", snapshot_every=500_000):
        if offload not in OFFLOAD_MODES:
            raise ValueError(f"unknown offload mode {offload!r}: {', '.join(OFFLOAD_MODES)}")
        if offload == "hw" and engine_cmd is not None:
            raise ValueError("--offload hw runs no engine: start `tickbook bridge --rings NAME-hw` beside the gateway")
        self.rings, self.venue = rings, venue
        self.offload = offload
        self.hw_rings = hw_rings or hw_segment(rings)
        # the segment whose events the clients get: the engine's (sw, shadow) or the hardware's (hw)
        self.main_rings = self.hw_rings if offload == "hw" else rings
        self.backend = "bridge" if offload == "hw" else "engine"
        self.names = [s.name for s in venue.symbols]
        self.grace, self.engine_timeout, self.heartbeat = grace, engine_timeout, heartbeat
        self.spin = spin  # s of busy-polling the socket after the last activity before sleeping
        self.log = log or _log
        self.owned = None
        if shard is not None:
            k, n = shard
            self.owned = np.array([shard_of(s, n) == k for s in self.names], bool)
            self.shard = shard
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # an unroutable reply raises, never vanishes
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a named session that reconnects takes its name over
        self.router.setsockopt(zmq.SNDHWM, ROUTER_HWM)
        self.router.setsockopt(zmq.RCVHWM, ROUTER_HWM)
        self.router.setsockopt(zmq.LINGER, 2000)
        self.router.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        self.router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        self.pub.setsockopt(zmq.LINGER, 500)
        self.seg = None
        self.sh = None  # Shadow (--offload shadow): the hardware segment fed the same records
        self.engine = None
        self.journal = self.events_log = self.sessions = None
        self.journal_dir, self.snapshot_every, self.snapshotter = journal, snapshot_every, None
        try:
            recovered = None
            if journal:  # first: a torn tail is cut and a foreign journal refused before anything starts
                from engine.snapshot import snapshots_in

                # the newest snapshot's name is enough here: recovery checks the snapshot, and the
                # journal after whichever snapshot it takes, itself
                newest = snapshots_in(journal)
                self.journal = JournalWriter(journal, venue.digest(), fsync=fsync, log=self.log,
                                             trusted=newest[0][0] if newest else 0)
                self.events_log = EventLog(journal)
                if not attach and self.journal.next_msg_seq > 1:
                    recovered = self._recover(journal, venue, offload)
                self.sessions = Sessions(self.journal, self.events_log)
            self.router.bind(orders_addr)
            self.pub.bind(md_addr)
            self.orders_endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
            self.md_endpoint = self.pub.getsockopt_string(zmq.LAST_ENDPOINT)
            self.ready_file = ready_path(rings, "gateway")
            remove_file(self.ready_file)  # a stale one from a killed predecessor
            self.seg = _open_segment(self.main_rings, attach, orders_cap, events_cap, max(engine_timeout, 5.0),
                                     start=recovered.msg_seq if recovered is not None else 0)
            self.r_in, self.r_out = self.seg.ring(0), self.seg.ring(1)
            if offload == "shadow":
                self.sh = Shadow(_open_segment(self.hw_rings, attach, orders_cap, events_cap,
                                               max(engine_timeout, 5.0)))
            if engine_cmd is not None:
                self.engine = subprocess.Popen(engine_cmd)
        except BaseException:
            self.close()
            raise
        self.attach = attach
        self.last_ts = 0
        self.head = self.r_in.head()
        if self.journal is not None and attach:
            try:
                self.journal.start_at(self.head + 1)
            except BaseException:
                self.close()
                raise
        self.published = self.head  # records before `published` are journaled and visible to the engine
        self.snapshot_from = self.head  # the journal position of the last snapshot started
        self.tail_cache = self.r_in.tail()
        self.t_seen = self.tail_cache
        self.last_stamped = self.head  # msg_seq of the last record stamped (= its ring position + 1)
        if self.sh is not None:
            self.sh.start(self.head)
        self.book = MarketDataBook(len(self.names))
        if recovered is not None:
            from engine.state import C_SEQ
            from offload.recovery import resting_orders

            self.book.seed(resting_orders(recovered.state, venue), int(recovered.state.ctr[C_SEQ]))
            if len(recovered.records):
                self.last_ts = int(recovered.records["ts"][-1])  # the clock never goes back: rate buckets
        self.book_q: collections.deque[np.ndarray] = collections.deque()
        self.topics = [n.encode() for n in self.names]
        self.pending: collections.deque[Request] = collections.deque()
        self.stalled = None  # (request, its records' bytes (keeps the frame alive), next index, count)
        self.owner: dict[int, bytes] = {}  # order_id -> client that placed it
        if recovered is not None:
            self.owner.update(recovered.owners)  # named sessions' resting orders: reports still reach them
        self.clients: dict[bytes, ClientState] = {}
        self.backlogged: set[bytes] = set()
        self.last_top: dict[int, tuple] = {}
        self.md_count: dict[bytes, int] = collections.defaultdict(int)
        self.state = "waiting"  # waiting -> serving -> draining | engine-gone -> done
        self.stop_reason = None
        self.stop_requested = False  # SIGTERM/SIGINT, even after the engine has gone
        self.engine_stopped_cleanly = False  # it closed its event ring (a stop, not a death)
        self.exit_status = EXIT_OK
        self.journal_failing = None  # while writes fail: when the last failure was logged
        self.engine_pid = 0
        self.status_at = 0.0  # when the ready file's status lines were last written
        self.housekept_at = time.monotonic()
        self.status_key = None
        self.orphans = 0
        self.stats = collections.Counter()
        self.poller = zmq.Poller()
        self.poller.register(self.router, zmq.POLLIN)

    def _recover(self, journal, venue, offload):
        """The venue as the journal left it: the engine's state handed over as a snapshot of
        the journal's end (offload/recovery.py); the engine loads it when it sees where ring 0
        starts."""
        if offload != "sw":
            raise ValueError(f"{journal} holds a venue to recover, and only the engine can take it over "
                             f"(--offload sw): the hardware book cannot load a snapshot")
        from offload.recovery import hand_over, recover  # the snapshot and state modules: only recovery needs them

        r = recover(journal, venue, self.log)
        # the events first, synced: the log must reach every message that a snapshot covers
        ev = self.events_log
        if ev.last_msg_seq < r.snapshot_seq:  # it lost its tail (a machine crash): keep only what follows
            ev.cut_after(0)
        ev.cut_after(r.snapshot_seq)
        ev.append(r.events)
        ev.sync()
        hand_over(journal, venue, r)
        self.log(f"recovered {journal} in {r.seconds:.2f} s: snapshot at msg_seq {r.snapshot_seq:,} and "
                 f"{len(r.records):,} journaled records after it; the venue continues after msg_seq {r.msg_seq:,}")
        return r

    # ---- replies

    def _client(self, ident: bytes) -> ClientState:
        cs = self.clients.get(ident)
        if cs is None:
            cs = self.clients[ident] = ClientState()
        return cs

    def _send(self, ident: bytes, frames: list, n_events: int = 0) -> None:
        cs = self._client(ident)
        cs.events += n_events
        if cs.gone is not None:
            cs.undeliverable += n_events
            self.stats["undeliverable messages"] += 1
            return
        if cs.backlog:
            cs.backlog.append((frames, n_events))
            if len(cs.backlog) > MAX_BACKLOG:
                self._cut_off(ident, cs, f"more than {MAX_BACKLOG} replies queued (the client does not read)")
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
            self._cut_off(ident, cs, "disconnected")

    def _cut_off(self, ident, cs, why):
        lost = sum(n for _, n in cs.backlog)
        cs.undeliverable += lost
        self.stats["undeliverable messages"] += len(cs.backlog)
        cs.backlog.clear()
        self.backlogged.discard(ident)
        cs.gone = why
        self.log(f"client {ident.hex()} {why}: its replies and reports are undeliverable until it "
                 f"sends again (counted, {cs.undeliverable} events so far); its resting orders stay in the book")

    def _flush_backlogs(self) -> bool:
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
                    self._cut_off(ident, cs, "disconnected")
                    break
                cs.backlog.popleft()
                moved = True
            if not cs.backlog:
                self.backlogged.discard(ident)
        return moved

    def _error(self, ident, token, reason, events=None, seqs=None) -> None:
        self._client(ident).errors += 1
        self.stats["errors"] += 1
        ev = events if events is not None else b""
        sq = seqs if seqs is not None else b""
        self._send(ident, [K_ERR, token, reason.encode(), ev, sq], len(ev) // RECORD_SIZE)

    # ---- requests

    def _parse(self, frames):
        """(ident, token, data, n): data = the n records' bytes (a zero-copy view of the
        frame for ORD), or None after an ERR reply."""
        ident = frames[0].bytes
        body = frames[1:]
        if len(body) == 1:
            token, kind, payload = b"", K_ORD, body[0]
        elif len(body) == 3:
            kind, token, payload = body[0].bytes, body[1].bytes, body[2]
        else:
            self._error(ident, b"", f"expected frames [ORD|CSV, token, payload] or one frame of records; "
                                    f"got {len(body)} frames")
            return None
        if len(token) > MAX_TOKEN:
            self._error(ident, token[:MAX_TOKEN], f"token of {len(token)} bytes: at most {MAX_TOKEN}")
            return None
        if kind == K_ORD:
            data = payload.buffer
            n_bytes = len(data)
            if n_bytes == 0 or n_bytes % RECORD_SIZE:
                self._error(ident, token, f"message of {n_bytes} bytes is not a whole number of {RECORD_SIZE}-byte "
                                          "order records (ORDER_DTYPE, docs/protocol.md): refused")
                return None
            n = n_bytes // RECORD_SIZE
        elif kind == K_CSV:
            from engine.codec import FlowError, parse_flow_bytes

            try:
                recs = parse_flow_bytes(payload.bytes, self.venue, "CSV message").orders
            except FlowError as e:
                self._error(ident, token, str(e))
                return None
            if len(recs) == 0:
                self._error(ident, token, "CSV message has a header but no rows")
                return None
            data, n = recs.tobytes(), len(recs)
        else:
            self._error(ident, token, f"unknown message kind {kind[:16]!r}: ORD (records) or CSV (rows)")
            return None
        if n > MAX_RECORDS:
            self._error(ident, token, f"{n} records in one message: at most {MAX_RECORDS}")
            return None
        why = self._validate(data, n)
        if why:
            self._error(ident, token, why + ": message refused, none of its records was sent")
            return None
        return ident, token, data, n

    def _refusal(self, i, action, sym) -> str | None:
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

    def _validate(self, data, n) -> str | None:
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

    def _accept(self, frames) -> None:
        cs = self.clients.get(frames[0].bytes)
        if cs is not None and cs.gone is not None:  # a named session reconnected: deliver to it again
            self.log(f"client {frames[0].bytes.hex()} is back (it had {cs.gone}): its replies are delivered again")
            cs.gone = None
        parsed = self._parse(frames)
        if parsed is None:
            return
        ident, token, data, n = parsed
        if self.state != "serving":
            why = {"waiting": "engine not ready yet (warming up): retry later",
                   "draining": "gateway shutting down: message refused",
                   }.get(self.state, f"engine gone ({self.stop_reason}): message refused")
            self._error(ident, token, why)
            return
        if n <= SMALL:
            pairs = list(_SEQ_ACCT.iter_unpack(data))
            cseqs, accts = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            recs = np.frombuffer(data, ORDER_DTYPE)
            cseqs, accts = recs["msg_seq"].tolist(), recs["account"].tolist()
        if self.sessions is not None and is_named(ident):
            verdict = self.sessions.classify(ident, cseqs)
            if verdict != NEW:
                if isinstance(verdict, str):
                    self._error(ident, token, verdict)
                else:
                    self._resend(ident, token, verdict[1], verdict[2], cseqs, accts)
                return
            self.sessions.accepted(ident, cseqs)
        cs = self._client(ident)
        cs.requests += 1
        cs.records += n
        self.stats["requests"] += 1
        self.stats["records"] += n
        req = Request(ident, token, self.head, n, cseqs, accts)
        self.pending.append(req)
        self.stalled = (req, data, 0, n)
        self._push_stalled()

    def _resend(self, ident, token, lo, hi, cseqs, accts) -> None:
        """A named session's message sent again: answered from the record once it is finished
        (offload/sessions.py), never executed twice."""
        self.stats["resends"] += 1
        if hi > self.t_seen:
            self.sessions.waiting.append((ident, token, lo, hi, cseqs, accts))
            return
        got = self.sessions.answer(lo, hi, cseqs, accts)
        if isinstance(got, str):
            self._error(ident, token, got)
        else:
            self._send(ident, [K_EV, token, got[0], got[1]], len(got[0]) // RECORD_SIZE)

    def _refuse_waiting_resends(self, why: str) -> None:
        if self.sessions is not None:
            for ident, token, lo, hi, _, _ in self.sessions.due(1 << 62):
                self._error(ident, token, f"{why} before the message sent again (msg_seq {lo}..{hi}) finished: "
                                          "it is journaled; send it again when the venue is back")

    def _push_stalled(self) -> bool:
        """Copy what fits of the stalled request into ring 0 and stamp it. Without a journal
        HEAD is published at once; with one, `_publish` does it after the group commit."""
        req, data, i, total = self.stalled
        n = total - i
        r = self.r_in
        cap = r.capacity
        free = cap - (self.head - self.tail_cache)
        if free < n:
            self.tail_cache = int(r.ctrl[TAIL])
            free = cap - (self.head - self.tail_cache)
        sh = self.sh
        if sh is not None:  # shadow: only what fits in both order rings (the slower side sets the pace)
            staged = self.head - self.published  # copied into the hardware ring at publish time
            free = min(free, sh.free(n + staged) - staged)
        k = min(free, n)
        if k <= 0:
            return False
        ts = max(time.time_ns(), self.last_ts)
        self.last_ts = ts
        mv = r._b
        done = 0
        while done < k:
            s = (self.head + done) & r.mask
            m = min(k - done, cap - s)
            off, src = s * RECORD_SIZE, (i + done) * RECORD_SIZE
            mv[off : off + m * RECORD_SIZE] = data[src : src + m * RECORD_SIZE]
            g = self.head + done + 1
            if m <= SMALL:
                for q in range(m):
                    _TS.pack_into(mv, off + q * RECORD_SIZE, ts)
                    _SEQ.pack_into(mv, off + q * RECORD_SIZE + 32, g + q)
            else:
                dst = r.recs[s : s + m]
                dst["msg_seq"] = np.arange(g, g + m, dtype=np.int64)
                dst["ts"] = ts
            done += m
        if self.journal is not None:  # one batch for the whole push: a crash keeps all of it or none
            pieces = self._slots(self.head, k)
            stamped = pieces[0] if len(pieces) == 1 else b"".join(pieces)  # (wrapped around the ring's end)
            self.journal.append(req.client, stamped, req.cseqs[i : i + k])
        self.head += k
        self.last_stamped = self.head
        if self.journal is None:
            self._publish()
        if i + k == total:
            self.stalled = None
        else:
            self.stalled = (req, data, i + k, total)
            self.stats["stalls"] += 1
        return True

    def _publish(self) -> None:
        """Make the stamped records visible: journaled first (one write and, by the fsync
        policy, one sync for everything read this turn: group commit), then the hardware's
        copy (shadow) and ring 0's HEAD. The engine never sees a record the journal lacks."""
        if self.head == self.published:
            return
        if self.journal is not None:
            try:
                self.journal.commit()
            except JournalError as e:
                self._journal_failed(str(e))
                return
            if self.journal_failing is not None:
                self.journal_failing = None
                self.log(f"journal writes succeed again ({self.stats['journal failures']:,} failed writes refused)")
        sh = self.sh
        if sh is not None:
            for piece in self._slots(self.published, self.head - self.published):
                sh.put(piece)
        self.published = self.head
        self.r_in.ctrl[HEAD] = self.head  # x86 TSO: published after the slots (docs/offload.md)
        if sh is not None:
            sh.publish()

    def _slots(self, pos: int, n: int) -> list:
        """Ring 0's records at positions pos .. pos + n - 1 as memoryviews: one, or two when
        they wrap around the ring's end."""
        r = self.r_in
        s = pos & r.mask
        first = min(n, r.capacity - s)
        pieces = [r._b[s * RECORD_SIZE : (s + first) * RECORD_SIZE]]
        if first < n:
            pieces.append(r._b[: (n - first) * RECORD_SIZE])
        return pieces

    def _journal_failed(self, why: str) -> None:
        """The records stamped since the last publish are not journaled: take them back (HEAD
        never moved past them) and refuse them. A message partly published before keeps that
        part, which the engine executes; its reply is an ERR that says so."""
        lost = self.published
        self.head = self.last_stamped = lost
        self.stalled = None
        self.stats["journal failures"] += 1
        now = time.monotonic()
        if self.journal_failing is None or now - self.journal_failing >= 1.0:  # one line a second at most
            n = self.stats["journal failures"]
            self.log(f"journal write failed ({n:,} failed writes so far), records from msg_seq {lost + 1} refused: {why}")
            self.journal_failing = now
        keep: collections.deque[Request] = collections.deque()
        for req in self.pending:
            if req.end <= lost:
                keep.append(req)
            elif req.start >= lost:
                self._error(req.client, req.token, f"journal write failed ({why}): message refused, "
                                                   "none of its records was executed")
            else:
                req.cut = (f"journal write failed ({why}): {lost - req.start} of {req.end - req.start} records of "
                           "this message were executed (their events are attached), the rest were refused")
                req.end = lost
                keep.append(req)
        self.pending = keep
        if self.sessions is not None:
            self.sessions.forget_unjournaled()

    # ---- events

    def _drain(self) -> bool:
        work = self._drain_main()
        if self.sh is not None:
            work |= self.sh.drain()
            self._compare()
        return work

    def _drain_main(self) -> bool:
        t = int(self.r_in.ctrl[TAIL])  # before ring 1: every event of a record < t is readable now
        r = self.r_out
        n = r.available()
        if t == self.t_seen and not n:
            return False
        self._book_catch_up(t)
        done = 0
        while done < n:
            view = r.peek(n - done)
            rows = view.view(np.int64).reshape(-1, 8).tolist()
            if self.sh is not None:
                self.sh.sw.append(view.copy())
            if self.events_log is not None:
                self._log_events(view)
            self._route(view, rows)
            self._feed_book(rows, t)
            r.advance(len(rows))
            done += len(rows)
        self.t_seen = t
        self.tail_cache = max(self.tail_cache, t)
        self._complete(t)
        self.book.finish()  # the book applies only events of messages < t: all complete
        self._publish_tops()
        return True

    def _log_events(self, view) -> None:
        try:
            self.events_log.append(view)
        except OSError as e:  # the fates of later messages are lost, not the venue: go on without
            self.log(f"event log: {e}: resent messages after msg_seq {self.events_log.last_msg_seq} "
                     "will be answered without their events")
            self.events_log.close()
            self.events_log = self.sessions.events = None

    def _compare(self) -> None:
        sh = self.sh
        before = sh.first
        sh.compare(min(self.t_seen, sh.done_to, self.last_stamped), self.log)
        if sh.first is not before:
            self._write_status(time.monotonic())  # the first divergence shows at once

    def _feed_book(self, rows, t) -> None:
        """Apply events of finished messages only (a message's events may straddle two
        publishes of the event ring when it is nearly full); keep the rest for later."""
        if self.book_q:
            self.book_q.append(rows)
            return
        k = self.book.apply(rows, t)
        if k < len(rows):
            self.book_q.append(rows[k:])

    def _book_catch_up(self, t) -> None:
        q = self.book_q
        while q:
            k = self.book.apply(q[0], t)
            if k < len(q[0]):
                q[0] = q[0][k:]
                return
            q.popleft()

    def _route(self, view, rows) -> None:
        """Each event to the client(s) concerned. Rows are the events as 8 int64 words
        (layout in docs/protocol.md): word 1 msg_seq, 2 order_id, 5 qty | leaves << 32,
        6 account | symbol << 32 | kind << 48 | side << 56, 7 reason in the low byte."""
        pending, owner = self.pending, self.owner
        raw = view.tobytes()
        i = 0
        req = pending[0] if pending else None
        to_req: dict[int, list] = {}
        to_owner: dict[bytes, list] = {}
        trades: dict[int, list] = {}
        ts = 0
        for j, w in enumerate(rows):
            pos = w[1] - 1
            while req is not None and pos >= req.end:
                i += 1
                req = pending[i] if i < len(pending) else None
            w6 = w[6]
            kind, oid = (w6 >> 48) & 0xFF, w[2]
            sender = rc = None  # rc: the client whose message caused the event
            o = j * RECORD_SIZE
            if req is not None and pos >= req.start:
                rc = req.client
                if w6 & 0xFFFFFFFF == req.accts[pos - req.start]:
                    sender = rc
                    to_req.setdefault(i, []).append(raw[o : o + 8] + _SEQ.pack(req.cseqs[pos - req.start]) + raw[o + 16 : o + 64])
                # else: another account's order (the maker of a fill)
            else:
                self.orphans += 1
            if kind == EV_ACK:
                if sender is not None:
                    owner[oid] = sender
            elif kind == EV_FILL or kind == EV_CANCELED or kind == EV_REPLACED:
                c = owner.get(oid)
                if c is not None and c != sender:
                    if c == rc:  # the maker is another account of the same client: in the reply
                        to_req.setdefault(i, []).append(raw[o : o + 8] + _SEQ.pack(req.cseqs[pos - req.start]) + raw[o + 16 : o + 64])
                    else:
                        to_owner.setdefault(c, []).append(raw[o : o + 8] + _ZERO8 + raw[o + 16 : o + 64])
                if kind == EV_CANCELED or (kind == EV_FILL and (w[5] >> 32) & 0xFFFFFFFF == 0):
                    owner.pop(oid, None)
                if kind == EV_FILL and w[7] & 0xFF == R_TAKER:
                    ts = ts or time.time_ns()
                    sym = (w6 >> 32) & 0xFFFF
                    trades.setdefault(sym, []).append(
                        _TRADE.pack(w[0], ts, w[4], w[5] & 0xFFFFFFFF, sym, (w6 >> 56) & 0xFF))
        for i, pieces in to_req.items():
            pending[i].chunks += pieces
        for ident, pieces in to_owner.items():
            self.stats["reports"] += 1
            self._send(ident, [K_REP, b"".join(pieces)], len(pieces))
        for sym, recs in trades.items():
            self._md(sym, MD_TRADE, b"".join(recs))

    def _complete(self, t) -> None:
        pending = self.pending
        while pending and pending[0].end <= t:
            req = pending.popleft()
            seqs = np.arange(req.start + 1, req.end + 1, dtype=np.int64)
            if req.cut is not None:
                self._error(req.client, req.token, req.cut, b"".join(req.chunks), seqs)
                continue
            self._send(req.client, [K_EV, req.token, b"".join(req.chunks), seqs], len(req.chunks))
        if self.sessions is not None:
            for ident, token, lo, hi, cseqs, accts in self.sessions.due(t):
                self._resend(ident, token, lo, hi, cseqs, accts)

    # ---- market data

    def _md(self, sym: int, kind: bytes, payload: bytes) -> None:
        topic = self.topics[sym] if sym < len(self.topics) else b"?"
        self.md_count[topic] += 1
        self.pub.send_multipart([topic, kind, _SEQ.pack(self.md_count[topic]), payload], copy=False)

    def _publish_tops(self) -> None:
        book = self.book
        if not book.dirty:
            return
        ts = time.time_ns()
        for sym in sorted(book.dirty):
            top = book.top(sym)
            if self.last_top.get(sym) == top:
                continue
            self.last_top[sym] = top
            bp, bq, bn, ap, aq, an = top
            self._md(sym, MD_TOP, _TOP.pack(book.last_seq, ts, bp, bq, ap, aq, bn, an, sym))
        book.dirty.clear()

    def _heartbeat(self) -> None:
        hb = _HB.pack(time.time_ns(), self.book.last_seq, int(self.state == "serving"))
        self.md_count[HEARTBEAT_TOPIC] += 1
        self.pub.send_multipart([HEARTBEAT_TOPIC, MD_HEARTBEAT, _SEQ.pack(self.md_count[HEARTBEAT_TOPIC]), hb])

    # ---- the engine

    def _engine_alive(self) -> bool:
        """The server of the main segment (engine, or the bridge in hw) and, in shadow, the bridge."""
        if self.engine is not None and self.engine.poll() is not None:
            return False
        if self.sh is not None and self.sh.pid and not pid_alive(self.sh.pid):
            return False
        return self.engine_pid == 0 or pid_alive(self.engine_pid)

    def _ended(self) -> bool:
        """Every server closed its event ring or died: what the rings hold now is final."""
        main = self.r_out.closed() or (self.engine_pid != 0 and not pid_alive(self.engine_pid))
        return main and (self.sh is None or self.sh.ended())

    def _check_engine(self, now) -> None:
        sh, who = self.sh, self.backend
        if self.state == "waiting":
            pid = self.seg.peer_pid
            main_ok = pid and (self.engine is None or pid == self.engine.pid)
            if main_ok and (sh is None or sh.seg.peer_pid):
                self.engine_pid = pid
                self.state = "serving"
                also = ""
                if sh is not None:
                    sh.pid = sh.seg.peer_pid
                    also = f", bridge pid {sh.pid} ready on {self.hw_rings} (shadow: every event compared)"
                self._write_status(now)
                self.log(f"{who} pid {pid} ready on {self.main_rings}{also}: serving orders on "
                         f"{self.orders_endpoint}, market data on {self.md_endpoint} (--offload {self.offload})")
            elif self.engine is not None and self.engine.poll() is not None:
                self._engine_gone(f"the engine it started exited with status {self.engine.returncode} before it was ready")
            elif self.engine_timeout and now - self.t_start > self.engine_timeout:
                missing = [f"{who} on {self.main_rings}"] if not main_ok else []
                if sh is not None and not sh.seg.peer_pid:
                    missing.append(f"bridge on {self.hw_rings}")
                self._engine_gone(f"no {' and no '.join(missing)} became ready within {self.engine_timeout} s")
        elif self.state == "serving":  # (while draining, an engine that ends is expected)
            if self.engine is not None and self.engine.poll() is not None or not pid_alive(self.engine_pid):
                self._engine_gone(f"{who} pid {self.engine_pid} exited")
            elif self.r_out.closed():
                self.engine_stopped_cleanly = sh is None
                self._engine_gone(f"{who} pid {self.engine_pid} stopped (closed its event ring)")
            elif sh is not None and not pid_alive(sh.pid):
                self._engine_gone(f"bridge pid {sh.pid} on {self.hw_rings} exited (shadow needs both)")
            elif sh is not None and sh.r_out.closed():
                self._engine_gone(f"bridge pid {sh.pid} on {self.hw_rings} stopped (closed its event ring)")
            elif now - self.status_at >= 1.0:
                self._write_status(now)

    def _status_lines(self) -> list[str]:
        lines = [f"offload {self.offload}", f"segments {self.main_rings}" + (f" {self.hw_rings}" if self.sh else "")]
        sh = self.sh
        if sh is not None:
            lines += [f"stamped {self.last_stamped}", f"compared {sh.compared}", f"divergent {sh.divergent}"]
            if sh.first is not None:
                lines.append(f"first_divergence msg_seq={sh.first_seq}: {sh.first.splitlines()[0]}")
        return lines

    def _write_status(self, now) -> None:
        """The ready file: the gateway's pid on line 1, then `key value` lines (docs/offload.md)."""
        self.status_at = now
        key = None if self.sh is None else (self.last_stamped, self.sh.compared, self.sh.divergent)
        if self.state != "serving" or (key == self.status_key and os.path.exists(self.ready_file)):
            return
        self.status_key = key
        write_ready(self.ready_file, self._status_lines())

    def _engine_gone(self, why: str) -> None:
        self._drain()
        self._drain()  # after CLOSED or death nothing more comes: what is there is final
        t = int(self.r_in.ctrl[TAIL])
        for req in self.pending:
            ev = b"".join(req.chunks)
            done = max(0, min(t, req.end) - req.start)
            rest = ("the rest are journaled and run when the venue recovers" if self.journal is not None
                    else "the rest were not")
            self._error(req.client, req.token,
                        f"engine gone ({why}): {done} of {req.end - req.start} records of this message were processed "
                        f"(their events are attached), {rest}",
                        ev, np.arange(req.start + 1, req.start + done + 1, dtype=np.int64))
        self.pending.clear()
        self.stalled = None
        self._refuse_waiting_resends(f"engine gone ({why})")
        remove_file(self.ready_file)
        self.log(f"{why}; answering every request with ERR for {self.grace} s, then exiting {EXIT_ENGINE_GONE}")
        self.stop_reason = why
        self.state = "engine-gone"
        self.exit_status = EXIT_ENGINE_GONE
        self.gone_at = time.monotonic()

    def health(self) -> tuple[bool, bool, str]:
        """(alive, ready, why not) for offload/health.py's /live and /ready: ready while serving
        with a loop that turns; alive while the loop turns (a stuck loop is restarted)."""
        quiet = time.monotonic() - self.housekept_at
        if quiet > 2.0:
            return quiet < 10.0, False, f"the gateway's loop has not turned for {quiet:.1f} s"
        why = {"waiting": f"waiting for the {self.backend}" + (" and the bridge" if self.sh is not None else ""),
               "draining": f"stopping ({self.stop_reason})",
               "engine-gone": f"{self.backend} gone ({self.stop_reason})"}.get(self.state, self.state)
        return True, self.state == "serving", why

    # ---- the loop

    def request_stop(self, why="stop requested") -> None:
        self.stop_requested = True
        if self.stop_reason is None:
            self.stop_reason = why

    def _read_socket(self, budget: int) -> bool:
        got = False
        router = self.router
        for _ in range(budget):
            if self.stalled is not None:
                break
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self._accept(frames)
            got = True
        return got

    def run(self) -> int:
        self.t_start = time.monotonic()
        next_check = next_hb = 0.0
        idle = loops = 0
        last_work = 0.0
        while True:
            work = False
            if self.state in ("serving", "draining"):
                work |= self._drain()
                if self.stalled is not None:
                    work |= self._push_stalled()
            if self.stalled is None and (idle < 2 or (idle & 7) == 0 or not self.pending):
                work |= self._read_socket(64)  # while waiting on the engine: every 8th turn
            if self.head != self.published:
                self._publish()  # with a journal: one commit for everything read this turn
            if self.backlogged:
                work |= self._flush_backlogs()
            idle = 0 if work else idle + 1
            loops += 1
            if not work or (loops & 255) == 0:
                now = time.monotonic()
                if idle == 1:
                    last_work = now
                if now >= next_check:
                    next_check = now + 0.02
                    status = self._housekeeping(now)
                    if status is not None:
                        return status
                    if self.heartbeat and now >= next_hb:
                        next_hb = now + self.heartbeat
                        self._heartbeat()
            if work:
                continue
            if self.journal is not None:
                try:
                    self.journal.tick()  # --fsync interval: the last writes get their sync when it is quiet
                except JournalError as e:
                    self.stats["journal failures"] += 1
                    self.log(str(e))
            if self.pending and self.state in ("serving", "draining"):
                # the engine answers within microseconds: spin, then yield, then nap
                if idle < 4000:
                    continue
                if idle < 40000:
                    os.sched_yield()
                    continue
                time.sleep(0.0005)
            elif self.spin and now - last_work < self.spin:
                continue  # --spin: a sleeping gateway pays a wake-up per order (~100 us in a VM)
            else:
                self.poller.poll(1 if self.backlogged else 20)

    def _snapshot_if_due(self) -> None:
        """Every snapshot_every journaled records, a snapshot of the journal so far, in a child
        process at low priority (`tickbook journal DIR --snapshot`): recovery then replays only
        what follows it. The event log is synced first: a snapshot must not cover messages whose
        events the log could still lose."""
        p = self.snapshotter
        if p is not None:
            if p.poll() is None:
                return
            if p.returncode:
                self.log(f"the snapshot started at msg_seq {self.snapshot_from:,} failed (exit {p.returncode})")
            self.snapshotter = None
        if self.published - self.snapshot_from < self.snapshot_every:
            return
        if self.events_log is not None:
            self.events_log.sync()
        cmd = [sys.executable, "-m", "offload.journal_cli", self.journal_dir, "--snapshot"]
        if os.path.isfile(self.venue.source):
            cmd += ["--config", self.venue.source]
        self.snapshotter = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.nice(10))
        self.snapshot_from = self.published

    def _housekeeping(self, now) -> int | None:
        self.housekept_at = now  # the loop turns: /live and /ready (health()) read it
        if self.stop_reason is not None and self.state in ("waiting", "serving"):
            self.log(f"{self.stop_reason}: finishing {len(self.pending)} requests in flight, refusing new ones")
            self.state = "draining"
            self.drain_deadline = now + 10.0
            remove_file(self.ready_file)
        self._check_engine(now)
        if self.journal is not None and self.snapshot_every and self.state == "serving":
            self._snapshot_if_due()
        if self.state == "draining":
            # the engine stopped too (a pod's SIGTERM reaches both) or died
            ended = self._ended()
            if ended:
                self._drain()  # after CLOSED (or death) this is final
            if not self.pending or ended or now > self.drain_deadline:
                self._finish_engine()
                return self._close_out()
        if self.state == "engine-gone":
            if self.stop_requested and self.engine_stopped_cleanly:
                # a pod's SIGTERM reaches both containers: the engine stopped first, cleanly
                self.exit_status = EXIT_OK
                return self._close_out()
            if now - self.gone_at >= self.grace:
                return self._close_out()
        return None

    def _finish_engine(self) -> None:
        """Owned segment: the engine's SHUTDOWN record after everything else, then its CLOSED."""
        if self.attach or self.engine_pid == 0 or not self._engine_alive():
            if self.sh is not None:
                self._drain()
            return
        deadline = time.monotonic() + 10.0
        while self.stalled is not None and time.monotonic() < deadline:
            self._drain()
            self._push_stalled()
            self._publish()
        self._publish()
        shut = np.zeros(1, ORDER_DTYPE)
        shut["action"] = ACTION_SHUTDOWN
        while time.monotonic() < deadline:
            self.tail_cache = int(self.r_in.ctrl[TAIL])
            if self.head - self.tail_cache < self.r_in.capacity and (self.sh is None or self.sh.free(1)):
                self.r_in.recs[self.head & self.r_in.mask] = shut[0]
                self.head += 1  # a control record: not journaled
                self.published = self.head
                self.r_in.ctrl[HEAD] = self.head
                if self.sh is not None:
                    self.sh.put(shut.tobytes(), keep=False)
                    self.sh.publish()
                break
            self._drain()
            time.sleep(0.0005)
        if self.sh is not None:  # the hardware is slower: give it time to catch up before comparing the rest
            deadline = max(deadline, time.monotonic() + SHADOW_FINISH)
        while time.monotonic() < deadline:
            closed = self._ended()
            self._drain()
            if closed:
                break
            time.sleep(0.0005)
        self._drain()

    def _close_out(self) -> int:
        # refuse what is still queued in the socket: never a silent drop
        while True:
            self.stalled = None
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self._accept(frames)
        for req in self.pending:
            ev = b"".join(req.chunks)
            self._error(req.client, req.token, f"gateway stopped ({self.stop_reason}) before this message was finished", ev)
        self.pending.clear()
        self._refuse_waiting_resends(f"gateway stopped ({self.stop_reason})")
        deadline = time.monotonic() + 2.0
        while self.backlogged and time.monotonic() < deadline:
            self._flush_backlogs()
            time.sleep(0.001)
        for ident in list(self.backlogged):
            self._cut_off(ident, self.clients[ident], "still had replies queued when the gateway stopped")
        s = self.stats
        undeliv = sum(c.undeliverable for c in self.clients.values())
        self.log(f"exit ({self.stop_reason or 'done'}): {len(self.clients)} clients, {s['requests']:,} requests, "
                 f"{s['records']:,} records, {s['errors']:,} error replies, {s['reports']:,} unsolicited reports, "
                 f"{undeliv:,} events undeliverable, {self.orphans:,} events of no request, "
                 f"{s['stalls']:,} waits on a full order ring, {s['resends']:,} messages sent again answered from the "
                 f"record; offload {self.offload}" + self._shadow_report())
        return self.exit_status

    def _shadow_report(self) -> str:
        sh = self.sh
        if sh is None:
            return ""
        first = f" (first at msg_seq {sh.first_seq})" if sh.first is not None else ""
        return (f"; shadow: {sh.compared:,} of {self.last_stamped - sh.start_seq:,} records compared with the "
                f"hardware, {sh.divergent:,} divergent{first}")

    def close(self) -> None:
        remove_file(getattr(self, "ready_file", "") or "/nonexistent")
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self.events_log is not None:
            self.events_log.close()
        if self.snapshotter is not None:
            self.snapshotter.wait()  # a snapshot is written whole or not at all: let it finish
        if self.engine is not None and self.engine.poll() is None:
            try:
                self.engine.wait(5)  # after its SHUTDOWN record it exits by itself
            except subprocess.TimeoutExpired:
                if self.seg is not None:
                    self.seg.request_stop()
                self.engine.terminate()
                try:
                    self.engine.wait(10)
                except subprocess.TimeoutExpired:
                    self.engine.kill()
                    self.engine.wait(10)
        if self.seg is not None:
            if self.seg.owner and self.backend == "engine":
                remove_file(ready_path(self.rings))  # an engine killed with SIGKILL leaves it
            self.seg.close()
            self.seg = None
        if self.sh is not None:
            self.sh.seg.close()
            self.sh = None
        for s in (self.router, self.pub):
            s.close()
        self.ctx.term()


# --------------------------------------------------------------------------- the client


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


# --------------------------------------------------------------------------- CLI


def _shard_from_env(a):
    idx = a.shard_index if a.shard_index is not None else os.environ.get("TICKBOOK_SHARD_INDEX")
    cnt = a.shard_count if a.shard_count is not None else os.environ.get("TICKBOOK_SHARD_COUNT")
    if idx in (None, "") and cnt in (None, ""):
        return None
    try:
        k, n = int(idx), int(cnt)
    except (TypeError, ValueError):
        raise ValueError(f"shard index {idx!r} and count {cnt!r} must both be integers "
                         "(TICKBOOK_SHARD_INDEX / TICKBOOK_SHARD_COUNT or --shard-index / --shard-count)") from None
    if not 0 <= k < n:
        raise ValueError(f"shard index {k} is not in 0..{n - 1}")
    return k, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tickbook gateway", description=__doc__.split("\n\n")[0])
    p.add_argument("--rings", required=True, help="segment name of the engine (created here unless --attach)")
    p.add_argument("--orders", default=DEFAULT_ORDERS, help=f"ROUTER endpoint (default {DEFAULT_ORDERS})")
    p.add_argument("--md", default=DEFAULT_MD, help=f"PUB endpoint (default {DEFAULT_MD})")
    p.add_argument("--config", default=None, help="venue.toml: the engine's (default: the built-in venue)")
    p.add_argument("--attach", action="store_true", help="use an existing segment; leave its engine running at exit")
    p.add_argument("--spawn-engine", action="store_true", help="start `tickbook engine` on the segment")
    p.add_argument("--engine-cpu", type=int, default=None, help="--cpu for the spawned engine")
    p.add_argument("--engine-arg", action="append", default=[], help="extra argument for the spawned engine")
    p.add_argument("--orders-cap", type=int, default=1 << 14, help="order ring slots (power of two)")
    p.add_argument("--events-cap", type=int, default=1 << 16, help="event ring slots (power of two)")
    p.add_argument("--journal", default=None, metavar="DIR",
                   help="journal every stamped record in DIR before the engine sees it, and recover from it at "
                        "start (docs/journal.md)")
    p.add_argument("--snapshot-every", type=int, default=500_000, metavar="N",
                   help="with --journal: a snapshot every N journaled records, in a child process (0: none)")
    p.add_argument("--fsync", default="batch", metavar="POLICY",
                   help="batch (a sync per group commit: nothing acknowledged is lost), interval:MS (a sync every "
                        "MS ms: a machine crash can lose the last MS ms) or none (default batch)")
    p.add_argument("--shard-index", type=int, default=None, help="default $TICKBOOK_SHARD_INDEX")
    p.add_argument("--shard-count", type=int, default=None, help="default $TICKBOOK_SHARD_COUNT")
    p.add_argument("--grace", type=float, default=1.0, help="s of ERR replies after the engine dies")
    p.add_argument("--engine-timeout", type=float, default=0.0, help="s to wait for the engine (0: forever)")
    p.add_argument("--heartbeat", type=float, default=1.0, help="s between market data heartbeats (0: none)")
    p.add_argument("--offload", choices=OFFLOAD_MODES, default="sw",
                   help="sw: the engine on NAME; hw: the hardware bridge on the hardware segment; "
                        "shadow: both, every event compared, clients get the engine's (default sw)")
    p.add_argument("--hw-rings", default=None, help="hardware segment for hw/shadow (default NAME-hw)")
    p.add_argument("--health", default=None, metavar="[HOST:]PORT",
                   help="serve GET /live and /ready over HTTP (Kubernetes probes; host default 127.0.0.1)")
    p.add_argument("--spin", type=float, default=0.0,
                   help="s to busy-poll the socket after the last message before sleeping (0: sleep at once; "
                        "for a gateway with a core of its own)")
    a = p.parse_args(argv)

    log = _log
    from engine.config import ConfigError, load_venue

    try:
        venue = load_venue(a.config)
        shard = _shard_from_env(a)
    except (ConfigError, ValueError) as e:
        log(str(e))
        return EXIT_USAGE
    health, started = None, []
    if a.health:
        from offload.health import HealthServer

        def probe():  # before the Gateway exists it is recovering, binding or creating segments
            return started[0].health() if started else (True, False, "starting")

        try:
            health = HealthServer(a.health, probe)
        except (ValueError, OSError) as e:
            log(f"cannot serve --health {a.health}: {e}")
            return EXIT_USAGE
        log(f"health: GET /live and /ready on port {health.port}")
    try:
        return _serve(a, venue, shard, log, started)
    finally:
        if health is not None:
            health.close()


def _serve(a, venue, shard, log, started: list) -> int:
    """Start the Gateway (appended to `started` for the health probe) and run it to its end."""
    cmd = None
    if a.spawn_engine and a.offload == "hw":
        log("--spawn-engine with --offload hw: no engine runs in hw mode (start `tickbook bridge` instead)")
        return EXIT_USAGE
    if a.spawn_engine:
        cmd = [sys.executable, "-m", "offload.engine_process", "--rings", a.rings, *a.engine_arg]
        if a.config:
            cmd += ["--config", a.config]
        if a.engine_cpu is not None:
            cmd += ["--cpu", str(a.engine_cpu)]
        if a.journal:
            cmd += ["--journal", a.journal]
    try:
        gw = Gateway(a.rings, venue, a.orders, a.md, attach=a.attach, orders_cap=a.orders_cap,
                     events_cap=a.events_cap, journal=a.journal, shard=shard, grace=a.grace,
                     engine_timeout=a.engine_timeout, heartbeat=a.heartbeat, engine_cmd=cmd, log=log,
                     spin=a.spin, offload=a.offload, hw_rings=a.hw_rings, fsync=a.fsync,
                     snapshot_every=a.snapshot_every)
    except (JournalError, ValueError) as e:  # a foreign or corrupt journal, a bad --fsync: one line
        log(str(e))
        return EXIT_USAGE
    except (zmq.ZMQError, RingError, OSError) as e:
        log(f"cannot start on {a.rings} ({a.orders}, {a.md}): {e}")
        return EXIT_USAGE
    started.append(gw)
    segs = {"sw": f"segment {gw.main_rings}", "hw": f"hardware segment {gw.hw_rings}",
            "shadow": f"segments {gw.main_rings} and {gw.hw_rings}"}[a.offload]
    wait = {"sw": "the engine", "hw": "the bridge", "shadow": "the engine and the bridge"}[a.offload]
    log(f"listening: orders {gw.orders_endpoint}, market data {gw.md_endpoint}; {segs} "
        f"({'attached' if a.attach else 'created'}), --offload {a.offload}; waiting for {wait}"
        + (f"; shard {shard[0]} of {shard[1]}" if shard else ""))

    def on_signal(signum, _frame):
        gw.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a journal past its file size limit: EFBIG and ERRs, not death
    try:
        return gw.run()
    finally:
        gw.close()


if __name__ == "__main__":
    sys.exit(main())
