"""Sanity tests of the reference matcher on its own (no engine needed)."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

from testkit.flows import adversarial_flow, deep_book_flow, random_flow
from reference import HEADER_OUT, replay
from reference.matcher import decimals_as_written, parse_number, parse_uint
from test_properties import check_events

REF_DIR = Path(__file__).parent / "reference"

V = """
[symbols.S]
tick = "0.25"
ref_price = "10.00"
[accounts.default]
"""


def test_reference_does_not_import_the_engine_or_numpy():
    for path in REF_DIR.glob("*.py"):
        if path.name == "harness.py":  # test plumbing: loads engine.api for the tests, not the matcher
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for n in names:
                assert not n.startswith(("engine", "numpy", "numba", "pandas")), (path.name, n)


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("007", 7), ("18446744073709551615", 18446744073709551615),
    ("", None), ("-1", None), ("+1", None), ("1.0", None), (" 1", None), ("1_0", None), ("\u0661", None),
    ("18446744073709551616", None),
])
def test_parse_uint(text, value):
    assert parse_uint(text, 2**64 - 1) == value


@pytest.mark.parametrize("text,value", [
    ("12", (12, 1)), ("12.", (12, 1)), ("12.5", (125, 10)), (".5", (5, 10)), ("-0", (0, 1)),
    ("+.25", (25, 100)), ("-3", (-3, 1)), ("100.10", (10010, 100)),
    ("", None), (".", None), ("1e3", None), ("nan", None), ("inf", None), ("--1", None), ("1.2.3", None),
    (" 1", None), ("1 ", None), ("\u0665", None), ("+", None), ("0x1", None),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("tick,dec", [("0.01", 2), ("0.25", 2), ("0.5", 1), ("0.50", 1), ("1", 0), ("1.0", 0),
                                      ("0.0001", 4), ("5", 0)])
def test_decimals_as_written(tick, dec):
    assert decimals_as_written(tick) == dec


@pytest.mark.parametrize("venue", [
    '[symbols.S]\ntick = "0.000000001"\nref_price = "1"\n',  # more than 8 decimals
    '[symbols.S]\ntick = "0.25"\nref_price = "10.10"\n',  # ref off tick
    '[symbols.S]\ntick = "0"\nref_price = "10"\n',
    '[symbols.S]\ntick = "0.25"\nref_price = "10"\ncolour = 1\n',  # unknown key
    '[symbols.S]\ntick = "0.25"\nref_price = "10"\n[accounts.default]\nmax_order_qty = -1\n',
    '[symbols.S]\ntick = "0.25"\nref_price = "10"\n[accounts.default]\nmax_order_qty = 4294967296\n',
    '[symbols.S]\ntick = "0.25"\nref_price = "10"\n[accounts.x]\n',
    '[symbols.S]\ntick = "0.25"\nref_price = "10"\n[accounts.1]\nfoo = 1\n',
    '[symbols.S]\ntick = "0.25"\nref_price = "10"\n[engine]\nmax_foo = 1\n',
    '[symbols.S]\ntick = "0.25"\nref_price = "10"\n[other]\n',
    '[symbols.S]\ntick = "0.25"\nref_price = "10"\n[accounts.1]\n[accounts.2]\n[engine]\nmax_accounts = 1\n',
    '[symbols.S]\ntick = 1\nref_price = "10"\n',  # decimals are strings
    '[symbols.S]\ntick = "1"\nref_price = "10"\n[accounts.default]\nmax_notional = 3\n',
    '[symbols.S]\ntick = "1"\nref_price = "10"\n[engine]\nmax_orders = 0\n',
])
def test_configuration_errors(venue):
    with pytest.raises(ValueError):
        replay("ts,account,action,symbol,order_id,side,type,tif,price,qty\n", venue)


def test_max_notional_with_many_decimals_is_exact():
    venue = ('[symbols.S]\ntick = "0.01"\nref_price = "1"\nband_bps = 0\n'
             '[accounts.default]\nmax_notional = "0.030000001"\n')
    flow = ("ts,account,action,symbol,order_id,side,type,tif,price,qty\n"
            "1,1,NEW,S,1,BUY,LIMIT,GTC,0.01,3\n1,1,NEW,S,2,BUY,LIMIT,GTC,0.01,4\n")
    out = replay(flow, venue).split("\n")
    assert ",ACK," in out[1] and out[2].endswith("MAX_NOTIONAL")


def test_listed_accounts_inherit_from_default():
    venue = V + "max_order_qty = 5\n[accounts.2]\nmax_open_orders = 1\n"
    flow = ("ts,account,action,symbol,order_id,side,type,tif,price,qty\n"
            "1,2,NEW,S,1,BUY,LIMIT,GTC,10,6\n"  # max_order_qty 5 from the default
            "2,2,NEW,S,1,BUY,LIMIT,GTC,10,5\n"
            "3,2,NEW,S,2,BUY,LIMIT,GTC,10,5\n")
    out = replay(flow, venue).split("\n")
    assert out[1].endswith("MAX_QTY") and ",ACK," in out[2] and out[3].endswith("MAX_OPEN_ORDERS")


def test_default_venue_file():
    path = Path(__file__).resolve().parents[1] / "engine" / "default_venue.toml"
    if not path.exists():
        pytest.skip("engine/default_venue.toml does not exist yet")
    flow = "ts,account,action,symbol,order_id,side,type,tif,price,qty\n1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,1\n"
    assert replay(flow, None) == replay(flow, path.read_text())


@pytest.mark.parametrize("gen,seed", [(random_flow, 1), (adversarial_flow, 2), (deep_book_flow, 3)])
def test_deterministic_and_prefix_closed(gen, seed):
    """Messages are processed one at a time: the events of a prefix of the flow are a prefix of
    the events of the whole flow, and the same input always gives the same output."""
    flow, venue = gen(seed, 1500)
    full = replay(flow, venue)
    assert full == replay(flow, venue)
    lines = flow.split("\n")
    for cut in (2, 300, 777, 1200):
        part = replay("\n".join(lines[:cut]) + "\n", venue)
        assert full.startswith(part)


@pytest.mark.parametrize("seed", range(6))
def test_invariants_on_generated_flows(seed):
    for gen in (random_flow, adversarial_flow):
        flow, venue = gen(seed, 1500)
        check_events(flow, replay(flow, venue))


def test_generators_reach_every_reason():
    """The flows used by the differential test make every reject and cancel reason happen."""
    seen = collections.Counter()
    for seed in range(6):
        for gen in (random_flow, adversarial_flow):
            flow, venue = gen(seed, 3000)
            for line in replay(flow, venue).split("\n")[1:-1]:
                f = line.split(",")
                seen[f[1] if f[1] not in ("REJECT", "CANCELED") else f"{f[1]}/{f[10]}"] += 1
    rejects = ["UNKNOWN_ACCOUNT", "ACCOUNT_DISABLED", "RATE_LIMIT", "UNKNOWN_SYMBOL", "DUPLICATE_ORDER_ID",
               "BAD_TIF", "BAD_QTY", "MAX_QTY", "BAD_PRICE", "PRICE_BAND", "MAX_NOTIONAL", "MAX_POSITION",
               "MAX_OPEN_ORDERS", "CAPACITY", "MALFORMED", "UNKNOWN_ORDER", "NOT_OWNER"]
    cancels = ["SELF_TRADE", "FOK", "POST_ONLY", "IOC", "USER", "KILL"]
    missing = [r for r in [f"REJECT/{x}" for x in rejects] + [f"CANCELED/{x}" for x in cancels]
               + ["ACK", "FILL", "REPLACED", "KILLED"] if seen[r] == 0]
    assert not missing, missing


def test_output_shape():
    flow, venue = random_flow(7, 500)
    out = replay(flow, venue)
    assert out.startswith(HEADER_OUT + "\n") and out.endswith("\n") and "\r" not in out
