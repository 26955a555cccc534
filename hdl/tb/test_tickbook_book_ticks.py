"""cocotb 2.x tests of the tick unit in front of the block-RAM book, hdl/rtl/tickbook_book_ticks.v,
and their pytest runner (`test_tickbook_book_ticks_passes_the_cocotb_tests`, at the end).

The unit alone: for every record out, the quotient floor(p / tick) and the tick check p mod
tick == 0 against Python's integers, for prices and ticks at the edges of 53 bits (a tick of 1,
of 2**53 - 1, powers of two and their neighbours, primes) and at random; the record, its bucket
and its tag passed through in order; with random idle cycles on the input and random refusals
at the output (out_take), and a reset in the middle of traffic. The symbol of a record that is
not a NEW is the prediction: the last NEW that may rest with an id of its bucket, or the fix the
book wrote back. The book's differential tests (tests/test_hdl_diff.py) check the unit inside
the book; these check it where a wrong bit has nowhere to hide.
"""

from __future__ import annotations

import os
import random

import cocotb
import cocotb.regression
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from engine.records import (ACTION_CANCEL, ACTION_NEW, ACTION_REPLACE, ORDER_DTYPE, TIF_GTC, TIF_IOC,
                            TYPE_LIMIT)
from hdl.sim.driver import CFG_RECIP, RTL_DIR, run_cocotb_module

pytestmark = pytest.mark.hdl

TOP = "tickbook_book_ticks"
SOURCES = [RTL_DIR / "tickbook_book_ticks.v"]
KW, TW = 6, 5
P53 = (1 << 53) - 1
# ticks at the edges of the arithmetic, and common ones
TICKS = [1, 2, 3, 7, 100, 10_000, 1_000_000, 999_983, (1 << 26) + 1, 1 << 40, (1 << 52) - 1, 1 << 52,
         P53 - 1, P53]


def recip(tick: int) -> int:
    return (1 << 106) // tick + 1


def record(oid: int, sym: int, px: int, action: int = ACTION_NEW, tif: int = TIF_GTC, typ: int = TYPE_LIMIT) -> int:
    r = np.zeros(1, ORDER_DTYPE)[0]
    r["order_id"], r["symbol"], r["price"], r["action"] = oid, sym, px, action
    r["tif"], r["type"], r["side"], r["qty"], r["msg_seq"] = tif, typ, 1, 1, oid
    return int.from_bytes(r.tobytes(), "little")


def field(word: int, name: str) -> int:
    off = ORDER_DTYPE.fields[name][1] * 8
    size = ORDER_DTYPE.fields[name][0].itemsize * 8
    return (word >> off) & ((1 << size) - 1)


