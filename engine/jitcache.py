"""Numba's on-disk cache and the inlined matcher.

`cache=True` keys a compiled function on its own source file only, yet its machine code
holds the helpers it calls from other files and the constants it imports. A function
that inlines the matcher (the LOBSTER replay, the live engine loop, a benchmark loop) keeps
its cached code after the matcher changes and would run the old matcher; so would the
engine's own `process_batch` after an edit of book.py. `flush_if_engine_changed` drops a
caller's cache, and `flush_engine_if_changed` every cached function of the engine's
hot-path modules, when the engine's sources differ from the ones the cache was built from
(a stamp file each, kept beside the cache it vouches for: in `NUMBA_CACHE_DIR` when that is set,
never in a read-only install).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from engine.diagnostics import cannot_write

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


def cache_dir_problem() -> str:
    """Why $NUMBA_CACHE_DIR cannot hold the cache, or ''. Numba refuses to import a module with
    cache=True functions when no cache folder is writable (a read-only container whose cache
    volume is missing): the command line says so in one line instead of a traceback."""
    d = os.environ.get("NUMBA_CACHE_DIR")
    why = cannot_write(d) if d else ""
    if why:
        return (f"NUMBA_CACHE_DIR={d} is not writable ({why}): Numba keeps compiled code there; "
                "point it at a writable folder (in a pod, a volume)")
    return ""


def _cache_dir(dispatcher) -> Path:
    """Where Numba keeps `dispatcher`'s cache (its locator's choice: `NUMBA_CACHE_DIR`, the
    source's __pycache__, or the user-wide folder when the install is read-only)."""
    try:
        return Path(dispatcher._cache._cache_path)
    except AttributeError:  # not cached (cache=False)
        return ENGINE_DIR / "__pycache__"


def _changed(name: str, cache_dir: Path) -> bool:
    """True (once per process and name) when the engine's sources differ from the stamp
    `name` in `cache_dir`; the stamp is updated. A stamp that cannot be written means a
    cache that cannot be either: Numba compiles in memory."""
    if name in _checked:
        return False
    _checked.add(name)
    stamp_file = cache_dir / f"{name}.engine.stamp"
    stamp = engine_stamp()
    try:
        old = stamp_file.read_text()
    except OSError:
        old = ""
    if old == stamp:
        return False
    try:
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
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
    if _changed(name, _cache_dir(dispatcher)):
        _flush(dispatcher)
    return dispatcher


def flush_engine_if_changed(modules) -> None:
    """Flush the cache of every njit function defined in `modules` (the engine's hot path)
    when the engine's sources changed since the caches were written."""
    own = [v for m in modules for v in vars(m).values()
           if hasattr(v, "py_func") and hasattr(v, "_cache") and v.py_func.__module__ == m.__name__]
    if not own or not _changed("engine", _cache_dir(own[0])):  # one source folder: one cache folder
        return
    for v in own:
        _flush(v)
