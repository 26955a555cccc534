"""Where a replayed flow's events come from: `tickbook replay --transport T --offload M`.

    events = replay_offloaded(orders, venue, transport="shm", offload="shadow")

    transport  offload  events from
    inproc     sw       (not here: tickbook.cli times the batch matcher in its own process)
    inproc     hw       the file-driven Verilog simulation (hdl.sim.driver.run_flow)
    inproc     shadow   both of those, compared event for event
    shm        sw       the pinned engine process, through shared-memory rings
    shm        hw       the hardware bridge (the Verilog book simulated), through the same rings
    shm        shadow   both servers, one after the other, compared event for event

The venue arrives normalised (a VenueConfig) and is handed on as it is: the hardware is built
with its capacities and symbols (hdl.sim.scope), and in shadow mode the engine runs the venue as
configured, so a difference is a difference. A venue the hardware cannot represent exactly raises
Unrepresentable before any record is sent. hw_capacity (max_orders, max_levels) builds the
hardware with other capacities, a what-if said in one line; shadow then shows where they differ.
A difference raises ShadowMismatch naming the first differing event and its message, and the
number of differing messages. Each server owns its segments and removes them whatever happens
(offload.server).
"""

from __future__ import annotations

import sys

import numpy as np

from engine.api import replay_records
from engine.compare import first_divergence
from engine.config import VenueConfig
from engine.records import ORDER_DTYPE
from offload.server import run_server

ENGINE = "offload.engine_process"
BRIDGE = "hdl.sim.bridge"
TRANSPORTS = ("inproc", "shm")
OFFLOADS = ("sw", "hw", "shadow")

# replay is about results, not latency: a server that has been idle a while lets other work
# on its core run (benchmarks start the engine without this)
POLITE = ("--yield-after", "4096")


class ShadowMismatch(RuntimeError):
    """sw and hw disagree; the message names the first differing event and its order."""


def replay_offloaded(orders: np.ndarray, venue: VenueConfig, transport: str = "shm", offload: str = "sw",
                     timeout: float = 120.0, hw_capacity: tuple[int | None, int | None] = (None, None)) -> np.ndarray:
    """The flow's events from the matcher that transport and offload name (table above)."""
    if orders.dtype != ORDER_DTYPE:
        raise TypeError(f"orders must have ORDER_DTYPE, got {orders.dtype}")
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}: {', '.join(TRANSPORTS)}")
    if offload not in OFFLOADS:
        raise ValueError(f"unknown offload mode {offload!r}: {', '.join(OFFLOADS)}")
    if offload == "sw":
        if transport == "inproc":
            return replay_records(orders, venue)
        return _serve(ENGINE, orders, venue, timeout, POLITE)

    from hdl.sim.driver import run_flow, simulator_available
    from hdl.sim.scope import capacity_note, check_venue, device_note

    ok, why = simulator_available()
    if not ok:
        raise RuntimeError(f"--offload {offload} needs the Verilog simulation: {why}")
    params = check_venue(venue, orders, *hw_capacity)
    # the bridge says both itself (transport shm), in its report lines
    for note in (capacity_note(venue, params), device_note(params)) if transport == "inproc" else ():
        if note:
            print(f"hw: {note}", file=sys.stderr)
    if transport == "inproc":
        hw = run_flow(orders, venue, **params)
    else:
        hw = _serve(BRIDGE, orders, venue, timeout, ("--nord", str(params["nord"]), "--nlvl", str(params["nlvl"])))
    if offload == "hw":
        return hw
    sw = replay_records(orders, venue) if transport == "inproc" else _serve(ENGINE, orders, venue, timeout, POLITE)
    d = first_divergence(sw, hw, orders)
    if d is not None:
        raise ShadowMismatch(f"{d}; {differing_messages(sw, hw)} of {len(orders):,} messages differ")
    print(f"shadow: {len(sw):,} events identical in sw and hw", file=sys.stderr)
    return sw


def differing_messages(a: np.ndarray, b: np.ndarray) -> int:
    """How many messages (msg_seq) have events that differ in any byte between a and b."""
    def by_message(ev):
        words = np.ascontiguousarray(ev).view(np.uint8).reshape(len(ev), -1)
        out: dict[int, list[bytes]] = {}
        for m, row in zip(ev["msg_seq"].tolist(), words):
            out.setdefault(m, []).append(row.tobytes())
        return out

    ma, mb = by_message(a), by_message(b)
    return sum(ma.get(m) != mb.get(m) for m in ma.keys() | mb.keys())


def _serve(module: str, orders: np.ndarray, venue: VenueConfig, timeout: float, extra=()) -> np.ndarray:
    """The flow through one server process; its `name[pid]:` report lines go to stderr."""
    events, report = run_server(module, orders, venue, timeout, extra=extra)
    for line in report.splitlines():
        if line.startswith(("engine[", "bridge[")):
            print(line, file=sys.stderr)
    return events
