"""LOBSTER (NASDAQ TotalView-ITCH rebuilt by LOBSTER) import, conversion and book comparison.

    tickbook lobster ZIP_OR_MESSAGE_CSV [--orderbook ORDERBOOK_CSV] [--mode book|match] [--flow OUT.csv]

Three stages, each usable on its own (docs/lobster.md):

1. read: a message file and its orderbook file (straight from the zip, or two CSVs) into int64
   arrays, strictly validated; any inconsistency stops with one line naming the file and row.
2. convert: the messages into a tickbook order flow (ORDER_DTYPE records), message by message,
   with `msg_end[i]` = number of records emitted up to and including message i. The converter keeps
   its own model of the book (FIFO queues of order ids per price) to know which ids exist, where
   seed liquidity sits and which out-of-view adjustments the orderbook rows call for.
3. replay + compare: one njit loop runs the records through the engine's `process_one` and, after
   every message, compares `top_levels` of both sides with the LOBSTER orderbook row.

This module is the CSV/zip edge for LOBSTER data; the hot path (engine.matcher, engine.book) knows
nothing about it. Prices: LOBSTER gives dollars x 10000, the venue's tick is 0.0001, so a LOBSTER
price is the engine's price in ticks, and 10^4 x it is the record's 1e-8 unit price.
"""

from __future__ import annotations

import argparse
import sys
import time
import zipfile
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from engine.state import make_state

from engine.book import top_levels
from engine.jitcache import flush_if_engine_changed
from engine.matcher import process_one
from engine.records import (
    ACTION_CANCEL,
    ACTION_NEW,
    ACTION_REPLACE,
    EV_FILL,
    EV_REJECT,
    ORDER_DTYPE,
    PRICE_NONE,
    R_MAKER,
    SIDE_BUY,
    SIDE_SELL,
    TIF_GTC,
    TIF_IOC,
    TYPE_LIMIT,
)

# --- constants ----------------------------------------------------------------------------

UNITS_PER_LOBSTER = 10**4  # 1e-8 price units per LOBSTER price unit (1/10000 dollar)
EMPTY_ASK = 9999999999
EMPTY_BID = -9999999999
BOOK_ACCOUNT = 1  # every resting order (seed, adjustment, known order)
TAKER_ACCOUNT = 2  # match mode: the aggressive IOCs rebuilt from execution runs
SYNTHETIC_BASE = 1 << 40  # ids of seed / adjustment orders; LOBSTER ids are far below
MSG_COLS = 6  # time, type, order_id, size, price, direction
MAX_DIVERGENCES = 10

# message columns after parsing (time becomes integer nanoseconds after midnight)
M_TS, M_TYPE, M_ID, M_SIZE, M_PRICE, M_DIR = range(6)

USAGE_ERROR = 2
KNOWN_FROM_BACK = True  # size nobody named must come out of named orders: the youngest first


class LobsterError(ValueError):
    """Bad input: the message names the file and the row."""


# --- reading ------------------------------------------------------------------------------

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


# --- the venue ------------------------------------------------------------------------------


def venue_toml(data: LobsterData, max_orders: int = 1 << 18) -> str:
    """One symbol, tick 0.0001 (LOBSTER prices are dollars x 10000), no collar, no limits."""
    live = data.book[:, 2][data.book[:, 2] > 0]
    ref = int(live[0]) if len(live) else 10000
    return (
        f'[symbols.{data.ticker}]\ntick = "0.0001"\nref_price = "{ref / 10000:.4f}"\nband_bps = 0\n\n'
        f"[accounts.default]\n\n"
        f"[engine]\nmax_orders = {max_orders}\nmax_levels = 65536\nmax_accounts = 16\n"
    )


# --- conversion -----------------------------------------------------------------------------


@dataclass
class Conversion:
    orders: np.ndarray  # ORDER_DTYPE
    msg_end: np.ndarray  # int64 [n_messages]: records emitted up to and including message i
    compare: np.ndarray  # bool [n_messages]: compare the book after message i with row i
    stats: dict[str, int]
    runs: list = field(default_factory=list)  # match mode: (last row, [(lob_id, price, size, submitted in file)], hidden, IOC id)
    tb_lob: dict = field(default_factory=dict)  # tickbook id -> LOBSTER id (0 = anonymous liquidity)
    evidence: str = "full"
    adjusted: list = field(default_factory=list)  # (message index, side, price, "seeded"/"reduced"/"dropped")


