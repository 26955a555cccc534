"""The hardware bridge: serves a hardware ring pair with the Verilog order book.

    python -m offload.bridge --rings NAME [--config venue.toml]

The segment has exactly the layout the engine's has (ring 0: order records in, ring 1: event
records out; docs/offload.md), which is the layout a PCIe card's DMA engine would read and
write: a driver for a real card replaces this process and nothing else changes.

Today's limitation, stated plainly: the published simulator (`hdl.sim.run_flow`) is
file-driven ($readmemh in, $fwrite out) and starts from reset on every call, so the book's
state cannot be carried from one call to the next. The bridge therefore works store-and-
forward: it collects order records until SHUTDOWN, runs them through the RTL in one
simulation, then streams every event back (with back-pressure) and closes the event ring.
Events are the hardware's, bit for bit; latency through this bridge means nothing. A
streaming cocotb driver (one record per clock as it arrives) would slot in at `simulate()`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import numpy as np

from engine.records import ACTION_SHUTDOWN, ORDER_DTYPE
from offload.ring import PeerGone, RingStopped, RingTimeout, Segment


def simulate(orders: np.ndarray, venue) -> np.ndarray:
    from hdl.sim import run_flow

    return run_flow(orders, venue)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="offload.bridge")
    p.add_argument("--rings", required=True)
    p.add_argument("--config", default=None)
    p.add_argument("--venue-pickle", default=None)
    p.add_argument("--cpu", type=int, default=None)
    p.add_argument("--timeout", type=float, default=600.0)
    a = p.parse_args(argv)

    from offload.engine_process import load_engine_venue
    from offload.pinning import die_with_parent

    def log(msg):
        print(f"bridge[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)

    die_with_parent(signal.SIGTERM)
    venue = load_engine_venue(a.config, a.venue_pickle)
    seg = Segment.attach(a.rings, timeout=30, expect_rings=2)
    signal.signal(signal.SIGTERM, lambda *_: seg.request_stop())
    try:
        r_in, r_out = seg.ring(0), seg.ring(1)
        r_in.register("consumer")
        r_out.register("producer")
        seg.set_peer()
        parts, done = [], False
        t0 = time.monotonic()
        while not done:
            v = r_in.peek()
            if len(v) == 0:
                if r_in.stop_requested():
                    raise RingStopped("STOP word set")
                if not seg.owner_alive():
                    raise PeerGone("the ring's owner is gone")
                if time.monotonic() - t0 > a.timeout:
                    raise RingTimeout("no SHUTDOWN record")
                time.sleep(0.0005)
                continue
            stop = np.nonzero(v["action"] == ACTION_SHUTDOWN)[0]
            k = int(stop[0]) if len(stop) else len(v)
            parts.append(v[:k].copy())
            done = len(stop) > 0
            n = len(v) if not done else k + 1
            del v
            r_in.advance(n)
        orders = np.concatenate(parts) if parts else np.zeros(0, ORDER_DTYPE)
        t1 = time.monotonic()
        events = simulate(orders, venue)
        t2 = time.monotonic()
        r_out.push(events, timeout=a.timeout, alive=seg.owner_alive)
        r_out.close_writer()
        log(f"exit on SHUTDOWN record: {len(orders):,} orders -> {len(events):,} events "
            f"(Icarus {t2 - t1:.2f} s, store-and-forward)")
        return 0
    except (PeerGone, RingStopped, RingTimeout) as e:
        log(f"stopped: {e}")
        if isinstance(e, PeerGone):
            seg.unlink()
        return 1
    finally:
        seg.close()


if __name__ == "__main__":
    sys.exit(main())
