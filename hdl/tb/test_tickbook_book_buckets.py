"""cocotb 2.x tests of the block-RAM book's id buckets and the reads of them under way,
hdl/rtl/tickbook_book_buckets.v, and their pytest runner
(`test_tickbook_book_buckets_passes_the_cocotb_tests`, at the end).

What the book relies on: a read sent at an edge has its word from the edge after; the reads are
taken in the order they were sent; the word taken is the bucket as every write up to and at the
take's edge leaves it, however the writes fell against the read (at its own edge, which the
memory's read port does not see, while it is under way, while it waits in the queue); every
bucket starts empty; a reset forgets the reads under way and keeps the buckets. Random traffic
on a few hot buckets, against a Python model of those rules.
"""

from __future__ import annotations

import os
import random
from collections import deque

import cocotb
import cocotb.regression
import pytest
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from hdl.sim.driver import RTL_DIR, run_cocotb_module

pytestmark = pytest.mark.hdl

TOP = "tickbook_book_buckets"
SOURCES = [RTL_DIR / "tickbook_book_buckets.v", RTL_DIR / "tickbook_ram.v"]
QD = 8  # the module's default queue


def _size() -> tuple[int, int, int]:
    hw, pw = int(os.environ["HDL_HW"]), int(os.environ["HDL_PW"])
    return hw, pw, 1 << (pw - 1)  # EMPTY as the book has it: NIL, the pointer's top bit


class Model:
    """The buckets and the reads sent, oldest first, each with the edge it was sent at. A bucket
    is None until written when the model starts after traffic (an earlier test's)."""

    def __init__(self, hw: int, empty: int | None):
        self.mem = [empty] * (1 << hw)
        self.reads: deque[tuple[int, int]] = deque()
        self.edge = 0

    def head(self, we: int, wa: int, wd: int):
        """(key, word) of the oldest read if its word is out after the last edge, else None."""
        if not self.reads or self.reads[0][1] > self.edge - 1:
            return None
        key = self.reads[0][0]
        return key, (wd if we and wa == key else self.mem[key])

    def clock(self, rst: int, we: int, wa: int, wd: int, go: int, key: int, take: int):
        self.edge += 1
        if we:
            self.mem[wa] = wd
        if rst:
            self.reads.clear()
            return
        if take:
            self.reads.popleft()
        if go:
            self.reads.append((key, self.edge))


async def _setup(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for s in ("we", "wa", "wd", "go", "key", "take"):
        getattr(dut, s).value = 0
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _traffic(dut, rng: random.Random, cycles: int, p_write: float, p_go: float, p_take: float,
                   p_rst: float = 0.0) -> Model:
    hw, pw, empty = _size()
    m = Model(hw, None)                              # after the tests before it
    checked = 0
    hot = [rng.randrange(1 << hw) for _ in range(3)]
    for _ in range(cycles):
        rst = int(rng.random() < p_rst)
        we = int(rng.random() < p_write)
        wa = rng.choice(hot) if rng.random() < 0.8 else rng.randrange(1 << hw)
        wd = rng.choice((empty, rng.getrandbits(pw)))
        go = int(not rst and len(m.reads) < QD and rng.random() < p_go)
        key = rng.choice(hot) if rng.random() < 0.8 else rng.randrange(1 << hw)
        dut.rst.value, dut.we.value, dut.wa.value, dut.wd.value = rst, we, wa, wd
        dut.go.value, dut.key.value, dut.take.value = go, key, 0
        await Timer(1, unit="ns")
        want = m.head(we, wa, wd)
        if rst:
            take = 0
        elif want is None:
            assert not int(dut.ready.value), f"ready at edge {m.edge}, no read of two edges ago"
            take = 0
        else:
            assert int(dut.ready.value), f"not ready at edge {m.edge}: read of {want[0]} sent at {m.reads[0][1]}"
            assert int(dut.head_key.value) == want[0]
            got = dut.head_val.value
            assert got.is_resolvable, f"bucket {want[0]} at edge {m.edge}: word {got}"
            assert want[1] is None or int(got) == want[1], \
                f"bucket {want[0]} at edge {m.edge}: word {int(got):#x}, want {want[1]:#x}"
            checked += want[1] is not None
            take = int(rng.random() < p_take)
        dut.take.value = take
        await RisingEdge(dut.clk)
        m.clock(rst, we, wa, wd, go, key, take)
        await FallingEdge(dut.clk)
    assert checked > cycles // 20, f"only {checked} known words seen in {cycles} cycles"
    return m


@cocotb.test()
async def every_bucket_starts_empty(dut):
    hw, pw, empty = _size()
    await _setup(dut)
    m = Model(hw, empty)
    for key in sorted({0, (1 << hw) - 1, (1 << hw) // 3}):
        dut.go.value, dut.key.value = 1, key
        await RisingEdge(dut.clk)
        m.clock(0, 0, 0, 0, 1, key, 0)
        await FallingEdge(dut.clk)
    dut.go.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    while int(dut.ready.value):
        assert int(dut.head_val.value) == empty
        dut.take.value = 1
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.take.value = 0


@cocotb.test()
async def reads_meet_writes_at_every_distance(dut):
    """Writes on a few hot buckets at every point of a read's life, the queue full at times."""
    await _setup(dut)
    await _traffic(dut, random.Random(1), 4000, p_write=0.6, p_go=0.5, p_take=0.5)


@cocotb.test()
async def a_slow_taker_fills_the_queue(dut):
    await _setup(dut)
    await _traffic(dut, random.Random(2), 3000, p_write=0.5, p_go=0.8, p_take=0.15)


@cocotb.test()
async def a_reset_forgets_the_reads_and_keeps_the_buckets(dut):
    await _setup(dut)
    await _traffic(dut, random.Random(3), 4000, p_write=0.5, p_go=0.5, p_take=0.5, p_rst=0.02)


COCOTB_TESTS = [name for name, obj in list(globals().items()) if isinstance(obj, cocotb.regression.TestGenerator)]


@pytest.mark.parametrize("hw,pw", [(1, 2), (5, 5), (14, 14)])
def test_tickbook_book_buckets_passes_the_cocotb_tests(hw, pw):
    run_cocotb_module(__file__, TOP, SOURCES, {"HW": hw, "PW": pw, "EMPTY": 1 << (pw - 1)},
                      {"HDL_HW": str(hw), "HDL_PW": str(pw)}, COCOTB_TESTS)
