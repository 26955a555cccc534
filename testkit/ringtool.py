"""Ring peers run as real processes by the ring tests and benchmarks.

    python -m testkit.ringtool produce NAME [--ring 0] [--n N] [--seed S] [--stall P] ...
    python -m testkit.ringtool consume NAME [--ring 0] [--n N] [--seed S] [--stall P] ...
    python -m testkit.ringtool echo NAME [--cpu C] [--zmq ENDPOINT]
    python -m testkit.ringtool own NAME [--orders CAP] [--events CAP]   (create, then sleep)

Records carry a pattern derived from their index so the consumer checks order, loss and
content of every word. Loops are njit with a spin budget: they return to Python now and
then so deadlines, the owner's liveness and signals are honoured.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import numpy as np
from numba import njit

from offload.atomics import backoff, cpu_relax, load_acquire, load_relaxed, store_release
from offload.ring import (
    FULL,
    HEAD,
    OK,
    STOP,
    STOPPED,
    TAIL,
    PeerGone,
    RingTimeout,
    Segment,
    nb_pop_words,
    nb_push_blocking,
)

SPIN_BUDGET = 1 << 22  # polls (a few ms) before an njit loop returns to Python
MULT = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 as int64
SHUTDOWN_WORD5 = np.int64(255 << 48)  # action byte (offset 46) of word 5


@njit(cache=True, nogil=True)
def pattern(i, row):
    row[0] = i
    row[1] = i * MULT
    row[2] = -i
    row[3] = i ^ 0x5555
    row[4] = i  # msg_seq
    row[5] = i & 0xFFFF  # account / symbol; action byte 0
    row[6] = i * 3
    row[7] = ~i


@njit(cache=True, nogil=True)
def check(i, row):
    return (
        row[0] == i
        and row[1] == i * MULT
        and row[2] == -i
        and row[3] == (i ^ 0x5555)
        and row[4] == i
        and row[5] == (i & 0xFFFF)
        and row[6] == i * 3
        and row[7] == ~i
    )


@njit(cache=True, nogil=True)
def stall(max_spins):
    k = np.random.randint(0, max_spins + 1)
    for _ in range(k):
        cpu_relax()


@njit(cache=True, nogil=True)
def produce(ctrl, words, start, n, max_batch, seed, stall_p, stall_max, yield_after):
    """Push records start..n-1 in random batches; random stalls. Returns (next, status)."""
    np.random.seed(seed + start)
    buf = np.empty((max_batch, 8), np.int64)
    head = load_relaxed(ctrl, HEAD)
    tail_cache = load_acquire(ctrl, TAIL)
    i = start
    while i < n:
        b = min(np.random.randint(1, max_batch + 1), n - i)
        for k in range(b):
            pattern(i + k, buf[k])
        head, tail_cache, k, status = nb_push_blocking(ctrl, words, buf, 0, b, head, tail_cache, SPIN_BUDGET, yield_after)
        i += k
        if status != OK:
            # records pushed before FULL/STOP are in; the rest of buf is regenerated on resume
            return i, status
        if stall_p > 0 and np.random.random() < stall_p:
            stall(stall_max)
    return i, OK


@njit(cache=True, nogil=True)
def consume(ctrl, words, start, n, max_batch, seed, stall_p, stall_max, yield_after):
    """Pop and check records start..n-1. Returns (next, status, index of a bad record or -1)."""
    np.random.seed(seed + start + 1)
    buf = np.empty((max_batch, 8), np.int64)
    head_cache = load_acquire(ctrl, HEAD)
    tail = load_relaxed(ctrl, TAIL)
    i = start
    spins = 0
    while i < n:
        b = min(np.random.randint(1, max_batch + 1), n - i)
        head_cache, tail, k = nb_pop_words(ctrl, words, buf, 0, b, head_cache, tail)
        if k == 0:
            backoff(spins, yield_after)
            spins += 1
            if (spins & 255) == 0:
                if load_acquire(ctrl, STOP) != 0:
                    return i, STOPPED, -1
                if spins >= SPIN_BUDGET:
                    return i, FULL, -1
            continue
        spins = 0
        for j in range(k):
            if not check(i + j, buf[j]):
                return i + j, OK, i + j
        i += k
        if stall_p > 0 and np.random.random() < stall_p:
            stall(stall_max)
    return i, OK, -1


@njit(cache=True, nogil=True)
def echo(in_ctrl, in_words, out_ctrl, out_words, yield_after):
    """Copy every record from ring in to ring out until a SHUTDOWN record (echoed too) or
    the STOP word. Returns (records echoed, status)."""
    in_head = load_acquire(in_ctrl, HEAD)
    in_tail = load_relaxed(in_ctrl, TAIL)
    out_head = load_relaxed(out_ctrl, HEAD)
    out_tail = load_acquire(out_ctrl, TAIL)
    cap_in = in_words.shape[0]
    mask_in = cap_in - 1
    n = 0
    spins = 0
    while True:
        if in_head == in_tail:
            in_head = load_acquire(in_ctrl, HEAD)
            if in_head == in_tail:
                backoff(spins, yield_after)
                spins += 1
                if (spins & 1023) == 0 and load_acquire(in_ctrl, STOP) != 0:
                    return n, STOPPED
                continue
        spins = 0
        if in_head < in_tail or in_head - in_tail > cap_in:
            return n, -4  # cursors make no sense: refuse rather than copy garbage
        # one contiguous run of the input: push it straight from the input slots
        s = in_tail & mask_in
        run = min(in_head - in_tail, cap_in - s)
        done = False
        for k in range(run):
            if (in_words[s + k, 5] & (np.int64(255) << 48)) == SHUTDOWN_WORD5:
                run = k + 1
                done = True
                break
        out_head, out_tail, pushed, status = nb_push_blocking(
            out_ctrl, out_words, in_words, s, s + run, out_head, out_tail, 1 << 62, yield_after
        )
        in_tail += pushed
        store_release(in_ctrl, TAIL, in_tail)
        n += pushed
        if status != OK:
            return n, status
        if done:
            return n, OK


@njit(cache=True, nogil=True)
def sink(ctrl, words, start, n, max_batch, seed, stall_p, stall_max, yield_after):
    """Take records start..n-1 as fast as they come, reading one word of each (every record
    is a cache line, so every line is pulled across). Returns (next, status, -1)."""
    mask = words.shape[0] - 1
    head_c = load_acquire(ctrl, HEAD)
    tail = load_relaxed(ctrl, TAIL)
    i = start
    spins = 0
    acc = 0
    while i < n:
        if head_c == tail:
            head_c = load_acquire(ctrl, HEAD)
            if head_c == tail:
                backoff(spins, yield_after)
                spins += 1
                if (spins & 255) == 0 and spins >= SPIN_BUDGET:
                    return i, FULL, -1
                continue
        spins = 0
        k = min(head_c - tail, n - i)
        for c in range(tail, tail + k):
            acc += words[c & mask, 4]
        tail += k
        store_release(ctrl, TAIL, tail)
        i += k
    ctrl[127] = acc  # an unused control word: keeps the reads from being optimised away
    return i, OK, -1


def _run_resumable(fn, ctrl, words, args, n, timeout, alive):
    i = 0
    deadline = time.monotonic() + timeout
    while True:
        res = fn(ctrl, words, i, n, *args)
        i, status = res[0], res[1]
        if len(res) > 2 and res[2] >= 0:
            return i, f"bad record at {res[2]}"
        if i >= n:
            return i, None
        if status == STOPPED:
            return i, "stopped"
        if alive is not None and not alive():
            return i, "peer gone"
        if time.monotonic() > deadline:
            return i, "timeout"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ringtool")
    p.add_argument("role", choices=["produce", "consume", "sink", "echo", "own"])
    p.add_argument("name")
    p.add_argument("--ring", type=int, default=0)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stall", type=float, default=0.0, help="probability of a stall after a batch")
    p.add_argument("--stall-max", type=int, default=20000, help="longest stall, in pause instructions")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--cpu", type=int, default=None)
    p.add_argument("--zmq", default=None, help="after the ring echo, serve a pyzmq echo here")
    p.add_argument("--orders", type=int, default=1024)
    p.add_argument("--events", type=int, default=1024)
    p.add_argument("--unlink-if-owner-dies", action="store_true")
    p.add_argument("--yield-after", type=int, default=4096,
                   help="idle polls before sched_yield (huge = pure busy-poll, for pinned benchmarks)")
    a = p.parse_args(argv)

    if a.role == "own":
        seg = Segment.create(a.name, [("orders", a.orders), ("events", a.events)])
        print("ready", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(0.05)
        finally:
            seg.close()
        return 0

    if a.cpu is not None:
        from offload.pinning import pin

        print("pinned:", pin(a.cpu).summary(), flush=True)
    seg = Segment.attach(a.name, timeout=a.timeout)
    seg.set_peer()
    ring = seg.ring(a.ring)
    alive = seg.owner_alive
    try:
        if a.role == "produce":
            ring.register("producer")
            print("attached", flush=True)
            i, err = _run_resumable(
                produce, ring.ctrl, ring.words, (a.batch, a.seed, a.stall, a.stall_max, a.yield_after), a.n, a.timeout, alive
            )
            if err is None:
                ring.close_writer()
        elif a.role in ("consume", "sink"):
            ring.register("consumer")
            print("attached", flush=True)
            i, err = _run_resumable(
                consume if a.role == "consume" else sink, ring.ctrl, ring.words, (a.batch, a.seed, a.stall, a.stall_max, a.yield_after), a.n, a.timeout, alive
            )
        else:  # echo
            r_in, r_out = seg.ring(0), seg.ring(1)
            r_in.register("consumer")
            r_out.register("producer")
            print("attached", flush=True)
            i, status = echo(r_in.ctrl, r_in.words, r_out.ctrl, r_out.words, a.yield_after)
            err = None if status == OK else "stopped"
            if a.zmq:
                serve_zmq_echo(a.zmq, a.timeout)
        if err is not None:
            print(f"FAIL {a.role} {err} after {i} records", flush=True)
            if err == "peer gone" and a.unlink_if_owner_dies:
                seg.unlink()
                print("unlinked the dead owner's segment", flush=True)
            return 1
        print(f"ok {a.role} {i}", flush=True)
        return 0
    except (RingTimeout, PeerGone) as e:
        print(f"FAIL {a.role} {e}", flush=True)
        return 1
    finally:
        seg.close()


def serve_zmq_echo(endpoint: str, timeout: float) -> None:
    """REP echo of 64-byte messages until an empty message (answered, then exit)."""
    import zmq

    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REP)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(endpoint)
    print("zmq ready", flush=True)
    s.RCVTIMEO = int(timeout * 1000)
    try:
        while True:
            m = s.recv()
            s.send(m)
            if not m:
                break
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
