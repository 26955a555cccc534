"""The CSV parser's fast path (engine/codec.py: _fast_row, _count_rows, parse_rows) against the
general reading, _parse_row, which it must equal byte for byte on every input.

_fast_row takes a row only when _parse_row would read it as a valid message, and then fills
the same fields with the same values; on anything else it leaves the record alone and
parse_rows hands the row to _parse_row. The properties below drive both with rows built from
valid pieces and then broken on purpose (signs, numbers at and around every limit, 8 and 9
decimals, empty fields, a field too many or too few, '\\r', unknown and lower-case words,
spaces, bytes that are digits with the high bit set, non-ASCII), on records that start full
of garbage (so a field written that _parse_row leaves alone shows up), and compare whole
flows with a row splitter written here from docs/rulebook.md section 3.
"""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

import engine.codec as codec
from engine.codec import FLOW_HEADER, N_FIELDS, parse_flow_bytes
from engine.config import load_venue
from engine.records import ACTION_MALFORMED, MAX_PRICE_UNITS, ORDER_DTYPE, PRICE_DECIMALS, QTY_CLAMP
from testkit.flows import generated_csv

VENUE = load_venue(None)
SYM_TAB, SYM_LEN = codec.symbol_table(VENUE)
TABLES = (
    codec._ACTION_TAB, codec._ACTION_LEN, codec._SIDE_TAB, codec._SIDE_LEN,
    codec._TYPE_TAB, codec._TYPE_LEN, codec._TIF_TAB, codec._TIF_LEN,
)
HEADER = FLOW_HEADER.encode() + b"\n"


# --- drivers: njit loops that call the engine's functions on records of an array ---------------


@njit
def _general_rows(buf, starts, ends, orders, first, fs, fe, sym_tab, sym_len, atab, alen, stab, slen, ttab, tlen,
                  itab, ilen):
    for i in range(len(starts)):
        codec._parse_row(buf, starts[i], ends[i], orders[first + i], fs, fe, sym_tab, sym_len, atab, alen, stab, slen,
                         ttab, tlen, itab, ilen)


@njit
def _fast_one(buf, j, orders, sym_tab, sym_len):
    return codec._fast_row(buf, j, orders[0], sym_tab, sym_len)


@njit
def _fast_rows(buf, starts, orders, out, sym_tab, sym_len):
    for i in range(len(starts)):
        out[i] = codec._fast_row(buf, starts[i], orders[i], sym_tab, sym_len)


def _scratch():
    return np.zeros(N_FIELDS + 1, np.int64), np.zeros(N_FIELDS + 1, np.int64)


def split_rows(data: bytes, start: int, end: int | None = None):
    """(row_start, row_end) of the rows of data[start:end], straight from the rulebook: a row ends at
    a '\\n', one '\\r' before it is removed, the last row may lack its '\\n'."""
    end = len(data) if end is None else end
    starts, ends = [], []
    j = start
    while j < end:
        k = data.find(b"\n", j, end)
        k = end if k < 0 else k
        e = k - 1 if k > j and data[k - 1] == 13 else k
        starts.append(j)
        ends.append(e)
        j = k + 1
    return np.array(starts, np.int64), np.array(ends, np.int64)


def reference_rows(data: bytes, start: int, end=None, seq0=1, orders=None, first=0, tables=TABLES):
    """What parse_rows must produce: every row through _parse_row, numbered seq0 + index."""
    buf = np.frombuffer(data, np.uint8)
    starts, ends = split_rows(data, start, end)
    if orders is None:
        orders = np.zeros(len(starts), ORDER_DTYPE)
    orders["msg_seq"][first : first + len(starts)] = seq0 + first + np.arange(len(starts))
    _general_rows(buf, starts, ends, orders, first, *_scratch(), SYM_TAB, SYM_LEN, *tables)
    return orders, starts, ends


def reference_flow(data: bytes):
    nl = data.find(b"\n")
    return reference_rows(data, len(data) if nl < 0 else nl + 1)


def assert_same_flow(data: bytes, monkeypatch, threads=(1, 2, 3)):
    want, want_start, want_end = reference_flow(data)
    for t in threads:
        monkeypatch.setattr(codec, "PARSE_THREADS", t)
        monkeypatch.setattr(codec, "PARSE_PIECE_MIN", 0)
        got = parse_flow_bytes(data, VENUE)
        assert got.orders.tobytes() == want.tobytes(), (t, _first_diff(got.orders, want, data, want_start, want_end))
        assert np.array_equal(got.row_start, want_start) and np.array_equal(got.row_end, want_end), t


