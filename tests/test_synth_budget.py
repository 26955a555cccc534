"""The loops `make synth-budget` times are the loops they claim to be: hop.v fills a maker every
2 cycles and stops where the rules say (filled, the level's end, the taker's own account), with
the maker's fields read in 2 cycles and in 3; walk.v walks a ladder an entry a cycle and ends at
the first entry not better than the price, at the entry and in the cycle it should. Icarus runs
each design's testbench (hdl/synth/budget/tb/) on the memories' simulation model (tickbook_ram),
preloaded; the synthesis figures are docs/hardware-timing.md's, "Toward 125 MHz"."""

from __future__ import annotations

import re
import subprocess

import pytest

from hdl.sim.driver import HDL_DIR, RTL_DIR, _need

BUDGET = HDL_DIR / "synth" / "budget"


def _run(tmp_path, tb: str, design: str, defines: list[str]) -> str:
    out = tmp_path / "sim.vvp"
    subprocess.run([_need("iverilog"), "-g2012", *(f"-D{d}" for d in defines), "-o", str(out),
                    str(BUDGET / "tb" / tb), str(BUDGET / design), str(RTL_DIR / "tickbook_ram.v")],
                   check=True, capture_output=True, timeout=60)
    return subprocess.run([_need("vvp"), "-n", str(out)], check=True, capture_output=True, text=True,
                          timeout=60).stdout


@pytest.mark.parametrize("fields", [[], ["FIELDS_REG"]], ids=["fields-2-cycles", "fields-3-cycles"])
@pytest.mark.parametrize("case,fills", [
    ("TK=45", [(107, 10), (103, 20), (109, 15)]),                 # the taker is filled at the third
    ("TK=200", [(107, 10), (103, 20), (109, 30), (105, 40)]),     # the level ends
    ("ACCT=3", [(107, 10), (103, 20)]),                            # its own account at the third
])
def test_hop_fills_a_maker_every_two_cycles(tmp_path, fields, case, fills):
    out = _run(tmp_path, "tb_hop.v", "hop.v", fields + [case])
    assert out.rstrip().endswith("PASS"), out
    # "cycle C: fill of ID, Q; ..." a line a fill
    lines = [tuple(map(int, m.groups())) for m in re.finditer(r"^cycle (\d+): fill of (\d+), (\d+);", out, re.M)]
    assert [(oid, q) for _, oid, q in lines] == fills, out
    cycles = [c for c, _, _ in lines]
    assert all(b - a == 2 for a, b in zip(cycles, cycles[1:])), out


@pytest.mark.parametrize("px,pos", [(145, 4), (150, 5), (185, 8), (190, 9), (100, 0)])
def test_walk_ends_at_the_first_entry_not_better(tmp_path, px, pos):
    out = _run(tmp_path, "tb_walk.v", "walk.v", [f"PX={px}"])
    assert out.rstrip().endswith("PASS"), out
    assert f"ends at position {pos}, handle {500 + pos}, equal {int(px % 10 == 0)}" in out, out
