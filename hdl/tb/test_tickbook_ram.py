"""cocotb 2.x tests of the block-RAM memory with its output register, hdl/rtl/tickbook_ram.v (its
simulation model), and their pytest runner (`test_tickbook_ram_passes_the_cocotb_tests`, at the
end).

What the book relies on: every word starts at zero; a word is read two edges after its address
(the address taken at an edge, the word out at the next), never one; a write shows in a read
whose address is taken at a later edge; a read whose address is taken at the edge of a write to
the same address gives X (the DP16KD's read port does not see the other port's write of that
edge), and reads of other addresses at that edge are unaffected. Random traffic against a
Python model of those rules.
"""

from __future__ import annotations

import os
import random

import cocotb
import cocotb.regression
import pytest
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from hdl.sim.driver import RTL_DIR, run_cocotb_module

pytestmark = pytest.mark.hdl

TOP = "tickbook_ram"
SOURCES = [RTL_DIR / "tickbook_ram.v"]


def _size(dut) -> tuple[int, int]:
    return int(os.environ["HDL_W"]), int(os.environ["HDL_D"])


async def _setup(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.we.value = 0
    dut.wa.value = 0
    dut.wd.value = 0
    dut.ra.value = 0
    await FallingEdge(dut.clk)


async def _cycle(dut, we=0, wa=0, wd=0, ra=0):
    """Drive one cycle's inputs (taken at the next rising edge); returns at the falling edge after."""
    dut.we.value, dut.wa.value, dut.wd.value, dut.ra.value = we, wa, wd, ra
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    return dut.rd.value


@cocotb.test()
async def starts_at_zero_and_reads_two_edges_late(dut):
    w, d = _size(dut)
    await _setup(dut)
    for a in (0, d - 1, d // 2):
        assert (await _cycle(dut, ra=a)).is_resolvable
    assert int(dut.rd.value) == 0
    top = (1 << w) - 1
    await _cycle(dut, we=1, wa=d - 1, wd=top, ra=0)
    out = [await _cycle(dut, ra=d - 1), await _cycle(dut, ra=0), await _cycle(dut, ra=0)]
    # the address d-1 taken at the first edge: its word is out only after the second
    assert int(out[0]) == 0 and int(out[1]) == top and int(out[2]) == 0


@cocotb.test()
async def a_read_at_the_edge_of_a_write_to_its_address_is_x(dut):
    w, d = _size(dut)
    a, b = d - 1, 0                                   # two addresses (d >= 2)
    await _setup(dut)
    mask = (1 << w) - 1
    await _cycle(dut, we=1, wa=a, wd=1, ra=b)
    await _cycle(dut, we=1, wa=b, wd=2 & mask, ra=a)   # a read of a while b is written: fine
    out = [await _cycle(dut, we=1, wa=a, wd=3 & mask, ra=a),  # a read of a while a is written
           await _cycle(dut, ra=a), await _cycle(dut, ra=a)]
    assert int(out[0]) == 1                           # the read of a from the cycle before
    assert not out[1].is_resolvable                   # the colliding read
    assert int(out[2]) == 3 & mask                    # a read after the write sees it


@cocotb.test()
async def random_traffic_matches_the_model(dut):
    w, d = _size(dut)
    await _setup(dut)
    rng = random.Random(w * 1000 + d)
    mem = [None] * d                                 # unknown: earlier tests wrote some
    pending = []                                     # what each address taken will read
    hot = [rng.randrange(d) for _ in range(4)]       # a few addresses, so reads meet writes
    for _ in range(3000):
        we = rng.random() < 0.5
        wa = rng.choice(hot) if rng.random() < 0.7 else rng.randrange(d)
        ra = rng.choice(hot) if rng.random() < 0.7 else rng.randrange(d)
        wd = rng.getrandbits(w)
        pending.append("X" if we and wa == ra else mem[ra])
        got = await _cycle(dut, int(we), wa, wd, ra)
        if we:
            mem[wa] = wd
        if len(pending) >= 2:                        # out now: the address taken at the edge before
            want = pending[-2]
            if want == "X":
                assert not got.is_resolvable
            elif want is not None:
                assert got.is_resolvable and int(got) == want, f"read {int(got):#x}, want {want:#x}"


COCOTB_TESTS = [name for name, obj in list(globals().items()) if isinstance(obj, cocotb.regression.TestGenerator)]


@pytest.mark.parametrize("w,d", [(1, 2), (14, 16), (21, 700), (72, 1024)])
def test_tickbook_ram_passes_the_cocotb_tests(w, d):
    run_cocotb_module(__file__, TOP, SOURCES, {"W": w, "D": d}, {"HDL_W": str(w), "HDL_D": str(d)}, COCOTB_TESTS)
