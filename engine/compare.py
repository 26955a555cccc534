"""One comparison of two event streams, for every place that runs two matchers side by side:
shadow mode (engine against hardware, live in the gateway or in `replay --offload shadow`), the
hardware differential tests and benchmarks (Verilog against Numba).

Every byte of the 64-byte records is compared, reserved bytes included: the protocol says they
are zero, and a matcher that writes anything else there is wrong too.
"""

from __future__ import annotations

import numpy as np

from engine.records import EVENT_DTYPE, RECORD_SIZE

_FIELDS = [f for f in EVENT_DTYPE.names if f != "reserved"]


def _words(ev: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(ev).view(np.uint64).reshape(-1, RECORD_SIZE // 8)


def _show(ev: np.ndarray, i: int) -> str:
    if i >= len(ev):
        return "<none>"
    return "{" + ", ".join(f"{f}={int(ev[f][i])}" for f in _FIELDS) + "}"


def first_divergence(a: np.ndarray, b: np.ndarray, orders: np.ndarray | None = None,
                     names: tuple[str, str] = ("sw", "hw")) -> str | None:
    """None when the two event arrays are identical; else a description of the first event
    that differs (its index, both records, and the order record of its message when `orders`
    holds it). `names` label the two sides in that text."""
    n = min(len(a), len(b))
    diff = np.nonzero((_words(a[:n]) != _words(b[:n])).any(axis=1))[0]
    if len(diff) == 0 and len(a) == len(b):
        return None
    i = int(diff[0]) if len(diff) else n
    ev = a if i < len(a) else b
    msg_seq = int(ev["msg_seq"][i])
    na, nb = names
    lines = [f"first divergence at event {i} ({na} has {len(a)} events, {nb} {len(b)}):",
             f"  {na}: {_show(a, i)}", f"  {nb}: {_show(b, i)}"]
    if orders is not None:
        which = np.nonzero(orders["msg_seq"] == msg_seq)[0]
        lines.append(f"  message msg_seq={msg_seq}: {orders[which[0]] if len(which) else '<not given>'}")
    else:
        lines.append(f"  message msg_seq={msg_seq}")
    return "\n".join(lines)