def _first_diff(got, want, data, starts, ends):
    """The first row whose records differ, for the failure message."""
    if len(got) != len(want):
        return f"{len(got)} records, expected {len(want)}"
    for i in range(len(got)):
        if got[i].tobytes() != want[i].tobytes():
            return f"row {i} {data[starts[i]:ends[i]]!r}: got {got[i]}, expected {want[i]}"
    return "the records are equal"


# --- rows built from valid pieces, then broken -------------------------------------------------

U64 = 2**64
U32 = 2**32
MAX_PRICE = f"{MAX_PRICE_UNITS // 10**PRICE_DECIMALS}.{MAX_PRICE_UNITS % 10**PRICE_DECIMALS:08d}"  # the largest price


def _around(*values):
    out = []
    for v in values:
        out += [str(v - 1), str(v), str(v + 1), "0" + str(v), "000" + str(v - 1)]
    return out


GARBAGE = [
    "", "-", "+", ".", "-1", "+1", " 1", "1 ", "1\r", "\r1", "1.5", "1e5", "0x10", "nan", "inf", "１",
    "\xb1", "\xb0\xb9", "1\x00", "abc", "NEW", ",", ":", "/", "1:", "9:9", "0/", "12345678:", "/12345678",
]
GARBAGE = [g.encode("latin-1") if max(map(ord, g), default=0) < 256 else g.encode() for g in GARBAGE]
# bytes a field may hold: digits and their neighbours ('/' ':'), digits with the high bit set
# (0xB0-0xB9), separators, signs, '\r', letters of the words in both cases, NUL, non-ASCII
ODD_BYTES = list(b"0123456789/:.,+- \r\t\x00ABCEFGIKLMNOPRSTUWYabceiklnorstuy")
ODD_BYTES += [0x80, 0xB0, 0xB5, 0xB9, 0xBA, 0xC3, 0xA9, 0xFF]
odd_text = st.lists(st.sampled_from(ODD_BYTES), max_size=12).map(bytes)


def _num(lo, hi):
    return st.integers(lo, hi).map(lambda v: str(v).encode())


def uint_field(top, *more):
    """An unsigned integer field _parse_row accepts (0..top, leading zeros too) or one it rejects
    (above top, by one or by much; a sign, a space, a fraction, no digits, odd bytes)."""
    edges = _around(top, *more)
    good = [e.encode() for e in edges + ["0", "00", "1", "0" * 25 + "7", "9" * 9] if int(e) <= top]
    bad = [e.encode() for e in edges + ["9" * 20, "9" * 30, "1" + "0" * 20] if int(e) > top]
    valid = st.one_of(
        _num(0, 10**6), _num(0, 10**15), _num(0, top), st.sampled_from(good),
        st.tuples(st.text("0", max_size=6), _num(0, top)).map(lambda t: t[0].encode() + t[1]),
    )
    broken = st.one_of(st.sampled_from(bad), _num(top + 1, top * 100), st.sampled_from(GARBAGE), odd_text)
    return valid, broken


@st.composite
def number(draw, signs=("",)):
    sign = draw(st.sampled_from(signs))
    ip = draw(st.text("0123456789", max_size=11))
    dot = draw(st.sampled_from(["", "."]))
    frac = draw(st.text("0123456789", max_size=11)) if dot else ""
    if not ip and not frac:
        ip = "0"
    return (sign + ip + dot + frac).encode()


assert MAX_PRICE == "90071992.54740991"
PRICE_EDGES = [
    MAX_PRICE, "90071992.54740992", "90071992.5474099", "90071992.547409910", "90071992.547409911",
    "90071992", "90071993", "90071994", "99999999", "99999999.99999999", "100000000", "999999999", "0", "0.0",
    "-0", "+0", "0.00000001", "0.000000001", "0.000000010", "1.00000000", "1.000000000", "1.000000001", ".5", "5.",
    "185.01", "185.010", "00000185.01", "000000185.01", "-185.01", "+185.01", "4611686018427387904", "9" * 30,
]
QTY_EDGES = _around(U32 - 1, U32, QTY_CLAMP, 10**8, 10**9) + [
    "0", "00", "5.0", "5.", ".5", ".0", "5.00000000", "5.000000000", "5.000000001", "5.00000001", "0.5", "-5", "+5",
    "-0", "4611686018427387904", "4611686018427387903", "9" * 19, "9" * 30, "1" + "0" * 18,
]
NOT_NUMBERS = [
    b"", b".", b"-", b"+", b"-.", b"1e5", b"1E5", b"nan", b"inf", b" 1", b"1 ", b"1.2.3", b"1..", b"--1", b"1-", b"\r",
    b"1\r", b"0x1", b"1,5", b"\xb1", b"1\xb0", b"\xb0.5", b":", b"1:", b":.5", b"5.:", b"/", b"1/.0", b"5./",
]


