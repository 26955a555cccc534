"""Calibration of the gate's thresholds from A/A runs: the committed HEAD against a worktree of
the same commit, exactly as a gate runs, `runs` times.

For each figure the A/A ratio should be 1; how far it strays is the machine's noise at the
gate's size (rounds, runs per arm). The threshold is the larger of the figure's floor and
MARGIN times the largest A/A deviation seen, rounded up to a whole percent. The same runs are
judged with the thresholds in force, and the false alarms are counted and printed.
"""

from __future__ import annotations

import math
import time

import numpy as np

from benchmarks.gate import history, runner, stats, trees
from benchmarks.gate.trees import REPO, GateError

MARGIN = 2.0
# Below these the figure's resolution, not the machine, decides: the TSC ticks by ~10 ns here,
# so a per-message p50 of 60-80 ns moves in steps of 12-17 %.
FLOORS = {"matcher_ns": 0.05, "matcher_p50_ns": 0.20, "matcher_p99_ns": 0.10, "rtt_p50_ns": 0.10,
          "rtt_p99_ns": 0.15, "replay_msgs_per_s": 0.05}


def calibrate(runs: int, rounds: int, write: bool) -> int:
    from benchmarks.gate.cli import THRESHOLDS, table, thresholds
    from offload.pinning import machine_load

    if trees.dirty():
        raise GateError("calibration compares HEAD with itself: commit or stash the working tree first")
    head = trees.head()
    limits = thresholds()
    inputs = runner.write_inputs()
    tree = trees.worktree(head)
    worse: dict[str, list[float]] = {f.key: [] for f in stats.HEADLINE}
    alarms = []
    loads = []
    t0 = time.perf_counter()
    for i in range(runs):
        before = machine_load()
        loads.append(before)
        a, b = runner.Arm("base", tree), runner.Arm("change", REPO)
        print(f"A/A run {i + 1}/{runs}: {before}")
        runner.interleave([a, b], rounds, inputs)
        rows = judge_all(a, b, limits)
        print(table(rows, "HEAD", "HEAD"))
        for c in rows:
            worse[c.key].append(c.worse)
        if any(c.verdict == "FAIL" for c in rows):
            alarms.append(i + 1)
        history.append(history.record("aa", head, head, before, machine_load(), a, b, rows, [], rounds))
    minutes = (time.perf_counter() - t0) / 60
    print(f"\n{runs} A/A runs of {rounds} rounds in {minutes:.1f} min; false alarms with the thresholds in force: "
          f"{len(alarms)} of {runs} runs{' (runs ' + ', '.join(map(str, alarms)) + ')' if alarms else ''}")
    proposed = {}
    print(f"{'figure':30s} {'A/A B worse by: min':>20s} {'median':>8s} {'max':>8s} {'in force':>9s} {'proposed':>9s}")
    for f in stats.HEADLINE:
        w = np.array(worse[f.key])
        dev = float(np.max(np.abs(w - 1))) if len(w) else 0.0
        proposed[f.key] = max(FLOORS[f.key], math.ceil(MARGIN * dev * 100) / 100)
        print(f"{f.label:30s} {(w.min() - 1) * 100:+19.1f}% {(np.median(w) - 1) * 100:+7.1f}% "
              f"{(w.max() - 1) * 100:+7.1f}% {limits.get(f.key, 0) * 100:8.0f}% {proposed[f.key] * 100:8.0f}%")
    if write:
        lines = [
            "# Thresholds of the latency gate: a figure fails when the change is worse than the baseline by",
            "# more than its threshold AND the difference is significant (Wilcoxon signed-rank over the rounds, p < 0.01).",
            "# Written by `python -m benchmarks.gate calibrate --write`: the larger of the figure's floor and",
            f"# {MARGIN} x the largest deviation of {runs} A/A runs ({rounds} interleaved rounds each) of",
            f"# {head[:12]} on {time.strftime('%Y-%m-%d')}, {history.machine()['cpu']}, {history.machine()['cpus']} cpus.",
            f"# False alarms of those runs with the thresholds then in force: {len(alarms)} of {runs}.",
            "# Load at the start of each run: " + " | ".join(s.split(";")[0].replace("loadavg ", "") for s in loads),
        ]
        for f in stats.HEADLINE:
            w = worse[f.key]
            lines += ["", f"[{f.key}]", f"threshold = {proposed[f.key]:.2f}",
                      "aa_worse = [" + ", ".join(f"{x:.4f}" for x in w) + "]"]
        THRESHOLDS.write_text("\n".join(lines) + "\n")
        print(f"wrote {THRESHOLDS.relative_to(REPO)}")
    return 0


def judge_all(a, b, limits):
    from benchmarks.gate.cli import judge

    return judge(a, b, limits)
