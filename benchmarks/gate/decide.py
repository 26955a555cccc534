"""From runs to verdicts: the thresholds in force, the judgement of two arms, its confirmation,
and the table the gate prints.

A figure that fails (worse than its threshold, and significant) is measured again at once, in
fresh interleaved rounds of the parts it comes from. The new rounds clear it only when they show
it within its threshold: their 95 % interval of `worse` lies under 1 + threshold. They confirm it
when it fails again. When they do neither (noisy rounds: not significant, yet not shown within
the threshold either) it is measured once more, and a failure that no set of rounds cleared
stands. A real regression fails both times; a stretch of minutes in which the shared host slowed
one arm (seen once in 20 A/A runs: the round trip's p50 at 2x for one tree) is cleared by quiet
rounds after it. Without the last rule a noisy confirmation overturned a real +15 % in one CI
proof (2026-12-06: the first 16 rounds showed it, the new ones ran at 70-112 ns, p > 0.01).

Before that, a figure the first rounds leave open (its `worse` beyond the threshold, yet not
significant) is not passed on that evidence: it gets as many new rounds again, and is judged on
all of them together (`extend`). Noisy rounds hide a regression as easily as they fake one: in
the CI proof of 4a4e4da (2026-12-08) the injected +15 % read +14.3 % [+7.9 %, +17.9 %] over 16
rounds, some of them 40 % slow on one arm, at p = 0.033, and passed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from benchmarks.gate import runner, stats

THRESHOLDS = Path(__file__).with_name("thresholds.toml")
ACCEPTED = Path(__file__).with_name("accepted.toml")  # cycle figures a change makes worse on purpose
DEFAULT_THRESHOLD = 0.10
# which part of figures.py measures a figure (what a confirmation must run again)
PARTS = {"matcher_ns": "matcher", "matcher_p50_ns": "matcher", "matcher_p99_ns": "matcher",
         "rtt_p50_ns": "rtt", "rtt_p99_ns": "rtt", "replay_msgs_per_s": "replay"}
NOT_CONFIRMED = "not confirmed"
# sets of new rounds a failure gets while they are inconclusive (confirm)
CONFIRM_ATTEMPTS = 2
# sets of new rounds, pooled with the first, that a figure left open gets (extend)
EXTEND_ATTEMPTS = 2


def thresholds(path: Path = THRESHOLDS) -> dict[str, float]:
    data = tomllib.loads(path.read_text())
    return {k: float(v["threshold"]) for k, v in data.items() if isinstance(v, dict) and "threshold" in v}


def accepted_cycles(path: Path = ACCEPTED) -> list[dict]:
    """The declared increases of simulated cycle figures ([[cycles]]: match, was, now, why)."""
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("cycles", [])
    for e in entries:
        missing = {"match", "was", "now", "why"} - set(e)
        if missing:
            raise ValueError(f"{path.name}: an entry without {', '.join(sorted(missing))}: {e}")
    return entries


def judge(a: runner.Arm, b: runner.Arm, limits: dict[str, float], keys=None) -> list[stats.Comparison]:
    rows = []
    for fig in stats.HEADLINE:
        if keys is not None and fig.key not in keys:
            continue
        sa, sb = runner.samples(a, fig.key), runner.samples(b, fig.key)
        if sa and sb:
            rows.append(stats.compare(fig, sa, sb, limits.get(fig.key, DEFAULT_THRESHOLD)))
    return rows


def open_question(c: stats.Comparison) -> bool:
    """The rounds put the figure beyond its threshold without showing it significant."""
    return c.verdict == "pass" and c.worse - 1 > c.threshold


def _rerun(a: runner.Arm, b: runner.Arm, rounds: int, inputs: Path, keys: list[str], log) -> tuple[runner.Arm, runner.Arm]:
    """Fresh arms of the same trees, `rounds` new interleaved rounds of the parts behind `keys`."""
    a2, b2 = runner.Arm(a.name, a.tree, a.env), runner.Arm(b.name, b.tree, b.env)
    runner.interleave([a2, b2], rounds, inputs, sorted({PARTS[k] for k in keys}), log=log, warm=False)
    return a2, b2


def _keep(samples: dict | None, arms: tuple[runner.Arm, ...], keys: list[str]) -> None:
    if samples is not None:
        for arm in arms:
            kept = samples.setdefault(arm.name, {})
            for k in keys:
                kept.setdefault(k, []).extend(runner.samples(arm, k))


def extend(rows: list[stats.Comparison], a: runner.Arm, b: runner.Arm, rounds: int, inputs: Path,
           limits: dict[str, float], log=print, samples: dict | None = None,
           attempts: int = EXTEND_ATTEMPTS) -> list[stats.Comparison]:
    """Measure the figures left open (open_question) in `rounds` new rounds and judge each on
    the first rounds and the new ones together; the pooled judgement replaces the figure's row
    (a FAIL then goes to `confirm` like any other). `a` and `b` are left as they were; `samples`,
    when given, gets the new rounds' samples ({arm: {figure: [...]}}). Returns the pooled
    judgements."""
    pending = [c.key for c in rows if open_question(c)]
    pooled_a = runner.Arm(a.name, a.tree, a.env, list(a.runs))
    pooled_b = runner.Arm(b.name, b.tree, b.env, list(b.runs))
    last: dict[str, stats.Comparison] = {}
    for _ in range(attempts):
        if not pending:
            break
        log(f"  beyond the threshold but not significant on {len(pooled_a.runs)} rounds: {', '.join(pending)}; "
            f"measuring {rounds} more rounds and judging on all of them")
        a2, b2 = _rerun(a, b, rounds, inputs, pending, log)
        _keep(samples, (a2, b2), pending)
        # both arms' new runs follow their first ones, so a figure's i-th samples stay one round's pair
        for pooled, new in ((pooled_a, a2), (pooled_b, b2)):
            pooled.runs.extend(new.runs)
        again = judge(pooled_a, pooled_b, limits, pending)
        for c in again:
            rows[next(i for i, r in enumerate(rows) if r.key == c.key)] = c
        last.update({c.key: c for c in again})
        pending = [c.key for c in again if open_question(c)]
    return [last[c.key] for c in rows if c.key in last]


def cleared(c: stats.Comparison) -> bool:
    """New rounds show the figure within its threshold: the whole 95 % interval of `worse` under it."""
    return c.verdict == "pass" and c.hi - 1 <= c.threshold


def confirm(rows: list[stats.Comparison], a: runner.Arm, b: runner.Arm, rounds: int, inputs: Path,
            limits: dict[str, float], log=print, samples: dict | None = None,
            attempts: int = CONFIRM_ATTEMPTS) -> list[stats.Comparison]:
    """Measure the failing figures again in new rounds, up to `attempts` times while the rounds
    are inconclusive; a first failure that new rounds clear becomes NOT_CONFIRMED (a pass), any
    other stays FAIL. Returns each figure's last judgement; `samples`, when given, gets the new
    rounds' samples ({arm: {figure: [...]}}, the attempts one after the other, for the history)."""
    pending = [c.key for c in rows if c.verdict == "FAIL"]
    last: dict[str, stats.Comparison] = {}
    for attempt in range(1, attempts + 1):
        if not pending:
            break
        log(f"  {'failing' if attempt == 1 else f'not resolved by the last {rounds} rounds'}: "
            f"{', '.join(pending)}; confirming with {rounds} new rounds ({attempt} of at most {attempts})")
        a2, b2 = _rerun(a, b, rounds, inputs, pending, log)
        again = judge(a2, b2, limits, pending)
        _keep(samples, (a2, b2), pending)
        last.update({c.key: c for c in again})
        for c in again:
            if cleared(c):
                next(r for r in rows if r.key == c.key).verdict = NOT_CONFIRMED
        # a figure that failed again is confirmed; one neither failed nor cleared is measured again
        pending = [c.key for c in again if c.verdict != "FAIL" and not cleared(c)]
        if pending and attempt < attempts:
            log(f"  inconclusive (neither failed again nor shown within the threshold): {', '.join(pending)}")
    for k in pending:
        log(f"  {k}: no set of new rounds showed it within its threshold; the failure stands")
    return [last[c.key] for c in rows if c.key in last]


