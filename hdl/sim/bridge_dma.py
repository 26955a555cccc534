"""cocotb 2.x test that *is* the hardware bridge: it serves a ring pair with the Verilog book.

Launched by `hdl/sim/bridge.py` through cocotb's Python runner, on Verilator or Icarus, with
`hdl/sim/tb_bridge.v` as the top level (the book between an input FIFO of records and an output
FIFO of events, which stand for the card's DMA buffers); never run by pytest directly.
Everything it needs comes in a JSON file named by $TICKBOOK_BRIDGE_CONFIG:

    rings         segment name (ring 0: order records in, ring 1: event records out)
    bridge_pid    the bridge process (our parent): written into the header as "ready"
    cfg           configuration writes (addr, symbol, data) from hdl.sim.driver.config_words(venue)
    stats         where to write what was processed (JSON) when the run ends
    timeout       seconds without an inbound record, or with a full event ring, before giving up
    in_depth, ev_depth   the wrapper's FIFO depths (its IW, EW parameters as 2**IW, 2**EW)
    evq_max, wake_cycles, stall_cycles, spin_s, sleep_s: tuning (defaults below)

What it does, as a DMA engine of a real card would (docs/offload.md, "Engine protocol"):

1. Attach, register as ring 0's consumer and ring 1's producer, reset the book, load the
   venue through the configuration port, then write the bridge's pid into header word 9.
2. Wake-ups, not clock cycles: the simulator runs the book cycle by cycle on its own (the
   AXI-Stream handshakes are in tb_bridge.v); this coroutine arms the wrapper and sleeps until
   it needs attention: the book went quiet (every accepted record answered), the event FIFO
   reached `ev_hi`, the input FIFO fell below `in_lo`, or `wake_cycles` passed (liveness).
   Each wake-up moves whole batches, so Python runs once per batch, not once per cycle.
3. At a wake-up: publish the events waiting in the wrapper's FIFO to ring 1, as many as ring 1
   takes now (one HEAD store); move ring 0's TAIL; refill the input FIFO from ring 0 (every
   readable record that fits, as one numpy view of the slots; each record goes to the book
   untouched, as the 512-bit little-endian `in_data` word).
4. Back-pressure: events are read out of the wrapper only when ring 1 has room for them, so
   when ring 1 is full the wrapper's FIFO fills (at most `evq_max` events) and its out_ready
   goes low: the book stalls, nothing is lost. After `stall_cycles` such cycles the simulator
   waits in real time (simulated time frozen) until the consumer drains.
5. Ring 0's TAIL moves past a record only once all its events are published (the engine's
   guarantee: TAIL >= k means every event of the records before k is readable). The wrapper
   records, at every edge where the book is idle (`busy` low), how many records it had
   accepted and how many events those make (done_rec, done_ev).
6. Book quiet and ring 0 empty: wait in real time (sched_yield for `spin_s`, then sleeps of
   `sleep_s`), burning no simulated cycles; a record that arrives is written to the FIFO at
   the same simulated instant.
7. SHUTDOWN record (action 255): after everything before it, set CLOSED on ring 1 and end.
   STOP word set: close ring 1 and end. Owner or bridge process gone: end without closing
   (the bridge unlinks an orphaned segment). Stats are written in every case.
8. Heartbeat: every liveness check (each turn of a real-time wait, every wake-up while busy,
   at least every `wake_cycles` cycles) bumps ring 0's heartbeat word, as the engine's loop
   does, so a gateway can tell a stuck bridge from a quiet one.

$TICKBOOK_BRIDGE_PROFILE=FILE dumps a cProfile of the serving loop into FILE.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ValueChange

from engine.records import ACTION_SHUTDOWN
from offload.ring import C_BEAT, CLOSED, HEAD, STOP, TAIL, Segment, nb_push_words, pid_alive

DEFAULTS = {
    "in_depth": 256,  # the wrapper's input FIFO (IW), records
    "ev_depth": 256,  # the wrapper's event FIFO (EW), events
    "evq_max": None,  # events the FIFO may hold before out_ready drops (default: ev_depth)
    "wake_cycles": 1024,  # wake up at least this often while the book works (liveness checks)
    "stall_cycles": 8,  # cycles with out_ready low (event ring full) before waiting in real time
    "spin_s": 0.002,  # idle: sched_yield for this long, then sleep
    "sleep_s": 0.0002,
    "timeout": 600.0,
}
M32 = 0xFFFFFFFF  # the wrapper's counters are 32-bit, free-running
DEPOSIT = 0  # cocotb.handle._GPISetAction.DEPOSIT: a plain write, as `handle.value = x` makes


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
        self.tail0 = self.r_in.tail()  # ring 0 cursor of the wrapper's record 0
        self.in_depth, self.ev_depth = int(self.c["in_depth"]), int(self.c["ev_depth"])
        self.ev_lim = min(int(self.c["evq_max"] or self.ev_depth), self.ev_depth)
        # counters as unbounded Python ints (the wrapper's are these modulo 2**32)
        self.in_wr = self.in_rd = 0  # records written to the input FIFO / accepted by the book
        self.ev_rd = self.ev_wr = 0  # events read out of the FIFO (= published) / taken from the book
        # stats
        self.start_cycles = self.cycles = self.stall_cycles = 0
        self.idle_waits = self.full_waits = self.wakeups = 0
        self.idle_s = self.full_s = 0.0
        self.service: list[float] = []  # seconds from an idle bridge seeing records to TAIL past them
        self.publishes = 0
        self.out_head = self.r_out.head()
        self.out_tail = self.r_out.tail()
        # writable int64 (n, 8): the signature the ring's njit functions are cached for
        self._evbuf = np.zeros((self.ev_depth, 8), np.int64)
        # load the njit code now, not when the first event goes out
        nb_push_words(self.r_out.ctrl, self.r_out.words, self._evbuf, 0, 0, self.out_head, self.out_tail)
        self._last_check = time.monotonic()
        self.beat = int(self.r_in.ctrl[C_BEAT])  # ring 0's heartbeat word: goes on from a predecessor's
        # The FIFOs' entries, looked up once, as the GPI objects under cocotb's handles: the
        # public `.value` builds a LogicArray per read and validates a 512-character string per
        # write, which was most of the bridge's Python time; these move each 512-bit word as
        # one binary string, converted for a whole batch at once with numpy. (The control
        # signals use the public API.) DEPOSIT: what `handle.value = x` does.
        for name, depth in (("in_mem", self.in_depth), ("ev_mem", self.ev_depth)):
            if len(getattr(dut, name)) != depth:  # the build's IW/EW and this configuration disagree
                raise RuntimeError(f"{name} holds {len(getattr(dut, name))} entries, the configuration says {depth}")
        self.h_in = [dut.in_mem[i]._handle for i in range(self.in_depth)]
        self.h_ev = [dut.ev_mem[i]._handle for i in range(self.ev_depth)]

    # ------------------------------------------------------------------ liveness and waiting
    def check(self, force: bool = False) -> None:
        """STOP word, owner and bridge process alive; cheap enough to call often. Bumps the
        heartbeat word."""
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

    def ring_room(self) -> int:
        return self.r_out.capacity - (self.out_head - int(self.r_out.ctrl[TAIL]))

    # ------------------------------------------------------------------ the wrapper's FIFOs
    def read_state(self) -> tuple[int, int, bool]:
        """The wrapper's counters as unbounded ints: sets in_rd, ev_wr; returns (done_rec,
        done_ev, quiet). Each is at most 2**32 behind or ahead of what this side knows."""
        d = self.d
        self.in_rd = self.in_wr - ((self.in_wr - int(d.in_rd.value)) & M32)
        self.ev_wr = self.ev_rd + ((int(d.ev_wr.value) - self.ev_rd) & M32)
        done_rec = self.in_wr - ((self.in_wr - int(d.done_rec.value)) & M32)
        done_ev = self.ev_wr - ((self.ev_wr - int(d.done_ev.value)) & M32)
        return done_rec, done_ev, int(d.quiet.value) == 1

    def publish(self) -> int:
        """Move the events waiting in the wrapper's FIFO to ring 1, as many as it takes now
        (one HEAD store), and free their FIFO slots. Returns how many."""
        n = self.ev_wr - self.ev_rd
        if n == 0:
            return 0
        room = self.ring_room()
        n = min(n, room)
        if n == 0:
            return 0
        h, mask, r = self.h_ev, self.ev_depth - 1, self.ev_rd
        text = "".join([h[(r + k) & mask].get_signal_val_binstr() for k in range(n)])
        bits = np.frombuffer(text.encode(), np.uint8)
        bits = bits.reshape(n, 512) - ord("0")
        if (bits > 1).any():  # Icarus is four-state: an X or Z bit is no event (never written as 0)
            k = int(np.flatnonzero((bits > 1).any(axis=1))[0])
            bad = h[(r + k) & mask].get_signal_val_binstr()
            raise RuntimeError(f"the book emitted an event with X/Z bits: {bad}")
        src = self._evbuf[:n]
        # the binary string is bit 511 first: pack to big-endian bytes, reverse to the record's
        src.view(np.uint8).reshape(n, 64)[:] = np.packbits(bits, axis=1)[:, ::-1]
        self.out_head, self.out_tail, k = nb_push_words(
            self.r_out.ctrl, self.r_out.words, src, 0, n, self.out_head, self.out_tail
        )
        if k != n:  # the room was counted above, and only this process produces
            raise RuntimeError(f"ring 1 took {k} of {n} events it had room for")
        self.ev_rd += n
        self.d.ev_rd.value = self.ev_rd & M32
        self.publishes += 1
        return n

    # ------------------------------------------------------------------ the book
    async def start(self, cfg_words) -> None:
        d = self.d
        fe = FallingEdge(d.clk)
        d.rst.value = 1
        d.in_wr.value = 0
        d.ev_rd.value = 0
        d.ev_lim.value = self.ev_lim
        d.in_lo.value = 0
        d.ev_hi.value = self.ev_lim
        d.wake_at.value = 0
        d.arm.value = 0
        d.cfg_we.value = 0
        d.cfg_addr.value = 0
        d.cfg_sym.value = 0
        d.cfg_data.value = 0
        for _ in range(2):
            await fe
            self.start_cycles += 1
        for addr, sym, data in cfg_words:
            d.cfg_we.value, d.cfg_addr.value, d.cfg_sym.value, d.cfg_data.value = 1, addr, sym, data
            await fe
            self.start_cycles += 1
        d.cfg_we.value = 0
        await fe  # rst held: state empty, reference prices from the configuration
        d.rst.value = 0
        await fe  # the wrapper counts cycles from here
        self.start_cycles += 2

    async def serve(self) -> str:
        d, c = self.d, self.c
        r_in = self.r_in
        in_ctrl, in_words, in_recs = r_in.ctrl, r_in.words, r_in.recs
        cap, mask = r_in.capacity, r_in.mask
        in_depth, imask, h_in = self.in_depth, self.in_depth - 1, self.h_in
        ev_lim, wake_cycles, stall_cycles = self.ev_lim, int(c["wake_cycles"]), int(c["stall_cycles"])
        stalling = False  # the book was left to stall on a full event FIFO since the last wake-up
        fired = d.fired
        woke = ValueChange(fired)
        tail = r_in.tail()  # ring 0 TAIL we have published
        rd = tail  # next ring 0 cursor to fetch
        shutdown_at = None  # cursor of the SHUTDOWN record, once seen
        done: deque[tuple[int, int]] = deque()  # (records, events needed before TAIL may pass them)
        last_done = (0, 0)
        in_lo = ev_hi = -1  # as written to the wrapper
        t_wake = None  # when records arrived at an idle bridge (service time, for the report)
        base = self.tail0
        while True:
            done_rec, done_ev, quiet = self.read_state()
            self.publish()
            if (done_rec, done_ev) != last_done:
                last_done = (done_rec, done_ev)
                done.append(last_done)
            while done and self.ev_rd >= done[0][1]:
                tail = base + done.popleft()[0]
                in_ctrl[TAIL] = tail  # after the events' HEAD store: x86 TSO keeps the order
                if t_wake is not None:  # a record that found the bridge idle is answered
                    self.service.append(time.perf_counter() - t_wake)
                    t_wake = None
            # ---- refill the input FIFO: every readable record that fits, up to SHUTDOWN
            more = False  # ring 0 holds records that did not fit
            if shutdown_at is None:
                head = int(in_ctrl[HEAD])
                space = in_depth - (self.in_wr - self.in_rd)
                n = min(head - rd, cap - (rd & mask), space)
                if n > 0:
                    s = rd & mask
                    stop = np.flatnonzero(in_recs["action"][s : s + n] == ACTION_SHUTDOWN)
                    if len(stop):
                        n = int(stop[0])
                        shutdown_at = rd + n
                    # each record as its 512-bit little-endian word, bit 511 first
                    bits = np.unpackbits(in_words[s : s + n].view(np.uint8).reshape(n, 64)[:, ::-1], axis=1)
                    text = (bits + ord("0")).tobytes().decode()
                    w = self.in_wr
                    for k in range(n):
                        h_in[(w + k) & imask].set_signal_val_binstr(DEPOSIT, text[512 * k : 512 * k + 512])
                    self.in_wr = w + n
                    if n:
                        d.in_wr.value = self.in_wr & M32
                    rd += n
                more = shutdown_at is None and head > rd
            # ---- nothing left in the book: wait in real time instead of simulating idle cycles
            if quiet and self.in_wr == self.in_rd and self.ev_wr == self.ev_rd:
                if self.in_wr + base > tail:  # every record answered (quiet: done_rec == in_rd)
                    tail = base + self.in_wr
                    done.clear()
                    in_ctrl[TAIL] = tail
                if shutdown_at is not None:
                    in_ctrl[TAIL] = shutdown_at + 1
                    return "shutdown"
                self.check()
                if int(in_ctrl[HEAD]) == rd:
                    self.idle_waits += 1
                    self.idle_s += self.wait_until(lambda: int(in_ctrl[HEAD]) != rd, "no order record")
                    t_wake = time.perf_counter()
                continue  # same simulated instant: take what arrived
            # ---- the book is quiet and nothing is left to feed it, but its last events wait for
            # room in ring 1: wait in real time (woken by every cycle otherwise, with no timeout)
            if quiet and self.in_wr == self.in_rd and self.ring_room() == 0:
                self.full_waits += 1
                self.full_s += self.wait_until(lambda: self.ring_room() > 0,
                                               "event ring full: the consumer does not drain")
                continue
            # ---- the event FIFO is full and ring 1 too: the book stalls on out_ready. It is left
            # to run `stall_cycles` cycles so (the hardware's back-pressure, as a card's book
            # would see it), then the simulator waits in real time for the consumer.
            ring_full = self.ring_room() == 0
            wake = wake_cycles
            if ring_full and self.ev_wr - self.ev_rd >= ev_lim:
                if stalling:
                    stalling = False
                    self.full_waits += 1
                    self.full_s += self.wait_until(lambda: self.ring_room() > 0,
                                                   "event ring full: the consumer does not drain")
                    continue
                stalling = True
                want_lo, want_hi, wake = 0, ev_lim + 1, stall_cycles  # only the cycle count wakes us
            else:
                stalling = False
                want_lo = in_depth // 2 + 1 if more else 0  # refill at half empty, when there is more
                want_hi = ev_lim if ring_full else max(1, ev_lim // 2)
            # ---- sleep until the wrapper needs us (see tb_bridge.v); the book runs meanwhile
            if want_lo != in_lo:
                in_lo = want_lo
                d.in_lo.value = in_lo
            if want_hi != ev_hi:
                ev_hi = want_hi
                d.ev_hi.value = ev_hi
            d.wake_at.value = (int(d.cycles.value) + wake) & M32
            d.arm.value = 1 - int(fired.value)
            await woke
            self.wakeups += 1
            self.check()

    def finish(self) -> None:
        """Counters for the report (the wrapper's cycle counts are read here, at the end)."""
        try:
            self.read_state()
            self.cycles = self.start_cycles + int(self.d.cycles.value)
            self.stall_cycles = int(self.d.stall_cycles.value)
        except Exception:  # the simulator is gone (e.g. a failure at start): report what we have
            self.cycles = self.start_cycles


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
            b.read_state()
            b.publish()  # shutdown: already empty; stop: what the ring takes now, no waiting
            b.r_out.ctrl[CLOSED] = 1  # after the last HEAD store
    except BaseException as e:
        stats["why"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        t1 = time.monotonic()
        stats["wall_s"] = t1 - t0
        stats["serve_s"] = t1 - t_ready if t_ready is not None else 0.0
        if b is not None:
            b.finish()
            stats.update(
                records=int(b.in_rd), events=int(b.ev_wr), published=int(b.ev_rd),
                cycles=int(b.cycles), idle_s=b.idle_s, idle_waits=b.idle_waits, full_s=b.full_s,
                full_waits=b.full_waits, stall_cycles=b.stall_cycles, publishes=b.publishes,
                wakeups=b.wakeups,
                service_n=len(b.service),
                service_p50_ms=1e3 * float(np.median(b.service)) if b.service else None,
                service_p99_ms=1e3 * float(np.percentile(b.service, 99)) if b.service else None,
            )
            b.seg.close()
        with open(conf["stats"], "w") as f:
            json.dump(stats, f)
