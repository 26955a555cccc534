"""Acquire loads, release stores and a cycle counter usable from Numba (nopython) code.

Why intrinsics: a plain `arr[i]` load inside an njit polling loop is an ordinary LLVM
load; nothing tells LLVM another process writes that memory, so it may hoist the load
out of the loop and spin forever on a stale value. llvmlite has no volatile loads, but
it has `load_atomic` / `store_atomic`; an acquire load cannot be hoisted or merged, and
a release store cannot be reordered before the record writes that precede it. On x86-64
both compile to plain `mov` instructions (TSO), so they cost nothing at run time.

All cursors are int64 (Numba's uint64 + int64 silently becomes float64).

From plain Python, a numpy scalar read/write or a memoryview index is a call through
opaque memory that the interpreter performs in program order; on x86 (TSO) stores are
seen in program order and loads are not reordered with older loads, so Python code
gets acquire/release semantics for free there. The ring module relies on that and says
so in `docs/offload.md` (an ARM port would need a fence in those helpers).
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _check_int64_array(arr):
    if not isinstance(arr, types.Array) or arr.dtype != types.int64:
        raise TypeError(f"atomics need a 1-d int64 array, got {arr}")


@intrinsic
def load_acquire(typingctx, arr, idx):
    """arr[idx] with acquire ordering (int64, 8-byte aligned)."""
    _check_int64_array(arr)
    if not isinstance(idx, types.Integer):
        return None
    sig = types.int64(arr, idx)

    def codegen(context, builder, signature, args):
        aryty, idxty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        i = context.cast(builder, args[1], idxty, types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [i])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def store_release(typingctx, arr, idx, val):
    """arr[idx] = val with release ordering (int64, 8-byte aligned)."""
    _check_int64_array(arr)
    if not isinstance(idx, types.Integer) or not isinstance(val, types.Integer):
        return None
    sig = types.void(arr, idx, val)

    def codegen(context, builder, signature, args):
        aryty, idxty, valty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        i = context.cast(builder, args[1], idxty, types.intp)
        v = context.cast(builder, args[2], valty, types.int64)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [i])
        builder.store_atomic(v, ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def load_relaxed(typingctx, arr, idx):
    """arr[idx] as a monotonic (relaxed) atomic load: not hoisted, no ordering."""
    _check_int64_array(arr)
    if not isinstance(idx, types.Integer):
        return None
    sig = types.int64(arr, idx)

    def codegen(context, builder, signature, args):
        aryty, idxty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        i = context.cast(builder, args[1], idxty, types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [i])
        return builder.load_atomic(ptr, "monotonic", 8)

    return sig, codegen


@intrinsic
def cpu_relax(typingctx):
    """The x86 `pause` hint inside spin loops (kind to the sibling hyperthread)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")
        builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def rdtsc(typingctx):
    """The time-stamp counter (llvm.readcyclecounter): about 20 cycles, invariant TSC on
    this machine (`constant_tsc nonstop_tsc`); convert with `tsc_ghz()`."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return sig, codegen


@njit(cache=True, nogil=True)
def now_tsc():
    return rdtsc()


def tsc_ghz(seconds: float = 0.05) -> float:
    """TSC ticks per nanosecond, calibrated against perf_counter_ns."""
    import time

    now_tsc()
    best = None
    for _ in range(3):
        t0, c0 = time.perf_counter_ns(), now_tsc()
        time.sleep(seconds)
        t1, c1 = time.perf_counter_ns(), now_tsc()
        f = (c1 - c0) / (t1 - t0)
        best = f if best is None else (best + f) / 2
    return best


@intrinsic
def sched_yield(typingctx):
    """libc sched_yield() from njit code (a symbol reference, so cache=True still works):
    a poller that makes no progress lets another runnable task on its core run, which on a
    loaded 2-core machine is the difference between microseconds and whole timeslices."""
    sig = types.int32()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "sched_yield")
        return builder.call(fn, [])

    return sig, codegen


@njit(cache=True, nogil=True)
def backoff(spins, yield_after):
    """One idle poll: `pause`, and past `yield_after` idle polls a sched_yield every 16."""
    cpu_relax()
    if spins >= yield_after and (spins & 15) == 0:
        sched_yield()
