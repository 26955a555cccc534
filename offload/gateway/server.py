"""The gateway's server: one loop that reads requests, stamps and journals their records into
the engine's order ring, drains the event ring, and answers (docs/offload.md#gateway). The parts
it drives are modules of their own: ingress (checks), replies (delivery), routing (events to
clients), marketdata (the PUB feed), shadow (--offload shadow) and segments (the rings)."""

from __future__ import annotations

import collections
import os
import struct
import subprocess
import sys
import time

import numpy as np
import zmq

from engine.diagnostics import EXIT_ENGINE_GONE, EXIT_OK, process_logger
from engine.records import ACTION_CANCEL, ACTION_SHUTDOWN, ORDER_DTYPE, RECORD_SIZE, as_event_words
from offload.eventlog import EventLog
from offload.gateway.authority import Authority
from offload.gateway.ingress import SMALL, Ingress, Refused
from offload.gateway.disconnect import Disconnects
from offload.gateway.limits import Limits
from offload.gateway.metrics import GatewayMetrics
from offload.gateway.marketdata import Feed
from offload.gateway.replies import Replies
from offload.gateway.routing import GATEWAY, Request, Routing
from offload.gateway.segments import hw_segment, open_segment, write_ready
from offload.gateway.shadow import SHADOW_FINISH, Shadow
from offload.gateway.wire import DEFAULT_MD, DEFAULT_ORDERS, K_EV, MAX_FRAME
from offload.journal import JournalError, JournalWriter
from offload.ring import HEAD, TAIL, pid_alive, ready_path, remove_file
from offload.sessions import NEW, Sessions, is_named, shown

ROUTER_SNDHWM = 1_000  # replies queued in libzmq for one connection; then replies.py queues (bounded)
ROUTER_RCVHWM = 8  # messages read ahead from one connection: at most 8 x MAX_FRAME held for it
OFFLOAD_MODES = ("sw", "hw", "shadow")
_TS, _SEQ = struct.Struct("<Q"), struct.Struct("<q")
_SEQ_ACCT = struct.Struct("<32xqI20x")  # msg_seq and account of an order record

LOG = process_logger("gateway")  # one write a line: the engine may share the file


