"""The record layout of engine/records.py, pinned to the numbers docs/protocol.md publishes.

The CSV codec, the .npy files, the shared-memory rings and the Verilog ports all read these
bytes, so a field that moves, widens or changes signedness must fail here first. The expected
values are written out by hand from docs/protocol.md, never read from the dtype under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from engine import records as R

PROTOCOL = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"

# (field, offset, size in bytes, dtype) as docs/protocol.md lists them.
ORDER_FIELDS = [
    ("ts", 0, 8, "<u8"),
    ("order_id", 8, 8, "<u8"),
    ("price", 16, 8, "<i8"),
    ("qty", 24, 8, "<i8"),
    ("msg_seq", 32, 8, "<i8"),
    ("account", 40, 4, "<u4"),
    ("symbol", 44, 2, "<u2"),
    ("action", 46, 1, "|u1"),
    ("side", 47, 1, "|u1"),
    ("type", 48, 1, "|u1"),
    ("tif", 49, 1, "|u1"),
    ("reserved", 50, 14, "|V14"),
]
EVENT_FIELDS = [
    ("seq", 0, 8, "<i8"),
    ("msg_seq", 8, 8, "<i8"),
    ("order_id", 16, 8, "<u8"),
    ("contra_id", 24, 8, "<u8"),
    ("price", 32, 8, "<i8"),
    ("qty", 40, 4, "<u4"),
    ("leaves", 44, 4, "<u4"),
    ("account", 48, 4, "<u4"),
    ("symbol", 52, 2, "<u2"),
    ("kind", 54, 1, "|u1"),
    ("side", 55, 1, "|u1"),
    ("reason", 56, 1, "|u1"),
    ("reserved", 57, 7, "|V7"),
]
DTYPES = {"order": (R.ORDER_DTYPE, ORDER_FIELDS), "event": (R.EVENT_DTYPE, EVENT_FIELDS)}


def _field(dtype: np.dtype, name: str) -> tuple[int, int, str]:
    ft, offset = dtype.fields[name][:2]
    # a sub-array (reserved bytes) is compared as raw bytes of its size
    kind = f"|V{ft.itemsize}" if ft.shape else ft.str
    return offset, ft.itemsize, kind


@pytest.mark.parametrize("which", DTYPES)
def test_records_are_64_bytes_packed_one_cache_line(which):
    dtype, _ = DTYPES[which]
    assert dtype.itemsize == 64
    assert R.RECORD_SIZE == 64
    assert not dtype.isalignedstruct


@pytest.mark.parametrize("which", DTYPES)
def test_every_field_has_the_documented_name_order_offset_size_and_type(which):
    dtype, expected = DTYPES[which]
    assert list(dtype.names) == [f[0] for f in expected]
    for name, offset, size, kind in expected:
        assert _field(dtype, name) == (offset, size, kind), name


@pytest.mark.parametrize("which", DTYPES)
def test_the_fields_tile_the_record_without_gap_or_overlap(which):
    _, expected = DTYPES[which]
    end = 0
    for name, offset, size, _ in expected:
        assert offset == end, name
        end = offset + size
    assert end == 64


@pytest.mark.parametrize("which", DTYPES)
def test_the_reserved_bytes_are_fourteen_or_seven_single_bytes(which):
    dtype, _ = DTYPES[which]
    ft = dtype.fields["reserved"][0]
    assert ft.base == np.dtype("u1")
    assert ft.shape == ({"order": 14, "event": 7}[which],)


def _doc_rows(title: str) -> list[tuple[int, str, str]]:
    """(offset, width, field) rows of the table under `## <title>` in docs/protocol.md."""
    text = PROTOCOL.read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.match(r"\| (\d+) \| ([^|]+?) \| (\w+) \|", line)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(3)))
    return rows


WIDTH = {"u64": (8, "<u8"), "i64": (8, "<i8"), "u32": (4, "<u4"), "u16": (2, "<u2"), "u8": (1, "|u1")}


@pytest.mark.parametrize(("which", "title"), [("order", "Order record"), ("event", "Event record")])
def test_docs_protocol_tables_state_the_same_layout(which, title):
    _, expected = DTYPES[which]
    rows = _doc_rows(title)
    got = []
    for offset, width, name in rows:
        m = re.fullmatch(r"(\d+) B", width)
        size, kind = (int(m.group(1)), f"|V{m.group(1)}") if m else WIDTH[width]
        got.append((name, offset, size, kind))
    assert got == expected


def test_layout_version_and_sentinels():
    assert R.LAYOUT_VERSION == 1
    assert R.PRICE_DECIMALS == 8 and R.PRICE_SCALE == 100_000_000
    assert R.PRICE_NONE == -(2**63)
    assert R.PRICE_INVALID == -(2**63) + 1
    assert R.MAX_PRICE_UNITS == 2**53 - 1
    assert R.MAX_QTY == 2**32 - 1
    assert R.QTY_CLAMP == 2**32
    assert R.QTY_INVALID == -(2**63)
    assert R.SYMBOL_UNKNOWN == 0xFFFF


def test_order_enums_have_the_documented_values():
    assert (R.ACTION_NEW, R.ACTION_CANCEL, R.ACTION_REPLACE, R.ACTION_KILL) == (1, 2, 3, 4)
    assert R.ACTION_MALFORMED == 5
    assert R.ACTION_SHUTDOWN == 255
    assert (R.SIDE_BUY, R.SIDE_SELL) == (1, 2)
    assert (R.TYPE_LIMIT, R.TYPE_MARKET) == (1, 2)
    assert (R.TIF_GTC, R.TIF_IOC, R.TIF_FOK, R.TIF_POST) == (1, 2, 3, 4)


def test_event_kinds_have_the_documented_values():
    kinds = (R.EV_ACK, R.EV_REJECT, R.EV_FILL, R.EV_CANCELED, R.EV_REPLACED, R.EV_KILLED)
    assert kinds == (1, 2, 3, 4, 5, 6)


REASONS = {
    "NONE": 0,
    # rejects, in the rulebook's order of checks
    "UNKNOWN_ACCOUNT": 1,
    "ACCOUNT_DISABLED": 2,
    "RATE_LIMIT": 3,
    "UNKNOWN_SYMBOL": 4,
    "DUPLICATE_ORDER_ID": 5,
    "BAD_TIF": 6,
    "BAD_QTY": 7,
    "MAX_QTY": 8,
    "BAD_PRICE": 9,
    "PRICE_BAND": 10,
    "MAX_NOTIONAL": 11,
    "MAX_POSITION": 12,
    "MAX_OPEN_ORDERS": 13,
    "CAPACITY": 14,
    "MALFORMED": 15,
    "UNKNOWN_ORDER": 16,
    "NOT_OWNER": 17,
    # cancels
    "SELF_TRADE": 32,
    "FOK": 33,
    "POST_ONLY": 34,
    "IOC": 35,
    "USER": 36,
    "KILL": 37,
    # fill roles
    "TAKER": 48,
    "MAKER": 49,
}


@pytest.mark.parametrize(("name", "value"), REASONS.items())
def test_reason_has_the_documented_value_and_name(name, value):
    assert getattr(R, f"R_{name}") == value
    assert R.REASON_NAMES[value] == ("" if name == "NONE" else name)


def test_no_reason_code_is_missing_from_the_names():
    codes = {v for k, v in vars(R).items() if k.startswith("R_") and isinstance(v, int)}
    assert codes == set(REASONS.values()) == set(R.REASON_NAMES)


def test_the_name_tables_cover_every_enum_value():
    assert R.ACTION_NAMES == {1: "NEW", 2: "CANCEL", 3: "REPLACE", 4: "KILL"}
    assert R.SIDE_NAMES == {1: "BUY", 2: "SELL"}
    assert R.TYPE_NAMES == {1: "LIMIT", 2: "MARKET"}
    assert R.TIF_NAMES == {1: "GTC", 2: "IOC", 3: "FOK", 4: "POST"}
    assert R.EVENT_NAMES == {1: "ACK", 2: "REJECT", 3: "FILL", 4: "CANCELED", 5: "REPLACED", 6: "KILLED"}


def test_a_zeroed_record_holds_no_valid_enum():
    o = R.empty_orders(1)[0]
    e = R.empty_events(1)[0]
    assert o["action"] not in R.ACTION_NAMES and e["kind"] not in R.EVENT_NAMES
    assert o["side"] not in R.SIDE_NAMES and o["tif"] not in R.TIF_NAMES
