"""cocotb 2.x tests of the AXI-Stream wrapper of the block-RAM book, hdl/rtl/tickbook_book_axis.v,
and their pytest runner (`test_tickbook_book_axis_passes_the_cocotb_tests`, at the end).

The streams are driven by cocotbext-axi, not by a hand-written driver: an AxiStreamSource sends
the order records on s_axis_*, an AxiStreamSink takes the events from m_axis_*, one 64-byte
record a beat (no tkeep, no tlast: every beat is a frame of 64 bytes, byte 0 in bits [7:0], which
is the record's own little-endian layout). Their pause generators make the source idle and the
sink apply back-pressure at random. Every run is checked event for event against the Numba
engine with the same capacities, and the directed cases of test_tickbook_book.py (imported, with
its helpers) against the events the rulebook expects. A monitor checks the AXI-Stream rules on
both streams every cycle and counts the stalls, so that a pause generator that never paused
fails the test instead of passing it quietly.

The cocotb tests are named `*_test` so that pytest collects only the runner (as in
test_tickbook_book.py). WAVES=1 dumps FST waveforms into build/hdl/cocotb_tickbook_book_axis_*/.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from pathlib import Path

import cocotb
import cocotb.regression
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource
from test_tickbook_book import (CASES, VENUE, BookDriver, BuildParams, _norm, check_engine, csv_events, records,
                                write_config)

from engine.api import Venue, replay_records
from engine.compare import first_divergence
from engine.records import EVENT_DTYPE, PRICE_NONE, PRICE_SCALE
from hdl.sim.driver import BRAM_SOURCES, REPO, RTL_DIR, TB_DIR, cocotb_build, engine_venue, on_simulator_path
from testkit.flows import random_records

pytestmark = pytest.mark.hdl

TOP = "tickbook_book_axis"
AXIS_SOURCES = [*BRAM_SOURCES, RTL_DIR / "tickbook_book_axis.v"]  # the wrapper and the book it wraps


def random_pauses(seed: int, percent: int):
    """An endless pause pattern for set_pause_generator: paused on about `percent` % of cycles."""
    rng = random.Random(seed)
    while True:
        yield rng.randrange(100) < percent


class StreamMonitor:
    """Checks the AXI4-Stream rules on one stream every rising edge (sampling the values the edge
    sees, as cocotbext-axi does): once TVALID is up it stays up and TDATA does not change until
    the beat is taken (rst drops both, which AXI-Stream allows). Counts beats, stalls (TVALID
    without TREADY) and idle cycles (TREADY without TVALID)."""

    def __init__(self, dut, prefix: str):
        self.dut = dut
        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.data = getattr(dut, f"{prefix}_tdata")
        self.name = prefix
        self.beats = self.stalls = self.idles = 0
        self.errors: list[str] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        held = None  # TDATA of a beat that was offered and not taken at the previous edge
        while True:
            await RisingEdge(self.dut.clk)
            if self.dut.rst.value == 1:
                held = None
                continue
            valid, ready = self.valid.value == 1, self.ready.value == 1
            if held is not None:
                if not valid:
                    self.errors.append(f"{self.name}: TVALID dropped before the beat was taken")
                elif self.data.value.to_unsigned() != held:
                    self.errors.append(f"{self.name}: TDATA changed while the beat waited")
                held = None
            if valid and ready:
                self.beats += 1
            elif valid:
                self.stalls += 1
                held = self.data.value.to_unsigned()
            elif ready:
                self.idles += 1

    def check(self):
        assert not self.errors, "\n".join(self.errors[:5])


class AxisBench:
    """The wrapper with a cocotbext-axi source on s_axis and sink on m_axis, both reset by rst.
    The configuration port is written by hand (it is not a stream), on falling edges."""

    def __init__(self, dut, build: BuildParams):
        self.dut, self.build = dut, build

    async def start(self, venue):
        d = self.dut
        cocotb.start_soon(Clock(d.clk, 10, unit="ns", impl="gpi").start())
        d.rst.value = 1
        d.s_axis_tvalid.value = 0
        d.m_axis_tready.value = 0
        d.cfg_we.value = 0
        d.cfg_addr.value = 0
        d.cfg_sym.value = 0
        d.cfg_data.value = 0
        # Two edges in reset before the models start: by then tvalid and tready are 0, not X
        # (cocotb 2 will not read an X as a bool, and the models sample them from the first edge).
        await ClockCycles(d.clk, 2)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(d, "s_axis"), d.clk, d.rst)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(d, "m_axis"), d.clk, d.rst)
        for model in (self.source, self.sink):
            model.log.setLevel(logging.WARNING)  # not a log line for every record and event
        self.mon_in = StreamMonitor(d, "s_axis")
        self.mon_out = StreamMonitor(d, "m_axis")
        await write_config(d, venue, area=False)
        await self.reset()

    def pauses(self, source_pause, sink_pause):
        """Pause generators (an iterable of booleans, one a cycle) for the source (idle input
        cycles) and the sink (back-pressure on the events); None for never paused."""
        for model, gen in ((self.source, source_pause), (self.sink, sink_pause)):
            model.set_pause_generator(gen)
            if gen is None:
                # clearing a generator leaves `pause` at the last value it gave: unpause by hand
                model.pause = False

    async def reset(self, cycles: int = 2):
        """rst for `cycles` cycles: the models see it too (the source stops driving, the sink
        drops tready); what they still held of the traffic before is thrown away."""
        d = self.dut
        await FallingEdge(d.clk)
        d.rst.value = 1
        for _ in range(cycles):
            await FallingEdge(d.clk)
        self.source.clear()
        self.sink.clear()
        d.rst.value = 0

    async def run(self, orders: np.ndarray) -> np.ndarray:
        """Queue every record on the source, wait until the book has taken them all and is quiet,
        and return the events the sink took, in order."""
        d = self.dut
        for r in orders:
            await self.source.send(r.tobytes())
        quiet = 0
        limit = 100_000 + 200 * len(orders)  # far beyond any flow's cycles: a hang fails, not waits
        for _ in range(limit):
            await RisingEdge(d.clk)
            # quiet: every record taken, no message in the book and no event waiting for the
            # (maybe paused) sink, three edges running
            done = self.source.idle() and d.busy.value == 0 and d.m_axis_tvalid.value == 0
            quiet = quiet + 1 if done else 0
            if quiet >= 3:
                break
        else:
            raise AssertionError(f"not done after {limit} cycles: {self.source.count()} records still queued")
        frames = []
        while not self.sink.empty():
            frames.append(bytes(self.sink.recv_nowait().tdata))
        assert all(len(f) == 64 for f in frames), "an event beat that is not one 64-byte record"
        return np.frombuffer(b"".join(frames), EVENT_DTYPE).copy()

    def check_protocol(self):
        self.mon_in.check()
        self.mon_out.check()


def check_top_of_book(dut, build: BuildParams, venue, orders):
    """The tob_* outputs after a flow (busy is low) against the engine's book after it: best
    price (1e-8 units, PRICE_NONE when empty) and size, both sides of every symbol."""
    eng = Venue(engine_venue(venue, build.nord, build.nlvl))
    eng.submit(orders)
    got = BookDriver(dut, build)  # only its tob() reader of the same ports
    for s, sym in enumerate(venue.symbols):
        dep = eng.depth(sym.name, 1)
        exp = []
        for levels in (dep["bids"], dep["asks"]):
            if levels:
                exp += [round(levels[0][0] * PRICE_SCALE / sym.tick_units) * sym.tick_units, levels[0][1]]
            else:
                exp += [PRICE_NONE, 0]
        assert got.tob(s) == tuple(exp), f"symbol {sym.name}: tob {got.tob(s)} engine {tuple(exp)}"


@cocotb.test()
async def directed_rules_axis_test(dut):
    """The directed cases of test_tickbook_book.py (every rule and reason) through the AXI-Stream
    ports, with the source idle 3 cycles in 4 and the sink stalling at random; the events are
    those the rulebook writes and the engine's."""
    build = BuildParams.from_env()
    bench = AxisBench(dut, build)
    await bench.start(VENUE)  # the venue records() encodes the directed cases with
    bench.pauses(itertools.cycle([True, True, True, False]), random_pauses(7, 50))
    bad = []
    for name, (rows, expected) in CASES.items():
        await bench.reset()
        orders = records(rows)
        got = await bench.run(orders)
        lines, exp = csv_events(got), _norm(expected)
        if lines != exp:
            k = next((i for i, (a, b) in enumerate(zip(lines, exp)) if a != b), min(len(lines), len(exp)))
            bad.append(f"{name}: event {k + 1}: got {lines[k:k + 1]} expected {exp[k:k + 1]}")
        check_engine(orders, got, build)
    assert not bad, "\n".join(bad)
    bench.check_protocol()
    assert bench.mon_in.idles and bench.mon_out.stalls, "the pause generators never paused"


