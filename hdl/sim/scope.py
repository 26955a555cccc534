"""What the Verilog book runs exactly: the parameters a venue asks for, and the one-line refusal of
a venue it cannot represent (`tickbook replay --offload hw|shadow`, `tickbook bridge`).

    params = hardware_params(venue)           # {"nsym", "nord", "nlvl", "nacct"}: the venue's, exactly
    params = check_venue(venue, orders)       # the same, or Unrepresentable (one line)

Both run the block-RAM build (hdl/rtl/tickbook_book_bram.v); `book=` names another.

The book's capacities are the venue's (`[engine] max_orders`, `max_levels`, its symbols, and the
risk stage's `max_accounts`), never a build's defaults: the engine and the RTL with the same numbers give the same events, CAPACITY
included. Other capacities are a what-if the caller asks for by name (`--hw-max-orders`), and the
hardware's events may then differ from the venue's engine: `capacity_note` says so in one line.
"""

from __future__ import annotations

import numpy as np

from engine.api import as_venue
from hdl.sim.driver import SimError, beyond_simulation, config_words, unsupported


class Unrepresentable(SimError):
    """The venue or flow asks for what the hardware cannot do exactly (one line, said before any
    record is sent)."""


def hardware_params(venue, max_orders: int | None = None, max_levels: int | None = None) -> dict:
    """The book's parameters (and the risk stage's): the venue's symbols and capacities, or the
    what-if ones given."""
    v = as_venue(venue)
    return {"nsym": max(1, len(v.symbols)),
            "nord": max_orders or v.max_orders,
            "nlvl": max_levels or v.max_levels,
            "nacct": v.max_accounts}


def refusals(venue, orders: np.ndarray | None = None, params: dict | None = None,
             book: str = "bram") -> list[str]:
    """Why the hardware would not give this venue's events exactly (empty: it would)."""
    v = as_venue(venue)
    p = params or hardware_params(v)
    why = [f"{text} (set [engine] {setting} in the venue)"
           for setting, text in beyond_simulation(p["nsym"], p["nord"], p["nacct"], book)]
    try:
        config_words(v)
    except SimError as e:
        why.append(str(e))
    return why + unsupported(v, orders, book)


def check_venue(venue, orders: np.ndarray | None = None, max_orders: int | None = None,
                max_levels: int | None = None, book: str = "bram") -> dict:
    """hardware_params, or Unrepresentable naming everything the hardware cannot hold exactly."""
    params = hardware_params(venue, max_orders, max_levels)
    why = refusals(venue, orders, params, book)
    if why:
        raise Unrepresentable("the Verilog book cannot run this venue exactly: " + "; ".join(why))
    return params


# The configuration `make synth` places on the device (docs/hardware.md, "Synthesis"): a venue
# beyond it is simulated as configured, and said so in one line.
DEVICE = "LFE5U-85F"
DEVICE_PARAMS = {"nsym": 8, "nord": 8192, "nlvl": 256}


def device_note(params: dict) -> str | None:
    """One line when the build's parameters are beyond the synthesized device's."""
    over = [f"{k} {params[k]:,} > {v:,}" for k, v in DEVICE_PARAMS.items() if params[k] > v]
    if not over:
        return None
    return (f"beyond the synthesized device ({DEVICE}: {DEVICE_PARAMS['nsym']} symbols, "
            f"{DEVICE_PARAMS['nord']:,} orders, {DEVICE_PARAMS['nlvl']} levels a side; here "
            f"{', '.join(over)}): simulated as configured, the events are the venue's")


def capacity_note(venue, params: dict) -> str | None:
    """One line when the hardware is built with other capacities than the venue's (a what-if)."""
    v = as_venue(venue)
    if (params["nord"], params["nlvl"]) == (v.max_orders, v.max_levels):
        return None
    return (f"the hardware book is built with max_orders = {params['nord']:,}, max_levels = {params['nlvl']:,} "
            f"(the venue: {v.max_orders:,}, {v.max_levels:,}): its CAPACITY rejects may differ from the engine's")
