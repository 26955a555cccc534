"""cocotb 2.x test that *is* the hardware bridge: it serves a ring pair with the Verilog book.

Launched by `hdl/sim/bridge.py` through cocotb's Python runner (Icarus); never run by pytest
directly. Everything it needs comes in a JSON file named by $TICKBOOK_BRIDGE_CONFIG:

    rings         segment name (ring 0: order records in, ring 1: event records out)
    bridge_pid    the bridge process (our parent): written into the header as "ready"
    cfg           configuration writes (addr, symbol, data) from hdl.sim.driver.config_words(venue)
    stats         where to write what was processed (JSON) when the run ends
    timeout       seconds without an inbound record, or with a full event ring, before giving up
    evq_max, fetch_max, flush_events, spin_s, sleep_s: tuning (defaults below)

What it does, as a DMA engine of a real card would (docs/offload.md, "Engine protocol"):

1. Attach, register as ring 0's consumer and ring 1's producer, reset the book, load the
   venue through the configuration port, then write the bridge's pid into header word 9.
2. Poll ring 0: take every readable record (up to `fetch_max`) as one numpy view of the
   slots, turn each into the 512-bit `in_data` word (the record untouched, little-endian), and
   drive them one after another on `in_valid`/`in_ready`. The slots stay ours until TAIL moves,
   so no copy of the ring is needed beyond the batch's bytes.
3. Collect every event handshaken on `out_valid`/`out_ready` into a small local FIFO (at most
   `evq_max`); publish it to ring 1 in batches (one HEAD store each). When ring 1 is full the
   FIFO fills and `out_ready` goes low: the book stalls, nothing is lost. After a few stalled
   cycles the simulator waits in real time (simulated time frozen) until the consumer drains.
4. Ring 0's TAIL moves past a record only once all its events are published (the engine's
   guarantee: TAIL >= k means every event of the records before k is readable). A message's
   events are known complete at a cycle where the book is IDLE (`busy` low): then the events of
   every accepted record are those taken so far plus the one still on `out_data`, if any.
5. Ring 0 empty and the book quiet: wait in real time (sched_yield for `spin_s`, then sleeps of
   `sleep_s`), burning no simulated cycles; a record that arrives is driven at the same
   simulated instant. Inputs change and outputs are read on falling edges (as in
   hdl/tb/test_tickbook_book.py); a record or event whose handshake is decided there is counted
   at once, so a one-event order costs 3 cycles from ring 0 to ring 1 (drive, CHECK, event out).
6. SHUTDOWN record (action 255): after everything before it, set CLOSED on ring 1 and end.
   STOP word set: close ring 1 and end. Owner or bridge process gone: end without closing
   (the bridge unlinks an orphaned segment). Stats are written in every case.
7. Heartbeat: every liveness check (each turn of a real-time wait, every 1024 cycles while
   busy) bumps ring 0's heartbeat word, as the engine's loop does, so a gateway can tell a
   stuck bridge from a quiet one.

$TICKBOOK_BRIDGE_PROFILE=FILE dumps a cProfile of the serving loop into FILE.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge
from cocotb.types import Logic

from engine.records import ACTION_SHUTDOWN
from offload.ring import C_BEAT, CLOSED, HEAD, STOP, TAIL, Segment, nb_push_words, pid_alive

DEFAULTS = {
    "evq_max": 256,  # local event FIFO (records) before out_ready drops
    "fetch_max": 1024,  # records taken from ring 0 per poll
    "flush_events": 64,  # publish at least this often (events) while streaming
    "stall_cycles": 8,  # cycles with out_ready low before waiting in real time
    "spin_s": 0.002,  # idle: sched_yield for this long, then sleep
    "sleep_s": 0.0002,
    "timeout": 600.0,
}


L1 = Logic("1")  # compared against signal values (cheaper than == 1, which builds a Logic)


class Stop(Exception):
    """End of service other than SHUTDOWN; `.status`: 'stop', 'owner gone', 'parent gone', 'timeout'."""

    def __init__(self, status: str, why: str = ""):
        super().__init__(why or status)
        self.status = status


class Bridge:
    def __init__(self, dut, conf: dict):
        self.d = dut
        self.c = {**DEFAULTS, **conf}
        self.seg = Segment.attach(conf["rings"], timeout=30, expect_rings=2)
        self.r_in, self.r_out = self.seg.ring(0), self.seg.ring(1)
        self.r_in.register("consumer")
        self.r_out.register("producer")
        self.bridge_pid = int(conf["bridge_pid"])
        self.owner_pid = self.seg.owner_pid
        self.tail0 = self.r_in.tail()
        # stats
        self.records = self.events = self.cycles = 0
        self.stall_cycles = self.idle_waits = self.full_waits = 0
        self.idle_s = self.full_s = 0.0
        self.service: list[float] = []  # seconds from an idle bridge seeing records to TAIL past them
        self.publishes = 0
        # event ring cursors (producer side)
        self.out_head = self.r_out.head()
        self.out_tail = self.r_out.tail()
        self.evq: list[int] = []
        self.published = 0
        # writable int64 (n, 8): the signature the ring's njit functions are cached for
        self._evbuf = np.zeros((self.c["evq_max"] + 1, 8), np.int64)
        # load the njit code now, not when the first event goes out
        nb_push_words(self.r_out.ctrl, self.r_out.words, self._evbuf, 0, 0, self.out_head, self.out_tail)
        self._last_check = time.monotonic()
        self.beat = int(self.r_in.ctrl[C_BEAT])  # ring 0's heartbeat word: goes on from a predecessor's

    # ------------------------------------------------------------------ liveness and waiting
    def check(self, force: bool = False) -> None:
        """STOP word, owner and bridge process alive; cheap enough to call often. Bumps the
        heartbeat word (every real-time wait turn, every 1024 cycles while busy)."""
        self.beat += 1
        self.r_in.ctrl[C_BEAT] = self.beat
        if self.r_in.ctrl[STOP] != 0 or self.r_out.ctrl[STOP] != 0:
            raise Stop("stop", "STOP word set")
        now = time.monotonic()
        if force or now - self._last_check > 0.05:
            self._last_check = now
            if not self.seg.owner_alive():
                raise Stop("owner gone", f"the segment's owner (pid {self.owner_pid}) is gone")
            if os.getppid() != self.bridge_pid or not pid_alive(self.bridge_pid):
                raise Stop("parent gone", f"the bridge process (pid {self.bridge_pid}) is gone")

    def wait_until(self, cond, what: str) -> float:
        """Block the simulator (no simulated time passes) until cond(); returns seconds waited."""
        if cond():
            return 0.0
        t0 = time.monotonic()
        spin, nap, timeout = self.c["spin_s"], self.c["sleep_s"], self.c["timeout"]
        while True:
            now = time.monotonic()
            if now - t0 < spin:
                os.sched_yield()
            else:
                time.sleep(nap)
            if cond():
                return time.monotonic() - t0
            self.check()
            if time.monotonic() - t0 > timeout:
                raise Stop("timeout", f"{what} for {timeout} s")

    # ------------------------------------------------------------------ event ring
    def flush(self) -> int:
        """Publish as much of the local FIFO as ring 1 takes now (one HEAD store)."""
        n = len(self.evq)
        if n == 0:
            return 0
        src = self._evbuf[:n]
        src.view(np.uint8).reshape(-1)[:] = np.frombuffer(b"".join(v.to_bytes(64, "little") for v in self.evq), np.uint8)
        self.out_head, self.out_tail, k = nb_push_words(
            self.r_out.ctrl, self.r_out.words, src, 0, n, self.out_head, self.out_tail
        )
        if k:
            del self.evq[:k]
            self.published += k
            self.publishes += 1
        return k

    def ring_has_room(self) -> bool:
        return self.r_out.capacity - (self.out_head - int(self.r_out.ctrl[TAIL])) > 0

    def flush_all(self) -> None:
        """Publish the whole FIFO, waiting (real time) while ring 1 is full."""
        while self.evq:
            if self.flush() == 0:
                self.full_waits += 1
                self.full_s += self.wait_until(self.ring_has_room, "event ring full: the consumer does not drain")

    # ------------------------------------------------------------------ the book
    async def start(self, cfg_words) -> None:
        d = self.d
        cocotb.start_soon(Clock(d.clk, 10, unit="ns", impl="gpi").start())
        fe = FallingEdge(d.clk)
        d.rst.value = 1
        d.in_valid.value = 0
        d.in_data.value = 0
        d.out_ready.value = 0
        d.cfg_we.value = 0
        d.cfg_addr.value = 0
        d.cfg_sym.value = 0
        d.cfg_data.value = 0
        for _ in range(2):
            await fe
            self.cycles += 1
        for addr, sym, data in cfg_words:
            d.cfg_we.value, d.cfg_addr.value, d.cfg_sym.value, d.cfg_data.value = 1, addr, sym, data
            await fe
            self.cycles += 1
        d.cfg_we.value = 0
        await fe  # rst held: state empty, reference prices from the configuration
        d.rst.value = 0
        await fe
        self.cycles += 2

    async def serve(self) -> str:
        d, c = self.d, self.c
        r_in = self.r_in
        in_ctrl, in_words, in_recs = r_in.ctrl, r_in.words, r_in.recs
        cap, mask = r_in.capacity, r_in.mask
        fetch_max, evq_max, flush_events = c["fetch_max"], c["evq_max"], c["flush_events"]
        stall_limit = c["stall_cycles"]
        fe = FallingEdge(d.clk)
        h_busy, h_ov, h_ready, h_out = d.busy, d.out_valid, d.in_ready, d.out_data
        h_in, h_valid, h_oready = d.in_data, d.in_valid, d.out_ready

        tail = r_in.tail()  # ring 0 TAIL we have published
        rd = tail  # next ring 0 cursor to fetch
        head = r_in.head()
        batch: list[int] = []  # in_data words of the fetched, not yet driven records
        bi = 0
        base = rd  # ring cursor of batch[0]
        shutdown_at = None  # cursor of the SHUTDOWN record, once seen
        valid = False  # in_valid as driven
        cur = 0  # ring cursor of the record on in_data
        accepted_to = tail  # ring cursor after the last accepted record
        done_to = tail  # completion point recorded up to this cursor
        done: deque[tuple[int, int]] = deque()  # (ring cursor, events needed before TAIL may move there)
        taken = 0  # events handshaken (counted when decided: the book takes them at the next edge)
        in_hs = ev_hs = False
        ordy = False  # out_ready as driven
        drv_valid = False  # in_valid as driven
        stalled = 0
        evq = self.evq
        cycles = 0
        woke = False  # back from a real-time wait: decide again at the same simulated time
        t_wake = None  # when records arrived at an idle bridge (service time, for the report)
        try:
            while True:
                # ---- the edge after the previous falling edge's decisions
                if woke:
                    woke = False
                else:
                    await fe
                    cycles += 1
                if in_hs:
                    accepted_to = cur + 1
                    valid = False
                busy = h_busy.value == L1
                ov = h_ov.value == L1
                if not busy and accepted_to > done_to:
                    # IDLE: every accepted record has emitted all its events
                    done.append((accepted_to, taken + ov))
                    done_to = accepted_to
                # ---- fetch: a batch of records as one view of ring 0 slots
                if not valid and bi == len(batch) and shutdown_at is None:
                    head = int(in_ctrl[HEAD])
                    n = min(head - rd, cap - (rd & mask), fetch_max)
                    if n > 0:
                        s = rd & mask
                        stop = np.flatnonzero(in_recs["action"][s : s + n] == ACTION_SHUTDOWN)
                        if len(stop):
                            n = int(stop[0])
                            shutdown_at = rd + n
                        raw = in_words[s : s + n].tobytes()
                        batch = [int.from_bytes(raw[k : k + 64], "little") for k in range(0, 64 * n, 64)]
                        bi, base = 0, rd
                        rd += n
                # ---- drive the book
                if not valid and bi < len(batch):
                    h_in.value = batch[bi]
                    cur = base + bi
                    bi += 1
                    valid = True
                if valid != drv_valid:
                    drv_valid = valid
                    h_valid.value = int(valid)
                want = len(evq) < evq_max
                if want != ordy:
                    ordy = want
                    h_oready.value = int(ordy)
                in_hs = valid and h_ready.value == L1
                ev_hs = ov and ordy
                if ev_hs:
                    evq.append(h_out.value.to_unsigned())
                    taken += 1
                # ---- publish events; move ring 0 TAIL past completed records
                if evq and (len(evq) >= flush_events or (done and bi == len(batch))):
                    self.flush()
                while done and self.published >= done[0][1]:
                    tail = done.popleft()[0]
                    in_ctrl[TAIL] = tail  # after the events' HEAD store: x86 TSO keeps the order
                    if t_wake is not None:  # a record that found the bridge idle is answered
                        self.service.append(time.perf_counter() - t_wake)
                        t_wake = None
                # ---- nothing to simulate: wait in real time instead of burning cycles
                if not ordy:
                    stalled += 1
                    self.stall_cycles += 1
                    if stalled >= stall_limit and self.flush() == 0:
                        self.full_waits += 1
                        self.full_s += self.wait_until(self.ring_has_room, "event ring full: the consumer does not drain")
                        self.flush()
                    continue
                stalled = 0
                if valid or busy or ov or in_hs or ev_hs:
                    if (cycles & 1023) == 0:
                        self.check()
                    continue
                # quiet: the book is IDLE, nothing on out_data, no record to drive
                self.flush_all()
                if accepted_to > tail:
                    tail = accepted_to
                    done.clear()
                    in_ctrl[TAIL] = tail
                if shutdown_at is not None:
                    tail = shutdown_at + 1
                    in_ctrl[TAIL] = tail
                    return "shutdown"
                self.check()
                if int(in_ctrl[HEAD]) == rd:
                    self.idle_waits += 1
                    self.idle_s += self.wait_until(lambda: int(in_ctrl[HEAD]) != rd, "no order record")
                    t_wake = time.perf_counter()
                woke = True
        finally:
            self.cycles += cycles
            self.records = accepted_to - self.tail0
            self.events = taken


@cocotb.test()
async def bridge(dut):
    """Serve the ring pair until SHUTDOWN, STOP or a peer's death (see the module doc)."""
    with open(os.environ["TICKBOOK_BRIDGE_CONFIG"]) as f:
        conf = json.load(f)
    t0 = time.monotonic()
    stats = {"status": "error", "why": ""}
    b = t_ready = None
    try:
        b = Bridge(dut, conf)
        await b.start(conf["cfg"])
        b.seg.set_peer(b.bridge_pid)  # ready: the book is configured and out of reset
        t_ready = time.monotonic()
        prof = None
        if os.environ.get("TICKBOOK_BRIDGE_PROFILE"):
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        try:
            stats["status"] = await b.serve()
            stats["why"] = "SHUTDOWN record"
        except Stop as e:
            stats["status"], stats["why"] = e.status, str(e)
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.environ["TICKBOOK_BRIDGE_PROFILE"])
        if stats["status"] in ("shutdown", "stop"):
            b.flush()  # shutdown: already empty; stop: what the ring takes now, no waiting
            b.r_out.ctrl[CLOSED] = 1  # after the last HEAD store
    except BaseException as e:
        stats["why"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        t1 = time.monotonic()
        stats["wall_s"] = t1 - t0
        stats["serve_s"] = t1 - t_ready if t_ready is not None else 0.0
        if b is not None:
            stats.update(
                records=int(b.records), events=int(b.events), published=int(b.published),
                cycles=int(b.cycles), idle_s=b.idle_s, idle_waits=b.idle_waits, full_s=b.full_s,
                full_waits=b.full_waits, stall_cycles=b.stall_cycles, publishes=b.publishes,
                service_n=len(b.service),
                service_p50_ms=1e3 * float(np.median(b.service)) if b.service else None,
                service_p99_ms=1e3 * float(np.percentile(b.service, 99)) if b.service else None,
            )
            b.seg.close()
        with open(conf["stats"], "w") as f:
            json.dump(stats, f)
