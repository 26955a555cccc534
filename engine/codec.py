"""CSV and .npy edges: order-flow CSV -> order records, event records -> events CSV.

Both directions are njit byte loops over the whole file: a CSV library would hand back
Python strings or typed columns, and the rulebook's row-level rules (MALFORMED per
field, raw echo of the request in REJECT) need the bytes anyway. Parsing follows
docs/rulebook.md, section 3; writing, section 6.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from engine.config import VenueConfig
from engine.records import (
    ACTION_CANCEL,
    ACTION_KILL,
    ACTION_MALFORMED,
    ACTION_NEW,
    ACTION_REPLACE,
    EV_ACK,
    EV_CANCELED,
    EV_FILL,
    EV_KILLED,
    EV_REJECT,
    EV_REPLACED,
    EVENT_DTYPE,
    EVENT_NAMES,
    MAX_PRICE_UNITS,
    ORDER_DTYPE,
    PRICE_DECIMALS,
    PRICE_INVALID,
    PRICE_NONE,
    QTY_CLAMP,
    QTY_INVALID,
    REASON_NAMES,
    SIDE_BUY,
    SIDE_SELL,
    SYMBOL_UNKNOWN,
    TIF_FOK,
    TIF_GTC,
    TIF_IOC,
    TIF_POST,
    TYPE_LIMIT,
    TYPE_MARKET,
)
from engine.threads import THREADS, pool

FLOW_HEADER = "ts,account,action,symbol,order_id,side,type,tif,price,qty"
EVENTS_HEADER = "seq,event,symbol,order_id,account,side,price,qty,leaves,contra_id,detail"
N_FIELDS = 10

# _nrt=False: nothing here allocates (callers pass every buffer in), and reference counting
# would incref/decref the ~20 array arguments on every per-row and per-field call.
_JIT = dict(cache=True, nogil=True, _nrt=False)

# Both directions run on every core the process may use (engine/threads.py): a file parses
# in PARSE_THREADS pieces that end at row ends, events are formatted a block a thread.
PARSE_THREADS = THREADS
PARSE_PIECE_MIN = 1 << 20  # below a MiB, one thread: starting others costs more than it saves


U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
U32_MAX = np.uint64(0xFFFFFFFF)


class FlowError(ValueError):
    """A flow that cannot be replayed at all (unreadable file, wrong header)."""


def _table(words: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    width = max([len(w) for w in words] + [1])
    tab = np.zeros((max(len(words), 1), width), np.uint8)
    lens = np.zeros(max(len(words), 1), np.int64)
    for i, w in enumerate(words):
        tab[i, : len(w)] = np.frombuffer(w, np.uint8)
        lens[i] = len(w)
    return tab, lens


def _words(mapping: dict[int, str]) -> list[bytes]:
    out = [b""] * (max(mapping) + 1)
    for k, v in mapping.items():
        out[k] = v.encode()
    return out


# Enum tokens, indexed by their code, for matching input and writing output.
ACTIONS = {ACTION_NEW: "NEW", ACTION_CANCEL: "CANCEL", ACTION_REPLACE: "REPLACE", ACTION_KILL: "KILL"}
_ACTION_TAB, _ACTION_LEN = _table(_words(ACTIONS))
_SIDE_TAB, _SIDE_LEN = _table(_words({SIDE_BUY: "BUY", SIDE_SELL: "SELL"}))
_TYPE_TAB, _TYPE_LEN = _table(_words({TYPE_LIMIT: "LIMIT", TYPE_MARKET: "MARKET"}))
_TIF_TAB, _TIF_LEN = _table(_words({TIF_GTC: "GTC", TIF_IOC: "IOC", TIF_FOK: "FOK", TIF_POST: "POST"}))
_EVENT_TAB, _EVENT_LEN = _table(_words(EVENT_NAMES))
_REASON_TAB, _REASON_LEN = _table(_words(REASON_NAMES))


# --- parsing --------------------------------------------------------------------------


@njit(**_JIT)
def _table_index(buf, s, e, tab, lens, first, missing):
    """Index (from `first`) of the table word equal to buf[s:e], or `missing`."""
    n = e - s
    for k in range(first, len(lens)):
        if lens[k] != n:
            continue
        ok = True
        for j in range(n):
            if buf[s + j] != tab[k, j]:
                ok = False
                break
        if ok:
            return k
    return missing


@njit(**_JIT)
def _match_token(buf, s, e, tab, lens):
    """Enum code of the token buf[s:e], or 0 (no enum has code 0)."""
    return _table_index(buf, s, e, tab, lens, 1, 0)


@njit(**_JIT)
def _parse_uint(buf, s, e, max_value):
    """(ok, value) for a digits-only unsigned integer not above max_value."""
    if e <= s:
        return False, np.uint64(0)
    v = np.uint64(0)
    for j in range(s, e):
        c = buf[j]
        if c < 48 or c > 57:
            return False, np.uint64(0)
        d = np.uint64(c - 48)
        if v > (max_value - d) // np.uint64(10):
            return False, np.uint64(0)
        v = v * np.uint64(10) + d
    return True, v


@njit(**_JIT)
def _parse_number(buf, s, e):
    """A decimal number by value: (ok, negative, int_part clamped to 2**62, frac digits
    scaled to 1e-8, whether digits past the 8th decimal are non-zero, whether the
    fraction is non-zero)."""
    j = s
    neg = False
    if j < e and (buf[j] == 43 or buf[j] == 45):  # + -
        neg = buf[j] == 45
        j += 1
    ip = np.int64(0)
    n_digits = 0
    while j < e and 48 <= buf[j] <= 57:
        # Clamp before the multiply can overflow: anything this large is out of range anyway.
        if ip > (2**62 - 9) // 10:
            ip = np.int64(2**62)
        else:
            ip = ip * 10 + (buf[j] - 48)
        n_digits += 1
        j += 1
    frac = np.int64(0)
    frac_nonzero = False
    beyond = False
    if j < e and buf[j] == 46:  # .
        j += 1
        k = 0
        while j < e and 48 <= buf[j] <= 57:
            d = buf[j] - 48
            if d != 0:
                frac_nonzero = True
            if k < PRICE_DECIMALS:
                frac = frac * 10 + d
            elif d != 0:
                beyond = True
            k += 1
            n_digits += 1
            j += 1
        while k < PRICE_DECIMALS:
            frac *= 10
            k += 1
    ok = j == e and n_digits > 0
    return ok, neg, ip, frac, beyond, frac_nonzero


@njit(**_JIT)
def _encode_qty(neg, ip, frac_nonzero):
    if frac_nonzero:
        return np.int64(QTY_INVALID)
    if ip > QTY_CLAMP:
        ip = np.int64(QTY_CLAMP)
    return -ip if neg else ip


@njit(**_JIT)
def _encode_price(neg, ip, frac, beyond):
    if beyond:
        return np.int64(PRICE_INVALID)
    if ip > MAX_PRICE_UNITS // 10**PRICE_DECIMALS + 1:
        return np.int64(PRICE_INVALID) if not neg else np.int64(-1)
    units = ip * 10**PRICE_DECIMALS + frac
    if units > MAX_PRICE_UNITS:
        return np.int64(PRICE_INVALID) if not neg else np.int64(-1)
    return -units if neg else units


@njit(**_JIT)
def _find_symbol(buf, s, e, sym_tab, sym_len):
    return _table_index(buf, s, e, sym_tab, sym_len, 0, SYMBOL_UNKNOWN)


@njit(**_JIT)
def _parse_row(buf, s, e, rec, fs, fe, sym_tab, sym_len, atab, alen, stab, slen, ttab, tlen, itab, ilen):
    """Fill rec from the row buf[s:e] (fields found into fs/fe); malformed -> ACTION_MALFORMED."""
    nf = 0
    fs[0] = s
    j = s
    while j < e:
        if buf[j] == 44:  # ,
            if nf + 1 >= len(fs):
                nf = len(fs)  # too many fields
                break
            fe[nf] = j
            nf += 1
            fs[nf] = j + 1
        j += 1
    if nf < len(fs):
        fe[nf] = e
        nf += 1
    rec.action = ACTION_MALFORMED
    if nf != N_FIELDS:
        return
    action = _match_token(buf, fs[2], fe[2], atab, alen)
    if action == 0:
        return
    ok, ts = _parse_uint(buf, fs[0], fe[0], U64_MAX)
    if not ok:
        return
    ok, acct = _parse_uint(buf, fs[1], fe[1], U32_MAX)
    if not ok:
        return
    rec.ts = ts
    rec.account = np.uint32(acct)
    if action == ACTION_KILL:
        rec.action = action
        return
    ok, oid = _parse_uint(buf, fs[4], fe[4], U64_MAX)
    if not ok:
        return
    rec.order_id = oid
    if action == ACTION_CANCEL:
        rec.action = action
        return
    if action == ACTION_NEW:
        side = _match_token(buf, fs[5], fe[5], stab, slen)
        otype = _match_token(buf, fs[6], fe[6], ttab, tlen)
        tif = _match_token(buf, fs[7], fe[7], itab, ilen)
        if side == 0 or otype == 0 or tif == 0:
            return
        rec.side = side
        rec.type = otype
        rec.tif = tif
        rec.symbol = _find_symbol(buf, fs[3], fe[3], sym_tab, sym_len)
    # NEW and REPLACE: qty required, price optional.
    if fe[9] == fs[9]:
        return
    ok, neg, ip, frac, beyond, frac_nonzero = _parse_number(buf, fs[9], fe[9])
    if not ok:
        return
    rec.qty = _encode_qty(neg, ip, frac_nonzero)
    if fe[8] == fs[8]:
        rec.price = PRICE_NONE
    else:
        ok, neg, ip, frac, beyond, frac_nonzero = _parse_number(buf, fs[8], fe[8])
        if not ok:
            return
        rec.price = _encode_price(neg, ip, frac, beyond)
    rec.action = action


@njit(**_JIT)
def _count_rows(buf, start, end):
    """Rows in buf[start:end] (end is a row's end: a newline's next byte, or len(buf))."""
    n = 0
    j = start
    while j < end:
        k = j
        while k < end and buf[k] != 10:
            k += 1
        n += 1
        j = k + 1
    return n


@njit(**_JIT)
def parse_rows(
    buf, start, end, n, orders, row_start, row_end, fs, fe, sym_tab, sym_len, atab, alen, stab, slen, ttab, tlen,
    itab, ilen,
):
    """Parse the rows of buf[start:end] into orders[n:], numbered msg_seq n + 1, ...
    fs/fe (N_FIELDS + 1 each) are scratch for the field bounds of one row."""
    while start < end:
        j = start
        k = j
        while k < end and buf[k] != 10:
            k += 1
        e = k
        if e > j and buf[e - 1] == 13:  # \r
            e -= 1
        row_start[n] = j
        row_end[n] = e
        rec = orders[n]
        rec.msg_seq = n + 1
        _parse_row(buf, j, e, rec, fs, fe, sym_tab, sym_len, atab, alen, stab, slen, ttab, tlen, itab, ilen)
        n += 1
        start = k + 1
    return n


@dataclass
class Flow:
    """An order flow ready for the matcher, with its source text kept for REJECT echoes."""

    orders: np.ndarray
    raw: np.ndarray | None = None  # the file's bytes (CSV input only)
    row_start: np.ndarray | None = None
    row_end: np.ndarray | None = None
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.orders)


def symbol_table(venue: VenueConfig) -> tuple[np.ndarray, np.ndarray]:
    return _table([s.name.encode() for s in venue.symbols])


def parse_flow_bytes(data: bytes, venue: VenueConfig, source: str = "<memory>") -> Flow:
    nl = data.find(b"\n")
    header = data if nl < 0 else data[:nl]
    if header.endswith(b"\r"):
        header = header[:-1]
    if header != FLOW_HEADER.encode():
        shown = header[:120].decode("utf-8", "replace")
        raise FlowError(f"{source}: row 1: header must be '{FLOW_HEADER}', got '{shown}'")
    buf = np.frombuffer(data, np.uint8)
    start = len(data) if nl < 0 else nl + 1
    # Pieces that end at row ends, parsed side by side (the njit loops release the GIL).
    cuts = [start]
    for k in range(1, PARSE_THREADS if len(data) - start >= PARSE_PIECE_MIN else 1):
        nl_k = data.find(b"\n", max(cuts[-1], start + (len(data) - start) * k // PARSE_THREADS))
        if nl_k < 0:
            break
        cuts.append(nl_k + 1)
    cuts.append(len(data))
    pieces = list(zip(cuts[:-1], cuts[1:]))
    counts = list(pool().map(lambda p: _count_rows(buf, p[0], p[1]), pieces))
    firsts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n = int(firsts[-1])
    orders = np.zeros(n, ORDER_DTYPE)
    row_start = np.zeros(n, np.int64)
    row_end = np.zeros(n, np.int64)
    sym_tab, sym_len = symbol_table(venue)

    def parse(k):
        fs = np.zeros(N_FIELDS + 1, np.int64)
        fe = np.zeros(N_FIELDS + 1, np.int64)
        return parse_rows(
            buf, pieces[k][0], pieces[k][1], firsts[k], orders, row_start, row_end, fs, fe, sym_tab, sym_len,
            _ACTION_TAB, _ACTION_LEN, _SIDE_TAB, _SIDE_LEN, _TYPE_TAB, _TYPE_LEN, _TIF_TAB, _TIF_LEN,
        )

    list(pool().map(parse, range(len(pieces))))
    return Flow(orders, buf, row_start, row_end, source)


def read_flow(path: str | Path, venue: VenueConfig) -> Flow:
    """A flow from a CSV file or a .npy file of ORDER_DTYPE records."""
    p = Path(path)
    try:
        if p.suffix == ".npy":
            with open(p, "rb") as fh:
                # np.load takes anything without the .npy magic for a pickle (or a zip), and
                # says so in its own words: ours names the file once
                if fh.read(6) != b"\x93NUMPY":
                    raise FlowError(f"{p}: not a .npy file of order records (it does not begin with the .npy magic)")
                fh.seek(0)
                arr = np.load(fh, allow_pickle=False)
            if arr.dtype != ORDER_DTYPE:
                raise FlowError(f"{p}: records of dtype {arr.dtype}, expected tickbook's ORDER_DTYPE")
            if arr.ndim != 1:  # the matcher takes a 1-D array of records, nothing else
                raise FlowError(f"{p}: an array of shape {arr.shape}, expected a 1-D array of order records")
            return Flow(np.ascontiguousarray(arr), source=str(p))
        data = p.read_bytes()
    except FlowError:  # a FlowError is a ValueError: ours, already worded, passes through
        raise
    except OSError as e:
        raise FlowError(f"{p}: cannot read: {e.strerror}") from None
    except (ValueError, EOFError) as e:  # a .npy header or body numpy cannot read (cut short)
        raise FlowError(f"{p}: not a readable .npy file: {e}") from None
    return parse_flow_bytes(data, venue, str(p))


# --- writing ----------------------------------------------------------------------------


@njit(**_JIT)
def _put(out, p, src, s, n):
    for j in range(n):
        out[p + j] = src[s + j]
    return p + n


@njit(**_JIT)
def _put_word(out, p, tab, lens, k):
    n = lens[k]
    for j in range(n):
        out[p + j] = tab[k, j]
    return p + n


@njit(**_JIT)
def _put_uint(out, p, v):
    v = np.uint64(v)
    n = 1
    t = v
    while t >= np.uint64(10):
        t //= np.uint64(10)
        n += 1
    for j in range(n - 1, -1, -1):
        out[p + j] = 48 + np.uint8(v % np.uint64(10))
        v //= np.uint64(10)
    return p + n


@njit(**_JIT)
def _put_price(out, p, units, decimals):
    ip = units // 10**PRICE_DECIMALS
    frac = units % 10**PRICE_DECIMALS
    p = _put_uint(out, p, ip)
    if decimals > 0:
        out[p] = 46
        p += 1
        div = 10 ** (PRICE_DECIMALS - 1)
        for _ in range(decimals):
            out[p] = 48 + (frac // div) % 10
            div //= 10
            p += 1
    return p


@njit(**_JIT)
def _raw_field(raw, s, e, which):
    """Bounds of field `which` (0-based) of the row raw[s:e]; (0, 0) when missing."""
    f = 0
    fs = s
    for j in range(s, e + 1):
        if j == e or raw[j] == 44:
            if f == which:
                return fs, j
            f += 1
            fs = j + 1
    return 0, 0


@njit(**_JIT)
def format_events(
    events, start, stop, out, margin, sym_tab, sym_len, sym_dec, raw, row_start, row_end, has_raw,
    etab, elen, rtab, rlen, stab, slen,
):
    """Write events[start:stop] as CSV lines into out while at least `margin` bytes stay
    free; returns (next event index, bytes written)."""
    p = 0
    cap = len(out)
    i = start
    while i < stop and cap - p >= margin:
        ev = events[i]
        kind = ev.kind
        p = _put_uint(out, p, ev.seq)
        out[p] = 44
        p = _put_word(out, p + 1, etab, elen, kind)
        out[p] = 44
        p += 1
        if kind == EV_REJECT:
            if has_raw:
                m = ev.msg_seq - 1
                s, e = _raw_field(raw, row_start[m], row_end[m], 3)
                p = _put(out, p, raw, s, e - s)
                out[p] = 44
                s, e = _raw_field(raw, row_start[m], row_end[m], 4)
                p = _put(out, p + 1, raw, s, e - s)
                out[p] = 44
                s, e = _raw_field(raw, row_start[m], row_end[m], 1)
                p = _put(out, p + 1, raw, s, e - s)
            else:
                if ev.symbol < len(sym_len):
                    p = _put_word(out, p, sym_tab, sym_len, ev.symbol)
                out[p] = 44
                p = _put_uint(out, p + 1, ev.order_id)
                out[p] = 44
                p = _put_uint(out, p + 1, ev.account)
            for _ in range(6):
                out[p] = 44
                p += 1
            p = _put_word(out, p, rtab, rlen, ev.reason)
        elif kind == EV_KILLED:
            out[p] = 44
            out[p + 1] = 44
            p = _put_uint(out, p + 2, ev.account)
            for _ in range(6):
                out[p] = 44
                p += 1
        else:
            sym = ev.symbol
            p = _put_word(out, p, sym_tab, sym_len, sym)
            out[p] = 44
            p = _put_uint(out, p + 1, ev.order_id)
            out[p] = 44
            p = _put_uint(out, p + 1, ev.account)
            out[p] = 44
            p = _put_word(out, p + 1, stab, slen, ev.side)
            out[p] = 44
            p += 1
            if ev.price != PRICE_NONE:
                p = _put_price(out, p, ev.price, sym_dec[sym])
            out[p] = 44
            p = _put_uint(out, p + 1, ev.qty)
            out[p] = 44
            p = _put_uint(out, p + 1, ev.leaves)
            out[p] = 44
            p += 1
            if kind == EV_FILL:
                p = _put_uint(out, p, ev.contra_id)
            out[p] = 44
            p += 1
            if kind == EV_FILL or kind == EV_CANCELED:
                p = _put_word(out, p, rtab, rlen, ev.reason)
        out[p] = 10
        p += 1
        i += 1
    return i, p


class EventWriter:
    """Streams event records to a binary file object as CSV, chunk by chunk."""

    CHUNK = 1 << 22

    def __init__(self, fh, venue: VenueConfig, flow: Flow | None = None, header: bool = True):
        self.fh = fh
        self.sym_tab, self.sym_len = symbol_table(venue)
        self.sym_dec = np.array([s.decimals for s in venue.symbols], np.int64)
        has_raw = flow is not None and flow.raw is not None
        self.has_raw = has_raw
        if has_raw:
            self.raw, self.row_start, self.row_end = flow.raw, flow.row_start, flow.row_end
            longest_row = int((flow.row_end - flow.row_start).max(initial=0))
        else:
            self.raw = np.zeros(1, np.uint8)
            self.row_start = self.row_end = np.zeros(1, np.int64)
            longest_row = 0
        # Longest line: numbers (20 digits each), names, and a REJECT's raw fields.
        self.margin = 320 + int(self.sym_len.max()) + longest_row
        size = max(self.CHUNK, 2 * self.margin)
        self.bufs = [np.empty(size, np.uint8) for _ in range(PARSE_THREADS)]
        # A block of events that surely fits one buffer: no line is longer than the margin.
        self.block = size // self.margin
        if header:
            fh.write((EVENTS_HEADER + "\n").encode())

    def _format(self, events, k, start, stop):
        nxt, nbytes = format_events(
            events, start, stop, self.bufs[k], self.margin, self.sym_tab, self.sym_len, self.sym_dec,
            self.raw, self.row_start, self.row_end, self.has_raw,
            _EVENT_TAB, _EVENT_LEN, _REASON_TAB, _REASON_LEN, _SIDE_TAB, _SIDE_LEN,
        )
        assert nxt == stop  # a block never overflows its buffer
        return nbytes

    def write(self, events: np.ndarray) -> None:
        """Format events as CSV lines, a block a thread, and write the blocks in order."""
        i, n = 0, len(events)
        while i < n:
            blocks = []
            while i < n and len(blocks) < len(self.bufs):
                blocks.append((len(blocks), i, min(n, i + self.block)))
                i = blocks[-1][2]
            if len(blocks) == 1:
                sizes = [self._format(events, *blocks[0])]
            else:
                sizes = list(pool().map(lambda b: self._format(events, *b), blocks))
            for (k, _, _), nbytes in zip(blocks, sizes):
                self.fh.write(memoryview(self.bufs[k])[:nbytes])

    def close(self) -> None:
        """Nothing to finish: every write went to the file (columnar writers write a footer)."""


# --- order records -> flow CSV (for `tickbook gen` and converters) ------------------------


@njit(**_JIT)
def _put_int(out, p, v):
    if v < 0:
        out[p] = 45
        return _put_uint(out, p + 1, -v)
    return _put_uint(out, p, v)


@njit(**_JIT)
def _put_units(out, p, units):
    """A price in 1e-8 units, exactly, without trailing zeros."""
    if units < 0:
        out[p] = 45
        p += 1
        units = -units
    p = _put_uint(out, p, units // 10**PRICE_DECIMALS)
    frac = units % 10**PRICE_DECIMALS
    if frac:
        out[p] = 46
        p += 1
        div = 10 ** (PRICE_DECIMALS - 1)
        while frac:
            out[p] = 48 + frac // div
            frac %= div
            div //= 10
            p += 1
    return p


# Stand-ins that read back as the same sentinel: nine decimals (PRICE_INVALID) and a
# fraction (QTY_INVALID).
_OFF_GRID_PRICE = np.frombuffer(b"0.000000001", np.uint8).copy()
_FRACTIONAL_QTY = np.frombuffer(b"0.5", np.uint8).copy()


@njit(**_JIT)
def format_orders(orders, start, stop, out, sym_tab, sym_len, atab, alen, stab, slen, ttab, tlen, itab, ilen):
    """Write orders[start:stop] as flow CSV rows while 256 + longest symbol bytes stay free."""
    p = 0
    margin = 256 + sym_tab.shape[1]
    i = start
    while i < stop and len(out) - p >= margin:
        r = orders[i]
        a = r.action
        p = _put_uint(out, p, r.ts)
        out[p] = 44
        p = _put_uint(out, p + 1, r.account)
        out[p] = 44
        p += 1
        if 1 <= a < len(alen) and alen[a] > 0:
            p = _put_word(out, p, atab, alen, a)
        else:
            out[p] = 63  # '?': an unknown action, read back as MALFORMED
            p += 1
        out[p] = 44
        p += 1
        if a == ACTION_NEW and r.symbol < len(sym_len):
            p = _put_word(out, p, sym_tab, sym_len, r.symbol)
        out[p] = 44
        p += 1
        if a != ACTION_KILL:
            p = _put_uint(out, p, r.order_id)
        out[p] = 44
        p += 1
        if a == ACTION_NEW:
            p = _put_word(out, p, stab, slen, r.side if r.side < len(slen) else 0)
            out[p] = 44
            p = _put_word(out, p + 1, ttab, tlen, r.type if r.type < len(tlen) else 0)
            out[p] = 44
            p = _put_word(out, p + 1, itab, ilen, r.tif if r.tif < len(ilen) else 0)
            out[p] = 44
            p += 1
        else:
            for _ in range(3):
                out[p] = 44
                p += 1
        if a == ACTION_NEW or a == ACTION_REPLACE:
            if r.price == PRICE_INVALID:
                p = _put(out, p, _OFF_GRID_PRICE, 0, len(_OFF_GRID_PRICE))
            elif r.price != PRICE_NONE:
                p = _put_units(out, p, r.price)
            out[p] = 44
            p += 1
            if r.qty == QTY_INVALID:
                p = _put(out, p, _FRACTIONAL_QTY, 0, len(_FRACTIONAL_QTY))
            else:
                p = _put_int(out, p, r.qty)
        else:
            out[p] = 44
            p += 1
        out[p] = 10
        p += 1
        i += 1
    return i, p


def write_flow_csv(fh, orders: np.ndarray, venue: VenueConfig) -> None:
    """Order records to a binary file object as flow CSV (header included)."""
    sym_tab, sym_len = symbol_table(venue)
    buf = np.empty(1 << 22, np.uint8)
    fh.write((FLOW_HEADER + "\n").encode())
    i, n = 0, len(orders)
    while i < n:
        i, nbytes = format_orders(
            orders, i, n, buf, sym_tab, sym_len,
            _ACTION_TAB, _ACTION_LEN, _SIDE_TAB, _SIDE_LEN, _TYPE_TAB, _TYPE_LEN, _TIF_TAB, _TIF_LEN,
        )
        fh.write(buf[:nbytes].tobytes())
