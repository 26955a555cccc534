"""Recovery after a crash, proven by killing the venue (docs/journal.md#recovery).

A flow goes through a real gateway and engine (processes, rings, sockets) with a journal. At
seeded random points the engine, the gateway or both get SIGKILL, some while a message is
in flight; the venue restarts on the same journal directory and the flow is finished. Then:

- the journal holds every record of the flow exactly once, in order: nothing a client was
  told was executed is lost, and nothing is executed twice;
- the state recovered from the journal equals one uninterrupted run over the same records,
  array by array;
- every record the client sent got exactly one answer: its reply, or, when the reply was lost
  to the kill, the answer to sending the message again in the same named session (executed then
  if it had not been journaled, answered from the record if it had);
- every answer carries, byte for byte, the events that the uninterrupted run gives its records,
  with the venue's numbers (msg_seq, event seq) continuing across restarts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from engine.api import as_venue
from engine.gen import generate
from engine.snapshot import advance
from engine.state import EngineState, make_state
from offload import gateway as G
from offload.gateway import Client
from offload.journal import load_journal
from offload.recovery import recover
from offload.ring import pid_alive, reap_stale
from testkit.flows import with_kills

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 400.0  # a cold Numba compile of the live loop
STEP = 60.0
KILL_POINTS = int(os.environ.get("TICKBOOK_KILL_POINTS", "20"))  # make recovery-soak: 200


def words(a):
    return np.ascontiguousarray(a).view(np.int64).reshape(len(a), 8)



class Venue:
    """A gateway that spawns its engine, on one journal directory, restartable."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.name = f"tickbook-rectest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.journal = tmp / "journal"
        self.orders = f"ipc://{tmp}/orders"
        self.log = open(tmp / "venue.log", "w+")
        self.gw = None
        self.starts = 0

    def logs(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-20000:]

    def start(self, *args: str) -> None:
        self.starts += 1
        self.log.write(f"---- start {self.starts}\n")
        self.log.flush()
        self.gw = subprocess.Popen(
            [sys.executable, "-m", "offload.gateway", "--insecure-local", "--rings", self.name, "--orders", self.orders,
             "--md", f"ipc://{self.tmp}/md", "--journal", str(self.journal), "--spawn-engine", "--grace", "0.2",
             "--heartbeat", "0", "--engine-arg=--no-pin", "--engine-arg=--yield-after", "--engine-arg=4096", *args],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        while not self._ready():
            assert self.gw.poll() is None, f"the gateway exited ({self.gw.returncode}) at start:\n{self.logs()}"
            assert time.monotonic() - t0 < READY_TIMEOUT, f"the venue never became ready:\n{self.logs()}"
            time.sleep(0.01)

    def _ready(self) -> bool:
        """This gateway's ready file (a killed one leaves its own behind)."""
        try:
            return G.read_status(G.ready_path(self.name, "gateway")).get("pid") == str(self.gw.pid)
        except OSError:
            return False

    def engine_pid(self) -> int:
        with open(G.ready_path(self.name)) as f:
            return int(f.readline())

    def kill(self, which: str) -> None:
        eng = self.engine_pid()
        if which in ("engine", "both"):
            os.kill(eng, signal.SIGKILL)
        if which in ("gateway", "both"):
            self.gw.kill()
        try:
            self.gw.wait(STEP)  # an orphaned gateway ERRs for --grace, then exits 3
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the gateway outlived its engine:\n{self.logs()}") from None
        t0 = time.monotonic()
        while pid_alive(eng):  # an orphaned engine stops when its parent dies
            assert time.monotonic() - t0 < STEP, f"the engine outlived its gateway:\n{self.logs()}"
            time.sleep(0.01)

    def stop(self) -> int:
        self.gw.send_signal(signal.SIGTERM)
        return self.gw.wait(STEP)

    def close(self) -> None:
        if self.gw is not None and self.gw.poll() is None:
            self.gw.kill()
            self.gw.wait(10)
        reap_stale(self.name)
        for who in ("engine", "gateway"):
            G.remove_file(G.ready_path(self.name, who))
        self.log.close()


def _states_equal(a: EngineState, b: EngineState) -> None:
    for name, x, y in zip(EngineState._fields, a, b):
        assert np.array_equal(x, y), f"recovered state differs from one uninterrupted run in {name}"


def test_kill_anywhere_recover_and_finish(tmp_path):
    """KILL_POINTS (20; `make recovery-soak`: 200) seeded kills of the engine, the gateway or both, between messages and with a
    message in flight; after each the venue restarts and the flow goes on."""
    venue = as_venue(None)
    rng = np.random.default_rng(20261205)
    flow = generate(venue, 300 * KILL_POINTS, seed=11)
    flow = with_kills(flow, np.unique(flow["account"])[::7].tolist(), 700)  # killed accounts stay disabled
    cuts = np.sort(rng.choice(np.arange(1, len(flow) - 1), KILL_POINTS, replace=False))
    v = Venue(tmp_path)
    replies = []  # (venue msg_seqs, events as the client got them)
    resends = from_record = 0
    done = 0
    try:
        v.start()
        i = k = 0
        in_flight = None
        while i < len(flow):
            # a named session: its name and numbers outlive the connection and the venue
            with Client(v.orders, timeout=STEP, session="quant-1") as c:
                if in_flight is not None:  # sent before the kill, never answered: sent again
                    r = c.recv(c.send(in_flight))
                    assert r.error is None, r.error
                    replies.append((r.venue_seqs, r.events, True, bool(r.venue_seqs[-1] <= done)))
                    from_record += int(r.venue_seqs[-1] <= done)  # journaled before the kill: not run again
                    i += len(in_flight)
                    resends += 1
                    in_flight = None
                while i < len(flow):
                    n = int(rng.integers(1, 40))
                    if k < len(cuts) and i + n > cuts[k]:
                        n = max(1, int(cuts[k]) - i)
                    recs = flow[i : i + n]
                    tok = c.send(recs)
                    if k < len(cuts) and i + n >= cuts[k]:
                        break  # this message is in flight, or answered, at the kill
                    r = c.recv(tok)
                    assert r.error is None, r.error
                    replies.append((r.venue_seqs, r.events, False, False))
                    i += n
                else:
                    break
                if rng.random() < 0.5:
                    r = c.recv(tok)  # a kill between messages
                    assert r.error is None, r.error
                    replies.append((r.venue_seqs, r.events, False, False))
                    i += n
                else:
                    in_flight = recs
                which = ("engine", "gateway", "both")[int(rng.integers(0, 3))]
                v.kill(which)
                k += 1
            done = len(load_journal(v.journal).records)
            assert done in (i, i + n), f"the journal holds {done} records, the client sent {i} + {n}:\n{v.logs()}"
            v.start()
        assert v.stop() == 0, v.logs()
    finally:
        v.close()

    assert v.starts == KILL_POINTS + 1 and resends > 0
    print(f"{KILL_POINTS} kills, {resends} messages sent again, {from_record} of them answered from the record")
    got = load_journal(v.journal).records
    assert np.array_equal(got["msg_seq"], np.arange(1, len(flow) + 1))
    sent = flow.copy()
    for x in (got, sent):
        x["ts"] = x["msg_seq"] = 0
    assert np.array_equal(words(got), words(sent)), "the journal holds other records than the flow"

    whole = load_journal(v.journal).records
    ref_state = make_state(venue)
    ref = advance(ref_state, venue, whole)
    _states_equal(recover(v.journal, venue).state, ref_state)
    # Each reply against the uninterrupted run. The flow's own msg_seq are 1..n, and the journal
    # holds it once in order, so the venue's numbers equal the client's. One session placed every
    # order, so a reply carries every event of its records, makers' included: across restarts the
    # owners of resting orders are recovered. An answer from the record carries the events of the
    # accounts its records used (offload/sessions.py), and a fill's contra_id only when the other
    # order's account is one of those.
    answered = np.zeros(len(flow) + 1, int)
    for seqs, events, resent, from_rec in replies:
        assert np.array_equal(seqs, np.arange(seqs[0], seqs[0] + len(seqs)))
        want = ref[(ref["msg_seq"] >= seqs[0]) & (ref["msg_seq"] <= seqs[-1])]
        if from_rec:
            want = shown_to(want, whole["account"][seqs - 1])
        if resent:
            want = want[np.isin(want["account"], whole["account"][seqs - 1])]
            events = events[np.isin(events["account"], whole["account"][seqs - 1])]
        assert np.array_equal(words(events), words(want)), f"reply for msg_seq {seqs[0]}..{seqs[-1]} differs"
        answered[seqs] += 1
    # every message the client sent got exactly one answer (first reply, or the answer to its resend)
    assert (answered[1:] == 1).all(), np.flatnonzero(answered[1:] != 1)[:10]


def test_full_disk_refuses_with_err_and_loses_nothing(tmp_path):
    """A journal that cannot grow (RLIMIT_FSIZE: EFBIG, as on a full disk) makes the gateway
    refuse orders with an ERR that says why; it executes nothing that is not journaled, and
    every order it answered with events is in the journal."""
    import resource

    limit = 48 << 10

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    venue = as_venue(None)
    flow = generate(venue, 1500, seed=3)
    v = Venue(tmp_path)
    real_popen = subprocess.Popen
    try:
        subprocess.Popen = lambda *a, **k: real_popen(*a, preexec_fn=small_files, **k)
        v.start("--orders-cap", "64", "--events-cap", "256")  # a segment file well under the limit
        subprocess.Popen = real_popen
        answered, refused = [], []
        with Client(v.orders, timeout=STEP) as c:
            for i in range(len(flow)):
                r = c.recv(c.send(flow[i : i + 1]))
                (refused if r.error else answered).append((i, r))
        assert v.gw.poll() is None, f"the gateway died on a full journal:\n{v.logs()}"
        assert v.stop() == 0, v.logs()
        logs = v.logs()
    finally:
        subprocess.Popen = real_popen
        v.close()
    assert answered and refused, (len(answered), len(refused))
    why = refused[0][1].error
    assert why.startswith("journal write failed (") and "File too large" in why and why.endswith(
        "message refused, none of its records was executed"), why
    assert all(r.error.startswith("journal write failed (") and r.error.endswith("none of its records was executed")
               for _, r in refused)
    got = load_journal(v.journal).records
    assert len(got) == len(answered), "the journal and the answered orders differ"
    assert np.array_equal(got["order_id"], flow["order_id"][[i for i, _ in answered]])
    assert np.array_equal(got["msg_seq"], np.arange(1, len(got) + 1)), "refused records left a gap"
    assert logs.count("journal write failed (") < 10, "a failing journal floods the log"


def test_snapshot_on_request_then_recovery_replays_only_what_follows(tmp_path, capsys):
    """`tickbook journal DIR --snapshot` writes the state at the journal's end; a later recovery
    starts from it and replays only the records journaled after it, with the same result as
    one run over everything (a corrupt newest snapshot is skipped for the one before)."""
    from offload.journal import JournalWriter
    from offload.journal_cli import main as journal_main

    venue = as_venue(None)
    flow = generate(venue, 3000, seed=5)
    with JournalWriter(tmp_path, venue.digest(), fsync="none") as w:
        for i in range(0, len(flow), 50):
            w.append(b"quant-1", flow[i : i + 50].tobytes(), flow["msg_seq"][i : i + 50])
            w.commit()
            if i + 50 == 2000:
                assert journal_main([str(tmp_path), "--snapshot"]) == 0
                assert "snapshot at msg_seq 2,000 written (2,000 records replayed" in capsys.readouterr().out
    ref_state = make_state(venue)
    ref = advance(ref_state, venue, flow)
    r = recover(tmp_path, venue)
    assert (r.snapshot_seq, r.msg_seq, len(r.records)) == (2000, 3000, 1000)
    _states_equal(r.state, ref_state)
    assert np.array_equal(words(r.events), words(ref[ref["msg_seq"] > 2000]))

    assert journal_main([str(tmp_path), "--snapshot"]) == 0
    newest = tmp_path / "snapshot-0000000000003000.tbs"
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    newest.write_bytes(bytes(raw))
    skipped = []
    r = recover(tmp_path, venue, log=skipped.append)
    assert r.snapshot_seq == 2000 and len(skipped) == 1 and str(newest) in skipped[0]
    _states_equal(r.state, ref_state)


def test_named_session_resend_is_answered_from_the_record(tmp_path):
    """A message sent again in the same named session, on a new connection, gets the first
    reply's events and venue numbers, and nothing is executed twice; numbers that go down or
    straddle the session's last get an ERR; an anonymous client is not held to numbering."""
    venue = as_venue(None)
    flow = generate(venue, 300, seed=21)
    v = Venue(tmp_path)
    try:
        v.start()
        with Client(v.orders, timeout=STEP, session="desk-7") as c:
            first = [c.submit(flow[i : i + 30]) for i in range(0, 120, 30)]
            r1 = c.recv(c.send(flow[120:150]))
        with Client(v.orders, timeout=STEP, session="desk-7") as c:  # a new connection, the same session
            again = c.recv(c.send(flow[120:150]))
            assert again.error is None and np.array_equal(again.venue_seqs, r1.venue_seqs)
            own = lambda ev: ev[np.isin(ev["account"], flow["account"][120:150])]  # noqa: E731
            assert np.array_equal(words(again.events), words(own(shown_to(r1.events, flow["account"][120:150]))))
            old = c.recv(c.send(flow[0:30]))
            assert old.error is None and np.array_equal(
                words(old.events), words(own_of(shown_to(first[0], flow["account"][0:30]), flow[0:30])))
            bad = c.recv(c.send(flow[140:160]))
            assert bad.error and "straddles the session's last journaled number 150" in bad.error, bad.error
            down = c.recv(c.send(flow[[170, 160]]))
            assert down.error and "must increase" in down.error, down.error
            split = c.recv(c.send(flow[125:135]))
            assert split.error is None  # a part of a message is the numbers of consecutive venue messages
            new = c.recv(c.send(flow[150:180]))
            assert new.error is None and new.venue_seqs[0] == 151
        with Client(v.orders, timeout=STEP) as anon:
            assert anon.recv(anon.send(flow[180:181])).error is None
            assert anon.recv(anon.send(flow[180:181])).error is None  # anonymous: executed again
        assert v.stop() == 0, v.logs()
    finally:
        v.close()
    got = load_journal(v.journal).records
    assert len(got) == 182 and np.array_equal(got["order_id"][:180], flow["order_id"][:180])


def own_of(events, recs):
    return events[np.isin(events["account"], recs["account"])]


def shown_to(events, accounts):
    """What an answer from the record shows of these events: a fill's contra_id only when the
    other order's account is among `accounts` (the message's), else 0 (offload/sessions.py).
    `events` holds both fills of each trade (the taker's and the maker's, same msg_seq)."""
    from engine.records import EV_FILL

    ev = events.copy()
    f = np.flatnonzero(ev["kind"] == EV_FILL)
    acct = {(int(ev["msg_seq"][i]), int(ev["order_id"][i]), int(ev["contra_id"][i])): int(ev["account"][i]) for i in f}
    mine = set(np.asarray(accounts).tolist())
    for i in f:
        if acct.get((int(ev["msg_seq"][i]), int(ev["contra_id"][i]), int(ev["order_id"][i]))) not in mine:
            ev["contra_id"][i] = 0
    return ev


def test_snapshots_at_intervals_shorten_recovery(tmp_path):
    """--snapshot-every N: the gateway snapshots the journal in a child process as it grows, so
    a venue killed later recovers from a recent snapshot, not from the first record."""
    venue = as_venue(None)
    flow = generate(venue, 1200, seed=8)
    v = Venue(tmp_path)
    try:
        v.start("--snapshot-every", "300")
        with Client(v.orders, timeout=STEP, session="s") as c:
            for i in range(0, 900, 50):
                assert c.recv(c.send(flow[i : i + 50])).error is None
            t0 = time.monotonic()
            while not list(v.journal.glob("snapshot-*.tbs")):
                assert time.monotonic() - t0 < STEP, f"no snapshot was written:\n{v.logs()}"
                time.sleep(0.05)
            time.sleep(1.0)  # a later snapshot may be under way: let it land, or not
        v.kill("both")
        v.start()
        with Client(v.orders, timeout=STEP, session="s") as c:
            assert c.recv(c.send(flow[900:1200])).error is None
        assert v.stop() == 0
        logs = v.logs()
    finally:
        v.close()
    base = [int(x.replace(",", "")) for x in re.findall(r"recovered \S+ in [\d.]+ s: snapshot at msg_seq ([\d,]+)", logs)]
    assert base and base[0] >= 300, logs
    got = load_journal(v.journal).records  # as stamped: the rate limits count the gateway's clock
    assert np.array_equal(got["order_id"], flow["order_id"])
    ref_state = make_state(venue)
    advance(ref_state, venue, got)
    _states_equal(recover(v.journal, venue).state, ref_state)
