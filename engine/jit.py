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
- One type per argument: Numba compiles a function again for each distinct tuple of
  argument types, and it types a constant argument as a literal (`Literal[int](0)`,
  `Literal[bool](True)`). Callers pass order slots, symbols and sides as `np.int64`, flags
  as `np.bool_`, and functions called with constant arguments are inlined.
"""

from __future__ import annotations

HOT = dict(cache=True, nogil=True, boundscheck=False, _nrt=False, no_cpython_wrapper=True, error_model="numpy")
"""Helpers called only from njit code."""

API = dict(cache=True, nogil=True, boundscheck=False, _nrt=False, error_model="numpy")
"""Functions Python calls too (the batch matcher, book queries, the tests' probes)."""

INLINE = dict(HOT, inline="always")
"""Inlined into the caller at Numba IR level: the message handlers (a call that LLVM leaves
out of line passes EngineState as ~330 flattened words on the stack, ~100 ns), and small
functions called with constant arguments."""
