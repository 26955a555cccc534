"""engine/jit.py: the hot path is lowered without negative-index wraparound, and nothing else is.

The first test fails when a Numba upgrade moves the function that engine/jit.py patches: the
matcher would still be right, only slower, so this is where the upgrade shows.
"""

import numpy as np
from numba import njit

from engine.jit import NO_WRAPAROUND


def _pick(a, i):
    return a[i]


def _wraparound_selects(dispatcher) -> int:
    """Selects on `index < 0` in the function's own LLVM IR (the wraparound of `a[i]`)."""
    (ir,) = dispatcher.inspect_llvm().values()
    return sum(1 for line in ir.splitlines() if " select " in line and "i64" in line)


def test_hot_path_lowering_drops_the_wraparound():
    plain = njit(_pick)
    hot = njit(**NO_WRAPAROUND)(_pick)
    a = np.arange(10, dtype=np.int64)
    assert plain(a, 3) == hot(a, 3) == 3
    assert _wraparound_selects(plain) >= 1
    assert _wraparound_selects(hot) == 0


def test_other_code_keeps_negative_indices():
    # compiled after the patch is installed, without NO_WRAPAROUND: Python's meaning of a[-1]
    @njit
    def last(a, i):
        return a[i]

    a = np.arange(10, dtype=np.int64)
    assert last(a, -1) == 9
    assert njit(_pick)(a, -2) == 8
