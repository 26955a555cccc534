"""Stage 1 of the LOBSTER import: a message file and its orderbook file into validated int64 arrays.

    data = read_lobster("LOBSTER_SampleFile_GOOG_2012-06-21_10.zip")   # or a message CSV (+ orderbook)

Both files come straight out of the zip (nothing is unpacked) or from two CSVs, the orderbook
file's name inferred from the message file's. An njit byte loop parses them, so that reading stays
a small part of the import (GOOG 10: a 34 MB orderbook file, read in about 0.2 s of 2 s;
docs/lobster.md). Time is parsed as a decimal string into integer nanoseconds after midnight.

Validation is strict, and any inconsistency stops with one line naming the file and the 1-based
row (LobsterError): a wrong guess about a malformed row would show up later as a divergence that
points at the engine instead of the input.

The row format (LOBSTER's readme): a message row is time, type, order id, size, price, direction;
an orderbook row after message i is, for each of the file's levels, ask price, ask size, bid
price, bid size, best first, an empty level holding 9999999999 / -9999999999 with size 0.
Prices are dollars x 10000.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from engine.records import SIDE_BUY

EMPTY_ASK = 9999999999  # the ask price of an empty level (its size is 0)
EMPTY_BID = -9999999999
MSG_COLS = 6  # time, type, order_id, size, price, direction

# message columns after parsing (time becomes integer nanoseconds after midnight)
M_TS, M_TYPE, M_ID, M_SIZE, M_PRICE, M_DIR = range(6)


class LobsterError(ValueError):
    """Bad input: the message names the file and the row."""


# parse error codes
E_OK, E_FEW, E_MANY, E_NUMBER, E_DECIMALS, E_RANGE, E_EMPTY = range(7)
_ERR_TEXT = {
    E_FEW: "too few fields",
    E_MANY: "too many fields",
    E_NUMBER: "not an integer",
    E_DECIMALS: "time with more than 9 decimals",
    E_RANGE: "number out of range",
    E_EMPTY: "empty line",
}


@njit(cache=True, nogil=True)
def _count_lines(buf):
    n = 0
    for b in buf:
        if b == 10:
            n += 1
    if len(buf) > 0 and buf[len(buf) - 1] != 10:
        n += 1
    return n


@njit(cache=True, nogil=True)
def _parse_table(buf, out, time_col, counters):
    """Comma-separated integers into out[n_rows, n_cols]; column time_col may be a decimal
    (seconds) and is stored as integer nanoseconds (more than 9 decimals are rounded to the ns
    and counted in counters[0]). Returns (error, row, field), 0-based."""
    n_rows, n_cols = out.shape
    p = 0
    end = len(buf)
    for r in range(n_rows):
        c = 0
        if p >= end or buf[p] == 10 or (buf[p] == 13 and p + 1 < end and buf[p + 1] == 10):
            return E_EMPTY, r, 0
        while True:
            if c >= n_cols:
                return E_MANY, r, c
            neg = False
            if p < end and buf[p] == 45:
                neg = True
                p += 1
            v = np.int64(0)
            nd = 0
            while p < end and 48 <= buf[p] <= 57:
                if nd >= 18:
                    return E_RANGE, r, c
                v = v * 10 + (buf[p] - 48)
                nd += 1
                p += 1
            if c == time_col:
                frac = np.int64(0)
                fd = 0
                extra = 0
                round_up = False
                if p < end and buf[p] == 46:
                    p += 1
                    while p < end and 48 <= buf[p] <= 57:
                        if fd < 9:
                            frac = frac * 10 + (buf[p] - 48)
                            fd += 1
                        else:
                            # float renderings such as 43002.632812672004: round to the ns
                            if extra == 0:
                                round_up = buf[p] >= 53
                            extra += 1
                            if extra > 9:
                                return E_DECIMALS, r, c
                        p += 1
                if nd == 0 and fd == 0:
                    return E_NUMBER, r, c
                if nd > 9:
                    return E_RANGE, r, c
                while fd < 9:
                    frac *= 10
                    fd += 1
                v = v * 1000000000 + frac
                if extra:
                    counters[0] += 1
                    if round_up:
                        v += 1
            elif nd == 0:
                return E_NUMBER, r, c
            out[r, c] = -v if neg else v
            c += 1
            if p >= end or buf[p] == 10 or buf[p] == 13:
                if p < end and buf[p] == 13:
                    p += 1
                    if p < end and buf[p] != 10:
                        return E_NUMBER, r, c - 1
                if c < n_cols:
                    return E_FEW, r, c
                p += 1  # past the newline
                break
            if buf[p] != 44:
                return E_NUMBER, r, c - 1
            p += 1
    return E_OK, n_rows, 0


@njit(cache=True, nogil=True)
def _first_line_fields(buf):
    n = 1
    for b in buf:
        if b == 10:
            break
        if b == 44:
            n += 1
    return n


def parse_csv(data: bytes, n_cols: int | None, name: str, time_col: int = -1, rounded: list | None = None) -> np.ndarray:
    """A LOBSTER CSV (no header) into an int64 array; n_cols None = take the first row's.
    rounded, when given, gets the number of times rounded to the nanosecond appended."""
    buf = np.frombuffer(data, np.uint8)
    if len(buf) == 0:
        raise LobsterError(f"{name}: empty file")
    if n_cols is None:
        n_cols = int(_first_line_fields(buf))
    n_rows = int(_count_lines(buf))
    out = np.empty((n_rows, n_cols), np.int64)
    counters = np.zeros(1, np.int64)
    err, row, col = _parse_table(buf, out, time_col, counters)
    if err != E_OK:
        line = _line_text(data, row)
        what = _ERR_TEXT[err]
        if err in (E_FEW, E_MANY):
            found = line.count(",") + 1
            what = f"expected {n_cols} fields, found {found}"
        elif err in (E_NUMBER, E_RANGE, E_DECIMALS):
            what = f"field {col + 1}: {what}"
        raise LobsterError(f"{name}: row {row + 1}: {what}: {line[:80]!r}")
    if rounded is not None:
        rounded.append(int(counters[0]))
    return out


def _line_text(data: bytes, row: int) -> str:
    start = 0
    for _ in range(row):
        start = data.find(b"\n", start) + 1
        if start == 0:
            return ""
    end = data.find(b"\n", start)
    return data[start : end if end >= 0 else len(data)].decode("utf-8", "replace").rstrip("\r")


@dataclass
class LobsterData:
    """One LOBSTER file pair, validated. messages: [n, 6] int64 (ts_ns, type, id, size, price,
    direction); book: [n, 4 * levels] int64, row i = the book after message i."""

    name: str
    ticker: str
    levels: int
    messages: np.ndarray
    book: np.ndarray
    message_source: str
    book_source: str
    type_counts: dict[int, int] = field(default_factory=dict)
    halts: dict[str, int] = field(default_factory=dict)
    times_rounded: int = 0  # times given with more than 9 decimals (float renderings), rounded to the ns


def _ticker_of(name: str) -> str:
    base = Path(name).name
    if base.startswith("LOBSTER_SampleFile_"):
        base = base[len("LOBSTER_SampleFile_") :]
    return base.split("_")[0] or "LOBSTER"


def _open_inputs(src: str, orderbook: str | None) -> tuple[str, bytes, str, bytes, str]:
    p = Path(src)
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            msgs = [n for n in names if "_message_" in n and n.endswith(".csv")]
            books = [n for n in names if "_orderbook_" in n and n.endswith(".csv")]
            if len(msgs) != 1 or len(books) != 1:
                raise LobsterError(f"{p}: expected one *_message_*.csv and one *_orderbook_*.csv in the zip, found {msgs + books}")
            if orderbook is not None:
                raise LobsterError(f"{p}: --orderbook is only for a message CSV, the zip has its own")
            return (f"{p.name}:{msgs[0]}", z.read(msgs[0]), f"{p.name}:{books[0]}", z.read(books[0]), p.name)
    if orderbook is None:
        name = p.name
        for a, b in (("_message_", "_orderbook_"), ("_msgs", "_book")):
            if a in name:
                orderbook = str(p.with_name(name.replace(a, b)))
                break
        else:
            raise LobsterError(f"{p}: not a zip and no --orderbook given (cannot infer the orderbook file)")
    try:
        return (str(p), p.read_bytes(), str(orderbook), Path(orderbook).read_bytes(), p.name)
    except OSError as e:
        raise LobsterError(f"{e.filename}: cannot read: {e.strerror}") from None


def validate(messages: np.ndarray, book: np.ndarray, msg_name: str, book_name: str) -> None:
    """Row-level checks of the LOBSTER format; raises LobsterError naming file and row (1-based)."""

    def fail(name, idx, text):
        raise LobsterError(f"{name}: row {int(idx) + 1}: {text}")

    if book.shape[1] % 4 != 0:
        raise LobsterError(f"{book_name}: row 1: {book.shape[1]} fields, expected 4 per level")
    if len(messages) != len(book):
        n = min(len(messages), len(book))
        longer = msg_name if len(messages) > len(book) else book_name
        raise LobsterError(
            f"{longer}: row {n + 1}: message file has {len(messages)} rows, orderbook file {len(book)} rows"
        )
    t = messages[:, M_TYPE]
    bad = np.flatnonzero((t < 1) | (t > 7))
    if len(bad):
        fail(msg_name, bad[0], f"unknown event type {messages[bad[0], M_TYPE]}")
    ts = messages[:, M_TS]
    back = np.flatnonzero(np.diff(ts) < 0)
    if len(back):
        fail(msg_name, back[0] + 1, "time goes backwards")
    d = messages[:, M_DIR]
    bad = np.flatnonzero((d != 1) & (d != -1))
    if len(bad):
        fail(msg_name, bad[0], f"direction {d[bad[0]]}, expected 1 or -1")
    regular = t <= 6
    bad = np.flatnonzero(regular & ((messages[:, M_SIZE] <= 0) | (messages[:, M_PRICE] <= 0)))
    if len(bad):
        fail(msg_name, bad[0], "size and price must be positive")
    bad = np.flatnonzero((t <= 4) & (messages[:, M_ID] <= 0))
    if len(bad):
        fail(msg_name, bad[0], "order id must be positive")
    bad = np.flatnonzero(
        (t == 7) & ((messages[:, M_ID] != 0) | (messages[:, M_SIZE] != 0) | (d != -1) | (messages[:, M_PRICE] < -1) | (messages[:, M_PRICE] > 1))
    )
    if len(bad):
        fail(msg_name, bad[0], "trading halt (type 7) must read id 0, size 0, price -1/0/1, direction -1")
    ap = book[:, 0::4]
    asz = book[:, 1::4]
    bp = book[:, 2::4]
    bsz = book[:, 3::4]
    ok = ((ap > 0) & (ap < EMPTY_ASK) & (asz > 0)) | ((ap == EMPTY_ASK) & (asz == 0))
    ok &= ((bp > 0) & (bsz > 0)) | ((bp == EMPTY_BID) & (bsz == 0))
    bad = np.flatnonzero(~ok.all(axis=1))
    if len(bad):
        fail(book_name, bad[0], "a level must be a positive price and size, or the empty 9999999999/-9999999999 with size 0")
    if book.shape[1] > 4:
        ok = (np.diff(ap, axis=1) > 0) | (ap[:, 1:] == EMPTY_ASK)
        ok &= (np.diff(bp, axis=1) < 0) | (bp[:, 1:] == EMPTY_BID)
        bad = np.flatnonzero(~ok.all(axis=1))
        if len(bad):
            fail(book_name, bad[0], "levels must be strictly ordered, best first, empties last")
    # type 7: the orderbook row duplicates the preceding one
    halt = np.flatnonzero(t == 7)
    for i in halt:
        if i > 0 and not np.array_equal(book[i], book[i - 1]):
            fail(book_name, i, "the row of a trading halt (type 7) must repeat the previous row")


def read_lobster(src: str, orderbook: str | None = None) -> LobsterData:
    msg_name, msg_bytes, book_name, book_bytes, name = _open_inputs(src, orderbook)
    rounded: list[int] = []
    messages = parse_csv(msg_bytes, MSG_COLS, msg_name, time_col=0, rounded=rounded)
    book = parse_csv(book_bytes, None, book_name)
    validate(messages, book, msg_name, book_name)
    types, counts = np.unique(messages[:, M_TYPE], return_counts=True)
    halts = {}
    h = messages[messages[:, M_TYPE] == 7, M_PRICE]
    for price, label in ((-1, "halt"), (0, "quoting"), (1, "resume")):
        halts[label] = int((h == price).sum())
    return LobsterData(
        name=name,
        ticker=_ticker_of(name),
        levels=book.shape[1] // 4,
        messages=messages,
        book=book,
        message_source=msg_name,
        book_source=book_name,
        type_counts={int(a): int(b) for a, b in zip(types, counts)},
        halts=halts,
        times_rounded=rounded[0],
    )



# --- the orderbook row format -------------------------------------------------------------------


def row_levels(row: np.ndarray, side: int) -> list[tuple[int, int]]:
    """Real levels of one side of an orderbook row, best first."""
    off = 2 if side == SIDE_BUY else 0
    out = []
    for k in range(len(row) // 4):
        size = int(row[4 * k + off + 1])
        if size == 0:
            break
        out.append((int(row[4 * k + off]), size))
    return out


def side_of_row(r: list, side: int) -> tuple[list, list]:
    """(prices, sizes) of one side's real levels in an orderbook row given as a list."""
    off = 2 if side == SIDE_BUY else 0
    sizes = r[off + 1 :: 4]
    n = sizes.index(0) if 0 in sizes else len(sizes)
    return r[off::4][:n], sizes[:n]
