"""The gate's statistics: how much worse B is than A, how sure we are, and the verdict.

A sample is one figure from one run (one process). Runs of A and B alternate in time, so slow
periods of the shared machine fall on both. For each figure:

- ratio = median(B) / median(A) in the figure's own unit;
- worse = how much worse B is, as a factor >= 0 around 1 (ratio for lower-is-better figures,
  1 / ratio for higher-is-better ones);
- a 95 % bootstrap confidence interval of `worse` (scipy.stats.bootstrap, resampling A and B
  independently, percentile method, fixed seed so a report can be reproduced);
- p: one-sided Mann-Whitney U that B's samples are worse than A's (scipy.stats.mannwhitneyu);
- verdict: FAIL when worse - 1 > threshold and p < ALPHA (a measured and significant
  regression), pass otherwise. Deterministic figures (simulated cycles) fail on any increase.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

ALPHA = 0.01
RESAMPLES = 4000


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool = False


# The headline figures measured in every run (benchmarks/gate/figures.py), in print order.
HEADLINE = (
    Figure("matcher_ns", "matcher, batch", "ns/message"),
    Figure("matcher_p50_ns", "matcher, per message p50", "ns"),
    Figure("matcher_p99_ns", "matcher, per message p99", "ns"),
    Figure("rtt_p50_ns", "engine round trip p50", "ns"),
    Figure("rtt_p99_ns", "engine round trip p99", "ns"),
    Figure("replay_msgs_per_s", "replay end to end", "messages/s", higher_is_better=True),
)
BY_KEY = {f.key: f for f in HEADLINE}


@dataclass
class Comparison:
    key: str
    a: float  # median of A's samples
    b: float  # median of B's samples
    ratio: float  # b / a
    worse: float  # > 1: B is worse
    lo: float  # 95 % interval of `worse`
    hi: float
    p: float
    n_a: int
    n_b: int
    threshold: float
    verdict: str  # "pass" | "FAIL"

    def as_dict(self) -> dict:
        return asdict(self)


def _worse(a_med, b_med, higher_is_better):
    return a_med / b_med if higher_is_better else b_med / a_med


def compare(fig: Figure, a: list[float], b: list[float], threshold: float, alpha: float = ALPHA) -> Comparison:
    from scipy import stats

    a_arr, b_arr = np.asarray(a, float), np.asarray(b, float)
    if len(a_arr) < 2 or len(b_arr) < 2:
        raise ValueError(f"{fig.key}: at least 2 samples a side are needed, got {len(a_arr)} and {len(b_arr)}")
    a_med, b_med = float(np.median(a_arr)), float(np.median(b_arr))
    worse = _worse(a_med, b_med, fig.higher_is_better)

    def stat(x, y, axis=-1):
        return _worse(np.median(x, axis=axis), np.median(y, axis=axis), fig.higher_is_better)

    if np.ptp(np.concatenate([a_arr, b_arr])) == 0:
        lo = hi = worse
        p = 1.0
    else:
        ci = stats.bootstrap((a_arr, b_arr), stat, vectorized=True, paired=False, n_resamples=RESAMPLES,
                             confidence_level=0.95, method="percentile", rng=np.random.default_rng(12345))
        lo, hi = float(ci.confidence_interval.low), float(ci.confidence_interval.high)
        # one-sided: are B's samples worse (larger, or smaller when higher is better) than A's?
        alt = "less" if fig.higher_is_better else "greater"
        p = float(stats.mannwhitneyu(b_arr, a_arr, alternative=alt).pvalue)
    verdict = "FAIL" if (worse - 1 > threshold and p < alpha) else "pass"
    return Comparison(fig.key, a_med, b_med, b_med / a_med, worse, lo, hi, p, len(a_arr), len(b_arr), threshold, verdict)


def compare_cycles(a: dict[str, float], b: dict[str, float]) -> list[dict]:
    """Deterministic figures (simulated clock cycles by message type): any increase fails, a
    type missing on one side cannot be compared and fails too."""
    rows = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va is None or vb is None:
            verdict = "FAIL"
        else:
            verdict = "FAIL" if vb > va else "pass"
        rows.append({"key": key, "a": va, "b": vb, "verdict": verdict})
    return rows
