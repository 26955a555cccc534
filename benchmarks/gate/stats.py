"""The gate's statistics: how much worse B is than A, how sure we are, and the verdict.

A sample is one figure from one run (one process). Runs of A and B alternate in time (A B, then
B A, ...), and each round's A and B ran seconds apart, so the two runs of a round form a pair:
the minutes-long swings of the shared host's speed fall on both and cancel in their ratio.
For each figure:

- a, b: the medians of A's and B's samples, in the figure's own unit (for the eye);
- worse: the median over the rounds of how much worse B is than A in that round (b_i / a_i for
  lower-is-better figures, a_i / b_i for higher-is-better ones): 1 is equal, 1.15 is 15 % worse;
- a 95 % bootstrap confidence interval of `worse` (scipy.stats.bootstrap over the rounds,
  percentile method, a fixed seed so that a report can be reproduced);
- p: the one-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon) that the log-ratios of the
  rounds lean towards B being worse; with 10 rounds the smallest p is 1/1024;
- disturbed rounds: a round whose log-ratio lies far from the others' (more than 5 robust
  standard deviations and more than 10 % from their median) is one in which the host slowed one
  arm alone, and is set aside before `worse`, its interval and p are worked out: at most a quarter
  of the rounds, the farthest first. The signed-rank test weighs a round by its rank, so a
  few reference rounds slowed by 50 % outweighed, in one proof, 13 rounds that all showed the
  injected +15 % (p = 0.065). The rule looks only at the distance from the median, in either
  direction, so it sets aside as many rounds for B as against it when A and B are alike;
- verdict: FAIL when worse - 1 > threshold and p < ALPHA (a regression both larger than the
  calibrated threshold and significant), pass otherwise. Deterministic figures (simulated
  cycles) fail on any increase.
"""

from __future__ import annotations

import fnmatch

from dataclasses import asdict, dataclass

import numpy as np

ALPHA = 0.01
RESAMPLES = 4000
# a disturbed round (above): its log-ratio's distance from the median, in robust standard
# deviations (1.4826 MAD) and at least; the largest share of the rounds set aside
DISTURBED_SDS = 5.0
DISTURBED_FLOOR = float(np.log(1.10))
DISTURBED_SHARE = 0.25


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
    dropped: int = 0  # disturbed rounds set aside

    def as_dict(self) -> dict:
        return asdict(self)


def _worse(a_med, b_med, higher_is_better):
    return a_med / b_med if higher_is_better else b_med / a_med


def disturbed(logs: np.ndarray) -> np.ndarray:
    """The rounds to set aside (a boolean mask): those whose log-ratio is farther from the median
    than both DISTURBED_SDS robust standard deviations and DISTURBED_FLOOR, at most
    DISTURBED_SHARE of them, the farthest first."""
    dist = np.abs(logs - np.median(logs))
    cut = max(DISTURBED_SDS * 1.4826 * float(np.median(dist)), DISTURBED_FLOOR)
    out = np.zeros(len(logs), bool)
    for i in np.argsort(-dist, kind="stable")[: int(len(logs) * DISTURBED_SHARE)]:
        out[i] = dist[i] > cut
    return out


def compare(fig: Figure, a: list[float], b: list[float], threshold: float, alpha: float = ALPHA) -> Comparison:
    """a[i] and b[i] were measured in the same round."""
    from scipy import stats

    a_arr, b_arr = np.asarray(a, float), np.asarray(b, float)
    if len(a_arr) != len(b_arr) or len(a_arr) < 2:
        raise ValueError(f"{fig.key}: paired samples of at least 2 rounds are needed, got {len(a_arr)} and {len(b_arr)}")
    w_all = _worse(a_arr, b_arr, fig.higher_is_better)
    drop = disturbed(np.log(w_all))
    w = w_all[~drop]
    worse = float(np.median(w))
    if np.ptp(w) == 0:
        lo = hi = worse
        p = 1.0 if worse <= 1 else 0.0
    else:
        ci = stats.bootstrap((w,), np.median, vectorized=True, n_resamples=RESAMPLES, confidence_level=0.95,
                             method="percentile", rng=np.random.default_rng(12345))
        lo, hi = float(ci.confidence_interval.low), float(ci.confidence_interval.high)
        logs = np.log(w)
        p = 1.0 if not np.any(logs) else float(stats.wilcoxon(logs, alternative="greater").pvalue)
    a_med, b_med = float(np.median(a_arr)), float(np.median(b_arr))
    verdict = "FAIL" if (worse - 1 > threshold and p < alpha) else "pass"
    return Comparison(fig.key, a_med, b_med, b_med / a_med, worse, lo, hi, p, len(a_arr), len(b_arr), threshold, verdict,
                      int(drop.sum()))


def compare_cycles(a: dict[str, float], b: dict[str, float], accepted: list[dict] = ()) -> list[dict]:
    """Deterministic figures (simulated clock cycles by message type): any increase fails, and so
    does a figure the baseline has and the change lost. A figure only the change has is new:
    reported, with nothing to compare it with (the next change is gated on it). An increase that
    the change declares (accepted: entries of accepted.toml, whose `match` names the figure, an
    fnmatch pattern, and whose `was` and `now` are exactly A and B) passes as accepted, with its
    reason; any other value of the same figure still fails."""
    rows = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        why = None
        if vb is None:
            verdict = "FAIL"
        elif va is None:
            verdict = "new"
        else:
            verdict = "FAIL" if vb > va else "pass"
            if verdict == "FAIL":
                why = next((e["why"] for e in accepted if fnmatch.fnmatchcase(key, e["match"])
                            and e["was"] == va and e["now"] == vb), None)
                if why is not None:
                    verdict = "accepted"
        rows.append({"key": key, "a": va, "b": vb, "verdict": verdict, **({"why": why} if why else {})})
    return rows
