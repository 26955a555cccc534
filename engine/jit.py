"""Numba compile options of the engine's njit code, in one place, and why each is set.

Cold-start cost is set here as much as speed (docs/performance.md#compiling):
- `_nrt=False`: nothing on the hot path allocates, and with reference counting on, a call
  that is not inlined increfs and decrefs each of EngineState's ~45 arrays (~650 ns a call).
- `no_cpython_wrapper=True` on helpers that only njit code calls: the wrapper that would let
  Python call a function taking EngineState unboxes ~45 arrays, and building and optimizing
  it was ~0.3 s of compiling per helper (~40 helpers).
- `error_model="numpy"`: no zero-division test and exception path on each integer `//` and
  `%`. Every divisor on the hot path is a constant or a price or tick validated > 0 (config.py,
  check_limit_price). 72.4 against 74.8 ns/message, medians of 8 interleaved replays of 1M rows.
- No negative-index wraparound (`NoWraparoundCompiler`, below): Numba turns every `a[i]` with a
  signed `i` into `a[i + len(a) if i < 0 else i]`, three more instructions and a length load per
  access. The hot path never indexes with a negative number (-1 is "none" and is tested before
  use; boundscheck is off for the same reason), and an unsigned index is Numba's own way out
  of the select (numba PR #929). Lowering the hot path as if every index were unsigned:
  60.7 against 52.2 ns/message on the 1M mixed flow, 57.7 against 49.2 on the peers' stream.
- One type per argument: Numba compiles a function again for each distinct tuple of
  argument types, and it types a constant argument as a literal (`Literal[int](0)`,
  `Literal[bool](True)`). Callers pass order slots, symbols and sides as `np.int64`, flags
  as `np.bool_`, and functions called with constant arguments are inlined.
"""

from __future__ import annotations

from numba.core import types
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import register_pass
from numba.core.typed_passes import NativeLowering
from numba.np import arrayobj

_lowering_hot_path = 0  # > 0 while NoWraparoundLowering runs (Numba compiles under one lock)
_numba_fix_integer_index = arrayobj.fix_integer_index


def _fix_integer_index(context, builder, idxty, idx, size):
    """Numba's index fix-up, minus the wraparound while the hot path is lowered."""
    if _lowering_hot_path and idxty.signed:
        return context.cast(builder, idx, idxty, types.intp)
    return _numba_fix_integer_index(context, builder, idxty, idx, size)


# Numba looks the function up in its module at each use; the patch is a no-op outside the hot
# path's lowering. tests/test_jit.py checks that it takes effect with the installed Numba.
arrayobj.fix_integer_index = _fix_integer_index


@register_pass(mutates_CFG=False, analysis_only=False)
class NoWraparoundLowering(NativeLowering):
    """Numba's native lowering, with signed array indices taken as they are."""

    _name = "tickbook_no_wraparound_lowering"

    def run_pass(self, state):
        global _lowering_hot_path
        _lowering_hot_path += 1
        try:
            return super().run_pass(state)
        finally:
            _lowering_hot_path -= 1


class NoWraparoundCompiler(CompilerBase):
    """Numba's nopython pipeline with NoWraparoundLowering for its lowering pass."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.passes = [(NoWraparoundLowering, "lowering without wraparound") if cls is NativeLowering else (cls, d)
                     for cls, d in pm.passes]
        pm.finalize()
        return [pm]


NO_WRAPAROUND = dict(pipeline_class=NoWraparoundCompiler)
"""For a loop outside engine/ that inlines the matcher (the live engine's loop, the LOBSTER
replayer, the benchmarks): the same lowering as the code it inlines."""

HOT = dict(NO_WRAPAROUND, cache=True, nogil=True, boundscheck=False, _nrt=False, no_cpython_wrapper=True, error_model="numpy")
"""Helpers called only from njit code."""

API = dict(NO_WRAPAROUND, cache=True, nogil=True, boundscheck=False, _nrt=False, error_model="numpy")
"""Functions Python calls too (the batch matcher, book queries, the tests' probes)."""

INLINE = dict(HOT, inline="always")
"""Inlined into the caller at Numba IR level: the message handlers (a call that LLVM leaves
out of line passes EngineState as ~330 flattened words on the stack, ~100 ns), and small
functions called with constant arguments."""
