"""The gate's history: one JSON line a run (gate, proof or A/A calibration) with the commit, the
date, the machine, its load before and after and what else was running, and every figure.

It lives in build/bench/history.jsonl (BENCH_HISTORY names another file), which CI keeps as an
artifact; build/bench/last-gate.json holds the last gate's samples and latency curves for the
report.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from benchmarks.gate.trees import REPO

PATH = Path(os.environ.get("BENCH_HISTORY") or REPO / "build" / "bench" / "history.jsonl")
CURVES = ("matcher_curve", "rtt_curve")


def machine() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": platform.node(), "cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version()}


def record(kind: str, base: str, change: str, load_before: str, load_after: str, a, b, rows, cycles, rounds,
           **extra) -> dict:
    return {
        "kind": kind,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": change,
        "base": base,
        "machine": machine(),
        "load_before": load_before,
        "load_after": load_after,
        "ci": bool(os.environ.get("CI")),
        "rounds": rounds,
        "arms": {a.name: str(a.tree), b.name: str(b.tree)},
        "warm_s": {a.name: round(a.warm_s, 1), b.name: round(b.warm_s, 1)},
        "figures": {c.key: c.as_dict() for c in rows},
        "samples": {arm.name: {c.key: [run.get(c.key) for run in arm.runs] for c in rows} for arm in (a, b)},
        "cycles": cycles,
        **extra,
    }


def append(rec: dict, path: Path = PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        if fh.tell() > 0:
            with open(path, "rb") as r:
                r.seek(-1, 2)
                if r.read(1) != b"\n":
                    fh.write(b"\n")  # end the line a killed run cut short, so this one stays whole
        fh.write(json.dumps(rec, sort_keys=True).encode() + b"\n")


def read(path: Path = PATH) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a killed run: the others still count
    return out


def save_last(path: Path, rec: dict, a, b) -> None:
    """The last gate: its record plus every run's figures of both arms (samples and curves)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arms = {}
    for arm in (a, b):
        arms[arm.name] = [{k: v for k, v in run.items() if k not in ("tree", "pid", "engine")} for run in arm.runs]
    path.write_text(json.dumps({**rec, "runs": arms}, indent=1))
