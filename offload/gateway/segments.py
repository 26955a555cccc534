"""The gateway's side of a ring pair, and its ready file (docs/offload.md#gateway)."""

from __future__ import annotations

import os

from engine.records import EVENT_DTYPE, ORDER_DTYPE
from offload.ring import C_PRODUCER_PID, RingError, Segment, pid_alive


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


def open_segment(name, attach, orders_cap, events_cap, timeout, start=0) -> Segment:
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
