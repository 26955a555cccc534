"""Numba's on-disk cache and the inlined matcher.

`cache=True` keys a compiled function on its own source file only, yet its machine code
holds the helpers it calls from other files and the constants it imports. A function
that inlines the matcher (the LOBSTER replay, the live engine loop, a benchmark loop) keeps
its cached code after the matcher changes and would run the old matcher; so would the
engine's own `process_batch` after an edit of book.py. `flush_if_engine_changed` drops a
caller's cache, and `flush_engine_if_changed` every cached function of the engine's
hot-path modules, when the engine's sources differ from the ones the cache was built from
(a stamp file each).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parent
HOT_PATH = ("jit.py", "records.py", "fifo.py", "book.py", "state.py", "accounts.py", "risk.py", "matcher.py")

_checked: set[str] = set()


def engine_stamp() -> str:
    """A hash of the sources that the matcher's callers inline."""
    h = hashlib.sha256()
    for name in HOT_PATH:
        p = ENGINE_DIR / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _changed(name: str) -> bool:
    """True (once per process and name) when the engine's sources differ from the stamp
    `name`; the stamp is updated. A read-only install keeps its stamp: compile in memory."""
    if name in _checked:
        return False
    _checked.add(name)
    stamp_file = ENGINE_DIR / "__pycache__" / f"{name}.engine.stamp"
    stamp = engine_stamp()
    try:
        old = stamp_file.read_text()
    except OSError:
        old = ""
    if old == stamp:
        return False
    try:
        stamp_file.parent.mkdir(exist_ok=True)
        stamp_file.write_text(stamp)
    except OSError:
        pass
    return True


def _flush(dispatcher) -> None:
    try:
        dispatcher._cache.flush()
    except (OSError, AttributeError):  # a read-only install: compile in memory instead
        pass


def flush_if_engine_changed(dispatcher, name: str):
    """Return dispatcher, its on-disk cache flushed first (once per process) when the engine's
    sources changed since the cache was written; `name` names its stamp file."""
    if _changed(name):
        _flush(dispatcher)
    return dispatcher


def flush_engine_if_changed(modules) -> None:
    """Flush the cache of every njit function defined in `modules` (the engine's hot path)
    when the engine's sources changed since the caches were written."""
    if not _changed("engine"):
        return
    for m in modules:
        for v in vars(m).values():
            if hasattr(v, "py_func") and hasattr(v, "_cache") and v.py_func.__module__ == m.__name__:
                _flush(v)