# (source paused %, sink paused %, seed): full rate both ways, idle input, back-pressure, both
RANDOM_RUNS = ((0, 0, 1), (40, 0, 2), (0, 60, 3), (30, 45, 4))


@cocotb.test()
async def random_flows_axis_test(dut):
    """Random flows (testkit.flows.random_records: crossing, sweeps, cancels, replaces, every
    reject reason, CAPACITY) under each mix of source idle and sink back-pressure; every event
    against the engine's, then the top of book against the engine's book."""
    build = BuildParams.from_env()
    v = build.venue()
    bench = AxisBench(dut, build)
    await bench.start(v)
    for src, snk, seed in RANDOM_RUNS:
        await bench.reset()
        bench.pauses(random_pauses(100 + seed, src) if src else None, random_pauses(200 + seed, snk) if snk else None)
        idle0, out0 = bench.mon_in.idles, bench.mon_out.stalls
        orders = random_records(seed, 500, v, nord=build.nord, nlvl=build.nlvl)
        got = await bench.run(orders)
        eng = replay_records(orders, engine_venue(v, build.nord, build.nlvl))
        diff = first_divergence(got, eng, orders, names=("hw", "engine"))
        assert diff is None, f"source paused {src} %, sink paused {snk} %: {diff}"
        check_top_of_book(dut, build, v, orders)
        if snk:
            assert bench.mon_out.stalls > out0, f"sink paused {snk} %: no event ever waited"
        else:
            # a sink whose pausing was switched off (pauses(..., None)) takes every event the
            # cycle it is offered: it did not stay paused from the run before
            assert bench.mon_out.stalls == out0, "events waited for a sink that never paused"
        if src:
            assert bench.mon_in.idles > idle0, f"source paused {src} %: the book never waited for a record"
    bench.check_protocol()


