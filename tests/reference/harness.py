"""Test plumbing shared by the reference-based tests: the two matchers under one interface.

`MATCHERS` names the matchers; `get_replay(name)` returns `replay(flow_text, venue_text) -> str`
or calls pytest.skip for the engine ONLY when `engine.api` does not exist yet. Any other import
error of the engine is a real failure and propagates.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from .matcher import replay as reference_replay

MATCHERS = ["reference", "engine"]


def engine_available() -> bool:
    try:
        return importlib.util.find_spec("engine.api") is not None
    except ModuleNotFoundError:  # no `engine` package at all
        return False


def engine_replay():
    if not engine_available():
        pytest.skip("engine.api does not exist yet")
    return importlib.import_module("engine.api").replay_csv_text


def get_replay(name: str):
    if name == "reference":
        return reference_replay
    if name == "engine":
        return engine_replay()
    raise ValueError(name)


def first_difference(expected: str, actual: str, context: int = 5, label=("reference", "engine")) -> str | None:
    """None when equal, else a readable report of the first differing line with context."""
    if expected == actual:
        return None
    a, b = expected.split("\n"), actual.split("\n")
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    lo = max(0, i - context)
    lines = [f"first difference at events line {i} (0 = header)"]
    lines += [f"  common  | {x}" for x in a[lo:i]]
    lines += [f"  {label[0]:<7} | {x}" for x in a[i : i + context]]
    lines += [f"  {label[1]:<7} | {x}" for x in b[i : i + context]]
    if len(a) != len(b):
        lines.append(f"  ({label[0]}: {len(a)} lines, {label[1]}: {len(b)} lines)")
    return "\n".join(lines)
