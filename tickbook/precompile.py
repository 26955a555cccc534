"""`tickbook compile`: compile every caller of the matcher into Numba's on-disk cache once,
so that no later start compiles (docs/performance.md#compiling). make's set-up runs it.

The engine's helpers (book, accounts, risk) are compiled once and cached per function, and
every caller links them from the cache. What each caller compiles for itself is the matcher's
message handlers, inlined into its own loop (engine/matcher.py says why they are inlined):
- replay: the batch matcher `process_batch`, the CSV parser and the events writer;
- engine: the live engine's loop on the rings (offload/engine_process.py, `serve`).
The replay goes first, alone, because it compiles the shared helpers; the others then
compile side by side, one process each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

TARGETS = {
    "replay": "from engine.api import warm_up; warm_up()",
    "engine": "from engine.config import load_venue; from offload.engine_process import warm_up; warm_up(load_venue(None), check=False)",
}


def _start(name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TARGETS[name]], stderr=subprocess.PIPE, text=True)


def _wait(name: str, proc: subprocess.Popen, t0: float) -> bool:
    err = proc.communicate()[1]
    ok = proc.returncode == 0
    print(f"  {name:<7} {'compiled or loaded' if ok else 'FAILED'} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if not ok:
        print(err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}", file=sys.stderr)
    return ok


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
    if "replay" in names:  # first and alone: it compiles the helpers the others load
        ok = _wait("replay", _start("replay"), time.perf_counter())
        names.remove("replay")
    t1 = time.perf_counter()
    running = [(n, _start(n)) for n in names]
    for n, proc in running:
        ok = _wait(n, proc, t1) and ok
    print(f"  total   {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0 if ok else 1