class Gateway:
    def __init__(self, rings: str, venue, orders_addr=DEFAULT_ORDERS, md_addr=DEFAULT_MD, attach=False,
                 orders_cap=1 << 14, events_cap=1 << 16, journal=None, shard=None, grace=1.0,
                 engine_timeout=0.0, heartbeat=1.0, engine_cmd=None, log=None, spin=0.0, offload="sw",
                 hw_rings=None, fsync="batch", snapshot_every=500_000, stuck_after=2.0, keys=None, local=None):
        """keys: the key file (keys.Keys): CURVE on both sockets, each client's authority from its
        key. None: --insecure-local, plain TCP on loopback endpoints only, one identity `local`
        (limits from `local`, a keys.Identity) that may use any account."""
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
        self.ingress = Ingress(venue, shard)
        self.grace, self.engine_timeout, self.heartbeat = grace, engine_timeout, heartbeat
        self.spin = spin  # s of busy-polling the socket after the last activity before sleeping
        self.log = log or LOG
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # an unroutable reply raises, never vanishes
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a named session that reconnects takes its name over
        self.router.setsockopt(zmq.SNDHWM, ROUTER_SNDHWM)
        self.router.setsockopt(zmq.RCVHWM, ROUTER_RCVHWM)  # per connection: a flood waits in its own TCP pipe
        self.router.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)  # a bigger frame drops the connection unread
        self.router.setsockopt(zmq.LINGER, 2000)
        # Dead TCP peers are found by TCP keepalive, not ZMTP heartbeats: libzmq 4.3.5 (what pyzmq
        # bundles) aborts the process with `Assertion failed: !_io_error (stream_engine_base.cpp:310)`
        # when a heartbeating connection whose input is stopped (a client flooding without reading its
        # replies: back-pressure) is closed by the peer (libzmq issues #3937, #4364, #4767; fix PR #4830
        # unmerged, in no release). tests/test_zmq_fault.py reproduces it. Probes after 10 s idle, every
        # 2 s, 3 unanswered: a vanished peer is dropped within ~16 s.
        self.router.setsockopt(zmq.TCP_KEEPALIVE, 1)
        self.router.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 10)
        self.router.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 2)
        self.router.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
        self.stuck_after = stuck_after  # s without the engine's heartbeat word moving: not ready (_check_engine)
        self.hb_value, self.hb_at, self.stuck = None, 0.0, False
        self.feed = Feed(self.ctx, self.names)
        self.stats = collections.Counter()
        self.replies = Replies(self.router, self.log, self.stats)
        self.routing = Routing(self.replies, self.feed, self.stats)
        self.metrics = GatewayMetrics()  # Prometheus, on a registry of its own: --health's GET /metrics
        self.replies.metrics = self.metrics  # ERRs by code, events delivered, reply latency
        self.limits = Limits()
        # cancel on disconnect watches the socket's monitor only when some key asks for it
        wants = keys is not None and any(i.cancel_on_disconnect for i in keys.by_key.values())
        self.disconnects = Disconnects(self.router) if wants or (local is not None and local.cancel_on_disconnect) else None
        self.cod_due: collections.deque[bytes] = collections.deque()  # connections gone, orders to cancel
        self.authority = None
        self.seg = None
        self.sh = None  # Shadow (--offload shadow): the hardware segment fed the same records
        self.engine = None
        self.journal = self.events_log = self.sessions = None
        self.journal_dir, self.snapshot_every, self.snapshotter = journal, snapshot_every, None
        try:
            self.authority = Authority(keys, venue, local)
            for ep in (orders_addr, md_addr):
                why = self.authority.check_endpoint(ep)
                if why:
                    raise ValueError(why)
            self.authority.secure(self.ctx, [self.router, self.feed.pub])
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
            self.md_endpoint = self.feed.bind(md_addr)
            self.orders_endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
            self.ready_file = ready_path(rings, "gateway")
            remove_file(self.ready_file)  # a stale one from a killed predecessor
            self.seg = open_segment(self.main_rings, attach, orders_cap, events_cap, max(engine_timeout, 5.0),
                                     start=recovered.msg_seq if recovered is not None else 0)
            self.r_in, self.r_out = self.seg.ring(0), self.seg.ring(1)
            if offload == "shadow":
                self.sh = Shadow(open_segment(self.hw_rings, attach, orders_cap, events_cap,
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
        if recovered is not None:
            from engine.state import C_SEQ
            from offload.recovery import resting_orders

            self.feed.book.seed(resting_orders(recovered.state, venue), int(recovered.state.ctr[C_SEQ]))
            if len(recovered.records):
                self.last_ts = int(recovered.records["ts"][-1])  # the clock never goes back: rate buckets
        self.stalled = None  # (request, its records' bytes (keeps the frame alive), next index, count)
        if recovered is not None:
            self.routing.owner.update(recovered.owners)  # named sessions' resting orders: reports still reach them
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

    # ---- requests

    def _take(self, frames) -> None:
        """One message off the socket: counted and timed, then accepted or refused."""
        self.metrics.arrived(frames)
        try:
            self._accept(frames)
        finally:
            self.metrics.settled(frames)

    def _accept(self, frames) -> None:
        ident = frames[0].bytes
        self.replies.heard_from(ident)
        snap = self.feed.snapshot_request(frames)  # [SNAP, token, symbol]: answered from the feed's book
        if snap is not None:
            self.replies.send(ident, snap)
            return
        try:
            token, data, n = self.ingress.parse(frames[1:])
        except Refused as e:
            self.replies.error(ident, e.token, e.reason, code=e.code)
            return
        if self.state != "serving":
            why = {"waiting": "engine not ready yet (warming up): retry later",
                   "draining": "gateway shutting down: message refused",
                   }.get(self.state, f"engine gone ({self.stop_reason}): message refused")
            self.replies.error(ident, token, why, code="not_serving")
            return
        who = self.authority.identity(frames[-1])
        why = self.authority.session_refusal(who, ident) or self.authority.refusal(who, data, n)
        if why:
            self.stats["unauthorized"] += 1
            self.replies.error(ident, token, why + ": message refused, none of its records was sent",
                               code="unauthorized")
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
                    self.replies.error(ident, token, verdict, code="session")
                else:
                    self._resend(ident, token, verdict[1], verdict[2], cseqs, accts)
                return
        over = self.limits.refusal(who, n, time.time_ns())
        if over is not None:
            self.stats[over[0]] += 1
            self.replies.error(ident, token, over[1], code=over[0])
            return
        if self.sessions is not None and is_named(ident):
            self.sessions.accepted(ident, cseqs)
        self.limits.sent(who.name, self.head + n, n)
        if who.cancel_on_disconnect:
            self.routing.watched.add(ident)
            self.disconnects.seen(ident, frames[-1])
        self._submit(ident, token, data, n, cseqs, accts)

    def _submit(self, ident, token, data, n, cseqs, accts) -> None:
        """Records checked and counted against their key: into the order ring (what fits now)."""
        cs = self.replies.client(ident)
        cs.requests += 1
        cs.records += n
        self.stats["requests"] += 1
        self.stats["records"] += n
        req = Request(ident, token, self.head, n, cseqs, accts)
        self.routing.pending.append(req)
        self.stalled = (req, data, 0, n)
        self._push_stalled()
        self.metrics.accepted(ident, n)

    def _resend(self, ident, token, lo, hi, cseqs, accts) -> None:
        """A named session's message sent again: answered from the record once it is finished
        (offload/sessions.py), never executed twice."""
        self.stats["resends"] += 1
        if hi > self.t_seen:
            self.sessions.waiting.append((ident, token, lo, hi, cseqs, accts))
            return
        got = self.sessions.answer(lo, hi, cseqs, accts)
        if isinstance(got, str):
            self.replies.error(ident, token, got, code="session")
        else:
            self.replies.send(ident, [K_EV, token, got[0], got[1]], len(got[0]) // RECORD_SIZE)

    def _refuse_waiting_resends(self, why: str) -> None:
        if self.sessions is not None:
            for ident, token, lo, hi, _, _ in self.sessions.due(1 << 62):
                self.replies.error(ident, token, f"{why} before the message sent again (msg_seq {lo}..{hi}) finished: "
                                          "it is journaled; send it again when the venue is back", code="not_serving")

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
        r.write_at(self.head, data[i * RECORD_SIZE : (i + k) * RECORD_SIZE])
        self._stamp(self.head, k, ts)
        if self.journal is not None:  # one batch for the whole push: a crash keeps all of it or none
            pieces = self.r_in.slots(self.head, k)
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

    def _stamp(self, pos: int, k: int, ts: int) -> None:
        """The records at ring positions pos .. pos + k - 1 get msg_seq := position + 1 (the
        venue's message number) and ts := the gateway's clock."""
        r = self.r_in
        done = 0
        while done < k:
            s = (pos + done) & r.mask
            m = min(k - done, r.capacity - s)
            g = pos + done + 1
            if m <= SMALL:
                mv = r._b
                for q in range(m):
                    off = (s + q) * RECORD_SIZE
                    _TS.pack_into(mv, off, ts)
                    _SEQ.pack_into(mv, off + 32, g + q)
            else:
                dst = r.recs[s : s + m]
                dst["msg_seq"] = np.arange(g, g + m, dtype=np.int64)
                dst["ts"] = ts
            done += m

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
            for piece in self.r_in.slots(self.published, self.head - self.published):
                sh.put(piece)
        self.published = self.head
        self.r_in.ctrl[HEAD] = self.head  # x86 TSO: published after the slots (docs/offload.md)
        if sh is not None:
            sh.publish()

    def _journal_failed(self, why: str) -> None:
        """The records stamped since the last publish are not journaled: take them back (HEAD
        never moved past them) and refuse them. A message partly published before keeps that
        part, which the engine executes; its reply is an ERR that says so."""
        lost = self.published
        self.head = self.last_stamped = lost
        self.limits.taken_back(lost)
        self.stalled = None
        self.stats["journal failures"] += 1
        now = time.monotonic()
        if self.journal_failing is None or now - self.journal_failing >= 1.0:  # one line a second at most
            n = self.stats["journal failures"]
            self.log(f"journal write failed ({n:,} failed writes so far), records from msg_seq {lost + 1} refused: {why}")
            self.journal_failing = now
        keep: collections.deque[Request] = collections.deque()
        for req in self.routing.pending:
            if req.end <= lost:
                keep.append(req)
            elif req.start >= lost:
                self.replies.error(req.client, req.token, f"journal write failed ({why}): message refused, "
                                                   "none of its records was executed", code="journal")
            else:
                req.cut = (f"journal write failed ({why}): {lost - req.start} of {req.end - req.start} records of "
                           "this message were executed (their events are attached), the rest were refused")
                req.end = lost
                keep.append(req)
        self.routing.pending = keep
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
        done = 0
        batches = []
        while done < n:
            view = r.peek(n - done)
            rows = as_event_words(view).tolist()
            if len(rows) <= SMALL:  # by kind and reason: in Python for a few, one bincount for more
                self.metrics.count_rows(rows)
            else:
                self.metrics.count_events(view)
            if self.sh is not None:
                self.sh.sw.append(view.copy())
            if self.events_log is not None:
                self._log_events(view)
            self.routing.route(view, rows)
            batches.append(rows)
            r.advance(len(rows))
            done += len(rows)
        self.t_seen = t
        self.limits.processed(t)
        self.tail_cache = max(self.tail_cache, t)
        self._complete(t)  # the replies first: market data is not on an order's path
        feed = self.feed
        feed.catch_up(t)
        for rows in batches:
            feed.apply(rows, t)
        feed.publish_tops()  # the book applies only events of messages < t: all complete
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

    def _complete(self, t) -> None:
        self.routing.complete(t)
        if self.sessions is not None:
            for ident, token, lo, hi, cseqs, accts in self.sessions.due(t):
                self._resend(ident, token, lo, hi, cseqs, accts)

    # ---- market data

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
                self.hb_value, self.hb_at, self.stuck = self.seg.heartbeat(), now, False
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
            else:
                # alive, but does its loop turn? (the heartbeat word moves every few ms, idle or busy);
                # a stuck one is only not ready: a long pause may end, the pod's probe decides
                hb = self.seg.heartbeat()
                if hb != self.hb_value:
                    if self.stuck:
                        self.stuck = False
                        self.log(f"{who} pid {self.engine_pid} turns again: heartbeat after {now - self.hb_at:.1f} s")
                    self.hb_value, self.hb_at = hb, now
                elif not self.stuck and now - self.hb_at > self.stuck_after:
                    self.stuck = True
                    self.log(f"{who} pid {self.engine_pid} stuck: no heartbeat for {now - self.hb_at:.1f} s "
                             f"(alive; not ready until it moves)")
                if now - self.status_at >= 1.0:
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
        for req in self.routing.pending:
            ev = b"".join(req.chunks)
            done = max(0, min(t, req.end) - req.start)
            rest = ("the rest are journaled and run when the venue recovers" if self.journal is not None
                    else "the rest were not")
            self.replies.error(req.client, req.token,
                        f"engine gone ({why}): {done} of {req.end - req.start} records of this message were processed "
                        f"(their events are attached), {rest}",
                        ev, np.arange(req.start + 1, req.start + done + 1, dtype=np.int64), code="engine_gone")
        self.routing.pending.clear()
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
        age = self.engine_heartbeat_age()
        if self.stuck and age is not None:  # alive, its loop not turning: not ready (the gateway itself is alive)
            return True, False, f"{self.backend} pid {self.engine_pid} stuck: no heartbeat for {age:.1f} s"
        return True, self.state == "serving", why

    def engine_heartbeat_age(self) -> float | None:
        """Seconds since the engine's (in hw the bridge's) heartbeat word was last seen to move
        (checked every ~20 ms while serving); None when not serving."""
        if self.state != "serving" or self.hb_value is None:
            return None
        return time.monotonic() - self.hb_at

    # ---- the loop

    def request_stop(self, why="stop requested") -> None:
        self.stop_requested = True
        if self.stop_reason is None:
            self.stop_reason = why

    def _read_socket(self, budget: int) -> bool:
        got = False
        router = self.router
        if self.disconnects is not None and self.disconnects.pending():
            # before the messages: a descriptor closed earlier may be reused by a connection they came on
            self.cod_due.extend(i for i in self.disconnects.gone() if i in self.routing.watched)
        for _ in range(budget):
            if self.stalled is not None:
                break
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self._take(frames)
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
            if self.stalled is None and (idle < 2 or (idle & 7) == 0 or not self.routing.pending):
                work |= self._read_socket(64)  # while waiting on the engine: every 8th turn
            if self.head != self.published:
                self._publish()  # with a journal: one commit for everything read this turn
            if self.replies.backlogged:
                work |= self.replies.flush()
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
                        self.feed.heartbeat(self.state == "serving")
            if work:
                continue
            if self.journal is not None:
                try:
                    self.journal.tick()  # --fsync interval: the last writes get their sync when it is quiet
                except JournalError as e:
                    self.stats["journal failures"] += 1
                    self.log(str(e))
            if self.routing.pending and self.state in ("serving", "draining"):
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
                self.poller.poll(1 if self.replies.backlogged else 20)

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

    def _cancel_on_disconnect(self) -> None:
        """The connections whose key asked for it and that dropped: their resting orders are
        cancelled, in a message of the gateway's own (journaled like any other, answered to nobody;
        the CANCELED events go to the owner's reports, counted as undeliverable)."""
        routing = self.routing
        if self.disconnects is not None:
            self.cod_due.extend(i for i in self.disconnects.gone() if i in routing.watched)
        while self.cod_due and self.stalled is None and self.state == "serving":
            ident = self.cod_due.popleft()
            routing.watched.discard(ident)
            orders = routing.placed.pop(ident, {})
            if not orders:
                continue
            recs = np.zeros(len(orders), ORDER_DTYPE)
            recs["order_id"], recs["account"] = list(orders), list(orders.values())
            recs["action"] = ACTION_CANCEL
            self.stats["cancelled on disconnect"] += len(orders)
            self.log(f"client {shown(ident)} disconnected: cancelling its {len(orders)} resting orders "
                     "(cancel_on_disconnect)")
            self._submit(GATEWAY, b"", recs.tobytes(), len(recs), [0] * len(recs), recs["account"].tolist())

    def _housekeeping(self, now) -> int | None:
        self.housekept_at = now  # the loop turns: /live and /ready (health()) read it
        self._cancel_on_disconnect()
        if self.stop_reason is not None and self.state in ("waiting", "serving"):
            self.log(f"{self.stop_reason}: finishing {len(self.routing.pending)} requests in flight, refusing new ones")
            self.state = "draining"
            self.drain_deadline = now + 10.0
            remove_file(self.ready_file)
        self._check_engine(now)
        self.metrics.sample(self)  # ring depths, state, engine liveness and heartbeat age
        if self.journal is not None and self.snapshot_every and self.state == "serving":
            self._snapshot_if_due()
        if self.state == "draining":
            # the engine stopped too (a pod's SIGTERM reaches both) or died
            ended = self._ended()
            if ended:
                self._drain()  # after CLOSED (or death) this is final
            if not self.routing.pending or ended or now > self.drain_deadline:
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
            self._take(frames)
        for req in self.routing.pending:
            ev = b"".join(req.chunks)
            self.replies.error(req.client, req.token, f"gateway stopped ({self.stop_reason}) before this message was finished", ev, code="stopped")
        self.routing.pending.clear()
        self._refuse_waiting_resends(f"gateway stopped ({self.stop_reason})")
        deadline = time.monotonic() + 2.0
        replies = self.replies
        while replies.backlogged and time.monotonic() < deadline:
            replies.flush()
            time.sleep(0.001)
        for ident in list(replies.backlogged):
            replies.cut_off(ident, replies.clients[ident], "still had replies queued when the gateway stopped")
        s = self.stats
        undeliv = replies.undeliverable()
        self.log(f"exit ({self.stop_reason or 'done'}): {len(replies.clients)} clients, {s['requests']:,} requests, "
                 f"{s['records']:,} records, {s['errors']:,} error replies, {s['reports']:,} unsolicited reports, "
                 f"{undeliv:,} events undeliverable, {self.routing.orphans:,} events of no request, "
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
        if self.disconnects is not None:
            self.disconnects.close(self.router)
        self.router.close()
        self.feed.close()
        if self.authority is not None:
            self.authority.close()  # the ZAP thread's socket, before the context ends
        self.ctx.term()
