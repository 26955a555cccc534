"""`tickbook compile`: compile every caller of the matcher into Numba's on-disk cache once,
so that no later start compiles (docs/performance.md#compiling). make's set-up runs it.

The engine's helpers (book, accounts, risk) are compiled once and cached per function, and
every caller links them from the cache. What each caller compiles for itself is the matcher's
message handlers, inlined into its own loop (engine/matcher.py says why they are inlined).
Targets, one process each:
- codec: the CSV parser and writer, the flow generator, the Parquet and Arrow kernels;
- matcher: the batch matcher `process_batch` with the helpers it compiles;
- engine: the live engine's loop on the rings (offload/engine_process.py, `serve`).
codec and matcher share nothing and compile side by side; engine starts when matcher is done,
as it loads the helpers that matcher compiled. `make run` needs codec and matcher.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from typing import IO

_CODEC = """
import io
import numpy as np
from engine.config import load_venue
from engine.codec import EventWriter, parse_flow_bytes, write_flow_csv
from engine.columnar import warm_up
from engine.gen import generate
from engine.records import EVENT_DTYPE
venue = load_venue(None)
text = io.BytesIO()
write_flow_csv(text, generate(venue, 100, 1), venue)
flow = parse_flow_bytes(text.getvalue(), venue)
EventWriter(io.BytesIO(), venue, flow).write(np.zeros(1, EVENT_DTYPE))
warm_up(venue)
"""
_MATCHER = "from engine.api import warm_up_matcher; warm_up_matcher()"
TARGETS = {
    "codec": _CODEC,
    "matcher": _MATCHER,
    "engine": "from engine.config import load_venue; from offload.engine_process import warm_up; warm_up(load_venue(None), check=False)",
}
AFTER = {"engine": "matcher"}  # loads what the other compiled: starts when it is done


def _start(name: str) -> tuple[subprocess.Popen, IO[str]]:
    err = tempfile.TemporaryFile("w+")  # a file, not a pipe: nothing blocks while the others are polled
    return subprocess.Popen([sys.executable, "-c", TARGETS[name]], stderr=err, text=True), err


def _report(name: str, proc: subprocess.Popen, err, t0: float) -> bool:
    ok = proc.returncode == 0
    print(f"  {name:<7} {'compiled or loaded' if ok else 'FAILED'} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if not ok:
        err.seek(0)
        lines = err.read().strip().splitlines()
        print(lines[-1] if lines else f"exit status {proc.returncode}", file=sys.stderr)
    err.close()
    return ok


def cached(dispatcher) -> bool:
    """Whether Numba's cache holds the function compiled from its current source (Numba's own
    index check). A Numba whose cache is laid out otherwise reads as cached: then nothing is
    started aside, and the caller compiles in process as before."""
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:
        return True


def codec_aside():
    """When the codec is not in Numba's cache (a first run that bypassed make's set-up), start
    compiling it in a second process, so that it compiles side by side with the matcher in
    this one. Returns a function that waits for it, or None when the cache was warm."""
    from engine.codec import format_events

    if cached(format_events):
        return None
    print("compiling the CSV and columnar codecs in a second process, the matcher in this one "
          "(once; later starts load Numba's cache)", file=sys.stderr)
    proc, err = _start("codec")

    def wait() -> None:
        proc.wait()
        err.close()  # a failure shows when this process loads the codec: it compiles it itself

    return wait


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tickbook compile", description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*", metavar="TARGET", help=f"what to compile (default: all of {', '.join(TARGETS)})")
    args = p.parse_args(argv)
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        p.error(f"unknown target {', '.join(unknown)} (choose from {', '.join(TARGETS)})")
    names = list(dict.fromkeys(args.targets or TARGETS))
    print("compiling the matcher for every caller into Numba's cache (once; later starts load it)", file=sys.stderr)
    t0 = time.perf_counter()
    ok = True
    running = {n: _start(n) for n in names if AFTER.get(n) not in names}
    waiting = [n for n in names if n not in running]
    while running:
        time.sleep(0.05)
        for name in [n for n, (proc, _) in running.items() if proc.poll() is not None]:
            ok = _report(name, *running.pop(name), t0) and ok
            for n in [n for n in waiting if AFTER[n] == name]:
                waiting.remove(n)
                running[n] = _start(n)
    print(f"  total   {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0 if ok else 1