class _Flow:
    """Order records being emitted, as parallel lists (one NumPy array at the end)."""

    def __init__(self):
        self.action, self.oid, self.side, self.price, self.qty, self.acct, self.tif, self.msg, self.ts = (
            [], [], [], [], [], [], [], [], []
        )
        self.cur_msg = 0
        self.cur_ts = 0

    def _add(self, action, oid, side, price, qty, acct, tif):
        self.action.append(action)
        self.oid.append(oid)
        self.side.append(side)
        self.price.append(price)
        self.qty.append(qty)
        self.acct.append(acct)
        self.tif.append(tif)
        self.msg.append(self.cur_msg)
        self.ts.append(self.cur_ts)

    def new(self, oid, side, price, qty, acct=BOOK_ACCOUNT, tif=TIF_GTC):
        self._add(ACTION_NEW, oid, side, price * UNITS_PER_LOBSTER, qty, acct, tif)

    def cancel(self, oid):
        self._add(ACTION_CANCEL, oid, 0, PRICE_NONE, 0, BOOK_ACCOUNT, 0)

    def replace(self, oid, price, qty):
        self._add(ACTION_REPLACE, oid, 0, price * UNITS_PER_LOBSTER, qty, BOOK_ACCOUNT, 0)

    def __len__(self):
        return len(self.action)

    def records(self) -> np.ndarray:
        n = len(self.action)
        out = np.zeros(n, ORDER_DTYPE)
        out["ts"] = np.array(self.ts, np.uint64)
        out["order_id"] = np.array(self.oid, np.uint64)
        out["price"] = np.array(self.price, np.int64)
        out["qty"] = np.array(self.qty, np.int64)
        out["msg_seq"] = np.array(self.msg, np.int64)
        out["account"] = np.array(self.acct, np.uint32)
        out["symbol"] = 0
        out["action"] = np.array(self.action, np.uint8)
        out["side"] = np.array(self.side, np.uint8)
        out["type"] = np.where(out["action"] == ACTION_NEW, TYPE_LIMIT, 0).astype(np.uint8)
        out["tif"] = np.array(self.tif, np.uint8)
        return out


class _Model:
    """The converter's view of the book: per side and price a FIFO list of tickbook ids.

    Every change goes through add / reduce, which also emit the flow record, so the model and
    the emitted flow cannot drift apart. orders[tb] = [side, price, leaves, lob_id] where lob_id
    is 0 for anonymous liquidity (seed from the first row, or size taken from a later row)."""

    def __init__(self, flow: _Flow, stats: dict):
        self.q = (None, {}, {})
        self.tot = (None, {}, {})
        self.px = (None, [], [])  # ascending prices held per side
        self.orders: dict[int, list] = {}
        self.lob2tb: dict[int, int] = {}
        self.tb_lob: dict[int, int] = {}
        self.next_syn = SYNTHETIC_BASE
        self.flow = flow
        self.stats = stats

    def synthetic_id(self) -> int:
        self.next_syn += 1
        return self.next_syn

    def level(self, side, price) -> int:
        return self.tot[side].get(price, 0)

    def add(self, tb, lob, side, price, qty):
        q = self.q[side].get(price)
        if q is None:
            q = self.q[side][price] = []
            self.tot[side][price] = 0
            insort(self.px[side], price)
        q.append(tb)
        self.tot[side][price] += qty
        self.orders[tb] = [side, price, qty, lob]
        self.tb_lob[tb] = lob
        if lob:
            self.lob2tb[lob] = tb
        self.flow.new(tb, side, price, qty)

    def _unlink(self, tb, o):
        side, price = o[0], o[1]
        q = self.q[side][price]
        q.remove(tb)
        if not q:
            del self.q[side][price]
            del self.tot[side][price]
            px = self.px[side]
            del px[bisect_left(px, price)]
        del self.orders[tb]
        lob = o[3]
        if lob and self.lob2tb.get(lob) == tb:
            del self.lob2tb[lob]

    def reduce(self, tb, amount, emit=True):
        """Take amount (<= leaves) off order tb: REPLACE keeping priority, or CANCEL at zero."""
        o = self.orders[tb]
        left = o[2] - amount
        self.tot[o[0]][o[1]] -= amount
        if left == 0:
            self._unlink(tb, o)
            if emit:
                self.flow.cancel(tb)
        else:
            o[2] = left
            if emit:
                self.flow.replace(tb, o[1], left)

    def take_level(self, side, price, amount, skip=None) -> tuple[int, int]:
        """Take amount from the level: anonymous liquidity first (front first), then the named
        orders, youngest first (KNOWN_FROM_BACK; docs/lobster.md has the measurement).
        Returns (taken, taken from named orders)."""
        q = self.q[side].get(price)
        taken = from_known = 0
        if q is None:
            return 0, 0
        for anon_pass in (True, False):
            for tb in (list(q) if anon_pass or not KNOWN_FROM_BACK else q[::-1]):
                if amount == 0:
                    return taken, from_known
                if tb == skip:
                    continue
                o = self.orders[tb]
                if (o[3] == 0) != anon_pass:
                    continue
                t = min(amount, o[2])
                self.reduce(tb, t)
                taken += t
                if not anon_pass:
                    from_known += t
                amount -= t
        return taken, from_known

    def drop_level(self, side, price):
        for tb in list(self.q[side][price]):
            self.reduce(tb, self.orders[tb][2])

    def move_to_back(self, tb):
        """Cancel tb and enter its leaves again at the back of its level (same LOBSTER id)."""
        side, price, leaves, lob = self.orders[tb]
        self.reduce(tb, leaves)
        self.add(self.synthetic_id(), lob, side, price, leaves)