def settle(rows: list[stats.Comparison], a: runner.Arm, b: runner.Arm, rounds: int, inputs: Path,
           limits: dict[str, float], log=print) -> dict:
    """What the gate does after its first rounds: `extend` the open figures, then `confirm` the
    failures, printing each one's table; `rows` ends with the verdicts. Returns what the history
    keeps of both (the judgements and the new rounds' samples)."""
    ext_samples: dict = {}
    conf_samples: dict = {}
    extended = extend(rows, a, b, rounds, inputs, limits, log=log, samples=ext_samples)
    if extended:
        log(f"the first rounds and the new ones together:\n{table(extended, a.name, b.name)}")
    again = confirm(rows, a, b, rounds, inputs, limits, log=log, samples=conf_samples)
    if again:
        log(f"confirmation:\n{table(again, a.name, b.name)}")
    return {"extension": {c.key: c.as_dict() for c in extended}, "extension_samples": ext_samples,
            "confirmation": {c.key: c.as_dict() for c in again}, "confirmation_samples": conf_samples}


def failed(rows: list[stats.Comparison]) -> list[stats.Comparison]:
    return [c for c in rows if c.verdict == "FAIL"]


def _pct(x: float) -> str:
    return f"{(x - 1) * 100:+.1f}%"


def table(rows: list[stats.Comparison], a_name: str, b_name: str) -> str:
    out = [f"{'figure':34s} {'A ' + a_name:>14s} {'B ' + b_name:>14s} {'B/A':>7s}  {'B worse by [95% CI]':27s} {'p':>7s} {'rounds':>6s} "
           f"{'threshold':>9s}  verdict"]
    for c in rows:
        f = stats.BY_KEY[c.key]
        fmt = (lambda v: f"{v:,.0f}") if f.unit == "messages/s" else (lambda v: f"{v:,.1f}")
        ci = f"{_pct(c.worse)} [{_pct(c.lo)}, {_pct(c.hi)}]"
        out.append(f"{f.label + ' (' + f.unit + ')':34s} {fmt(c.a):>14s} {fmt(c.b):>14s} {c.ratio:7.3f}  {ci:27s} "
                   f"{c.p:7.4f} {f'{c.n_a - c.dropped}/{c.n_a}':>6s} {c.threshold * 100:8.0f}%  {c.verdict}")
    return "\n".join(out)