def prices(rng: random.Random, tick: int) -> list[int]:
    """Prices around multiples of the tick and at the ends of 53 bits."""
    top = P53 // tick
    out = [1, P53, tick, tick - 1, tick + 1, top * tick, top * tick - 1]
    for _ in range(6):
        k = rng.randrange(0, top + 1)
        out += [k * tick, k * tick + rng.choice([1, tick - 1, tick // 2])]
    out.append(rng.randrange(1, P53 + 1))
    return [p for p in out if 0 <= p <= P53]


class Unit:
    """Drives the unit's input (with idle cycles), takes its output (with refusals), and keeps
    what came out."""

    def __init__(self, dut, idle: int = 0, refuse: int = 0, seed: int = 1):
        self.dut, self.idle, self.refuse, self.rng = dut, idle, refuse, random.Random(seed)
        self.out: list[dict] = []

    async def setup(self, ticks: list[int]):
        d = self.dut
        for sig in (d.in_valid, d.out_take, d.cfg_we, d.fix_we):
            sig.value = 0
        d.rst.value = 1
        await ClockCycles(d.clk, 2)
        for s, t in enumerate(ticks):
            d.cfg_we.value, d.cfg_addr.value, d.cfg_sym.value, d.cfg_data.value = 1, CFG_RECIP, s, recip(t)
            await RisingEdge(d.clk)
        d.cfg_we.value = 0
        await RisingEdge(d.clk)
        d.rst.value = 0

    async def collect(self):
        d = self.dut
        while True:
            await FallingEdge(d.clk)
            take = d.out_valid.value == 1 and self.rng.randrange(100) >= self.refuse
            d.out_take.value = int(take)
            if take:
                self.out.append({"data": int(d.out_data.value), "key": int(d.out_key.value),
                                 "tag": int(d.out_tag.value), "qt": int(d.out_qt.value),
                                 "on_tick": int(d.out_on_tick.value), "qsym": int(d.out_qsym.value)})

    async def send(self, items: list[tuple[int, int, int]]):
        """(record, key, tag) in order, each held until the unit takes it."""
        d = self.dut
        for rec, key, tag in items:
            while self.idle and self.rng.randrange(100) < self.idle:
                d.in_valid.value = 0
                await RisingEdge(d.clk)
            d.in_valid.value, d.in_data.value, d.in_key.value, d.in_tag.value = 1, rec, key, tag
            await RisingEdge(d.clk)
            while d.in_ready.value != 1:
                await RisingEdge(d.clk)
        d.in_valid.value = 0

    async def drain(self, n: int, limit: int = 100_000):
        for _ in range(limit):
            if len(self.out) >= n:
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"{len(self.out)} records out of {n} after {limit} cycles")


def symbols(dut) -> int:
    return int(os.environ["HDL_NSYM"])


async def quotients(dut, idle: int, refuse: int, seed: int):
    rng = random.Random(seed)
    nsym = symbols(dut)
    ticks = [TICKS[(seed + 3 * s) % len(TICKS)] for s in range(nsym)]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    u = Unit(dut, idle, refuse, seed)
    await u.setup(ticks)
    cocotb.start_soon(u.collect())
    items, want = [], []
    for s, t in enumerate(ticks):
        for px in prices(rng, t):
            key, tag = rng.randrange(1 << KW), rng.randrange(1 << TW)
            items.append((record(len(items) + 1, s, px), key, tag))
            want.append((px // t, int(px % t == 0), s, key, tag))
            if rng.random() < 0.4:  # a CANCEL among them: no ticks, it may skip ahead of nothing
                key, tag = rng.randrange(1 << KW), rng.randrange(1 << TW)
                items.append((record(len(items) + 1, s, px, ACTION_CANCEL), key, tag))
                want.append((None, None, None, key, tag))
    pairs = list(zip(items, want))
    rng.shuffle(pairs)
    items, want = [i for i, _ in pairs], [w for _, w in pairs]
    await u.send(items)
    await u.drain(len(items))
    assert len(u.out) == len(items)
    for (rec, _, _), got, (qt, on, s, key, tag) in zip(items, u.out, want):
        px = field(rec, "price")
        assert got["data"] == rec, "the record changed on its way, or came out of order"
        assert (got["key"], got["tag"]) == (key, tag)
        if qt is None:
            continue
        assert got["qsym"] == s
        assert got["qt"] == qt, f"price {px} tick {ticks[s]}: quotient {got['qt']}, want {qt}"
        assert got["on_tick"] == on, f"price {px} tick {ticks[s]}: on tick {got['on_tick']}, want {on}"


@cocotb.test()
async def quotients_test(dut):
    """Every quotient and tick check exact, with the input and output always ready."""
    await quotients(dut, 0, 0, 1)


@cocotb.test()
async def quotients_back_pressure_test(dut):
    """The same with idle input cycles and output refusals: order and values kept, CANCELs
    jumping to the last stage only when nothing is between."""
    await quotients(dut, 30, 50, 2)


@cocotb.test()
async def prediction_test(dut):
    """A record that is not a NEW is worked out with the symbol the last NEW that may rest with an
    id of its bucket named (a NEW that cannot rest, IOC, leaves no trace); fix_* writes another."""
    nsym = symbols(dut)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    ticks = [7 + 2 * s for s in range(nsym)]
    u = Unit(dut)
    await u.setup(ticks)
    cocotb.start_soon(u.collect())
    last = nsym - 1
    steps = [
        (record(1, last, 700), 5, last),                                     # a GTC NEW of the last symbol
        (record(1, 0xFFFF, 700, ACTION_REPLACE), 5, last),                   # its REPLACE, symbol field unknown
        (record(2, 0, 700, ACTION_NEW, TIF_IOC), 5, 0),                      # an IOC NEW of bucket 5: no trace
        (record(1, 0, 700, ACTION_CANCEL), 5, last),
        (record(3, 0, 700), 5, 0),                                           # a GTC NEW of symbol 0 there
        (record(1, last, 700, ACTION_REPLACE), 5, 0),                        # predicted 0 now
    ]
    await u.send([(rec, key, 0) for rec, key, _ in steps])
    await u.drain(len(steps))
    assert [o["qsym"] for o in u.out] == [s for _, _, s in steps]
    # the book puts the resting order's symbol back under bucket 5
    await FallingEdge(dut.clk)
    dut.fix_we.value, dut.fix_key.value, dut.fix_sym.value = 1, 5, last
    await FallingEdge(dut.clk)
    dut.fix_we.value = 0
    await u.send([(record(1, 0, 700, ACTION_REPLACE), 5, 0)])
    await u.drain(len(steps) + 1)
    assert u.out[-1]["qsym"] == last


@cocotb.test()
async def reset_in_traffic_test(dut):
    """A reset while records are in the pipeline drops them; what is sent after comes out alone."""
    nsym = symbols(dut)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    u = Unit(dut, refuse=100)  # nothing taken: the pipeline fills
    await u.setup([3] * nsym)
    cocotb.start_soon(u.collect())
    await u.send([(record(i + 1, 0, 3 * i + 1), 0, 0) for i in range(5)])
    await ClockCycles(dut.clk, 10)
    assert dut.busy.value == 1 and dut.out_valid.value == 1 and u.out == []
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    assert dut.busy.value == 0
    u.refuse = 0
    await u.send([(record(99, 0, 300), 1, 2)])
    await u.drain(1)
    await ClockCycles(dut.clk, 10)
    assert [(field(o["data"], "order_id"), o["qt"], o["on_tick"]) for o in u.out] == [(99, 100, 1)]


COCOTB_TESTS = [name for name, obj in list(globals().items()) if isinstance(obj, cocotb.regression.TestGenerator)]


@pytest.mark.parametrize("nsym", [1, 3, 8])
def test_tickbook_book_ticks_passes_the_cocotb_tests(nsym):
    run_cocotb_module(__file__, TOP, SOURCES, {"NSYM": nsym, "KW": KW, "TW": TW}, {"HDL_NSYM": str(nsym)},
                      COCOTB_TESTS)
