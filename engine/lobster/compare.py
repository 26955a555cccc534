"""Match mode's comparison: NASDAQ's executions against the engine's fills, run by run.

    match = compare_executions(conv, rep)    # match.reproduced / match.compared

Each execution run was replayed as one IOC (engine.lobster.converter); the engine's maker fills for
it are compared with NASDAQ's type-4 rows of the run, in order: an execution is reproduced when the
fill at its position has the same resting order, size and price. Orders the book knows only as
anonymous liquidity (resting from before 09:30, or sized from a row) cannot be told apart, so
consecutive fills of anonymous liquidity at one price are one group on both sides. Runs that also
hit hidden liquidity (a type-5 row) are counted apart: a visible-only book cannot reproduce them.
The book comparison after every message is the replay's (engine.lobster.replayer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.lobster.converter import UNITS_PER_LOBSTER, Conversion
from engine.lobster.replayer import Replay


def _merge_anonymous(seq: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """[(key, price, size)] -> [(key, price, size, n_merged)]: consecutive fills of anonymous
    liquidity (key 0: orders resting from before 09:30 or size known only from a row) at one
    price are one group, since the book cannot tell those orders apart."""
    out = []
    for key, price, size in seq:
        if key == 0 and out and out[-1][0] == 0 and out[-1][1] == price:
            k, p, s, c = out[-1]
            out[-1] = (0, p, s + size, c + 1)
        else:
            out.append((key, price, size, 1))
    return out


@dataclass
class MatchResult:
    runs: int = 0
    hidden_runs: int = 0
    executions: int = 0  # visible executions (type 4) in all runs
    hidden_executions: int = 0  # ... in runs that also hit hidden liquidity
    compared: int = 0  # outside hidden runs
    reproduced: int = 0
    known: int = 0  # outside hidden runs, on orders submitted in the file
    known_reproduced: int = 0
    hidden_reproduced: int = 0
    examples: list = field(default_factory=list)  # (row, nasdaq groups, engine groups)


def compare_executions(conv: Conversion, rep: Replay, max_examples: int = 200) -> MatchResult:
    res = MatchResult()
    fills = rep.fills
    seqs = fills[:, 0] if len(fills) else np.zeros(0, np.int64)
    tb_lob = conv.tb_lob
    for last_row, execs, hidden, _taker in conv.runs:
        msg = last_row + 1
        a, b = np.searchsorted(seqs, msg, "left"), np.searchsorted(seqs, msg, "right")
        eng = [(tb_lob.get(int(f[1]), 0), int(f[2]) // UNITS_PER_LOBSTER, int(f[3])) for f in fills[a:b]]
        nas_raw = [(lob if known else 0, price, size) for lob, price, size, known in execs]
        nas = _merge_anonymous(nas_raw)
        engm = _merge_anonymous(eng)
        res.runs += 1
        n_exec = len(execs)
        res.executions += n_exec
        ok_flags = []
        for g, grp in enumerate(nas):
            same = g < len(engm) and engm[g][:3] == grp[:3]
            ok_flags.extend([same] * grp[3])
        if hidden:
            res.hidden_runs += 1
            res.hidden_executions += n_exec
            res.hidden_reproduced += sum(ok_flags)
            continue
        res.compared += n_exec
        res.reproduced += sum(ok_flags)
        for (lob, price, size, known), ok in zip(execs, ok_flags):
            if known:
                res.known += 1
                res.known_reproduced += ok
        if not all(ok_flags) and len(res.examples) < max_examples:
            res.examples.append((last_row, nas, engm))
    return res

