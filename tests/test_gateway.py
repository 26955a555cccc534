"""The pyzmq gateway end to end: gateway and engine processes on ipc:// endpoints in a temp
dir, as in the pod (the gateway owns the segment, `tickbook engine` attaches to it).

- Several clients submit interleaved flows concurrently (binary and CSV messages, several in
  flight each, rings small enough that both back-pressure paths run); each gets exactly its
  own events, and together they equal the in-process replay (engine.api.Venue) of the flow
  the gateway wrote into the ring, which its journal records. The PUB stream carries every
  trade and the final top of book.
- Bad messages (a token over 64 bytes among them) get an ERR reply with a reason; a client
  that vanishes mid-flow does not stall the others; SIGTERM stops the engine through its
  SHUTDOWN record and removes the segment and the ready files; an engine that dies in the
  middle of a message is reported with "k of n records processed" and their events, and ends
  the gateway with status 3.
- How the gateway finds its engine: beside it (the pod), its own child (`--spawn-engine`), or
  an existing segment (`--attach`, refused while another gateway produces into it); start-up
  errors (address in use, a segment with a live owner) exit 2 with one line.
- --offload hw and shadow through the Icarus bridge (marked hdl).

Every test starts what it needs: the tests sharing one serving gateway use their own accounts,
ids and prices, so each passes alone (`-k NAME`) and in any order.

No wall-clock assertions: every wait is bounded and fails with the processes' logs. The
engine runs unpinned and yields when idle (2 cores shared with other work).
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zmq

from engine.api import Venue, as_venue, replay_records
from engine.codec import parse_flow_bytes, write_flow_csv
from engine.gen import generate
from engine.records import (
    ACTION_NEW,
    ACTION_SHUTDOWN,
    EV_ACK,
    EV_FILL,
    EV_REJECT,
    EVENT_DTYPE,
    ORDER_DTYPE,
    PRICE_NONE,
    PRICE_SCALE,
    R_MALFORMED,
    R_TAKER,
    SIDE_BUY,
    SIDE_SELL,
    TIF_GTC,
    TYPE_LIMIT,
)
from engine.diagnostics import EXIT_ENGINE_GONE, EXIT_OK, EXIT_USAGE
from offload import gateway as G
from offload.gateway import Client, GatewayError
from offload.journal import load_journal
from offload.ring import pid_alive, reap_stale, segment_exists

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 400.0  # a cold Numba compile of the live loop takes ~110 s here
STEP_TIMEOUT = 60.0


def words(a):
    return np.ascontiguousarray(a).view(np.int64).reshape(len(a), 8)



class Stack:
    """A gateway process (owner of the segment) and, when started, an engine process."""

    def __init__(self, tmp: Path, *gw_args, start_engine=True, segment=None, name=None):
        self.tmp = tmp
        self.name = name or f"tickbook-gwtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.orders = f"ipc://{tmp}/orders"
        self.md = f"ipc://{tmp}/md"
        self.journal = tmp / "journal"  # a directory (docs/journal.md)
        self.gw_log = open(tmp / "gateway.log", "w+")
        self.eng_log = open(tmp / "engine.log", "w+")
        self.engine = None
        self.attach = "--attach" in gw_args  # then the segment and its engine are not ours
        self.gw = subprocess.Popen(
            [sys.executable, "-m", "offload.gateway", "--insecure-local", "--rings", self.name, "--orders", self.orders, "--md", self.md,
             "--journal", str(self.journal), "--heartbeat", "0.1", *gw_args],
            cwd=REPO, stdout=self.gw_log, stderr=subprocess.STDOUT)
        seg = segment or self.name
        self.wait(lambda: segment_exists(seg), "the gateway to create its segment", 60)
        if start_engine:
            self.start_engine()

    def logs(self) -> str:
        out = []
        for f in (self.gw_log, self.eng_log):
            f.flush()
            f.seek(0)
            out.append(f.read())
        return "\n".join(out)

    def wait(self, cond, what, timeout):
        t0 = time.monotonic()
        while not cond():
            if self.gw.poll() is not None and what != "the gateway to exit":
                raise AssertionError(f"gateway exited ({self.gw.returncode}) waiting for {what}:\n{self.logs()}")
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"timed out ({timeout} s) waiting for {what}:\n{self.logs()}")
            time.sleep(0.02)

    def start_engine(self):
        self.engine = subprocess.Popen(
            [sys.executable, "-m", "offload.engine_process", "--rings", self.name, "--no-pin",
             "--yield-after", "4096", "--attach-timeout", "60"],
            cwd=REPO, stdout=self.eng_log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self):
        self.wait(lambda: os.path.exists(G.ready_path(self.name, "gateway")), "the gateway to be ready", READY_TIMEOUT)
        assert os.path.exists(G.ready_path(self.name)), "the engine's ready file is missing"

    def client(self) -> Client:
        return Client(self.orders, timeout=STEP_TIMEOUT)

    def stop(self) -> int:
        self.gw.send_signal(signal.SIGTERM)
        try:
            return self.gw.wait(STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the gateway did not stop on SIGTERM:\n{self.logs()}") from None

    def close(self):
        for p in (self.gw, self.engine):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
        for f in (self.gw_log, self.eng_log):
            f.close()
        reap_stale(self.name)
        for who in ("gateway",) if self.attach else ("engine", "gateway"):  # left only when a process was killed
            G.remove_file(G.ready_path(self.name, who))


def order(oid, acct, side, price, qty, sym=0, action=ACTION_NEW, tif=TIF_GTC, typ=TYPE_LIMIT, msg_seq=0):
    r = np.zeros(1, ORDER_DTYPE)
    r["order_id"], r["account"], r["side"], r["qty"], r["symbol"] = oid, acct, side, qty, sym
    r["price"] = PRICE_NONE if price is None else round(price * PRICE_SCALE)
    r["action"], r["tif"], r["type"], r["msg_seq"] = action, tif, typ, msg_seq
    return r


def aapl_flow(acct, first_id, n, seed):
    """NEW limit orders in AAPL (shard 0 of 2) around the reference price."""
    rng = np.random.default_rng(seed)
    out = np.concatenate([
        order(first_id + i, acct, SIDE_BUY if rng.random() < 0.5 else SIDE_SELL,
              184.90 + 0.01 * int(rng.integers(0, 21)), int(rng.integers(1, 50)), msg_seq=i + 1)
        for i in range(n)])
    return out


# ------------------------------------------------------------------ many clients, one flow

N_CLIENTS = 4


def _client_run(stack, flow, k, seed, out, errors, sync):
    """Send `flow` in random-sized messages, up to 8 in flight; every 5th message as CSV.
    Then wait until every client has its replies (no event can be caused after that) and
    collect reports until this client has all the events the main thread expects for it."""
    try:
        venue = as_venue(None)
        rng = np.random.default_rng(seed)
        sent = {}  # token -> records as the gateway will see them
        replies = []
        with stack.client() as c:
            i = m = 0
            while i < len(flow) or sent:
                if i < len(flow) and len(sent) < 8:
                    n = 100 if m == 2 else int(rng.integers(1, 41))  # 100 > the order ring: must wait
                    recs = flow[i : i + n]
                    i += n
                    m += 1
                    if k == 0 and m % 5 == 0:
                        buf = io.BytesIO()
                        write_flow_csv(buf, recs, venue)
                        text = buf.getvalue().decode()
                        tok = c.send(text)
                        sent[tok] = parse_flow_bytes(text.encode(), venue).orders
                    else:
                        sent[c.send(recs)] = recs
                    continue
                r = c.recv()
                replies.append((sent.pop(r.token), r))
            barrier, go, expect = sync
            barrier.wait(300)
            go.wait(300)
            reports = [c.reports()]
            have = sum(len(r.events) for _, r in replies)
            deadline = time.monotonic() + STEP_TIMEOUT
            while have + sum(map(len, reports)) < expect[k] and time.monotonic() < deadline:
                reports.append(c.reports(0.1))
            out[k] = (replies, np.concatenate(reports))
    except BaseException as e:  # noqa: BLE001  surfaced by the test
        errors.append(f"client {k}: {e!r}")
        sync[0].abort()  # nobody waits 300 s for a client that is gone


def test_concurrent_clients_get_their_own_events_equal_to_inprocess_replay(tmp_path):
    venue = as_venue(None)
    flow = generate(venue, 6000, seed=11)
    flow["msg_seq"] = np.arange(1, len(flow) + 1)
    part = [flow[flow["account"] % N_CLIENTS == k] for k in range(N_CLIENTS)]
    # small rings: the order ring fills (gateway stops reading) and the event ring fills (engine waits)
    stack = Stack(tmp_path, "--orders-cap", "64", "--events-cap", "256")
    try:
        sub = Client(stack.orders, timeout=STEP_TIMEOUT)
        sub.subscribe([], stack.md, wait=STEP_TIMEOUT)
        md = []
        done = threading.Event()

        def listen():
            while not done.is_set():
                m = sub.market_data(0.05, heartbeats=True)
                if m is not None:
                    md.append(m)

        lt = threading.Thread(target=listen, daemon=True)
        lt.start()
        out, errors = [None] * N_CLIENTS, []
        sync = (threading.Barrier(N_CLIENTS + 1), threading.Event(), {})
        ths = [threading.Thread(target=_client_run, args=(stack, part[k], k, 100 + k, out, errors, sync), daemon=True)
               for k in range(N_CLIENTS)]
        for t in ths:
            t.start()
        try:
            sync[0].wait(300)  # every client has every reply: the journal is complete
        except threading.BrokenBarrierError:
            raise AssertionError(f"a client failed or hung: {errors}\n{stack.logs()}") from None
        # the interleaved flow the engine saw: the journal, in ring order
        journal = load_journal(stack.journal).records
        ref = Venue(venue).submit(journal)
        for k in range(N_CLIENTS):  # each event belongs to the client of its account
            sync[2][k] = int((ref["account"] % N_CLIENTS == k).sum())
        sync[1].set()
        for t in ths:
            t.join(300)
        assert not any(t.is_alive() for t in ths), f"a client hung:\n{stack.logs()}"
        assert not errors, f"{errors}\n{stack.logs()}"

        assert len(journal) == len(flow)
        assert np.array_equal(journal["msg_seq"], np.arange(1, len(flow) + 1))
        assert (np.diff(journal["ts"].astype(np.int64)) >= 0).all()
        origin = {}
        for k, (replies, _) in enumerate(out):
            seqs = []
            for recs, r in replies:
                assert r.error is None, r.error
                assert len(r.venue_seqs) == len(recs)
                got = journal[r.venue_seqs - 1].copy()
                want = recs.copy()
                for a in (got, want):
                    a["ts"] = 0
                    a["msg_seq"] = 0
                assert np.array_equal(words(got), words(want)), "the journal holds other records than were sent"
                for g, c in zip(r.venue_seqs.tolist(), recs["msg_seq"].tolist()):
                    origin[g] = (k, c)
                seqs.append(r.venue_seqs)
            seqs = np.sort(np.concatenate(seqs))
            assert len(seqs) == len(part[k])
        assert sorted(origin) == list(range(1, len(flow) + 1))

        delivered = {}
        for k, (replies, reports) in enumerate(out):
            for _, r in replies:
                for e in r.events:
                    delivered.setdefault(int(e["seq"]), []).append((k, "reply", e))
            for e in reports:
                delivered.setdefault(int(e["seq"]), []).append((k, "report", e))
        assert len(delivered) == len(ref), f"{len(delivered)} events delivered, the replay has {len(ref)}"
        # a fill names the other order (contra_id) only to the client that placed both; to
        # another it shows 0 (docs/offload.md#gateway): the replay as each client may see it
        shown = ref.copy()
        fills = np.flatnonzero(ref["kind"] == EV_FILL)
        acct_of = {(int(ref["msg_seq"][i]), int(ref["order_id"][i]), int(ref["contra_id"][i])): int(ref["account"][i])
                   for i in fills}
        for i in fills:
            other = acct_of[(int(ref["msg_seq"][i]), int(ref["contra_id"][i]), int(ref["order_id"][i]))]
            if other % N_CLIENTS != int(ref["account"][i]) % N_CLIENTS:
                shown["contra_id"][i] = 0
        assert (shown["contra_id"][fills] == 0).any() and (shown["contra_id"][fills] != 0).any()
        n_reports = 0
        for r in shown:
            got = delivered.get(int(r["seq"]))
            assert got is not None and len(got) == 1, f"event {r} delivered {0 if got is None else len(got)} times"
            k, how, e = got[0]
            sender, cseq = origin[int(r["msg_seq"])]
            assert int(e["account"]) % N_CLIENTS == k, "an event went to a client that does not own the account"
            if how == "reply":
                assert k == sender and int(e["msg_seq"]) == cseq
            else:
                n_reports += 1
                assert k != sender and int(e["msg_seq"]) == 0 and e["kind"] == EV_FILL
            e2 = e.copy()
            e2["msg_seq"] = r["msg_seq"]
            assert e2.tobytes() == r.tobytes(), f"delivered {e} but the replay has {r}"
        assert n_reports > 0, "no maker fill crossed clients: the flow does not test routing"

        # market data: every trade, then the final top of book of every symbol
        last = int(ref["seq"][-1])

        def seen_all():
            return any(m.kind == "hb" and int(m.records["last_seq"][0]) >= last for m in list(md))

        stack.wait(seen_all, "a heartbeat after the last event", STEP_TIMEOUT)
        done.set()
        lt.join(5)
        sub.close()
        taker = ref[(ref["kind"] == EV_FILL) & (ref["reason"] == R_TAKER)]
        trades = np.concatenate([m.records for m in md if m.kind == "trade"])
        for s in range(len(venue.symbols)):  # in event order per symbol (topics interleave)
            assert (np.diff(trades["seq"][trades["symbol"] == s]) > 0).all()
        trades = trades[np.argsort(trades["seq"], kind="stable")]
        assert len(trades) == len(taker) > 0
        for f in ("seq", "price", "qty", "symbol", "side"):
            assert np.array_equal(trades[f], taker[f]), f
        counts = {}
        for m in md:
            counts.setdefault((m.symbol, m.kind == "hb"), []).append(m.count)
        for key, c in counts.items():
            assert c == list(range(c[0], c[0] + len(c))), f"gap in the market data counter of {key}"
        v = Venue(venue)
        v.submit(journal)
        tops = {m.symbol: m.records[0] for m in md if m.kind == "top"}
        for s in venue.symbols:
            d = v.depth(s.name, 1)
            t = tops.get(s.name)
            for side, px, qty, n in (("bids", "bid_price", "bid_qty", "bid_orders"),
                                     ("asks", "ask_price", "ask_qty", "ask_orders")):
                if not d[side]:
                    assert t is None or t[px] == PRICE_NONE, (s.name, side, t)
                    continue
                assert t is not None, f"no top of book published for {s.name}"
                price, q, orders = d[side][0]
                assert abs(int(t[px]) / PRICE_SCALE - price) < 1e-6 and int(t[qty]) == q and int(t[n]) == orders, (
                    s.name, side, t, d[side][0])

        # SIGTERM: the engine stops on its SHUTDOWN record, everything is removed
        assert stack.stop() == 0, stack.logs()
        assert stack.engine.wait(STEP_TIMEOUT) == 0
        logs = stack.logs()
        assert "exit on SHUTDOWN record" in logs, logs
        assert f"processed {len(flow):,} orders" in logs
        assert "0 error replies" in logs and "0 events undeliverable" in logs and "0 events of no request" in logs
        stalls = int(re.search(r"([\d,]+) waits on a full order ring", logs).group(1).replace(",", ""))
        assert stalls > 0, "the order ring never filled: back-pressure was not exercised"
        assert not segment_exists(stack.name)
        assert not os.path.exists(G.ready_path(stack.name))
        assert not os.path.exists(G.ready_path(stack.name, "gateway"))
    finally:
        stack.close()


# ------------------------------------------------------------------ errors, disconnects, a dead engine

SHARD_0_OF_2 = ("--shard-index", "0", "--shard-count", "2")  # owns AAPL only


class Shared:
    """One serving gateway (shard 0 of 2) with its engine for the tests that leave it serving.
    Each such test uses its own accounts and order ids, and prices that cannot cross another
    test's resting orders (AAPL buys at 180.00 or 184.90-185.10, sells at 184.90 and up), so
    each passes alone and in any order. `get` starts the pair on first use, and again if a
    test left it dead."""

    def __init__(self, factory):
        self.factory, self.stack = factory, None

    def get(self) -> Stack:
        s = self.stack
        if s is None or s.gw.poll() is not None or s.engine.poll() is not None:
            if s is not None:
                s.close()
            self.stack = Stack(self.factory.mktemp("gw"), *SHARD_0_OF_2)
        return self.stack


@pytest.fixture(scope="module")
def _shared(tmp_path_factory):
    shared = Shared(tmp_path_factory)
    yield shared
    if shared.stack is not None:
        shared.stack.close()


@pytest.fixture
def shard_stack(_shared) -> Stack:
    """A gateway for shard 0 of 2 with a ready engine behind it."""
    return _shared.get()


def test_before_the_engine_is_ready_requests_get_an_error(tmp_path):
    stack = Stack(tmp_path, *SHARD_0_OF_2, start_engine=False)
    try:
        with stack.client() as c:
            with pytest.raises(GatewayError, match="engine not ready yet"):
                c.submit(order(1, 900, SIDE_BUY, 185.0, 10))
        assert not os.path.exists(G.ready_path(stack.name, "gateway"))
        assert segment_exists(stack.name)
        # stopped before any engine came: nothing to shut down, status 0, the segment removed
        assert stack.stop() == EXIT_OK, stack.logs()
        assert not segment_exists(stack.name)
    finally:
        stack.close()


def test_bad_messages_get_an_error_reply_with_the_reason(shard_stack):
    with shard_stack.client() as c:
        good = order(10, 901, SIDE_BUY, 180.0, 10)
        cases = [
            (good.tobytes()[:63], "not a whole number of 64-byte"),
            (good.tobytes() + b"x", "65 bytes"),
            (b"", "0 bytes"),
        ]
        for payload, why in cases:
            r = c.recv(c.send(payload))
            assert r.error and why in r.error and "refused" in r.error and r.events.size == 0
        shut = good.copy()
        shut["action"] = ACTION_SHUTDOWN
        with pytest.raises(GatewayError, match="SHUTDOWN is a control record"):
            c.submit(np.concatenate([good, shut]))
        zero = good.copy()
        zero["action"] = 0
        with pytest.raises(GatewayError, match="record 0: action 0"):
            c.submit(zero)
        res = good.copy()
        res["reserved"][0, 3] = 1
        with pytest.raises(GatewayError, match="reserved bytes"):
            c.submit(res)
        with pytest.raises(GatewayError, match="symbol MSFT belongs to shard 1 of 2"):
            c.submit(order(11, 901, SIDE_BUY, 420.0, 10, sym=1))
        # the same checks on a long message (numpy path): the first bad record is named
        many = np.concatenate([order(20 + i, 901, SIDE_BUY, 180.0, 1) for i in range(40)])
        for field, value, why in (("action", ACTION_SHUTDOWN, "record 17: action 255"),
                                  ("symbol", 1, "record 17: symbol MSFT belongs to shard 1"),
                                  ("reserved", 7, "record 17: reserved bytes")):
            bad = many.copy()
            bad[field][17] = value
            with pytest.raises(GatewayError, match=why):
                c.submit(bad)
        with pytest.raises(GatewayError, match="header must be"):
            c.submit("ts,acct\n1,2\n")
        # raw frames: wrong count, unknown kind; the token comes back with the error
        c.sock.send_multipart([b"ORD", b"tok-1"])
        r = c.recv(b"")
        assert r.error and "expected frames" in r.error
        c.sock.send_multipart([b"XYZ", b"tok-2", good.tobytes()])
        r = c.recv(b"tok-2")
        assert r.error and "unknown message kind" in r.error
        # none of the refused records reached the engine (order 10 would be a duplicate id,
        # orders 20-59 would rest); a good one still does
        ev = c.submit(good)
        assert list(ev["kind"]) == [EV_ACK] and int(ev["msg_seq"][0]) == 0
        # an ill-formed record is the engine's business: REJECT MALFORMED, not a gateway error
        bad_side = order(12, 901, 9, 185.0, 10, msg_seq=77)
        ev = c.submit(bad_side)
        assert list(ev["kind"]) == [EV_REJECT] and ev["reason"][0] == R_MALFORMED and ev["msg_seq"][0] == 77
        # CSV rows are accepted too (row numbers become msg_seq)
        buf = io.BytesIO()
        write_flow_csv(buf, np.concatenate([order(13, 901, SIDE_SELL, 185.5, 5), order(14, 901, SIDE_SELL, 185.6, 5)]),
                       as_venue(None))
        ev = c.submit_csv(buf.getvalue().decode())
        assert list(ev["kind"]) == [EV_ACK, EV_ACK] and list(ev["msg_seq"]) == [1, 2]
    assert shard_stack.gw.poll() is None


def test_a_token_over_64_bytes_is_refused_and_a_64_byte_token_is_echoed(shard_stack):
    """docs/offload.md: `token` is 0-64 opaque bytes. A longer one refuses the message (its
    first 64 bytes come back so the client can match the ERR); 64 bytes are accepted."""
    rec = order(30, 908, SIDE_BUY, 180.0, 1)
    long_token = bytes(range(65))
    with shard_stack.client() as c:
        c.sock.send_multipart([b"ORD", long_token, rec.tobytes()])
        r = c.recv(long_token[:64])
        assert r.error == "token of 65 bytes: at most 64", r.error
        assert r.events.size == 0 and r.venue_seqs.size == 0
        token = bytes(range(100, 164))
        c.sock.send_multipart([b"ORD", token, rec.tobytes()])
        r = c.recv(token)
        # the same order id is ACKed, not REJECTed as a duplicate: the refused record never arrived
        assert r.error is None and list(r.events["kind"]) == [EV_ACK] and int(r.events["order_id"][0]) == 30
        assert len(r.venue_seqs) == 1


def test_a_client_that_disconnects_mid_flow_does_not_stall_the_others(shard_stack):
    leaver = shard_stack.client()
    flood = aapl_flow(902, 100_000, 3000, seed=1)
    for i in range(0, len(flood), 10):
        leaver.send(flood[i : i + 10])  # never reads a reply
    leaver.close()  # linger 0: gone with replies on their way
    mine = aapl_flow(903, 200_000, 600, seed=2)
    with shard_stack.client() as c:
        got = 0
        for i in range(0, len(mine), 3):
            ev = c.submit(mine[i : i + 3])
            assert len(ev) >= 3 and set(ev["account"].tolist()) == {903}
            got += int((ev["kind"] == EV_ACK).sum())
        assert got == len(mine)
    with shard_stack.client() as c:  # and a newcomer is served
        assert list(c.submit(order(300_000, 904, SIDE_BUY, 180.0, 1))["kind"]) == [EV_ACK]


def test_an_engine_that_dies_mid_message_is_reported_with_k_of_n_records_and_their_events(tmp_path):
    """docs/offload.md, Lifetime: the engine dying answers the request in flight with `ERR
    "engine gone (...): k of n records of this message were processed"` and the events of
    those k records, every new request with `ERR "engine gone"` for --grace seconds, then the
    gateway exits 3 and removes the segment and both ready files. The point of death is made
    exact: the engine is frozen (SIGSTOP) while the gateway fills the 64-slot order ring with
    the first 64 of 1,000 records, then the gateway is frozen and the engine thawed until it
    has processed exactly those 64, then the engine is killed and the gateway thawed."""
    s = Stack(tmp_path, "--orders-cap", "64", "--grace", "3")
    seg = None
    try:
        from offload.ring import Segment

        with s.client() as c:
            assert list(c.submit(order(400_000, 905, SIDE_BUY, 180.0, 1))["kind"]) == [EV_ACK]
            seg = Segment.attach(s.name, timeout=5)  # to read the cursors of ring 0
            r0 = seg.ring(0)
            base = r0.tail()
            assert base == r0.head() == 1
            n, cap = 1000, 64
            flow = aapl_flow(907, 500_000, n, seed=5)  # one account: every event is this client's
            s.engine.send_signal(signal.SIGSTOP)
            tok = c.send(flow)
            s.wait(lambda: r0.head() == base + cap, "the gateway to fill the order ring", STEP_TIMEOUT)
            s.gw.send_signal(signal.SIGSTOP)
            s.engine.send_signal(signal.SIGCONT)
            s.wait(lambda: r0.tail() == base + cap, "the engine to process the records in the ring", STEP_TIMEOUT)
            s.engine.send_signal(signal.SIGKILL)
            s.engine.wait(STEP_TIMEOUT)
            assert r0.head() == base + cap, "the gateway wrote records while frozen"
            s.gw.send_signal(signal.SIGCONT)
            r = c.recv(tok)
            assert r.error is not None, "a message cut short by a dead engine got an EV reply"
            assert re.fullmatch(r"engine gone \(engine pid \d+ exited\): 64 of 1000 records of this message were "
                                r"processed \(their events are attached\), the rest are journaled and run when the venue "
                                r"recovers", r.error), r.error
            assert np.array_equal(r.venue_seqs, np.arange(base + 1, base + cap + 1)), r.venue_seqs
            # the events attached are exactly those of the 64 processed records, in the client's msg_seq
            # (thawed, the gateway may write more of the message into the freed slots before its
            # next engine check, 20 ms; those are journaled and never processed)
            journal = load_journal(s.journal).records[: base + cap]
            got_recs, sent = journal[base:].copy(), flow[:cap].copy()
            for x in (got_recs, sent):
                x["ts"] = x["msg_seq"] = 0
            assert np.array_equal(words(got_recs), words(sent)), "the ring got other records than were sent"
            want = replay_records(journal, as_venue(None))
            want = want[want["msg_seq"] > base].copy()
            want["msg_seq"] -= base  # the flow's own msg_seq are 1..n
            assert len(want) >= cap and np.array_equal(words(r.events), words(want)), (r.events, want)
            with pytest.raises(GatewayError, match=r"^engine gone \(engine pid \d+ exited\): message refused$"):
                c.submit(order(400_001, 905, SIDE_BUY, 180.0, 1))
        try:
            rc = s.gw.wait(STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the gateway did not exit after its engine died:\n{s.logs()}") from None
        assert rc == EXIT_ENGINE_GONE, s.logs()
        assert f"exited; answering every request with ERR for 3.0 s, then exiting {EXIT_ENGINE_GONE}" in s.logs()
        assert not segment_exists(s.name)
        assert not os.path.exists(G.ready_path(s.name, "gateway"))
        assert not os.path.exists(G.ready_path(s.name))  # the SIGKILLed engine's, removed by the owner
    finally:
        for p in (s.engine, s.gw):  # never leave a frozen process behind
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGCONT)
        if seg is not None:
            seg.close()
        s.close()


def _pid_of_ready_file(path) -> int:
    with open(path) as f:
        return int(f.readline())


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _one_client_replay(stack, flow, size=50) -> np.ndarray:
    """Submit `flow` in messages of `size` records, one at a time; every event of it in order."""
    with stack.client() as c:
        return np.concatenate([c.submit(flow[i : i + size]) for i in range(0, len(flow), size)])


def test_spawn_engine_starts_its_engine_serves_and_shuts_it_down_on_sigterm(tmp_path):
    """docs/offload.md, Lifetime: with --spawn-engine the gateway starts `tickbook engine` on
    its segment as its own child, serves once it is ready, and at SIGTERM sends it the
    SHUTDOWN record (the engine exits 0) and removes the segment and both ready files."""
    stack = Stack(tmp_path, "--spawn-engine", "--engine-arg=--no-pin", "--engine-arg=--yield-after=4096",
                  start_engine=False)
    try:
        stack.wait_ready()
        eng = _pid_of_ready_file(G.ready_path(stack.name))
        assert _parent_of(eng) == stack.gw.pid, "the engine serving the segment is not the gateway's child"
        venue = as_venue(None)
        flow = generate(venue, 2000, seed=21)
        flow["msg_seq"] = np.arange(1, len(flow) + 1)
        got = _one_client_replay(stack, flow)  # one client: every event in its replies
        journal = load_journal(stack.journal).records  # as stamped: the rate limits see the gateway's clock
        assert np.array_equal(journal["msg_seq"], flow["msg_seq"])
        want = replay_records(journal, venue)
        assert len(got) == len(want) and np.array_equal(words(got), words(want)), stack.logs()
        assert stack.stop() == EXIT_OK, stack.logs()
        assert not pid_alive(eng), "the spawned engine outlived its gateway"
        logs = stack.logs()
        assert f"engine[{eng}]: exit on SHUTDOWN record: processed {len(flow):,} orders" in logs, logs
        assert f"engine pid {eng} ready on {stack.name}" in logs
        assert not segment_exists(stack.name)
        assert not os.path.exists(G.ready_path(stack.name))
        assert not os.path.exists(G.ready_path(stack.name, "gateway"))
    finally:
        stack.close()


def test_attach_serves_an_existing_segment_refuses_a_second_producer_and_leaves_the_engine_running(tmp_path):
    """docs/offload.md, Lifetime: `--attach` uses an existing segment instead of creating one,
    is refused (exit 2, one line) while ring 0 has a live producer, and leaves the engine
    running at exit. A later gateway attaching to the same engine continues its book and its
    venue-wide message numbers."""
    from offload.engine_process import engine_segment

    name = f"tickbook-gwtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    seg = engine_segment(name, orders_cap=1 << 10, events_cap=1 << 12)  # this test owns it
    eng_log = open(tmp_path / "engine.log", "w+")
    engine = subprocess.Popen(
        [sys.executable, "-m", "offload.engine_process", "--rings", name, "--no-pin", "--yield-after", "4096"],
        cwd=REPO, stdout=eng_log, stderr=subprocess.STDOUT)
    stacks = []

    def gateway(sub):
        (tmp_path / sub).mkdir()
        st = Stack(tmp_path / sub, "--attach", start_engine=False, name=name)
        stacks.append(st)
        st.wait_ready()
        return st

    def logs():
        eng_log.flush()
        eng_log.seek(0)
        return "\n".join([*(st.logs() for st in stacks), eng_log.read()])

    try:
        t0 = time.monotonic()
        while seg.peer_pid != engine.pid:
            assert engine.poll() is None, f"the engine exited before it was ready:\n{logs()}"
            assert time.monotonic() - t0 < READY_TIMEOUT, f"the engine never became ready:\n{logs()}"
            time.sleep(0.02)
        venue = as_venue(None)
        first = aapl_flow(910, 600_000, 300, seed=8)
        second = aapl_flow(911, 700_000, 100, seed=9)  # another account: it trades with the first's orders

        a = gateway("a")
        assert "(attached)" in a.logs()
        got_a = _one_client_replay(a, first)
        journal_a = load_journal(a.journal).records
        assert np.array_equal(words(got_a), words(replay_records(journal_a, venue))), logs()

        r = subprocess.run(
            [sys.executable, "-m", "offload.gateway", "--insecure-local", "--rings", name, "--attach", "--orders",
             f"ipc://{tmp_path}/refused-orders", "--md", f"ipc://{tmp_path}/refused-md"],
            cwd=REPO, capture_output=True, text=True, timeout=STEP_TIMEOUT)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == EXIT_USAGE, r.stderr
        assert len(lines) == 1 and lines[0].startswith("gateway[") and (
            f"ring 0 of {name} already has a live producer (pid {a.gw.pid})" in lines[0]), r.stderr

        assert a.stop() == EXIT_OK, logs()
        assert engine.poll() is None, f"the attached gateway stopped the engine:\n{logs()}"
        assert segment_exists(name) and os.path.exists(G.ready_path(name)), "attach removed what it does not own"

        b = gateway("b")  # the producer is gone: attaching is allowed again
        with b.client() as c:
            rep = c.recv(c.send(second[:1]))
            assert rep.error is None and list(rep.venue_seqs) == [len(first) + 1], rep
            got_b = [rep.events] + [c.submit(second[i : i + 50]) for i in range(1, len(second), 50)]
        # the engine kept its book: the second half's events are those of the whole flow's replay
        journal_b = load_journal(b.journal).records
        assert np.array_equal(journal_b["msg_seq"], np.arange(len(first) + 1, len(first) + len(second) + 1))
        whole = replay_records(np.concatenate([journal_a, journal_b]), venue)
        want_b = whole[whole["msg_seq"] > len(first)].copy()
        assert (want_b[want_b["account"] == 910]["kind"] == EV_FILL).any(), "the second half never traded with the first"
        # this client gets its own account's events; the makers' (account 910) were placed
        # through the first gateway, so this one does not know their owner and sends them nowhere
        want_b = want_b[want_b["account"] == 911]
        want_b["msg_seq"] -= len(first)
        want_b["contra_id"] = 0  # its fills' other orders are account 910's, not this client's: hidden
        assert np.array_equal(words(np.concatenate(got_b)), words(want_b)), logs()
        assert b.stop() == EXIT_OK, logs()
        assert engine.poll() is None
        from offload.server import shutdown_record

        seg.ring(0).push(shutdown_record())  # the owner ends its engine's run, after everything before
        assert engine.wait(STEP_TIMEOUT) == 0, logs()
        assert f"exit on SHUTDOWN record: processed {len(first) + len(second):,} orders" in logs()
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait(10)
        for st in stacks:
            st.close()
        seg.close()
        eng_log.close()
        G.remove_file(G.ready_path(name))


@pytest.mark.parametrize("case", ["address in use", "segment with a live owner"])
def test_startup_errors_exit_2_with_one_line_and_leave_nothing_behind(tmp_path, case):
    """docs/offload.md, Lifetime: startup errors (address in use, segment exists with a live
    owner) exit 2 with one line."""
    from offload.ring import Segment

    name = f"tickbook-gwtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ctx = zmq.Context()
    blocker = ctx.socket(zmq.ROUTER)
    blocker.setsockopt(zmq.LINGER, 0)
    seg = None
    orders = f"ipc://{tmp_path}/orders"
    try:
        if case == "address in use":
            blocker.bind("tcp://127.0.0.1:*")
            orders = blocker.getsockopt_string(zmq.LAST_ENDPOINT)
            why = "Address already in use"
        else:
            seg = Segment.create(name, [("orders", 16), ("events", 16)])
            why = f"segment {name} exists (owned by a live process?)"
        r = subprocess.run([sys.executable, "-m", "offload.gateway", "--insecure-local", "--rings", name, "--orders", orders,
                            "--md", f"ipc://{tmp_path}/md"], cwd=REPO, capture_output=True, text=True,
                           timeout=STEP_TIMEOUT)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == EXIT_USAGE, r.stderr
        assert len(lines) == 1 and re.match(r"gateway\[\d+\]: cannot start on ", lines[0]) and why in lines[0], r.stderr
        if seg is None:
            assert not segment_exists(name), "a gateway that could not bind left a segment"
        else:
            assert segment_exists(name) and seg.owner_pid == os.getpid(), "the refused gateway touched the segment"
        assert not os.path.exists(G.ready_path(name, "gateway"))
    finally:
        blocker.close()
        ctx.term()
        if seg is not None:
            seg.close()


def test_sigterm_to_gateway_and_engine_at_once_is_clean(tmp_path):
    """Pod termination: both containers get SIGTERM together; whichever stops first, the
    gateway exits 0 and nothing is left in /dev/shm."""
    stack = Stack(tmp_path)
    try:
        with stack.client() as c:
            assert list(c.submit(order(1, 906, SIDE_BUY, 180.0, 1))["kind"]) == [EV_ACK]
        stack.engine.send_signal(signal.SIGTERM)
        assert stack.stop() == 0, stack.logs()
        assert stack.engine.wait(STEP_TIMEOUT) == 0, stack.logs()
        assert not segment_exists(stack.name)
        assert not os.path.exists(G.ready_path(stack.name))
        assert not os.path.exists(G.ready_path(stack.name, "gateway"))
    finally:
        stack.close()


def test_sigterm_after_the_engine_has_stopped_is_still_a_clean_stop(tmp_path):
    """The order of the race above that used to exit 3: the engine's SIGTERM lands and it closes
    its ring before the gateway's own SIGTERM arrives, inside the engine-gone grace period. The
    grace is long here: with the default 1 s, a loaded machine (a CI run beside a place-and-route)
    once let it end before the test's SIGTERM, and the gateway, already exiting 3 on its own,
    died of the signal (-15)."""
    stack = Stack(tmp_path, "--grace", "30")
    try:
        with stack.client() as c:
            assert list(c.submit(order(1, 907, SIDE_BUY, 180.0, 1))["kind"]) == [EV_ACK]
        stack.engine.send_signal(signal.SIGTERM)
        assert stack.engine.wait(STEP_TIMEOUT) == 0, stack.logs()
        stack.wait(lambda: "closed its event ring" in stack.logs(), "the gateway to see the engine stop", STEP_TIMEOUT)
        assert stack.stop() == 0, stack.logs()
        assert not segment_exists(stack.name)
    finally:
        stack.close()


def test_cli_has_the_gateway_subcommand():
    from tickbook.cli import main

    with pytest.raises(SystemExit) as e:
        main(["gateway", "--help"])
    assert e.value.code == 0


def test_client_refuses_records_of_another_dtype():
    with Client("ipc:///nonexistent/never", timeout=1.0) as c:
        with pytest.raises(TypeError, match="ORDER_DTYPE"):
            c.send(np.zeros(2, EVENT_DTYPE))


# ------------------------------------------------------------------ --offload hw | shadow

from hdl.sim.driver import simulator_available  # noqa: E402

HW_OK, HW_WHY = simulator_available()
NORD, NLVL = 8, 3  # a small book: the flow fills it (CAPACITY), Icarus runs it fast
N_HW = 240  # records through the bridge (~1-3k records/s)


class OffloadStack(Stack):
    """Gateway --offload hw|shadow on the hdl diff venue (no account limits: the hardware has
    none), the bridge on NAME-hw with that venue at max_orders 8, max_levels 3 (it builds the
    book with the venue's capacities) and, in shadow, an engine on NAME with the venue
    `engine_venue` given (the same capacities, or not)."""

    def __init__(self, tmp: Path, mode: str, engine_venue=None, *gw_args):
        import pickle

        from testkit.flows import DIFF_VENUE_TOML, diff_venue

        (tmp / "venue.toml").write_text(DIFF_VENUE_TOML)
        card = diff_venue().with_capacity(max_orders=NORD, max_levels=NLVL)
        for what, v in (("bridge", card), ("engine", engine_venue)):
            with open(tmp / f"{what}.pickle", "wb") as f:
                pickle.dump(v, f)
        self.mode, self.bridge = mode, None
        self.br_log = open(tmp / "bridge.log", "w+")
        name = f"tickbook-gwtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.hw_name = G.hw_segment(name)
        super().__init__(tmp, "--offload", mode, "--config", str(tmp / "venue.toml"), "--engine-timeout", "300",
                         *gw_args, start_engine=False, segment=self.hw_name, name=name)
        self.bridge = subprocess.Popen(
            [sys.executable, "-m", "hdl.sim.bridge", "--rings", self.hw_name, "--venue-pickle",
             str(tmp / "bridge.pickle"), "--timeout", "120"],
            cwd=REPO, stdout=self.br_log, stderr=subprocess.STDOUT)
        if mode == "shadow":
            self.engine = subprocess.Popen(
                [sys.executable, "-m", "offload.engine_process", "--rings", self.name, "--no-pin",
                 "--yield-after", "4096", "--attach-timeout", "60", "--venue-pickle", str(tmp / "engine.pickle")],
                cwd=REPO, stdout=self.eng_log, stderr=subprocess.STDOUT)
        self.wait(lambda: os.path.exists(G.ready_path(self.name, "gateway")), "the gateway to be ready", READY_TIMEOUT)

    def logs(self) -> str:
        self.br_log.flush()
        self.br_log.seek(0)
        return super().logs() + "\n" + self.br_log.read()

    def status(self) -> dict:
        return G.read_status(G.ready_path(self.name, "gateway"))

    def close(self):
        if self.bridge is not None and self.bridge.poll() is None:
            self.bridge.kill()
            self.bridge.wait(10)
        self.br_log.close()
        super().close()
        reap_stale(self.hw_name)


def _hw_flow(seed):
    from testkit.flows import diff_venue, random_records

    return random_records(seed, N_HW, diff_venue(), nord=NORD, nlvl=NLVL)  # msg_seq 1..n, actions 1-5


HW_ORDERS_CAP = 16  # order ring slots in the offload tests: less than one message of the flow


def _submit_all(stack, flow, seed):
    """One client, messages of 1-24 records, up to 4 in flight: its events in venue order.
    The second message has HW_ORDERS_CAP + 8 records: it cannot fit in the order ring at
    once, so the gateway has to wait for the server (back-pressure) whatever the timing."""
    rng = np.random.default_rng(seed)
    sent, events = {}, []
    with stack.client() as c:
        i = m = 0
        while i < len(flow) or sent:
            if i < len(flow) and len(sent) < 4:
                m += 1
                n = HW_ORDERS_CAP + 8 if m == 2 else int(rng.integers(1, 25))
                sent[c.send(flow[i : i + n])] = len(sent)
                i += n
                continue
            tok = next(iter(sent))  # replies of one connection come in order
            r = c.recv(tok)
            assert r.error is None, f"{r.error}\n{stack.logs()}"
            del sent[tok]
            events.append(r.events)
    return np.concatenate(events)


def _first_differing_message(a, b):
    from engine.compare import first_divergence

    for m in np.unique(np.concatenate([a["msg_seq"], b["msg_seq"]])):
        if first_divergence(a[a["msg_seq"] == m], b[b["msg_seq"] == m], np.empty(0, ORDER_DTYPE)) is not None:
            return int(m)
    return None


@pytest.mark.hdl
@pytest.mark.skipif(not HW_OK, reason=f"hdl simulation unavailable: {HW_WHY}")
@pytest.mark.parametrize("mode,capacities", [("hw", None), ("shadow", "hardware"), ("shadow", "engine default")],
                         ids=["hw", "shadow-agree", "shadow-diverge"])
def test_offload_hw_and_shadow(tmp_path, mode, capacities):
    """hw: the client gets the hardware's events, equal to the in-process replay with the
    hardware's capacities. shadow: the client gets the engine's events; every hardware event
    is compared with the engine's, and an engine with other capacities than the card
    (CAPACITY rejects only on the card) is caught at the first message that differs, reported
    in the log, the ready file's status and the exit line. In every mode a message larger than
    the 16-slot order rings makes the gateway wait for the slower server (back-pressure: counted
    in the exit line), and nothing is lost (the journal and the events are complete). SIGTERM
    ends gateway, bridge and engine through their SHUTDOWN records and removes both segments."""
    from engine.records import R_CAPACITY
    from testkit.flows import diff_venue
    from hdl.sim.driver import engine_venue

    hw_venue = engine_venue(diff_venue(), NORD, NLVL)
    sw_venue = hw_venue if capacities == "hardware" else diff_venue()
    flow = _hw_flow(31 if capacities != "engine default" else 32)
    # 16-slot order rings (both, in shadow): a 24-record message must wait for the server
    stack = OffloadStack(tmp_path, mode, sw_venue if mode == "shadow" else None, "--orders-cap", str(HW_ORDERS_CAP))
    try:
        st = stack.status()
        assert st["pid"] == str(stack.gw.pid) and st["offload"] == mode, st
        got = _submit_all(stack, flow, 7)
        journal = load_journal(stack.journal).records
        assert len(journal) == len(flow) and np.array_equal(journal["msg_seq"], flow["msg_seq"])
        want = replay_records(journal, sw_venue if mode == "shadow" else hw_venue)
        assert len(got) == len(want) and np.array_equal(words(got), words(want)), stack.logs()
        ref_hw = replay_records(journal, hw_venue)
        expect_first = _first_differing_message(want, ref_hw) if mode == "shadow" else None
        if capacities == "engine default":  # the setup must diverge, and through CAPACITY
            assert expect_first is not None
            assert (ref_hw[ref_hw["msg_seq"] == expect_first]["reason"] == R_CAPACITY).any()
        elif mode == "shadow":
            assert expect_first is None
        if mode == "shadow":  # the hardware catches up: every record compared
            stack.wait(lambda: int(stack.status().get("compared", 0)) == len(flow),
                       "the hardware's events of every record to be compared", STEP_TIMEOUT)
            st = stack.status()
            assert st["stamped"] == str(len(flow)), st
            if expect_first is None:
                assert st["divergent"] == "0" and "first_divergence" not in st, st
            else:
                assert int(st["divergent"]) >= 1, st
                assert st["first_divergence"].startswith(f"msg_seq={expect_first}: "), st
        assert stack.stop() == 0, stack.logs()
        assert stack.bridge.wait(STEP_TIMEOUT) == 0, stack.logs()
        if stack.engine is not None:
            assert stack.engine.wait(STEP_TIMEOUT) == 0, stack.logs()
        logs = stack.logs()
        assert logs.count("exit on SHUTDOWN record") == (2 if mode == "shadow" else 1), logs
        exit_line = next(x for x in logs.splitlines() if "gateway[" in x and ": exit (" in x)
        assert f"offload {mode}" in exit_line and "0 error replies" in exit_line, exit_line
        stalls = int(re.search(r"([\d,]+) waits on a full order ring", exit_line).group(1).replace(",", ""))
        assert stalls > 0, f"the order ring never filled: back-pressure was not exercised: {exit_line}"
        if mode == "shadow":
            n_div = 0 if expect_first is None else int(st["divergent"])
            assert f"shadow: {len(flow)} of {len(flow)} records compared with the hardware, {n_div} divergent" in exit_line, exit_line
            if expect_first is None:
                assert "differ on message" not in logs
            else:
                assert f"(first at msg_seq {expect_first})" in exit_line
                m = re.search(r"shadow: engine \(sw\) and hardware \(hw\) differ on message msg_seq=(\d+): "
                              r"first divergence at event", logs)
                assert m and int(m.group(1)) == expect_first, logs
                assert logs.count("differ on message") == 1, "only the first divergence is logged"
        for seg in (stack.name, stack.hw_name):
            assert not segment_exists(seg), seg
        assert not os.path.exists(G.ready_path(stack.name, "gateway"))
    finally:
        stack.close()


def test_cli_has_the_bridge_subcommand():
    r = subprocess.run([sys.executable, "-m", "tickbook.cli", "bridge", "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "--rings" in r.stdout and "--nord" in r.stdout, r.stderr


def test_gateway_refuses_spawn_engine_in_hw_mode(tmp_path):
    r = subprocess.run([sys.executable, "-m", "offload.gateway", "--insecure-local", "--rings", f"tickbook-gwtest-{uuid.uuid4().hex[:6]}",
                        "--orders", f"ipc://{tmp_path}/o", "--md", f"ipc://{tmp_path}/m", "--offload", "hw",
                        "--spawn-engine"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no engine runs in hw mode" in r.stderr, r.stderr