def number_field(edges, allow_empty):
    """A price or quantity _parse_row reads (any value: a sign, 9 decimals, huge, are reasons, not
    MALFORMED), or text that is not a number."""
    valid = st.one_of(
        number(), number(("", "", "-", "+")), st.sampled_from([e.encode() for e in edges]),
        st.integers(0, 10**10).map(lambda v: f"{v // 100}.{v % 100:02d}".encode()), _num(0, 10**9),
        *([st.just(b"")] if allow_empty else []),
    )
    broken = st.one_of(st.sampled_from([t for t in NOT_NUMBERS if t or not allow_empty]), odd_text)
    return valid, broken


def word_field(words):
    """One of the words, or one broken: cased, cut, lengthened, padded, its first byte non-ASCII."""
    broken = []
    for w in words:
        broken += [w.lower(), w.title(), w[:-1], w + w[-1], " " + w, w + " ", w + "\r", "\r" + w, w[1:], w + "\0",
                   chr(ord(w[0]) | 0x80) + w[1:], w[:-1] + chr(ord(w[-1]) ^ 0x20)]
    valid = st.sampled_from([w.encode() for w in words])
    return valid, st.one_of(st.sampled_from([b.encode("latin-1") for b in broken]), odd_text)


SYMBOLS = [s.name for s in VENUE.symbols]
# any text without ',' or '\n' is a symbol (an unknown one is a reason, not MALFORMED)
symbol_field = st.one_of(
    st.sampled_from([s.encode() for s in SYMBOLS]),
    st.sampled_from([b"", b"aapl", b"AAP", b"AAPLX", b"BTCUSD\r", b"\rMSFT", b"ESZ6 ", b"LONGSYMBOL9", b"\xc3\xa9T",
                     b"ABCDEFGH", b"ABCDEFG", b"ABCDEFGHIJKLMNOPQ"]),
    odd_text.map(lambda b: b.replace(b",", b"")),
)
ignored_field = st.one_of(st.just(b""), st.just(b""), odd_text.map(lambda b: b.replace(b",", b"")))
ACTIONS = ["NEW", "CANCEL", "REPLACE", "KILL"]
TS, ACCOUNT, ORDER_ID = uint_field(U64 - 1, 10**19), uint_field(U32 - 1, 10**9, 10**10), uint_field(U64 - 1, 10**19)
ACTION, SIDE = word_field(ACTIONS), word_field(["BUY", "SELL"])
TYPE, TIF = word_field(["LIMIT", "MARKET"]), word_field(["GTC", "IOC", "FOK", "POST"])
PRICE, QTY = number_field(PRICE_EDGES, True), number_field(QTY_EDGES, False)
# (valid, broken) for each field a NEW reads, by position
READ_BY_NEW = {0: TS, 1: ACCOUNT, 2: ACTION, 4: ORDER_ID, 5: SIDE, 6: TYPE, 7: TIF, 8: PRICE, 9: QTY}


@st.composite
def row_fields(draw):
    """The ten fields of a row of some action: each field valid, then none, one or a few of the
    fields that action reads broken (the fields it does not read hold anything but a ',')."""
    a = draw(st.sampled_from(ACTIONS))
    fields = [draw(TS[0]), draw(ACCOUNT[0]), a.encode()] + [draw(ignored_field) for _ in range(7)]
    reads = {"KILL": [0, 1, 2], "CANCEL": [0, 1, 2, 4], "REPLACE": [0, 1, 2, 4, 8, 9]}.get(a, list(READ_BY_NEW))
    if a != "KILL":
        fields[4] = draw(ORDER_ID[0])
    if a in ("NEW", "REPLACE"):
        fields[8], fields[9] = draw(PRICE[0]), draw(QTY[0])
    if a == "NEW":
        fields[3] = draw(symbol_field)
        fields[5], fields[6], fields[7] = draw(SIDE[0]), draw(TYPE[0]), draw(TIF[0])
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 1, 2, 3]))):
        i = draw(st.sampled_from(reads))
        fields[i] = draw(READ_BY_NEW[i][1])
    return fields


