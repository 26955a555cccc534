"""The pinned engine process: busy-polls its order ring, writes events to its event ring.

    tickbook engine --rings NAME [--cpu N] [--config venue.toml] [--fifo PRIO] [--mlock] [--journal DIR]

NAME is a segment created by the client (the owner) with two rings: ring 0 carries order
records to the engine, ring 1 carries event records back (`engine_segment()` makes one).
The engine attaches (waiting for the segment if it is not there yet), takes the segment's
server claim (one server per segment: a second engine beside a live one is refused, exit 2,
before it touches anything; offload/ring.py), pins itself to one core of its cpuset, loads
the venue, builds its state and warms up the compiled loop on a throwaway state, then writes
its pid into the segment header (the "ready" signal) and serves with the same njit
`process_one` as batch replay. A recovered venue's order ring starts past 0 (the gateway
replayed its journal): the engine then starts from the state the gateway handed over, the
snapshot of that position in the journal directory (docs/journal.md).

Protocol (docs/offload.md): records are processed in ring order, in batches of at most
MAX_BATCH; the events of a batch are published (one release store of the event ring's HEAD)
before the order ring's TAIL moves past the batch, so a client that sees TAIL >= k has every
event of records < k readable. A SHUTDOWN record (action 255) ends the run after everything
before it; the engine then sets CLOSED on the event ring. SIGTERM / SIGINT set the STOP word
(the njit loop ignores signals; the main thread catches them and tells the loop through
shared memory); the owner's death makes the engine stop, unlink the orphaned segment and
exit. The loop bumps ring 0's heartbeat word once per batch and every 256 idle polls, so a
stuck engine (alive, loop frozen) can be told from a quiet one. The engine reports what it
processed on stderr.
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import sys
import threading
import time

import numpy as np
from numba import njit

from engine.book import PREFETCH_AHEAD, id_prefetch
from engine.diagnostics import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, process_logger
from engine.jit import NO_WRAPAROUND
from engine.jitcache import flush_if_engine_changed
from engine.matcher import events_bound, events_needed, process_one
from engine.records import ACTION_SHUTDOWN, EVENT_DTYPE, ORDER_DTYPE
from offload.atomics import backoff, load_acquire, load_relaxed, store_release
from offload.ring import (
    C_BEAT,
    CLOSED,
    HEAD,
    OK,
    STOP,
    STOPPED,
    TAIL,
    Segment,
    SegmentBusy,
    nb_push_words,
    ready_path,
    remove_own_file,
)

MAX_BATCH = 64  # order records per batch: bounds how long events wait for a publish
BEAT_SPINS = 255  # idle (or full-event-ring) polls between heartbeats: a few us, one store each
DEFAULT_ORDERS_CAP = 1 << 14
DEFAULT_EVENTS_CAP = 1 << 16
YIELD_AFTER = 1 << 62  # pinned engine: never yield by default

log = process_logger("engine")

# stats words
S_MSGS, S_EVENTS, S_BATCHES, S_MAX_BATCH, S_STATUS = 0, 1, 2, 3, 4
N_STATS = 8


def engine_segment(name: str, orders_cap: int = DEFAULT_ORDERS_CAP, events_cap: int = DEFAULT_EVENTS_CAP) -> Segment:
    """Create (own) the segment an engine serves: ring 0 orders in, ring 1 events out."""
    return Segment.create(name, [("orders", orders_cap), ("events", events_cap)])


# _nrt=False as on the matcher: the loop allocates nothing, and with reference counting on,
# handing the state (45 arrays) to a call increfs and decrefs every one of them.
_JIT = dict(NO_WRAPAROUND, cache=True, nogil=True, _nrt=False)  # it inlines the matcher


@njit(**_JIT)
def _flush(out_ctrl, out_words, evwords, n, out_head, out_tail, yield_after, in_ctrl, beat):
    """Push evwords[:n] to the event ring, waiting while it is full (back-pressure: spin,
    sched_yield past yield_after polls, the heartbeat every BEAT_SPINS + 1 polls, STOP checked
    as often). Returns (out_head, out_tail, status, beat)."""
    done = 0
    spins = 0
    while done < n:
        out_head, out_tail, k = nb_push_words(out_ctrl, out_words, evwords, done, n, out_head, out_tail)
        if k > 0:
            done += k
            spins = 0
            continue
        backoff(spins, yield_after)
        spins += 1
        if (spins & BEAT_SPINS) == 0:
            beat += 1  # waiting on the consumer is not being stuck
            store_release(in_ctrl, C_BEAT, beat)
            if load_acquire(out_ctrl, STOP) != 0:
                return out_head, out_tail, STOPPED, beat
    return out_head, out_tail, OK, beat


@njit(**_JIT)
def serve(st, in_ctrl, in_recs, out_ctrl, out_words, evbuf, evwords, yield_after, stats):
    """The live loop. Returns when a SHUTDOWN record arrives (OK) or STOP is set (STOPPED).
    It bumps ring 0's heartbeat word (C_BEAT) once per batch and every BEAT_SPINS + 1 idle
    polls: one store, no syscall, so a reader can tell a stuck loop from a quiet one."""
    cap_in = in_recs.shape[0]
    mask_in = cap_in - 1
    in_tail = load_relaxed(in_ctrl, TAIL)
    in_head = in_tail
    out_head = load_relaxed(out_ctrl, HEAD)
    out_tail = load_acquire(out_ctrl, TAIL)
    n_buf = evbuf.shape[0]
    spins = 0
    status = OK
    beat = load_relaxed(in_ctrl, C_BEAT) + 1  # goes on from a predecessor's value
    store_release(in_ctrl, C_BEAT, beat)
    while True:
        if in_head == in_tail:
            in_head = load_acquire(in_ctrl, HEAD)
            if in_head == in_tail:
                backoff(spins, yield_after)
                spins += 1
                if (spins & BEAT_SPINS) == 0:
                    beat += 1
                    store_release(in_ctrl, C_BEAT, beat)
                    if (spins & 1023) == 0 and load_acquire(in_ctrl, STOP) != 0:
                        status = STOPPED
                        break
                continue
        spins = 0
        end = min(in_head, in_tail + MAX_BATCH)
        n_out = 0
        shutdown = False
        c = in_tail
        for k in range(c + 1, min(end, c + PREFETCH_AHEAD)):
            id_prefetch(st, in_recs[k & mask_in].order_id)
        while c < end:
            slot = c & mask_in
            if in_recs[slot].action == ACTION_SHUTDOWN:
                shutdown = True
                c += 1
                break
            if n_buf - n_out < events_needed(st):
                out_head, out_tail, s, beat = _flush(out_ctrl, out_words, evwords, n_out, out_head, out_tail,
                                                     yield_after, in_ctrl, beat)
                if s != OK:
                    status = s
                    break
                stats[S_EVENTS] += n_out
                n_out = 0
            if c + PREFETCH_AHEAD < end:
                id_prefetch(st, in_recs[(c + PREFETCH_AHEAD) & mask_in].order_id)  # hides its id's miss
            n_out = process_one(st, in_recs, slot, evbuf, n_out)
            stats[S_MSGS] += 1
            c += 1
        if status != OK:
            break
        if n_out > 0:
            out_head, out_tail, s, beat = _flush(out_ctrl, out_words, evwords, n_out, out_head, out_tail,
                                                 yield_after, in_ctrl, beat)
            if s != OK:
                status = s
                break
            stats[S_EVENTS] += n_out
        # the events of records < c are published: now let the producer reuse their slots
        stats[S_BATCHES] += 1
        stats[S_MAX_BATCH] = max(stats[S_MAX_BATCH], c - in_tail)
        in_tail = c
        store_release(in_ctrl, TAIL, in_tail)
        beat += 1  # once per batch: a busy loop beats too
        store_release(in_ctrl, C_BEAT, beat)
        if shutdown:
            break
    store_release(out_ctrl, CLOSED, 1)
    stats[S_STATUS] = status
    return status


def _run_on_arrays(st, orders, n_events_max, yield_after=1):
    """`serve` over private arrays laid out like rings (no other process): for warm-up and
    the self-check. The event "ring" is sized to hold every event, so nothing waits."""
    n = len(orders) + 1
    cap_in = 1 << max(4, n.bit_length())
    cap_out = 1 << max(8, (n_events_max + MAX_BATCH).bit_length())
    in_ctrl = np.zeros(512, np.int64)
    out_ctrl = np.zeros(512, np.int64)
    recs = np.zeros(cap_in, ORDER_DTYPE)
    recs[: n - 1] = orders
    recs[n - 1]["action"] = ACTION_SHUTDOWN
    in_ctrl[HEAD] = n
    out = np.zeros((cap_out, 8), np.int64)
    evbuf = np.zeros(int(events_bound(st)) + MAX_BATCH, EVENT_DTYPE)
    stats = np.zeros(N_STATS, np.int64)
    serve(st, in_ctrl, recs, out_ctrl, out, evbuf, evbuf.view(np.int64).reshape(-1, 8), yield_after, stats)
    return out[: out_ctrl[HEAD]].copy().view(EVENT_DTYPE).reshape(-1)


def warm_up(venue, check: bool = True) -> float:
    """Compile (or load from the cache) `serve` and the matcher on a throwaway state with the
    same types, so the first live order pays no compilation; then check `serve` against the
    batch replay on a generated flow. Numba's cache=True keys `serve` on this file only: after
    an edit of the matcher it would happily run the old matcher from the cache, so a mismatch
    here recompiles `serve` (and fails loudly if that does not fix it). Returns seconds spent."""
    from engine.api import replay_records
    from engine.gen import generate
    from engine.state import make_state

    t0 = time.perf_counter()
    flush_if_engine_changed(serve, "engine_process_serve")
    small = venue.with_capacity(max_orders=64, max_levels=16, max_accounts=max(64, len(venue.accounts) + 1))
    orders = generate(small, 3000 if check else 16, seed=7)
    ref = replay_records(orders, small) if check else None
    n_ev = len(ref) if check else 16 * 200
    got = _run_on_arrays(make_state(small), orders, n_ev)
    if check and not np.array_equal(got.view(np.int64), ref.view(np.int64)):
        log("the cached live loop disagrees with batch replay (stale Numba cache?): recompiling")
        serve.recompile()
        got = _run_on_arrays(make_state(small), orders, n_ev)
        if not np.array_equal(got.view(np.int64), ref.view(np.int64)):
            raise RuntimeError("the live loop and batch replay disagree on the warm-up flow")
    return time.perf_counter() - t0


def restore_state(journal: str | None, msg_seq: int, venue, rings: str):
    """The state after message msg_seq, which the gateway wrote when it recovered the venue
    (its order ring starts there); None, after one line, when it cannot be had."""
    from engine.snapshot import SnapshotError, load_snapshot, snapshot_name
    from engine.state import C_SEQ

    if journal is None:
        log(f"segment {rings} starts after msg_seq {msg_seq} (a recovered venue): "
            "the engine needs --journal DIR to load that state (docs/journal.md)")
        return None
    path = os.path.join(journal, snapshot_name(msg_seq))
    try:
        st, seq = load_snapshot(path, venue, n_messages=None)  # every page touched, as for a new book
    except SnapshotError as e:
        log(f"cannot restore the venue as of msg_seq {msg_seq}: {e}")
        return None
    log(f"restored {path}: the book after msg_seq {seq}, event seq {int(st.ctr[C_SEQ])}")
    return st


def load_engine_venue(config: str | None, venue_pickle: str | None):
    from engine.config import load_venue

    if venue_pickle:
        with open(venue_pickle, "rb") as f:
            return pickle.load(f)
    return load_venue(config)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tickbook engine", description=__doc__.split("\n\n")[0])
    p.add_argument("--rings", required=True, help="segment name (created by the client)")
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last allowed one)")
    p.add_argument("--config", default=None, help="venue.toml (default: the built-in venue)")
    p.add_argument("--venue-pickle", default=None, help=argparse.SUPPRESS)
    p.add_argument("--fifo", type=int, default=0, help="ask for SCHED_FIFO at this priority (0: no)")
    p.add_argument("--mlock", action="store_true", help="mlockall(MCL_CURRENT|MCL_FUTURE)")
    p.add_argument("--attach-timeout", type=float, default=30.0)
    p.add_argument("--yield-after", type=int, default=YIELD_AFTER,
                   help="idle polls before sched_yield (default never: the core is ours)")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--journal", default=None, metavar="DIR",
                   help="the gateway's journal directory: where a recovered venue's state is handed over")
    a = p.parse_args(argv)

    from engine.state import make_state
    from offload.pinning import allowed_cpus, die_with_parent, pin, set_fifo

    from engine.config import ConfigError

    die_with_parent(signal.SIGTERM)
    try:
        venue = load_engine_venue(a.config, a.venue_pickle)
    except (ConfigError, OSError) as e:  # one line naming the file, as the other commands do
        log(f"cannot load the venue: {e}")
        return EXIT_USAGE
    try:
        seg = Segment.attach(a.rings, timeout=a.attach_timeout, expect_rings=2)
    except Exception as e:  # a clear one-line refusal (layout, timeout)
        log(f"cannot attach {a.rings}: {e}")
        return EXIT_USAGE
    try:  # one server per segment: before any cursor, pid or ready file is touched
        seg.claim_server()
    except (SegmentBusy, OSError, RuntimeError) as e:
        seg.close()
        log(f"cannot serve {a.rings}: {e}")
        return EXIT_USAGE
    ready_file = ready_path(a.rings)
    try:
        r_in, r_out = seg.ring(0), seg.ring(1)
        if r_in.recs.dtype != ORDER_DTYPE or r_out.recs.dtype != EVENT_DTYPE:
            log(f"segment {a.rings}: ring 0 must carry orders and ring 1 events")
            return EXIT_USAGE
        if a.no_pin:
            rep_s = "not pinned (--no-pin)"
        else:
            # The core and the memory lock now (warm-up runs there too); SCHED_FIFO only for
            # the polling thread, below: a FIFO main thread on the same core would never run
            # again once the loop spins (same priority, no time slices), so the ready
            # handshake, signals and the owner check would starve.
            rep = pin(a.cpu, fifo=0, mlock=a.mlock)
            rep_s = rep.summary()
        log(f"pinned: {rep_s}")
        t_w = warm_up(venue)
        start = r_in.tail()
        if start:
            st = restore_state(a.journal, start, venue, a.rings)
            if st is None:
                return EXIT_USAGE
        else:
            st = make_state(venue, None)  # every page now: no page fault on the order path
        # zeros (calloc: pages touched lazily): emit() leaves the reserved bytes alone, so they
        # must start at zero to match batch replay byte for byte
        evbuf = np.zeros(int(events_bound(st)) + MAX_BATCH, EVENT_DTYPE)
        evwords = evbuf.view(np.int64).reshape(-1, 8)
        stats = np.zeros(N_STATS, np.int64)
        r_in.register("consumer")
        r_out.register("producer")
        log(f"venue {venue.source}, {len(venue.symbols)} symbols, warm-up {t_w:.2f} s; serving {a.rings}")

        stop_reason = []

        def on_signal(signum, _frame):
            stop_reason.append(signal.Signals(signum).name)
            r_in.request_stop()
            r_out.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        fifo_notes = []

        def loop():
            if a.fifo > 0 and not a.no_pin:
                fifo_notes.append(set_fifo(a.fifo)[1])  # this thread only
            serve(st, r_in.ctrl, r_in.recs, r_out.ctrl, r_out.words, evbuf, evwords, a.yield_after, stats)

        worker = threading.Thread(target=loop, name="engine-loop", daemon=True)
        t0 = time.perf_counter()
        worker.start()
        if not a.no_pin:
            # The main thread wakes every 50 ms: off the loop's core when the cpuset has another.
            others = set(allowed_cpus()) - {rep.cpu}
            if others:
                os.sched_setaffinity(0, others)
        if a.fifo > 0 and not a.no_pin:
            while worker.is_alive() and not fifo_notes:
                time.sleep(0.001)
            log(f"loop thread: {fifo_notes[0] if fifo_notes else 'ended before SCHED_FIFO'}")
        seg.set_peer()  # ready: the loop is running
        with open(ready_file, "w") as f:  # the pod's readiness probe looks for it (docs/deploy.md)
            f.write(f"{os.getpid()}\n")
        owner_gone = False
        while worker.is_alive():
            worker.join(0.05)  # the main thread wakes for signals and the owner check only
            if worker.is_alive() and not seg.owner_alive():
                owner_gone = True
                stop_reason.append("owner gone")
                r_in.request_stop()
                r_out.request_stop()
        dt = time.perf_counter() - t0
        how = "SHUTDOWN record" if stats[S_STATUS] == OK else f"stop ({', '.join(stop_reason) or 'STOP word'})"
        log(
            f"exit on {how}: processed {int(stats[S_MSGS]):,} orders, {int(stats[S_EVENTS]):,} events, "
            f"{int(stats[S_BATCHES]):,} batches (largest {int(stats[S_MAX_BATCH])}) in {dt:.2f} s"
        )
        if owner_gone:
            seg.unlink()
            log(f"owner of {a.rings} is gone: segment unlinked")
        return EXIT_OK if stats[S_STATUS] == OK or stop_reason else EXIT_FAILURE
    finally:
        remove_own_file(ready_file)
        seg.close()


if __name__ == "__main__":
    sys.exit(main())