@cocotb.test()
async def reset_in_traffic_axis_test(dut):
    """rst in the middle of a flow, with records still queued on the source and both models
    pausing at random: the models stop and drop what they held (cocotbext-axi warns of the
    record it was sending), the book comes back empty with seq at 1, and the next flow is the
    engine's from an empty book."""
    build = BuildParams.from_env()
    v = build.venue()
    bench = AxisBench(dut, build)
    await bench.start(v)
    bench.pauses(random_pauses(31, 20), random_pauses(32, 50))
    first = random_records(11, 400, v, nord=build.nord, nlvl=build.nlvl)
    for r in first:
        await bench.source.send(r.tobytes())
    while bench.mon_in.beats < 150:  # well into the flow, then reset with the rest still queued
        await RisingEdge(dut.clk)
    assert not bench.source.empty(), "the whole flow went in before the reset"
    await bench.reset()
    second = random_records(12, 400, v, nord=build.nord, nlvl=build.nlvl)
    got = await bench.run(second)
    diff = first_divergence(got, replay_records(second, engine_venue(v, build.nord, build.nlvl)), second,
                            names=("hw", "engine"))
    assert diff is None, diff
    bench.check_protocol()


# ----------------------------------------------------------------------------------- the runner
COCOTB_TESTS = [name for name, obj in list(globals().items()) if isinstance(obj, cocotb.regression.TestGenerator)]


def run_axis_tests(nsym: int, nord: int, nlvl: int) -> None:
    """Build the wrapper and the block-RAM book with these parameters in Icarus (cocotb's Python
    runner) and run every cocotb test of this module on it; fails unless all of them ran and
    passed."""
    from cocotb_tools.check_results import get_results

    waves = bool(os.environ.get("WAVES"))
    runner, build_dir = cocotb_build("cocotb", TOP, AXIS_SOURCES, nsym, nord, nlvl, waves=waves)
    env = {"HDL_NSYM": str(nsym), "HDL_NORD": str(nord), "HDL_NLVL": str(nlvl), "HDL_TOP": TOP}
    on_simulator_path(REPO, TB_DIR)
    results = runner.test(
        test_module=Path(__file__).stem,
        hdl_toplevel=TOP,
        parameters={"NSYM": nsym, "NORD": nord, "NLVL": nlvl},
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env=env,
        waves=waves,
        results_xml=str(build_dir / "results.xml"),
    )
    ran, failed = get_results(Path(results))
    assert failed == 0, f"{failed} of {ran} cocotb tests failed (log above, results in {results})"
    assert ran == len(COCOTB_TESTS), f"{ran} cocotb results, this module has {len(COCOTB_TESTS)}: {COCOTB_TESTS}"


@pytest.mark.parametrize("nsym,nord,nlvl", [
    (4, 4, 2),      # the smallest book the directed cases fit: CAPACITY in every random flow
    (5, 64, 16),    # room to rest and sweep; NSYM not a power of two
])
def test_tickbook_book_axis_passes_the_cocotb_tests(nsym, nord, nlvl):
    run_axis_tests(nsym, nord, nlvl)