@st.composite
def row_text(draw):
    """One row (no '\\n' in it): ten fields, sometimes a field more or less, sometimes a byte changed."""
    fields = draw(row_fields())
    how = draw(st.sampled_from(["keep"] * 8 + ["drop", "add", "merge", "byte", "insert", "cr"]))
    if how == "drop":
        del fields[draw(st.integers(0, len(fields) - 1))]
    elif how == "add":
        fields.insert(draw(st.integers(0, len(fields))), draw(odd_text))
    row = b",".join(fields)
    if how == "merge":  # a ',' turned into another byte: two fields become one
        commas = [i for i, c in enumerate(row) if c == 44]
        i = draw(st.sampled_from(commas))
        row = row[:i] + bytes([draw(st.sampled_from([c for c in ODD_BYTES if c != 44]))]) + row[i + 1 :]
    elif how == "byte" and row:
        i = draw(st.integers(0, len(row) - 1))
        row = row[:i] + bytes([draw(st.sampled_from(ODD_BYTES))]) + row[i + 1 :]
    elif how == "insert":
        i = draw(st.integers(0, len(row)))
        row = row[:i] + bytes([draw(st.sampled_from(ODD_BYTES))]) + row[i:]
    elif how == "cr":
        i = draw(st.integers(0, len(row)))
        row = row[:i] + b"\r" + row[i:]
    return row.replace(b"\n", b"")


line_end = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b"\r\r\n"])


def beyond(n):
    """What follows a row in memory: random bytes, or bytes full of ',', '\\n' and digits."""
    return st.one_of(
        st.binary(min_size=n, max_size=n + 40),
        st.lists(st.sampled_from(ODD_BYTES + [10, 10, 44]), min_size=n, max_size=n + 40).map(bytes),
    )

garbage_record = st.binary(min_size=64, max_size=64)


def _records(fill: bytes, n=1):
    return np.frombuffer(fill * n, ORDER_DTYPE).copy()


# --- one row: _fast_row against _parse_row -----------------------------------------------------


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=row_text(), end=line_end, tail=beyond(codec.FAST_SPAN), fill=garbage_record)
def test_fast_row_fills_what_parse_row_fills_or_leaves_the_record_alone(row, end, tail, fill):
    line = row + end
    data = line + tail
    buf = np.frombuffer(data, np.uint8)
    nl = len(line) - 1
    e = nl - 1 if nl > 0 and data[nl - 1] == 13 else nl
    want = _records(fill)
    _general_rows(buf, np.array([0]), np.array([e]), want, 0, *_scratch(), SYM_TAB, SYM_LEN, *TABLES)
    got = _records(fill)
    k = _fast_one(buf, 0, got, SYM_TAB, SYM_LEN)
    if k >= 0:
        assert k == nl
        assert want[0]["action"] != ACTION_MALFORMED, row
        assert got.tobytes() == want.tobytes(), (row, got, want)
    else:
        assert k == -1
        assert got.tobytes() == fill  # untouched: the row goes to _parse_row


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(row_text(), line_end), min_size=1, max_size=6),
    last_end=st.sampled_from([b"", b"\n", b"\r\n", b"\r"]),
    before=st.binary(max_size=3).map(lambda b: b.replace(b"\n", b"")),
    after=st.one_of(st.binary(max_size=40), beyond(100)),
    fill=garbage_record,
    n0=st.integers(0, 3),
    seq0=st.integers(-5, 2**40),
)
def test_parse_rows_equals_parse_row_row_by_row(rows, last_end, before, after, fill, n0, seq0):
    """parse_rows on a piece of a buffer (rows ending anywhere near the buffer's end, the last one
    maybe without its '\\n'), into records at n0 that start as garbage, numbered from seq0. The piece
    may be followed by anything (the next piece, the part of a row a block reader keeps for its
    next block, stale bytes): the fast path reads past a row's end, but what it reads there must
    not matter."""
    body = b"".join(r + e for r, e in rows[:-1]) + rows[-1][0] + last_end
    tail = after
    data = b"\n" + before + b"\n" + body + tail if before else body + tail
    start = len(data) - len(body) - len(tail)
    end = start + len(body)
    buf = np.frombuffer(data, np.uint8)
    starts, ends = split_rows(data, start, end)
    n = len(starts)
    assert codec._count_rows(buf, start, end) == n
    want = _records(fill, n0 + n + 2)
    reference_rows(data, start, end, seq0, want, n0)
    got = _records(fill, n0 + n + 2)
    row_start = np.full(n0 + n + 2, -7, np.int64)
    row_end = np.full(n0 + n + 2, -7, np.int64)
    n_end = codec.parse_rows(buf, start, end, n0, seq0, got, row_start, row_end, *_scratch(), SYM_TAB, SYM_LEN, *TABLES)
    assert n_end == n0 + n
    assert got.tobytes() == want.tobytes(), _first_diff(got[n0 : n0 + n], want[n0 : n0 + n], data, starts, ends)
    assert list(row_start[n0 : n0 + n]) == list(starts) and list(row_end[n0 : n0 + n]) == list(ends)
    assert (row_start[:n0] == -7).all() and (row_start[n0 + n :] == -7).all()
    assert (row_end[:n0] == -7).all() and (row_end[n0 + n :] == -7).all()


