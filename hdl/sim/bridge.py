"""The hardware bridge: serves a hardware ring pair with the Verilog order book, streaming.

    tickbook bridge --rings NAME [--config venue.toml]     (python -m hdl.sim.bridge)

The segment has exactly the layout the engine's has (ring 0: order records in, ring 1: event
records out; docs/offload.md), which is the layout a PCIe card's DMA engine would read and
write: a driver for a real card replaces this process and nothing else changes.

This process compiles the book for the venue (Icarus, through cocotb's Python runner, cached
in `hdl.sim.driver.build_dir()`: build/hdl/ of a checkout, $TICKBOOK_HDL_BUILD in a pod) and runs the cocotb module `hdl/sim/bridge_dma.py`, which attaches to the
segment from inside the simulator and *is* the DMA engine: it polls ring 0, drives each record
into the book as it arrives, publishes the book's events to ring 1 (stalling `out_ready` while
ring 1 is full), moves ring 0's TAIL past a record once its events are published, waits in
real time when there is nothing to do, and ends on SHUTDOWN (closing ring 1) or STOP. An order
sent alone gets its events back without waiting for the next one: the bridge is live.

Readiness and exit, as `offload.server` relies on: the bridge's pid appears in header word 9 once
the book is configured and out of reset; exit EXIT_OK (0) after a SHUTDOWN record or a STOP
(SIGTERM / SIGINT set the STOP word), EXIT_FAILURE (1) when the owner died (the segment is then
unlinked), on a timeout or a simulator failure, EXIT_USAGE (2) when the segment cannot be
attached or speaks another layout, or when this machine cannot serve it (no Icarus, no cocotb,
no writable build folder; `--target card`: no card driver exists yet), or when another live
process already serves the segment (its server claim, offload/ring.py), each said in one line
before the segment is touched (engine/diagnostics.py). At exit it reports records, events,
simulated cycles and wall time on stderr, each line `bridge[pid]: `.
"""

from __future__ import annotations

import argparse
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


def build(nsym: int, nord: int, nlvl: int, book: str = "bram"):
    """Compile the book (hdl.sim.driver.BOOKS: the block-RAM build unless told) for cocotb
    (Icarus), once per parameter set and RTL contents; several bridges may start at once.
    Returns (runner, build dir, top level)."""
    from hdl.sim.driver import BOOKS, cocotb_build

    _, top, srcs = BOOKS[book]
    runner, bdir = cocotb_build("bridge", top, srcs, nsym, nord, nlvl, quiet=True)
    return runner, bdir, top


def run_sim(runner, bdir: Path, top: str, conf: dict, run_dir: Path, params: dict) -> tuple[dict, str]:
    """Run the DMA side (bridge_dma) in Icarus; returns (stats the test wrote, failure text or '')."""
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
            hdl_toplevel=top,
            parameters=params,
            build_dir=bdir,
            test_dir=run_dir,
            results_xml=str(results),
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


def cannot_serve(target: str) -> str:
    """Why this machine (or container image) cannot serve the hardware segment, or ''."""
    from hdl.sim.driver import BUILD_DIR, simulator_available

    if target == "card":
        return ("no driver for an FPGA card is built yet: the card's DMA engine would serve this segment "
                "in this process's place (docs/deploy.md#fpga); run --target sim for the Verilog book in Icarus")
    ok, why = simulator_available()
    if not ok:
        return f"{why}: the sim target needs Icarus Verilog (the tickbook-sim image has it)"
    try:
        import cocotb_tools.runner  # noqa: F401
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
                   help="sim: the Verilog book in Icarus (default); card: an FPGA card's driver (none yet)")
    a = p.parse_args(argv)

    from hdl.sim.driver import BUILD_DIR, config_words
    from hdl.sim.scope import Unrepresentable, capacity_note, check_venue, device_note
    from offload.engine_process import load_engine_venue
    from offload.pinning import die_with_parent, pin

    log = process_logger("bridge")
    why = cannot_serve(a.target)
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
    nsym, nord, nlvl = params["nsym"], params["nord"], params["nlvl"]
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
        runner, bdir, top = build(nsym, nord, nlvl, a.book)
        t_build = time.monotonic() - t0
        (BUILD_DIR / "bridge_runs").mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}_", dir=BUILD_DIR / "bridge_runs"))
        conf = {
            "rings": a.rings,
            "bridge_pid": os.getpid(),
            "cfg": [list(w) for w in config_words(venue, area=a.book == "area")],
            "stats": str(run_dir / "stats.json"),
            "timeout": a.timeout,
        }
        if a.evq:
            conf["evq_max"] = a.evq
            conf["flush_events"] = min(64, a.evq)
        log(f"Icarus {top} NSYM={nsym} NORD={nord} NLVL={nlvl} ({bdir.name}, ready in {t_build:.1f} s); "
            f"serving {a.rings}")
        stats, fail = run_sim(runner, bdir, top, conf, run_dir, {"NSYM": nsym, "NORD": nord, "NLVL": nlvl})
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
            f"{stats.get('stall_cycles', 0):,} cycles with out_ready low)"
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
