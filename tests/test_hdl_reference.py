"""The Verilog order book against the pure-Python reference (tests/reference), through the CSV
edges: random flows written as CSV, parsed by the engine's codec, run through the RTL, and the
events written as CSV must equal the reference's output byte for byte (REJECT raw echoes
included). A second oracle, independent of the Numba engine."""

import io

import numpy as np
import pytest

from engine.codec import EventWriter, parse_flow_bytes
from engine.config import parse_venue
from engine.records import (
    ACTION_CANCEL,
    ACTION_MALFORMED,
    ACTION_NEW,
    ACTION_REPLACE,
    PRICE_INVALID,
    PRICE_NONE,
    QTY_INVALID,
)
from testkit.flows import DIFF_VENUE_TOML, random_records
from hdl.sim.driver import run_flow

pytestmark = pytest.mark.hdl

ACT = {ACTION_NEW: "NEW", ACTION_CANCEL: "CANCEL", ACTION_REPLACE: "REPLACE", ACTION_MALFORMED: "FROB"}


def _price(units: int) -> str:
    if units == PRICE_NONE:
        return ""
    if units == PRICE_INVALID:
        return "1.000000001"
    sign = "-" if units < 0 else ""
    units = abs(units)
    return f"{sign}{units // 10**8}.{units % 10**8:08d}"


def flow_csv(orders, venue) -> str:
    names = [s.name for s in venue.symbols]
    lines = ["ts,account,action,symbol,order_id,side,type,tif,price,qty"]
    for r in orders:
        a = int(r["action"])
        sym = names[int(r["symbol"])] if int(r["symbol"]) < len(names) else "ZZZ"
        qty = "1.5" if int(r["qty"]) == QTY_INVALID else str(int(r["qty"]))
        side = {1: "BUY", 2: "SELL"}[int(r["side"])]
        typ = {1: "LIMIT", 2: "MARKET"}[int(r["type"])]
        tif = {1: "GTC", 2: "IOC", 3: "FOK", 4: "POST"}[int(r["tif"])]
        if a in (ACTION_CANCEL, ACTION_REPLACE):
            side = typ = tif = ""
        price = _price(int(r["price"])) if a != ACTION_CANCEL else ""
        if a == ACTION_CANCEL:
            qty = ""
        lines.append(f"{int(r['ts'])},{int(r['account'])},{ACT[a]},{sym},{int(r['order_id'])},"
                     f"{side},{typ},{tif},{price},{qty}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("nord,nlvl,seed", [(6, 3, 1), (16, 4, 2)])
def test_rtl_matches_reference_csv(nord, nlvl, seed):
    from reference import replay

    toml = DIFF_VENUE_TOML + f"\n[engine]\nmax_orders = {nord}\nmax_levels = {nlvl}\n"
    venue = parse_venue(toml)
    text = flow_csv(random_records(seed, 10000, venue, nord=nord, nlvl=nlvl), venue)
    flow = parse_flow_bytes(text.encode(), venue)
    events = run_flow(flow.orders, venue, nord=nord, nlvl=nlvl)
    buf = io.BytesIO()
    EventWriter(buf, venue, flow).write(events)
    hw = buf.getvalue().decode()
    ref = replay(text, toml)
    if hw != ref:
        a, b = hw.splitlines(), ref.splitlines()
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        pytest.fail(f"line {k}: hw {a[k:k + 1]} reference {b[k:k + 1]}")
    assert np.count_nonzero(events["kind"] == 3) > 50