# --- rows the fast path must take, and rows it must leave to _parse_row -------------------------


# valid rows of the usual shapes, at the limits the fast path keeps to
TAKEN = [
    b"34200000002699,113,NEW,BTCUSD,1,SELL,LIMIT,GTC,91001.5,1",
    b"34200000002699,113,NEW,AAPL,2,BUY,MARKET,IOC,,500",
    b"1733400000000000000,7,NEW,MSFT,18446744073709551,BUY,LIMIT,FOK,420.00000001,4294967",
    b"9999999999999999999,4294967295,NEW,ESZ6,9999999999,SELL,LIMIT,POST,99999999.99999999,99999999",
    # 64 bytes and more, the fields from the action on less than 64
    b"1733400000000000000,4294967295,NEW,BTCUSD,1234567890123,SELL,MARKET,POST,91001.50000000,1000",
    b"1733400000000000000,4294967295,NEW,BTCUSD,12345678901234,SELL,MARKET,POST,91001.50000000,100",
    b"0,0,NEW,UNKNOWN,0,BUY,LIMIT,GTC,0,0",
    b"1,1,NEW,,1,BUY,LIMIT,GTC,.5,5.",
    b"1,1,NEW,AVERYLONGSYMBOLNAME,1,BUY,LIMIT,GTC,5.,.0",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,1.5",  # a qty with a fraction: QTY_INVALID, not MALFORMED
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC," + MAX_PRICE.encode() + b",1",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,90071992.54740992,1",  # out of range: PRICE_INVALID, not MALFORMED
    b"34200000020504,131,REPLACE,,2,,,,185.06,100",
    b"34200000020504,131,REPLACE,AAPL,2,X,Y,Z,185.06,100",
    b"34200000020504,131,REPLACE,,2,,,,,100",
    b"34200000030165,113,CANCEL,,1,,,,,",
    b"34200000030165,113,CANCEL,anything,1,at,all,in,these,fields",
    b"34200000030165,113,CANCEL,,1,,,,,\r",
    b"1,7,KILL,,,,,,,",
    b"1,7,KILL,x,y,z,-1,+,.,\r",
]
# rows _parse_row reads as MALFORMED, and valid ones the fast path leaves to it
LEFT = [
    b"",
    b"\r",
    b",,,,,,,,,",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,-",
    b"-1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,1",
    b"+1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,1",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,-185.00,1",  # BAD_PRICE, taken by _parse_row
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,+185.00,1",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.000000001,1",  # 9 decimals
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.000000000,1",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,100000000,1",  # 9 integer digits
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185,100000000",  # a 9-digit qty
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185,4294967296",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185,1.000000000",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185,+1",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185,",
    b"18446744073709551615,1,NEW,AAPL,1,BUY,LIMIT,GTC,185,1",  # 20 digits, in range
    b"1,4294967296,NEW,AAPL,1,BUY,LIMIT,GTC,185,1",
    b"1,04294967295,NEW,AAPL,1,BUY,LIMIT,GTC,185,1",
    b"1,1,NEW,AAPL,18446744073709551616,BUY,LIMIT,GTC,185,1",
    b"1,1,new,AAPL,1,BUY,LIMIT,GTC,185,1",
    b"1,1,NEW,AAPL,1,buy,LIMIT,GTC,185,1",
    b"1,1,NEW,AAPL,1,BUY,LIMITS,GTC,185,1",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,DAY,185,1",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185,1,",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185",
    b"1,1,NEW,AAPL\r,1,BUY,LIMIT,GTC,185,1\r\r",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185,1 ",
    b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,18\xb55,1",
    b"1,1,CANCEL,,1,,,,,,",
    b"1,1,CANCELX,1,,,,,",  # 9 fields, the action's ',' turned into a letter
    b"1,1,CANCEL\x00,1,,,,,",
    b"1,1,NEWX,1,BUY,LIMIT,GTC,1,1",
    # a word with a letter more
    b"1,1,NEWX,AAPL,1,BUY,LIMIT,GTC,1,1",
    b"1,1,CANCELX,,1,,,,,",
    b"1,1,REPLACEX,,1,,,,1,1",
    b"1,1,KILLX,,,,,,,",
    b"1,1,NEW,AAPL,1,BUYX,LIMIT,GTC,1,1",
    b"1,1,NEW,AAPL,1,SELLX,LIMIT,GTC,1,1",
    b"1,1,NEW,AAPL,1,SELL,LIMITX,GTC,1,1",
    b"1,1,NEW,AAPL,1,SELL,MARKETX,IOC,,1",
    b"1,1,NEW,AAPL,1,SELL,LIMIT,GTCX,1,1",
    b"1,1,NEW,AAPL,1,SELL,LIMIT,IOCX,1,1",
    b"1,1,NEW,AAPL,1,SELL,LIMIT,FOKX,1,1",
    b"1,1,NEW,AAPL,1,SELL,LIMIT,POSTX,1,1",
    b"1,1,CANCEL,,1,,,,",
    b"1,1,CANCEL,,,,,,,",
    b"1,1,KILL,,,,,,",
    b"1,1,KILL,,,,,,,,",
    b"1, 1,KILL,,,,,,,",
    # the bytes next to the digits, '/' and ':', and digits with the high bit set, in each number
    b"34200000002:99,113,NEW,BTCUSD,1,SELL,LIMIT,GTC,91001.5,1",
    b"34200000002699,1/3,NEW,BTCUSD,1,SELL,LIMIT,GTC,91001.5,1",
    b"34200000002699,113,CANCEL,,:,,,,,",
    b"34200000002699,113,NEW,BTCUSD,1\xb0,SELL,LIMIT,GTC,91001.5,1",
    b"34200000002699,113,NEW,BTCUSD,1,SELL,LIMIT,GTC,91:01.5,1",
    b"34200000002699,113,NEW,BTCUSD,1,SELL,LIMIT,GTC,91001./,1",
    b"34200000002699,113,NEW,BTCUSD,1,SELL,LIMIT,GTC,91001.5,/",
    b"34200000002699,113,NEW,BTCUSD,1,SELL,LIMIT,GTC,91001.5,1.:",
    b"34200000002699,113,NEW,BTCUSD,1,SELL,LIMIT,GTC,91001.5,\xb9",
    # valid, but the fields from the action on are 64 bytes or more: _parse_row reads them
    b"1,1,NEW,ESZ6,9999999999999999999,SELL,LIMIT,POST,99999999.99999999,99999999",
    b"1,1,NEW,BTCUSD,12345678901234,SELL,MARKET,POST,91001.50000000,12345678",
    b"1,1,CANCEL,,1,,,,," + b"x" * 60,
]