def _row_levels(row: np.ndarray, side: int) -> list[tuple[int, int]]:
    """Real levels of one side of an orderbook row, best first."""
    off = 2 if side == SIDE_BUY else 0
    out = []
    for k in range(len(row) // 4):
        size = int(row[4 * k + off + 1])
        if size == 0:
            break
        out.append((int(row[4 * k + off]), size))
    return out


def _seed_row(data: LobsterData) -> dict[int, list[tuple[int, int]]]:
    """Row 1 with message 1 undone: {side: [(price, size)] best first}."""
    row = data.book[0]
    m = data.messages[0]
    levels = {s: dict(_row_levels(row, s)) for s in (SIDE_BUY, SIDE_SELL)}
    typ, size, price, d = int(m[M_TYPE]), int(m[M_SIZE]), int(m[M_PRICE]), int(m[M_DIR])
    side = SIDE_BUY if d == 1 else SIDE_SELL
    if typ in (1, 2, 3, 4):
        lv = levels[side]
        delta = -size if typ == 1 else size
        lv[price] = lv.get(price, 0) + delta
        if lv[price] <= 0:
            del lv[price]
    return {
        SIDE_BUY: sorted(levels[SIDE_BUY].items(), reverse=True),
        SIDE_SELL: sorted(levels[SIDE_SELL].items()),
    }


def execution_runs(messages: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive type 4/5 rows with the same time and direction holding at least one
    type 4: [(first row, last row)]."""
    t = messages[:, M_TYPE]
    runs = []
    n = len(messages)
    i = 0
    while i < n:
        if t[i] in (4, 5):
            j = i
            while (
                j + 1 < n
                and t[j + 1] in (4, 5)
                and messages[j + 1, M_TS] == messages[i, M_TS]
                and messages[j + 1, M_DIR] == messages[i, M_DIR]
            ):
                j += 1
            if (t[i : j + 1] == 4).any():
                runs.append((i, j))
            i = j + 1
        else:
            i += 1
    return runs


EVIDENCE = ("none", "ahead", "full")


def convert(data: LobsterData, mode: str = "book", evidence: str = "full") -> Conversion:
    """LOBSTER messages to tickbook order records (see the module docstring and docs/lobster.md)."""
    if mode not in ("book", "match"):
        raise ValueError(f"mode must be 'book' or 'match', got {mode!r}")
    if evidence not in EVIDENCE:
        raise ValueError(f"evidence must be one of {EVIDENCE}, got {evidence!r}")
    msgs = data.messages
    book = data.book
    n = len(msgs)
    L = data.levels
    stats = dict.fromkeys(
        (
            "seed_orders", "adj_seeded", "adj_reduced", "adj_dropped", "adj_rows", "short_named",
            "orphan_from_known", "unplaced_size", "delete_excess", "type5", "type6", "type7", "runs",
            "hidden_runs", "moved_ahead", "grown", "repairs",
        ),
        0,
    )
    flow = _Flow()
    model = _Model(flow, stats)
    msg_end = np.zeros(n, np.int64)
    compare = np.ones(n, bool)

    # seed: one order per level of row 1 with message 1 undone, before message 1
    seed = _seed_row(data)
    flow.cur_msg = 0
    flow.cur_ts = int(msgs[0, M_TS])
    for side in (SIDE_BUY, SIDE_SELL):
        for price, size in seed[side]:
            model.add(model.synthetic_id(), 0, side, price, size)
            stats["seed_orders"] += 1
    prev_prices = {s: {p for p, _ in seed[s]} for s in (SIDE_BUY, SIDE_SELL)}
    for s_ in (SIDE_BUY, SIDE_SELL):
        prev_prices[("full", s_)] = False  # the seed row may hold L+1 levels: check fully
        prev_prices[("worst", s_)] = None

    # the rows whose shown prices differ from the previous row's: only there can a price be new
    pcols = np.r_[0 : 4 * L : 4, 2 : 4 * L : 4]
    changed = np.ones(n, bool)
    changed[1:] = (book[1:, pcols] != book[:-1, pcols]).any(axis=1)
    chg_idx = np.flatnonzero(changed)
    chg_rows = dict(zip(chg_idx.tolist(), book[chg_idx].tolist()))

    run_of = {}  # first row -> last row (match mode)
    if mode == "match":
        for a, b in execution_runs(msgs):
            run_of[a] = b
    runs_out = []
    run_end = -1
    cur_run = None  # match mode: the run of executions being read
    adjusted: list = []

    types = msgs[:, M_TYPE].tolist()
    ids = msgs[:, M_ID].tolist()
    sizes = msgs[:, M_SIZE].tolist()
    prices = msgs[:, M_PRICE].tolist()
    dirs = msgs[:, M_DIR].tolist()
    tss = msgs[:, M_TS].tolist()
    known_lob = set()  # LOBSTER ids submitted (type 1) in the file so far

    for i in range(n):
        flow.cur_msg = i + 1
        flow.cur_ts = tss[i]
        typ = types[i]
        lob = ids[i]
        size = sizes[i]
        price = prices[i]
        side = SIDE_BUY if dirs[i] == 1 else SIDE_SELL

        if mode == "match" and i in run_of:
            run_end = run_of[i]
            cur_run = _Run()
            stats["runs"] += 1
        in_run = i <= run_end

        if typ == 1:
            if lob in model.lob2tb:
                raise LobsterError(f"{data.message_source}: row {i + 1}: order id {lob} submitted twice")
            known_lob.add(lob)
            model.add(lob, lob, side, price, size)
        elif typ in (2, 3) or (typ == 4 and not in_run):
            _apply_reduction(model, stats, typ, lob, side, price, size)
        elif typ == 4:
            _note_execution(model, stats, cur_run, lob, side, price, size, known_lob, evidence)
        elif typ == 5:
            stats["type5"] += 1
            if in_run:
                cur_run.hidden = True
        elif typ == 6:
            stats["type6"] += 1  # a cross trade: no change to the visible book
        else:
            stats["type7"] += 1  # a trading halt / quoting / resume marker: the row repeats

        r = chg_rows.get(i)
        if r is not None:
            shown = _adjust(model, stats, r, prev_prices, L, cur_run.prices if in_run else frozenset(), adjusted, i)
        if in_run:
            if i == run_end:
                runs_out.append(_close_run(model, stats, cur_run, i))
            else:
                compare[i] = False  # NASDAQ's partial state inside one aggressor's run
        msg_end[i] = len(flow)
        if r is not None:
            prev_prices = shown

    stats["resting_at_end"] = len(model.orders)
    return Conversion(flow.records(), msg_end, compare, stats, runs_out, model.tb_lob, evidence, adjusted)


def _apply_reduction(model: _Model, stats, typ, lob, side, price, size):
    """Type 2 (partial cancel), 3 (delete) or 4 (execution, book mode): the level at price
    loses exactly size; the named order first, then anonymous liquidity, then the other named
    orders youngest first."""
    tb = model.lob2tb.get(lob)
    if tb is not None and model.orders[tb][1] != price:
        tb = None  # the id is at another price in our book: treat as unknown here
    rest = size
    if tb is not None:
        leaves = model.orders[tb][2]
        if typ == 3 and leaves > size:
            # NASDAQ deletes the order with `size` left; what we hold beyond that stays as
            # anonymous liquidity (cancelled out of sight, or never there)
            model.reduce(tb, size)
            model.orders[tb][3] = 0
            model.tb_lob[tb] = 0
            del model.lob2tb[lob]
            stats["delete_excess"] += 1
            return
        t = min(leaves, size)
        model.reduce(tb, t)
        rest -= t
        if rest:
            stats["short_named"] += 1
    if rest:
        taken, from_known = model.take_level(side, price, rest)
        if from_known:
            stats["orphan_from_known"] += 1
        if taken < rest:
            stats["unplaced_size"] += rest - taken


def _side_of_row(r: list, side: int) -> tuple[list, list]:
    """(prices, sizes) of one side's real levels in an orderbook row given as a list."""
    off = 2 if side == SIDE_BUY else 0
    sizes = r[off + 1 :: 4]
    n = sizes.index(0) if 0 in sizes else len(sizes)
    return r[off::4][:n], sizes[:n]


def _adjust(model: _Model, stats, r: list, prev_prices, L, skip=frozenset(), log=None, row_i=0):
    """The three out-of-view rules, on prices not visible in the previous row only. Returns what
    the next row needs as its `prev_prices`: per side the shown prices, whether the side showed
    all L levels and its worst shown price. Prices in skip (match mode: executed in the current
    run, whose executions the model has not applied yet) are left alone."""
    touched = False
    nxt = {}
    for side in (SIDE_BUY, SIDE_SELL):
        prices, sizes = _side_of_row(r, side)
        full = len(prices) == L
        shown_px = set(prices)
        nxt[side] = shown_px
        nxt[("full", side)] = full
        nxt[("worst", side)] = prices[-1] if prices else None
        prev = prev_prices[side]
        if full and prev_prices[("full", side)] and shown_px <= prev:
            # nothing new in view and the range did not grow past the previous full row's
            pw = prev_prices[("worst", side)]
            if (side == SIDE_BUY and prices[-1] >= pw) or (side == SIDE_SELL and prices[-1] <= pw):
                continue
        for k in range(len(prices)):
            price = prices[k]
            if price in prev or price in skip:
                continue
            diff = sizes[k] - model.tot[side].get(price, 0)
            if diff > 0:
                model.add(model.synthetic_id(), 0, side, price, diff)
                stats["adj_seeded"] += 1
                log.append((row_i, side, price, "seeded"))
                touched = True
            elif diff < 0:
                model.take_level(side, price, -diff)
                stats["adj_reduced"] += 1
                log.append((row_i, side, price, "reduced"))
                touched = True
        # prices held inside the row's visible range that the row does not show
        px = model.px[side]
        if side == SIDE_BUY:
            cand = px[bisect_left(px, prices[-1]) :] if full else px
        else:
            cand = px[: bisect_left(px, prices[-1] + 1)] if full else px
        drop = [price for price in cand if price not in shown_px and price not in prev and price not in skip]
        for price in drop:
            model.drop_level(side, price)
            stats["adj_dropped"] += 1
            log.append((row_i, side, price, "dropped"))
            touched = True
    if touched:
        stats["adj_rows"] += 1
    return nxt


def _consume(model: _Model, used: dict, side, price, tb, size) -> int:
    """Record in `used` which orders of our book NASDAQ's execution of size at price takes:
    the named order tb first, then anonymous liquidity front first, then the others front
    first (executions hit the oldest order at the price). Returns what could not be placed."""
    if tb is not None:
        t = min(size, model.orders[tb][2] - used.get(tb, 0))
        if t > 0:
            used[tb] = used.get(tb, 0) + t
            size -= t
    q = model.q[side].get(price, ())
    for anon_pass in (True, False):
        for o_tb in q:
            if size == 0:
                return 0
            o = model.orders[o_tb]
            if (o[3] == 0) != anon_pass:
                continue
            t = min(size, o[2] - used.get(o_tb, 0))
            if t > 0:
                used[o_tb] = used.get(o_tb, 0) + t
                size -= t
    return size


class _Run:
    def __init__(self):
        self.execs = []  # (lob_id, price, size, submitted in the file)
        self.hidden = False
        self.used: dict[int, int] = {}  # our order -> size NASDAQ's executions take from it
        self.side = 0
        self.unplaced = 0
        self.prices: set[int] = set()


def _note_execution(model: _Model, stats, run: _Run, lob, side, price, size, known_lob, evidence="full"):
    """Match mode: a visible execution inside a run. Nothing is emitted for it (one IOC closes
    the run), but with `evidence` the execution corrects our reconstruction of the queue, which
    the data only shows while the price is in view: the executed order sits right behind what
    this run has executed at that price, with at least `size` left. So orders our queue holds
    ahead of it go behind it (same ids and sizes), and when it holds less than `size` (size
    that an earlier guess took from it, or an id never seen at a level without anonymous
    liquidity), the missing size is taken from the level's other orders (anonymous first, then
    the youngest) and given to it. The level's total, which the row shows, never changes."""
    tb = model.lob2tb.get(lob)
    if tb is not None and model.orders[tb][1] != price:
        tb = None
    run.side = side
    run.prices.add(price)
    run.execs.append((lob, price, size, lob in known_lob))
    if evidence != "none":
        _front(model, stats, run, side, price, tb, lob if lob in known_lob else 0, size, grow=evidence == "full")
        tb = model.lob2tb.get(lob, tb) if tb is not None or lob in known_lob else None
        if tb is not None and (tb not in model.orders or model.orders[tb][1] != price):
            tb = None
    run.unplaced += _consume(model, run.used, side, price, tb, size)


def _front(model: _Model, stats, run: _Run, side, price, tb, lob, size, grow=True):
    """Make the level's queue agree with an execution of `size` on tb (a known order of our
    book) or, tb None, on an id we hold only as anonymous liquidity (lob = its id when it was
    submitted in the file, else 0). What this run executed earlier stays in front; the executed
    order comes next with at least `size`; everything else follows in its previous order."""
    q = model.q[side].get(price)
    if not q:
        return
    used = run.used
    orders = model.orders
    front = [o for o in q if used.get(o, 0)]
    rest = [o for o in q if not used.get(o, 0)]
    if tb is not None:
        target = tb
    else:
        target = next((o for o in front if orders[o][3] == 0 and orders[o][2] > used[o]), None)
        if target is None and lob == 0:
            target = next((o for o in rest if orders[o][3] == 0), None)
    in_front = target is not None and bool(used.get(target, 0))
    avail = orders[target][2] - used.get(target, 0) if target is not None else 0
    # remainders of other orders executed earlier in the run are not ahead of this one
    stale = [o for o in front if o != target and orders[o][2] > used[o]]
    need = max(0, size - avail) if grow else 0
    if target is None and need == 0:
        return
    if not stale and need == 0 and (in_front or rest[:1] == [target]):
        return  # the common case: our queue already agrees
    behind = []  # [leaves, lob] in queue order, the executed order excluded
    for o in stale:
        r = orders[o][2] - used[o]
        behind.append([r, orders[o][3]])
        model.reduce(o, r)  # its executed part keeps its place
    for o in rest:
        if o != target:
            behind.append([orders[o][2], orders[o][3]])
    got = 0
    for entry in [e for e in behind if e[1] == 0] + [e for e in behind if e[1] != 0][::-1]:
        if got == need:
            break
        t = min(need - got, entry[0])
        entry[0] -= t
        got += t
    stats["grown" if got else "moved_ahead"] += 1
    t_lob = model.tb_lob.get(target, 0) if target is not None else lob
    for o in rest:
        model.reduce(o, orders[o][2])
    first = got if in_front else avail + got
    if first:
        model.add(model.synthetic_id(), t_lob, side, price, first)
    for leaves, o_lob in behind:
        if leaves:
            model.add(model.synthetic_id(), o_lob, side, price, leaves)


def _close_run(model: _Model, stats, run: _Run, last_row):
    """Match mode: the run's aggressor as one IOC, then repairs so the book is NASDAQ's again.

    The IOC takes the opposite side of the resting orders, qty = the visible executions, limit =
    the worst executed price. The model predicts the engine's fills by price-time priority (the
    engine's own fills are what gets compared; a wrong prediction would show up as rejects and
    book divergences). NASDAQ's executions (run.used) are then applied as truth: an order the
    engine filled more than NASDAQ did gets the difference back as a new order at the back of
    its level (same LOBSTER id); one it filled less is reduced (keeping its place)."""
    if run.hidden:
        stats["hidden_runs"] += 1
    if run.unplaced:
        stats["unplaced_size"] += run.unplaced
    side = run.side
    qty = sum(e[2] for e in run.execs)
    limit = min(e[1] for e in run.execs) if side == SIDE_BUY else max(e[1] for e in run.execs)
    taker = model.synthetic_id()
    model.flow.new(taker, SIDE_SELL if side == SIDE_BUY else SIDE_BUY, limit, qty, acct=TAKER_ACCOUNT, tif=TIF_IOC)
    predicted: dict[int, tuple[int, int, int]] = {}  # tb -> (filled, price, lob), fill order
    rem = qty
    px = model.px[side]
    while rem > 0 and px:
        best = px[-1] if side == SIDE_BUY else px[0]
        if (side == SIDE_BUY and best < limit) or (side == SIDE_SELL and best > limit):
            break
        tb = model.q[side][best][0]
        o = model.orders[tb]
        t = min(rem, o[2])
        predicted[tb] = (t, best, o[3])
        model.reduce(tb, t, emit=False)
        rem -= t
    for tb in list(predicted) + [k for k in run.used if k not in predicted]:
        d = run.used.get(tb, 0) - (predicted[tb][0] if tb in predicted else 0)
        if d == 0:
            continue
        stats["repairs"] += 1
        o = model.orders.get(tb)
        if d > 0:
            model.reduce(tb, d)
        elif o is not None:  # filled too much, still resting: all of it to the back
            o_side, o_price, leaves, lob = o
            model.reduce(tb, leaves)
            model.add(model.synthetic_id(), lob, o_side, o_price, leaves - d)
        else:
            _, o_price, lob = predicted[tb]
            model.add(model.synthetic_id(), lob, side, o_price, -d)
    return (last_row, run.execs, run.hidden, taker)


# --- replay through the engine and compare ----------------------------------------------------

# res[] slots of replay_compare
RES_COMPARED, RES_IDENTICAL, RES_REJECTS, RES_FILLS, RES_DIVERGENT, RES_FIRST_REJECT = range(6)


@njit(cache=True, nogil=True)
def replay_compare(st, orders, msg_end, book, compare, out, fills, res, div_rows, div_levels, reject_at):
    """Run every record through the engine; after each message i with compare[i], compare both
    sides' top levels with orderbook row i. Maker fills go to fills[k] = (msg_seq, order_id,
    price units, qty); the first divergent rows and the engine's levels there go to div_rows /
    div_levels; the first rejected records to reject_at."""
    n_lv = book.shape[1] // 4
    ap = np.zeros(n_lv, np.int64)
    aq = np.zeros(n_lv, np.int64)
    bp = np.zeros(n_lv, np.int64)
    bq = np.zeros(n_lv, np.int64)
    o = 0
    n_fill = 0
    for i in range(len(msg_end)):
        while o < msg_end[i]:
            n = process_one(st, orders, o, out, 0)
            for k in range(n):
                kind = out[k].kind
                if kind == EV_REJECT:
                    if res[RES_REJECTS] < len(reject_at):
                        reject_at[res[RES_REJECTS]] = o
                    res[RES_REJECTS] += 1
                elif kind == EV_FILL and out[k].reason == R_MAKER:
                    fills[n_fill, 0] = out[k].msg_seq
                    fills[n_fill, 1] = np.int64(out[k].order_id)
                    fills[n_fill, 2] = out[k].price
                    fills[n_fill, 3] = out[k].qty
                    n_fill += 1
            o += 1
        if not compare[i]:
            continue
        res[RES_COMPARED] += 1
        na = top_levels(st, 0, SIDE_SELL, n_lv, ap, aq)
        nb = top_levels(st, 0, SIDE_BUY, n_lv, bp, bq)
        ok = True
        for k in range(n_lv):
            if k < na:
                if book[i, 4 * k] != ap[k] or book[i, 4 * k + 1] != aq[k]:
                    ok = False
            elif book[i, 4 * k + 1] != 0:
                ok = False
            if k < nb:
                if book[i, 4 * k + 2] != bp[k] or book[i, 4 * k + 3] != bq[k]:
                    ok = False
            elif book[i, 4 * k + 3] != 0:
                ok = False
        if ok:
            res[RES_IDENTICAL] += 1
        else:
            d = res[RES_DIVERGENT]
            if d < len(div_rows):
                div_rows[d] = i
                for k in range(n_lv):
                    div_levels[d, 4 * k] = ap[k] if k < na else EMPTY_ASK
                    div_levels[d, 4 * k + 1] = aq[k] if k < na else 0
                    div_levels[d, 4 * k + 2] = bp[k] if k < nb else EMPTY_BID
                    div_levels[d, 4 * k + 3] = bq[k] if k < nb else 0
            res[RES_DIVERGENT] = d + 1
    res[RES_FILLS] = n_fill


def _replay_fn():
    """replay_compare, its on-disk cache dropped first when the engine's sources changed
    (it inlines the matcher; engine/jitcache.py)."""
    return flush_if_engine_changed(replay_compare, "lobster_replay_compare")


@dataclass
class Replay:
    compared: int
    identical: int
    rejects: int
    reject_at: np.ndarray
    fills: np.ndarray  # [k, 4] msg_seq (1-based message), order_id, price units, qty
    divergent: int
    div_rows: np.ndarray
    div_levels: np.ndarray
    seconds: float


def replay(data: LobsterData, conv: Conversion, venue=None) -> Replay:
    from engine.config import parse_venue
    from engine.records import EVENT_DTYPE

    if venue is None:
        venue = parse_venue(venue_toml(data, max_orders=max(1024, int(len(conv.orders)) + 16)), "<lobster venue>")
    st = make_state(venue)
    fn = _replay_fn()
    out = np.zeros(2 * len(conv.orders) + 8, EVENT_DTYPE)
    fills = np.zeros((len(conv.orders) + 1, 4), np.int64)
    res = np.zeros(8, np.int64)
    div_rows = np.zeros(MAX_DIVERGENCES, np.int64)
    div_levels = np.zeros((MAX_DIVERGENCES, data.book.shape[1]), np.int64)
    reject_at = np.zeros(MAX_DIVERGENCES, np.int64)
    t0 = time.perf_counter()
    fn(st, conv.orders, conv.msg_end, data.book, conv.compare, out, fills, res, div_rows, div_levels, reject_at)
    secs = time.perf_counter() - t0
    nd = int(min(res[RES_DIVERGENT], MAX_DIVERGENCES))
    return Replay(
        compared=int(res[RES_COMPARED]),
        identical=int(res[RES_IDENTICAL]),
        rejects=int(res[RES_REJECTS]),
        reject_at=reject_at[: min(int(res[RES_REJECTS]), MAX_DIVERGENCES)],
        fills=fills[: res[RES_FILLS]],
        divergent=int(res[RES_DIVERGENT]),
        div_rows=div_rows[:nd],
        div_levels=div_levels[:nd],
        seconds=secs,
    )


# --- match mode: NASDAQ's executions against the engine's fills ---------------------------------


def _merge_anonymous(seq: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """[(key, price, size)] -> [(key, price, size, n_merged)]: consecutive fills of anonymous
    liquidity (key 0: orders resting from before 09:30 or size known only from a row) at one
    price are one group, since the book cannot tell those orders apart."""
    out = []
    for key, price, size in seq:
        if key == 0 and out and out[-1][0] == 0 and out[-1][1] == price:
            k, p, s, c = out[-1]
            out[-1] = (0, p, s + size, c + 1)
        else:
            out.append((key, price, size, 1))
    return out


@dataclass
class MatchResult:
    runs: int = 0
    hidden_runs: int = 0
    executions: int = 0  # visible executions (type 4) in all runs
    hidden_executions: int = 0  # ... in runs that also hit hidden liquidity
    compared: int = 0  # outside hidden runs
    reproduced: int = 0
    known: int = 0  # outside hidden runs, on orders submitted in the file
    known_reproduced: int = 0
    hidden_reproduced: int = 0
    examples: list = field(default_factory=list)  # (row, nasdaq groups, engine groups)


def compare_executions(conv: Conversion, rep: Replay, max_examples: int = 200) -> MatchResult:
    res = MatchResult()
    fills = rep.fills
    seqs = fills[:, 0] if len(fills) else np.zeros(0, np.int64)
    tb_lob = conv.tb_lob
    for last_row, execs, hidden, _taker in conv.runs:
        msg = last_row + 1
        a, b = np.searchsorted(seqs, msg, "left"), np.searchsorted(seqs, msg, "right")
        eng = [(tb_lob.get(int(f[1]), 0), int(f[2]) // UNITS_PER_LOBSTER, int(f[3])) for f in fills[a:b]]
        nas_raw = [(lob if known else 0, price, size) for lob, price, size, known in execs]
        nas = _merge_anonymous(nas_raw)
        engm = _merge_anonymous(eng)
        res.runs += 1
        n_exec = len(execs)
        res.executions += n_exec
        ok_flags = []
        for g, grp in enumerate(nas):
            same = g < len(engm) and engm[g][:3] == grp[:3]
            ok_flags.extend([same] * grp[3])
        if hidden:
            res.hidden_runs += 1
            res.hidden_executions += n_exec
            res.hidden_reproduced += sum(ok_flags)
            continue
        res.compared += n_exec
        res.reproduced += sum(ok_flags)
        for (lob, price, size, known), ok in zip(execs, ok_flags):
            if known:
                res.known += 1
                res.known_reproduced += ok
        if not all(ok_flags) and len(res.examples) < max_examples:
            res.examples.append((last_row, nas, engm))
    return res


# --- report and command line ------------------------------------------------------------------


def _fmt_levels(row: np.ndarray) -> str:
    """'bid size@price ... | ask size@price ...' of an orderbook row (best first)."""
    parts = []
    for side, label in ((SIDE_BUY, "bid"), (SIDE_SELL, "ask")):
        prices, sizes = _side_of_row([int(x) for x in row], side)
        parts.append(label + " " + (" ".join(f"{s}@{p / 10000:.4f}" for p, s in zip(prices, sizes)) or "-"))
    return " | ".join(parts)


def _fmt_message(m: np.ndarray) -> str:
    ts = int(m[M_TS])
    return f"{ts // 10**9}.{ts % 10**9:09d},{int(m[M_TYPE])},{int(m[M_ID])},{int(m[M_SIZE])},{int(m[M_PRICE])},{int(m[M_DIR])}"


def report(data: LobsterData, conv: Conversion, rep: Replay, mode: str, timings: dict, match: MatchResult | None, out) -> None:
    n = len(data.messages)
    st = conv.stats
    tc = data.type_counts
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"{data.name}: {data.ticker}, {data.levels} level(s), {n:,} messages, mode {mode}")
    p("  types     " + "  ".join(f"{t}: {tc.get(t, 0):,}" for t in range(1, 8))
      + (f"; {data.times_rounded} time(s) with more than 9 decimals rounded to the ns" if data.times_rounded else ""))
    p(f"            type 5 (hidden executions) and 6 (cross trades) leave the visible book alone; "
      f"type 7 (halts): {st['type7']} (halt {data.halts['halt']}, quoting {data.halts['quoting']}, resume {data.halts['resume']})")
    n_new = int((conv.orders["action"] == ACTION_NEW).sum())
    n_can = int((conv.orders["action"] == ACTION_CANCEL).sum())
    n_rep = int((conv.orders["action"] == ACTION_REPLACE).sum())
    p(f"  flow      {len(conv.orders):,} records: NEW {n_new:,}, CANCEL {n_can:,}, REPLACE {n_rep:,}; seed {st['seed_orders']} orders")
    p(f"  rows      compared {rep.compared:,}, identical {rep.identical:,} ({100 * rep.identical / max(1, rep.compared):.3f}%)"
      + (f"; {n - rep.compared:,} rows inside execution runs not compared" if mode == "match" else ""))
    adj = st["adj_seeded"] + st["adj_reduced"] + st["adj_dropped"]
    p(f"  adjusted  {adj:,} levels outside the previous row's view, on {st['adj_rows']:,} rows: "
      f"{st['adj_seeded']:,} seeded, {st['adj_reduced']:,} reduced, {st['adj_dropped']:,} dropped")
    p(f"  unknown   events on ids not in the book that had to take from named orders: {st['orphan_from_known']:,}; "
      f"events larger than the named order: {st['short_named']:,}; deletions smaller than the order: {st['delete_excess']:,}; "
      f"size nowhere to take: {st['unplaced_size']:,}")
    if rep.rejects:
        p(f"  REJECTS   {rep.rejects:,} records rejected by the engine (first at records {', '.join(str(int(x)) for x in rep.reject_at)})")
    if match is not None:
        p(f"  match     {match.runs:,} runs ({match.hidden_runs:,} also hit hidden liquidity); executions as evidence ({conv.evidence}): "
          f"{st['moved_ahead']:,} levels reordered, {st['grown']:,} executed orders given size from younger ones; "
          f"{st['repairs']:,} repairs after IOCs")
        p(f"  executions outside hidden runs: {match.reproduced:,} / {match.compared:,} reproduced "
          f"({100 * match.reproduced / max(1, match.compared):.2f}%); on orders submitted in the file: "
          f"{match.known_reproduced:,} / {match.known:,} ({100 * match.known_reproduced / max(1, match.known):.2f}%); "
          f"in hidden runs: {match.hidden_reproduced:,} / {match.hidden_executions:,}")
    rate = n / max(1e-9, timings["read"] + timings["convert"] + timings["replay"])
    p(f"  time      read {timings['read']:.2f} s, convert {timings['convert']:.2f} s, replay+compare {timings['replay']:.2f} s "
      f"({rate:,.0f} messages/s end to end)")
    for k in range(len(rep.div_rows)):
        i = int(rep.div_rows[k])
        p(f"  DIVERGENCE at message {i + 1}: {_fmt_message(data.messages[i])}")
        p(f"    expected {_fmt_levels(data.book[i])}")
        p(f"    actual   {_fmt_levels(rep.div_levels[k])}")
    if match is not None:
        for row, nas, eng in match.examples[:5]:
            fmt = lambda gs: " ".join(f"{'id ' + str(k) if k else 'anon'}:{s}@{pr / 10000:.4f}" for k, pr, s, _ in gs)  # noqa: E731
            p(f"  execution run ending at message {row + 1}: NASDAQ {fmt(nas)} | engine {fmt(eng)}")


def run(src: str, orderbook: str | None = None, mode: str = "book", flow_out: str | None = None, out=sys.stdout, evidence: str = "full"):
    """Read, convert, replay and compare one file pair; returns (data, conv, replay, match)."""
    from engine.config import parse_venue

    t0 = time.perf_counter()
    data = read_lobster(src, orderbook)
    t1 = time.perf_counter()
    conv = convert(data, mode, evidence)
    t2 = time.perf_counter()
    vtext = venue_toml(data, max_orders=max(1024, len(conv.orders) + 16))
    venue = parse_venue(vtext, "<lobster venue>")
    rep = replay(data, conv, venue)
    t3 = time.perf_counter()
    match = compare_executions(conv, rep) if mode == "match" else None
    if flow_out:
        from engine.codec import write_flow_csv

        fp = Path(flow_out)
        with open(fp, "wb") as fh:
            write_flow_csv(fh, conv.orders, venue)
        fp.with_suffix(".venue.toml").write_text(vtext)
    timings = {"read": t1 - t0, "convert": t2 - t1, "replay": t3 - t2}
    if out is not None:
        report(data, conv, rep, mode, timings, match, out)
        if flow_out:
            print(f"  flow      written to {flow_out} (venue: {Path(flow_out).with_suffix('.venue.toml')})", file=out)
    return data, conv, rep, match, timings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="tickbook lobster",
        description="Replay LOBSTER (NASDAQ) data through the engine and compare the book after every message.",
    )
    ap.add_argument("source", metavar="ZIP_OR_MESSAGE_CSV")
    ap.add_argument("--orderbook", metavar="ORDERBOOK_CSV", help="orderbook file of a message CSV (default: inferred)")
    ap.add_argument("--mode", choices=["book", "match"], default="book",
                    help="book: executions reduce the named order; match: each execution run is one aggressive IOC")
    ap.add_argument("--flow", metavar="OUT.csv", help="write the converted order flow (and OUT.venue.toml beside it)")
    ap.add_argument("--evidence", choices=EVIDENCE, default="full",
                    help="match mode: how NASDAQ's executions correct the reconstructed queue before each IOC: "
                         "none; ahead (orders ahead of the executed one go behind it); full (default: also give "
                         "the executed order the size it proves, taken from anonymous, then the youngest orders)")
    args = ap.parse_args(argv)
    try:
        _, _, rep, _, _ = run(args.source, args.orderbook, args.mode, args.flow, out=sys.stdout, evidence=args.evidence)
    except LobsterError as e:
        print(f"tickbook lobster: {e}", file=sys.stderr)
        return USAGE_ERROR
    ok = rep.identical == rep.compared and rep.rejects == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
