"""Interleaved runs: each arm (a tree, and the environment it runs in) measured in its own
process, alternating A B B A A B ... so that the shared machine's slow and fast periods fall on
every arm alike.

The inputs (the fixed flow as records and as CSV, the venue) are written once, by the change's
tree, and every run of every arm reads the same files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.gate.trees import REPO, GateError

INPUTS = REPO / "build" / "bench" / "inputs"
FLOW_N, FLOW_SEED = 200_000, 7  # the matcher's and the round trip's flow
CSV_N, CSV_SEED = 300_000, 8  # the replay's CSV
RUN_TIMEOUT = 600  # a first run compiles the tree's matcher copies (50-110 s each on a busy host)


@dataclass
class Arm:
    name: str
    tree: Path
    env: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)  # one dict of figures per run
    warm_s: float = 0.0


def write_inputs(path: Path = INPUTS) -> Path:
    """The flow, its CSV and the venue, made by this checkout's generator (idempotent)."""
    import numpy as np

    from engine.codec import write_flow_csv
    from engine.config import load_venue
    from engine.gen import generate

    stamp = path / "made-by"
    want = f"flow {FLOW_N} seed {FLOW_SEED}; csv {CSV_N} seed {CSV_SEED}"
    if stamp.exists() and stamp.read_text() == want and all((path / f).exists() for f in ("venue.toml", "flow.npy", "flow.csv")):
        return path
    path.mkdir(parents=True, exist_ok=True)
    venue = load_venue(None)
    shutil.copy(venue.source, path / "venue.toml")
    np.save(path / "flow.npy", generate(venue, FLOW_N, seed=FLOW_SEED))
    with open(path / "flow.csv", "wb") as fh:
        write_flow_csv(fh, generate(venue, CSV_N, seed=CSV_SEED), venue)
    stamp.write_text(want)
    return path


def run_once(arm: Arm, inputs: Path, only: list[str] | None = None) -> dict:
    """One process of the figures worker in arm.tree; its figures, or a GateError with its last lines."""
    env = {**os.environ, "PYTHONPATH": str(arm.tree), **arm.env}
    with tempfile.NamedTemporaryFile(prefix="tickbook-gate-", suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    cmd = [sys.executable, "-m", "benchmarks.gate.figures", "--inputs", str(inputs), "--json", str(out)]
    for o in only or []:
        cmd += ["--only", o]
    try:
        r = subprocess.run(cmd, cwd=arm.tree, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [f"exit status {r.returncode}"]
            raise GateError(f"{arm.name} ({arm.tree}) failed: {tail[0]}")
        res = json.loads(out.read_text())
    except subprocess.TimeoutExpired:
        raise GateError(f"{arm.name} ({arm.tree}) did not finish in {RUN_TIMEOUT} s") from None
    finally:
        out.unlink(missing_ok=True)
    if Path(res["engine"]).resolve() != (arm.tree / "engine").resolve():
        raise GateError(f"{arm.name}: the run imported {res['engine']}, not {arm.tree / 'engine'}")
    return res


def interleave(arms: list[Arm], rounds: int, inputs: Path, only: list[str] | None = None, log=print,
               warm: bool = True) -> None:
    """A warm run of each arm (compiles what its tree has not cached, not counted), then
    `rounds` rounds; the order of the arms flips every round."""
    for arm in arms if warm else ():
        t0 = time.perf_counter()
        run_once(arm, inputs, only)
        arm.warm_s = time.perf_counter() - t0
        log(f"  {arm.name}: warm run {arm.warm_s:.1f} s ({arm.tree})")
    for r in range(rounds):
        order = arms if r % 2 == 0 else arms[::-1]
        for arm in order:
            arm.runs.append(run_once(arm, inputs, only))
        shown = next((k for k in ("matcher_ns", "rtt_p50_ns", "replay_msgs_per_s") if k in arms[0].runs[-1]), None)
        if shown:
            log(f"  round {r + 1}/{rounds}, {shown}: " + ", ".join(f"{a.name} {a.runs[-1][shown]:,.1f}" for a in arms))


def samples(arm: Arm, key: str) -> list[float]:
    return [float(run[key]) for run in arm.runs if key in run]