FILL = b"\xab" * 64


def _fast_on(row: bytes, end=b"\n", tail=b"\0" * codec.FAST_SPAN):
    data = row + end + tail
    got = _records(FILL)
    return _fast_one(np.frombuffer(data, np.uint8), 0, got, SYM_TAB, SYM_LEN), got


def _general_on(row: bytes):
    want = _records(FILL)
    e = len(row) - 1 if row.endswith(b"\r") else len(row)
    buf = np.frombuffer(row, np.uint8)
    _general_rows(buf, np.array([0]), np.array([e]), want, 0, *_scratch(), SYM_TAB, SYM_LEN, *TABLES)
    return want


@pytest.mark.parametrize("row", TAKEN)
@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_the_fast_path_takes_the_usual_rows(row, end):
    k, got = _fast_on(row, end)
    assert k == len(row) + len(end) - 1
    want = _general_on(row + end[:-1])
    assert want[0]["action"] != ACTION_MALFORMED
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("row", LEFT)
def test_the_fast_path_leaves_odd_rows_to_the_general_parser(row):
    k, got = _fast_on(row)
    assert k == -1 and got.tobytes() == FILL


def test_the_fast_path_takes_every_row_of_a_generated_flow():
    text = generated_csv(VENUE, 20_000, seed=5)
    for data in (text, text.replace(b"\n", b"\r\n")):
        data += b"\0" * codec.FAST_SPAN
        starts, _ = split_rows(data, data.find(b"\n") + 1)
        starts = starts[:-1]  # the padding
        assert len(starts) == 20_000
        res = np.zeros(len(starts), np.int64)
        _fast_rows(np.frombuffer(data, np.uint8), starts, np.zeros(len(starts), ORDER_DTYPE), res, SYM_TAB, SYM_LEN)
        assert (res >= 0).all(), data[starts[np.argmin(res)] : starts[np.argmin(res)] + 80]


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
@pytest.mark.parametrize("ts", [b"1", b"34200000002699", b"1733400000000000000"])
def test_rows_of_every_length_around_the_64_byte_windows(ts, end):
    """_fast_row looks at 64 bytes from the row's start, and for a longer row at 64 bytes from its
    action on: it takes every row whose bytes from the action to the '\\n' fit, whatever the row's
    length, and leaves the longer ones alone."""
    head = ts + b",4294967295,"
    for pad in range(70):
        for row in (
            head + b"NEW," + b"S" * pad + b",12345,SELL,LIMIT,POST,185.25,100",
            head + b"CANCEL," + b"x" * pad + b",12345,,,,,",
            head + b"REPLACE," + b"y" * max(pad - 23, 0) + b",12345,,,,"
            + b"1" * (1 + min(pad, 7)) + b"." + b"5" * min(max(pad - 7, 0), 8) + b"," + b"7" * min(max(pad - 15, 1), 8),
        ):
            k, got = _fast_on(row, end)
            newline = len(row) + len(end) - 1
            if newline - len(head) < 64:
                want = _general_on(row + end[:-1])
                assert k == newline and want[0]["action"] != ACTION_MALFORMED, row
                assert got.tobytes() == want.tobytes(), row
            else:
                assert k == -1 and got.tobytes() == FILL, row


