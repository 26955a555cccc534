"""Worker threads of the edges: the njit loops of the CSV and columnar codecs release the GIL,
so pieces of a file, blocks of events and columns of a table run side by side on every core
the process may use."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache

THREADS = max(1, min(8, len(os.sched_getaffinity(0))))


@cache
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(THREADS, thread_name_prefix="tickbook-edge")


@cache
def in_order() -> ThreadPoolExecutor:
    """One thread: the work handed to it runs in the order it was handed over (the events of
    a replay, written while the matcher fills the next chunk; engine/api.py, Venue.process)."""
    return ThreadPoolExecutor(1, thread_name_prefix="tickbook-sink")
