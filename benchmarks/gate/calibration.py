"""Calibration of the gate's thresholds from A/A runs: the committed HEAD against a worktree of
the same commit, exactly as a gate runs, `runs` times.

For each figure the A/A ratio should be 1; how far it strays is the machine's noise at the
gate's size (rounds, runs per arm). thresholds.toml keeps every A/A ratio measured (a new
calibration adds to them, `--fresh` starts over); a threshold is the larger of the figure's
floor and MARGIN times the second-largest deviation among them, rounded up to a whole percent.
The same runs are judged with the thresholds in force, confirmation included, as a gate would,
and the false alarms are counted and printed.
"""

from __future__ import annotations

import math
import time
import tomllib

import numpy as np

from benchmarks.gate import history, runner, stats, trees
from benchmarks.gate.trees import REPO, GateError

MARGIN = 2.0
# Below these the figure's resolution, not the machine, decides: the TSC ticks by ~10 ns here,
# so a per-message p50 of 60-80 ns moves in steps of 12-17 %.
FLOORS = {"matcher_ns": 0.05, "matcher_p50_ns": 0.20, "matcher_p99_ns": 0.10, "rtt_p50_ns": 0.10,
          "rtt_p99_ns": 0.15, "replay_msgs_per_s": 0.05}


def derive(key: str, ratios: list[float]) -> float:
    """The threshold for a figure from its A/A ratios: MARGIN x the second-largest deviation from
    1 (the largest is the kind of one-off stretch that the gate's confirmation rounds absorb), or
    the figure's floor, whichever is larger; rounded up to a whole percent."""
    devs = sorted(abs(x - 1) for x in ratios)
    dev = devs[-2] if len(devs) >= 2 else (devs[-1] if devs else 0.0)
    return max(FLOORS[key], math.ceil(MARGIN * dev * 100 - 1e-9) / 100)


def previous_ratios() -> dict[str, list[float]]:
    """The A/A ratios behind the thresholds in force (thresholds.toml keeps every one)."""
    from benchmarks.gate.decide import THRESHOLDS

    data = tomllib.loads(THRESHOLDS.read_text())
    return {k: [float(x) for x in v.get("aa_worse", [])] for k, v in data.items() if isinstance(v, dict)}


def write_thresholds(proposed, known, head, runs, rounds, alarms, first, loads) -> None:
    from benchmarks.gate.decide import THRESHOLDS

    total = len(known.get("matcher_ns", []))
    lines = [
        "# Thresholds of the latency gate: a figure fails when the change is worse than the baseline by",
        "# more than its threshold AND the difference is significant (Wilcoxon signed-rank over the",
        "# rounds, p < 0.01), and again in new rounds (the confirmation).",
        "# Written by `python -m benchmarks.gate calibrate --write` from every A/A run kept below",
        f"# ({total}): the larger of the figure's floor and {MARGIN} x the second-largest deviation.",
        f"# Last calibration: {runs} runs of {rounds} rounds of {head[:12]} on {time.strftime('%Y-%m-%d')},",
        f"# {history.machine()['cpu']}, {history.machine()['cpus']} cpus; false alarms {len(alarms)} of {runs}"
        f" ({len(first)} before confirmation).",
        "# Load at the start of each run: " + " | ".join(s.split(";")[0].replace("loadavg ", "") for s in loads),
    ]
    for f in stats.HEADLINE:
        lines += ["", f"[{f.key}]", f"threshold = {proposed[f.key]:.2f}",
                  "aa_worse = [" + ", ".join(f"{x:.4f}" for x in known.get(f.key, [])) + "]"]
    THRESHOLDS.write_text("\n".join(lines) + "\n")


def calibrate(runs: int, rounds: int, write: bool, keep: bool = True) -> int:
    from benchmarks.gate.decide import THRESHOLDS, judge, settle, table, thresholds
    from offload.pinning import machine_load

    if trees.dirty():
        raise GateError("calibration compares HEAD with itself: commit or stash the changes to the code first")
    head = trees.head()
    limits = thresholds()
    inputs = runner.write_inputs()
    tree = trees.worktree(head)
    worse: dict[str, list[float]] = {f.key: [] for f in stats.HEADLINE}
    alarms, first = [], []  # runs the gate would have failed; runs with a failure before confirmation
    loads = []
    t0 = time.perf_counter()
    for i in range(runs):
        before = machine_load()
        loads.append(before)
        a, b = runner.Arm("base", tree), runner.Arm("change", REPO)
        print(f"A/A run {i + 1}/{runs}: {before}")
        runner.interleave([a, b], rounds, inputs)
        rows = judge(a, b, limits)
        print(table(rows, "HEAD", "HEAD"))
        for c in rows:
            worse[c.key].append(c.worse)
        if any(c.verdict == "FAIL" for c in rows):
            first.append(i + 1)
        settled = settle(rows, a, b, rounds, inputs, limits)
        if any(c.verdict == "FAIL" for c in rows):
            alarms.append(i + 1)
        history.append(history.record("aa", head, head, before, machine_load(), a, b, rows, [], rounds, **settled))
    minutes = (time.perf_counter() - t0) / 60
    print(f"\n{runs} A/A runs of {rounds} rounds in {minutes:.1f} min; false alarms with the thresholds in force: "
          f"{len(alarms)} of {runs} runs{' (runs ' + ', '.join(map(str, alarms)) + ')' if alarms else ''}; "
          f"failures before confirmation: {len(first)}{' (runs ' + ', '.join(map(str, first)) + ')' if first else ''}")
    known = previous_ratios() if keep else {}
    for k, w in worse.items():
        known[k] = known.get(k, []) + w
    proposed = {k: derive(k, known.get(k, [])) for k in FLOORS}
    total = len(known.get("matcher_ns", []))
    print(f"{'figure':30s} {'this calibration: min':>21s} {'median':>8s} {'max':>8s} {'in force':>9s} "
          f"{f'from all {total}':>10s}")
    for f in stats.HEADLINE:
        w = np.array(worse[f.key]) - 1
        seen = f"{w.min() * 100:+20.1f}% {np.median(w) * 100:+7.1f}% {w.max() * 100:+7.1f}%" if len(w) else f"{'-':>21s} {'-':>8s} {'-':>8s}"
        print(f"{f.label:30s} {seen} {limits.get(f.key, 0) * 100:8.0f}% {proposed[f.key] * 100:9.0f}%")
    if write:
        write_thresholds(proposed, known, head, runs, rounds, alarms, first, loads)
        print(f"wrote {THRESHOLDS.relative_to(REPO)} from {total} A/A runs")
    return 0