# --- whole flows: parse_flow_bytes against the reference splitter -------------------------------


CASES = {
    "header only": FLOW_HEADER.encode(),
    "header and newline": HEADER,
    "header crlf": FLOW_HEADER.encode() + b"\r\n",
    "header and an empty row": HEADER + b"\n",
    "no final newline": HEADER + b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\n2,1,CANCEL,,1,,,,,",
    "no final newline, short": HEADER + b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\n1",
    "crlf": HEADER[:-1] + b"\r\n1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\r\n2,1,CANCEL,,1,,,,,\r\n3,2,KILL,,,,,,,\r\n",
    "crlf without the last lf": HEADER + b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\r\n2,1,CANCEL,,1,,,,,\r",
    "empty lines": HEADER + b"\n\n1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\n\n\r\n\n2,1,CANCEL,,1,,,,,\n\n",
    "a lone cr": HEADER + b"\r",
    "short rows at the end": HEADER + b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\n1\n\n,\n",
    "a kill in the last bytes": HEADER + b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\n1,1,KILL,,,,,,,\n",
    "a long symbol last": HEADER + b"1,1,NEW,LONGSYMBOLNAME,1,BUY,LIMIT,GTC,185.00,5\n",
    "a cancel last, no newline": HEADER + b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\n34200000030165,113,CANCEL,,1,,,,,",
}


@pytest.mark.parametrize("name", list(CASES))
def test_whole_flows_equal_the_row_by_row_reference(name, monkeypatch):
    data = CASES[name]
    assert_same_flow(data, monkeypatch)
    # and with every row's first bytes beyond the last rows, whatever follows in memory
    assert_same_flow(data + b"\n" + b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,1,1\n" * 6, monkeypatch)


def test_a_generated_flow_with_odd_rows_mixed_in(monkeypatch):
    lines = generated_csv(VENUE, 5_000, seed=11).split(b"\n")
    odd = [r for r in LEFT + TAKEN]
    mixed = [lines[0]]
    for i, line in enumerate(lines[1:]):
        mixed.append(line)
        if i % 7 == 0:
            mixed.append(odd[i % len(odd)])
    data = b"\n".join(mixed)
    assert_same_flow(data, monkeypatch)
    assert_same_flow(data.replace(b"\n", b"\r\n", 300), monkeypatch)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(row_text(), line_end), max_size=12),
    last=st.sampled_from([b"", b"\n", b"\r", b"\r\n", b"1"]),
)
def test_random_flows_equal_the_row_by_row_reference(rows, last, monkeypatch):
    data = HEADER + b"".join(r + e for r, e in rows) + last
    assert_same_flow(data, monkeypatch, threads=(1, 3))


# --- the pieces around the fast path ------------------------------------------------------------


@pytest.mark.parametrize(
    "text", [b"", b"\n", b"a", b"a\n", b"\n\n", b"ab\ncd", b"ab\ncd\n", b"\r\n\r\n", b"x" * 100 + b"\n" + b"y" * 37]
)
def test_count_rows_counts_the_rows_of_every_piece(text):
    buf = np.frombuffer(text, np.uint8)
    for start in range(len(text) + 1):
        for end in range(start, len(text) + 1):
            if end < len(text) and end > 0 and text[end - 1] != 10:
                continue  # a piece ends at a row's end
            assert codec._count_rows(buf, start, end) == len(split_rows(text, start, end)[0]), (text, start, end)


def test_other_token_tables_turn_the_fast_path_off():
    """parse_rows reads with the tables it is given: with words other than the module's (the fast
    path knows those by heart) every row goes through _parse_row."""
    atab, alen = codec._table([b"", b"new", b"CANCEL", b"REPLACE", b"KILL"])
    tables = (atab, alen, *TABLES[2:])
    body = b"1,1,new,AAPL,1,BUY,LIMIT,GTC,185.00,5\n1,1,NEW,AAPL,2,BUY,LIMIT,GTC,185.00,5\n3,2,CANCEL,,1,,,,,\n"
    data = body + b"\0" * codec.FAST_SPAN
    want, starts, ends = reference_rows(data, 0, len(body), tables=tables)
    got = np.zeros(3, ORDER_DTYPE)
    rs, re_ = np.zeros(3, np.int64), np.zeros(3, np.int64)
    buf = np.frombuffer(data, np.uint8)
    assert codec.parse_rows(buf, 0, len(body), 0, 1, got, rs, re_, *_scratch(), SYM_TAB, SYM_LEN, *tables) == 3
    assert got.tobytes() == want.tobytes()
    assert list(got["action"]) == [1, ACTION_MALFORMED, 2]


def test_a_strided_buffer_parses_as_a_contiguous_one():
    """parse_rows takes any 1-D uint8 array: the fast path's 8- and 64-byte loads read a strided
    one byte by byte."""
    body = generated_csv(VENUE, 300, seed=2)[len(HEADER) :] + b"1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\r\n" + b"1,1,CANCEL,,1,,,,,"
    data = body + b"\n" * codec.FAST_SPAN
    wide = np.zeros(2 * len(data), np.uint8)
    wide[::2] = np.frombuffer(data, np.uint8)
    strided = wide[::2]
    assert not strided.flags.c_contiguous
    want, starts, ends = reference_rows(data, 0, len(body))
    got = np.zeros(len(starts), ORDER_DTYPE)
    row_start, row_end = np.zeros(len(starts), np.int64), np.zeros(len(starts), np.int64)
    n = codec.parse_rows(strided, 0, len(body), 0, 1, got, row_start, row_end, *_scratch(), SYM_TAB, SYM_LEN, *TABLES)
    assert n == len(starts) == 302
    assert got.tobytes() == want.tobytes()
    assert np.array_equal(row_start, starts) and np.array_equal(row_end, ends)
    # and the rows went through the fast path, which gave the same records
    fast = np.zeros(len(starts), ORDER_DTYPE)
    fast["msg_seq"] = want["msg_seq"]
    taken = np.zeros(len(starts), np.int64)
    _fast_rows(strided, starts, fast, taken, SYM_TAB, SYM_LEN)
    assert (taken >= 0).all() and fast.tobytes() == want.tobytes()
