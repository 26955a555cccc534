"""Columnar edges: order flows read from Parquet and Arrow IPC (Feather v2) files, events
written to them (pyarrow). docs/rulebook.md, sections 3 and 6, say what a column may hold.

A flow file has the CSV's columns, `ts,account,action,symbol,order_id,side,type,tif,price,qty`
(in any order, no others). Every cell is read as the CSV field of the same text would be, by the
CSV parser's own njit helpers (`engine/codec.py`), so a bad value gets the record, and so the
reject, that the CSV row would get. The text of a cell: a string as it is, a null as the empty
field, an integer in decimal, a decimal as its exact value written out, a float64 as its shortest
round-trip decimal written out (`0.1` is "0.1", never 0.1000000000000000055...).

Speed comes from running each *distinct* value of a string, decimal or float column through the
parser once (Parquet hands the string columns over dictionary-encoded; Arrow columns are
dictionary-encoded here) and gathering the results per row; integer columns are read per row.
One njit loop then assembles the records with the CSV parser's decision order (`_parse_row`).
"""

from __future__ import annotations

import io
import queue
import threading
from pathlib import Path
from time import perf_counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from numba import njit

from engine.codec import (
    _ACTION_LEN,
    _ACTION_TAB,
    _SIDE_LEN,
    _SIDE_TAB,
    _TIF_LEN,
    _TIF_TAB,
    _TYPE_LEN,
    _TYPE_TAB,
    FLOW_HEADER,
    Flow,
    FlowError,
    _encode_price,
    _encode_qty,
    _find_symbol,
    _match_token,
    _parse_number,
    _put_units,
    symbol_table,
)
from engine.config import VenueConfig
from engine.jit import NO_WRAPAROUND
from engine.records import (
    ACTION_CANCEL,
    ACTION_KILL,
    ACTION_MALFORMED,
    ACTION_NEW,
    EV_ACK,
    EV_CANCELED,
    EV_FILL,
    EV_KILLED,
    EV_REJECT,
    EVENT_DTYPE,
    EVENT_NAMES,
    ORDER_DTYPE,
    PRICE_DECIMALS,
    PRICE_NONE,
    REASON_NAMES,
    SIDE_NAMES,
)
from engine.threads import THREADS
from engine.threads import pool as thread_pool

# The suffixes that mean a columnar file, and its format. tickbook/cli.py keeps a copy (so a CSV
# replay does not import pyarrow); tests/test_columnar.py checks that the two agree.
SUFFIXES = {".parquet": "parquet", ".arrow": "arrow", ".feather": "arrow"}

FLOW_COLUMNS = FLOW_HEADER.split(",")
UINT_COLUMNS = {"ts": 0xFFFFFFFFFFFFFFFF, "account": 0xFFFFFFFF, "order_id": 0xFFFFFFFFFFFFFFFF}
TOKEN_COLUMNS = ("action", "symbol", "side", "type", "tif")
NUMBER_COLUMNS = ("price", "qty")

_TOKEN_TABLES = {
    "action": (_ACTION_TAB, _ACTION_LEN),
    "side": (_SIDE_TAB, _SIDE_LEN),
    "type": (_TYPE_TAB, _TYPE_LEN),
    "tif": (_TIF_TAB, _TIF_LEN),
}

# A price or qty cell that is not empty and not a number (MALFORMED for NEW and REPLACE). No
# encoder returns it: prices stay within 2**53 units or are a sentinel, quantities within 2**32.
NOT_A_NUMBER = -(2**63) + 2
# |x| below this: a float64's ulp is under 1e-8, so at most one decimal of 8 decimals or fewer
# rounds to it, and when one does it is the float's shortest round-trip decimal.
_FLOAT_FAST_LIMIT = 2.0**26

_JIT = dict(NO_WRAPAROUND, cache=True, nogil=True, _nrt=False)



@njit(**_JIT)
def _bit(bits, i):
    """Bit i of an Arrow validity bitmap: 1 for a value, 0 for a null."""
    return np.int64((bits[i >> 3] >> (i & 7)) & 1)


# --- per distinct value: the CSV parser's field helpers --------------------------------------


@njit(**_JIT)
def _token_codes(data, starts, ends, tab, lens, is_symbol, out):
    """out[k]: the code of the text data[starts[k]:ends[k]], as the CSV parser reads the field."""
    for k in range(len(starts)):
        if is_symbol:
            out[k] = _find_symbol(data, starts[k], ends[k], tab, lens)
        else:
            out[k] = _match_token(data, starts[k], ends[k], tab, lens)


@njit(**_JIT)
def _number_codes(data, starts, ends, is_qty, out):
    """out[k]: the record value of the price (or qty) field data[starts[k]:ends[k]]:
    _parse_row's reading, with NOT_A_NUMBER where the row would be MALFORMED."""
    for k in range(len(starts)):
        s = starts[k]
        e = ends[k]
        if e == s:  # empty: no price; a required qty missing
            out[k] = NOT_A_NUMBER if is_qty else PRICE_NONE
            continue
        ok, neg, ip, frac, beyond, frac_nonzero = _parse_number(data, s, e)
        if not ok:
            out[k] = NOT_A_NUMBER
        elif is_qty:
            out[k] = _encode_qty(neg, ip, frac_nonzero)
        else:
            out[k] = _encode_price(neg, ip, frac, beyond)


# --- the text of non-string values ----------------------------------------------------------


@njit(**_JIT)
def _decimal_texts(limbs, valid, scale, data, starts, ends, work, digits):
    """Each decimal (two's complement, little-endian 32-bit limbs, one row a value) written out
    in full, '-' and all, without exponent: the text whose value it is."""
    n_limbs = limbs.shape[1]
    p = 0
    for k in range(limbs.shape[0]):
        starts[k] = p
        if not valid[k]:
            ends[k] = p
            continue
        for j in range(n_limbs):
            work[j] = np.uint64(limbs[k, j])
        neg = work[n_limbs - 1] >= np.uint64(0x80000000)
        if neg:  # magnitude: invert and add one
            carry = np.uint64(1)
            for j in range(n_limbs):
                v = (work[j] ^ np.uint64(0xFFFFFFFF)) + carry
                work[j] = v & np.uint64(0xFFFFFFFF)
                carry = v >> np.uint64(32)
        nd = 0
        while True:  # digits, least significant first: divide the limbs by 10
            rem = np.uint64(0)
            nonzero = False
            for j in range(n_limbs - 1, -1, -1):
                cur = (rem << np.uint64(32)) | work[j]
                work[j] = cur // np.uint64(10)
                rem = cur % np.uint64(10)
                if work[j] != np.uint64(0):
                    nonzero = True
            digits[nd] = np.uint8(rem + np.uint64(48))
            nd += 1
            if not nonzero:
                break
        if neg:
            data[p] = 45  # -
            p += 1
        if scale <= 0:
            for j in range(nd - 1, -1, -1):
                data[p] = digits[j]
                p += 1
            for _ in range(-scale):
                data[p] = 48
                p += 1
        else:
            n_int = nd - scale
            if n_int <= 0:
                data[p] = 48
                p += 1
            else:
                for j in range(nd - 1, nd - 1 - n_int, -1):
                    data[p] = digits[j]
                    p += 1
            data[p] = 46  # .
            p += 1
            for _ in range(-n_int if n_int < 0 else 0):
                data[p] = 48
                p += 1
            for j in range(min(nd, scale) - 1, -1, -1):
                data[p] = digits[j]
                p += 1
        ends[k] = p
    return p


@njit(**_JIT)
def _float_texts(values, valid, data, starts, ends, slow):
    """The shortest round-trip decimal of each float64, written out, where it has at most 8
    decimals and |x| < 2**26 (then it is the one multiple of 1e-8 that rounds to x); slow[k]
    marks the others, which the caller writes with numpy's shortest formatting."""
    p = 0
    for k in range(len(values)):
        starts[k] = p
        ends[k] = p
        if not valid[k]:
            continue
        x = values[k]
        if not abs(x) < _FLOAT_FAST_LIMIT:  # NaN too
            slow[k] = True
            continue
        u = np.int64(x * 1e8)
        found = False
        for c in (u - 1, u, u + 1):
            if c / 1e8 == x:
                p = _put_units(data, p, c)
                found = True
                break
        if not found:
            slow[k] = True
        ends[k] = p
    return p


# --- distinct values of a string column ----------------------------------------------------

_SHORT = 7  # bytes of a string that _short_strings packs into one integer key
_SLOTS = 1 << 16  # its hash table: up to _SLOTS // 2 distinct values a chunk


@njit(**_JIT)
def _short_strings(data, offsets, bits, off, has_nulls, slots, keys, dstart, dend, idx):
    """Dictionary-encode a string column whose values have at most _SHORT bytes (row i:
    data[offsets[i]:offsets[i+1]]): each value is one integer key, bytes | length << 56, found
    in an open-addressing table (slots, -1 = free). idx[i] = the number of row i's value among
    the distinct ones (their bytes: dstart/dend; a null row's idx is 0). Returns how many
    distinct values, or -1 for a longer value or more than _SLOTS // 2 distinct ones."""
    mask = len(slots) - 1
    cap = len(slots) // 2
    m = 0
    for i in range(len(idx)):
        if has_nulls and not _bit(bits, off + i):
            idx[i] = 0
            continue
        s = np.int64(offsets[i])
        e = np.int64(offsets[i + 1])
        if e - s > _SHORT:
            return -1
        key = np.uint64(e - s) << np.uint64(56)
        for j in range(e - s):
            key |= np.uint64(data[s + j]) << np.uint64(8 * j)
        k = np.int64((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask
        while True:
            d = slots[k]
            if d < 0:
                if m == cap:
                    return -1
                slots[k] = m
                keys[m] = key
                dstart[m] = s
                dend[m] = e
                idx[i] = m
                m += 1
                break
            if keys[d] == key:
                idx[i] = d
                break
            k = (k + 1) & mask
    return m


# --- per row --------------------------------------------------------------------------------


# The per-row loops below choose by arithmetic rather than by branch where a row may be null: a
# null-bearing column (a CANCEL's side, a KILL's qty ...) has its nulls anywhere, and a branch
# on them is mispredicted half the time (measured: 4.4 -> 2.4 ns a row on 1M rows).


@njit(**_JIT)
def _gather(table, idx, bits, off, has_nulls, out, pos):
    """out[pos + i] = table[idx[i]]; a null row takes the last slot (the empty text's code).
    Returns the first row whose index is out of range, or -1."""
    m = len(table) - 1
    for i in range(len(idx)):
        k = np.int64(idx[i])
        if has_nulls:
            v = _bit(bits, off + i)
            if v & ((k < 0) | (k >= m)):
                return i
            out[pos + i] = table[k * v + m * (1 - v)]
        else:
            if k < 0 or k >= m:
                return i
            out[pos + i] = table[k]
    return -1


@njit(**_JIT)
def _uints_signed(values, bits, off, has_nulls, max_value, out, ok, pos):
    """An unsigned-integer field from a signed column: its decimal text is digits-only (what
    _parse_uint accepts) exactly when the value is >= 0. out holds the value as read; the
    caller looks at it only where ok."""
    for i in range(len(values)):
        v = values[i]
        good = (v >= 0) & (np.uint64(v) <= max_value)
        if has_nulls:
            good = good & (_bit(bits, off + i) == 1)
        ok[pos + i] = good
        out[pos + i] = np.uint64(v)


@njit(**_JIT)
def _uints_unsigned(values, bits, off, has_nulls, max_value, out, ok, pos):
    for i in range(len(values)):
        v = values[i]
        good = v <= max_value
        if has_nulls:
            good = good & (_bit(bits, off + i) == 1)
        ok[pos + i] = good
        out[pos + i] = v


@njit(**_JIT)
def _int_numbers(values, bits, off, has_nulls, is_qty, out, pos):
    """A price or qty from an integer column (int64; uint64 clamped to 2**62 by the caller).
    _parse_number reads the decimal text of v as: negative when v < 0, integer part |v|
    (clamped near 2**62, far beyond what either encoder keeps), no fraction."""
    empty = np.int64(NOT_A_NUMBER) if is_qty else np.int64(PRICE_NONE)
    for i in range(len(values)):
        v = values[i]
        neg = v < 0
        if v < -(2**62) or v > 2**62:
            ip = np.int64(2**62)
        else:
            ip = -v if neg else v
        if is_qty:
            x = _encode_qty(neg, ip, False)
        else:
            x = _encode_price(neg, ip, np.int64(0), False)
        if has_nulls:
            b = _bit(bits, off + i)
            x = x * b + empty * (1 - b)
        out[pos + i] = x


@njit(**_JIT)
def _assemble(orders, action, symbol, side, otype, tif, price, qty, ts, ts_ok, account, account_ok, oid, oid_ok,
              start, stop):
    """Records start..stop-1, field for field as codec._parse_row fills them from the same fields
    (a MALFORMED row keeps what it had set before the bad field)."""
    for i in range(start, stop):
        rec = orders[i]
        rec.msg_seq = i + 1
        rec.action = ACTION_MALFORMED
        a = action[i]
        if a == 0 or not ts_ok[i] or not account_ok[i]:
            continue
        rec.ts = ts[i]
        rec.account = account[i]
        if a == ACTION_KILL:
            rec.action = a
            continue
        if not oid_ok[i]:
            continue
        rec.order_id = oid[i]
        if a == ACTION_CANCEL:
            rec.action = a
            continue
        if a == ACTION_NEW:
            if side[i] == 0 or otype[i] == 0 or tif[i] == 0:
                continue
            rec.side = side[i]
            rec.type = otype[i]
            rec.tif = tif[i]
            rec.symbol = symbol[i]
        q = qty[i]
        if q == NOT_A_NUMBER:
            continue
        rec.qty = q
        p = price[i]
        if p == NOT_A_NUMBER:
            continue
        rec.price = p
        rec.action = a


# --- opening a file -------------------------------------------------------------------------


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _is_text(t: pa.DataType) -> bool:
    is_view = getattr(pa.types, "is_string_view", lambda _: False)  # pyarrow >= 16
    return pa.types.is_string(t) or pa.types.is_large_string(t) or is_view(t)


def _accepts(name: str, t: pa.DataType) -> bool:
    if pa.types.is_null(t):
        return True  # a column of nulls (every cell empty), as pandas writes one
    if name in UINT_COLUMNS:
        return pa.types.is_integer(t)
    if pa.types.is_dictionary(t):
        t = t.value_type
    if name in TOKEN_COLUMNS:
        return _is_text(t)
    return _is_text(t) or pa.types.is_integer(t) or pa.types.is_decimal(t) or t == pa.float64()


_EXPECTED = {
    "ts": "an integer column",
    "account": "an integer column",
    "order_id": "an integer column",
    "price": "a string, integer, decimal or float64 column",
    "qty": "a string, integer, decimal or float64 column",
}


def _check_schema(schema: pa.Schema, source: str) -> None:
    """One line naming the file and the first column that is missing, extra, doubled or of a
    type this reader does not take."""
    names = list(schema.names)
    for name in names:
        if name not in FLOW_COLUMNS:
            raise FlowError(f"{source}: unexpected column '{name}' (the columns are {FLOW_HEADER})")
        if names.count(name) > 1:
            raise FlowError(f"{source}: column '{name}' appears {names.count(name)} times")
    for name in FLOW_COLUMNS:
        if name not in names:
            raise FlowError(f"{source}: missing column '{name}' (the columns are {FLOW_HEADER})")
    for name in FLOW_COLUMNS:
        t = schema.field(name).type
        if not _accepts(name, t):
            expected = _EXPECTED.get(name, "a string column (or dictionary of strings)")
            raise FlowError(f"{source}: column '{name}' is {t}, expected {expected}")


def _read_table(p: Path, fmt: str) -> pa.Table:
    source = str(p)
    try:
        with open(p, "rb"):  # the CSV reader's words for a file that is not there or not readable
            pass
    except OSError as e:
        raise FlowError(f"{p}: cannot read: {e.strerror}") from None
    if fmt == "parquet":
        try:
            schema = pq.read_schema(source, memory_map=True)
        except (pa.ArrowException, OSError) as e:
            raise FlowError(f"{p}: not a Parquet file ({_one_line(e)})") from None
        _check_schema(schema, source)
        try:
            # String columns come back dictionary-encoded, straight from Parquet's dictionary pages.
            pf = pq.ParquetFile(source, memory_map=True, read_dictionary=list(TOKEN_COLUMNS + NUMBER_COLUMNS))
            return pf.read(columns=FLOW_COLUMNS)
        except (pa.ArrowException, OSError) as e:
            raise FlowError(f"{p}: cannot read the Parquet file: {_one_line(e)}") from None
    try:
        reader = ipc.open_file(pa.memory_map(source))
    except (pa.ArrowException, OSError) as e:
        try:  # the IPC stream format, which some tools write to .arrow files
            reader = ipc.open_stream(pa.memory_map(source))
        except (pa.ArrowException, OSError):
            raise FlowError(f"{p}: not an Arrow IPC (Feather v2) file ({_one_line(e)})") from None
    _check_schema(reader.schema, source)
    try:
        return reader.read_all().select(FLOW_COLUMNS)
    except (pa.ArrowException, OSError) as e:
        raise FlowError(f"{p}: cannot read the Arrow file: {_one_line(e)}") from None


# --- columns -> per-row arrays --------------------------------------------------------------


def _readonly(a: np.ndarray) -> np.ndarray:
    """Arrays from Arrow buffers are read-only or not depending on who allocated the buffer;
    the kernels get them all read-only: one Numba signature each, loaded by warm_up()."""
    a.flags.writeable = False
    return a


def _np(arr: pa.Array, dtype) -> np.ndarray:
    """The values buffer of a primitive array, zero-copy (null slots hold anything)."""
    return _readonly(np.frombuffer(arr.buffers()[1], dtype)[arr.offset : arr.offset + len(arr)])


def _validity(arr: pa.Array) -> tuple[np.ndarray, int, bool]:
    """(bitmap bytes, bit offset, has nulls) for the njit loops."""
    if arr.null_count == 0:
        return _readonly(np.zeros(1, np.uint8)), 0, False
    return _readonly(np.frombuffer(arr.buffers()[0], np.uint8)), arr.offset, True


def _valid_bools(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), np.bool_)
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _texts(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values -> (bytes, starts, ends) of their texts, one more slot at the end for the
    empty text (the null cell)."""
    m = len(values)
    t = values.type
    if pa.types.is_null(t):
        data, starts, ends = np.zeros(1, np.uint8), np.zeros(m, np.int64), np.zeros(m, np.int64)
    elif _is_text(t):
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            values = values.cast(pa.large_string())
        otype = np.int32 if pa.types.is_string(values.type) else np.int64
        bufs = values.buffers()
        offsets = np.frombuffer(bufs[1], otype)[values.offset : values.offset + m + 1].astype(np.int64)
        data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None and len(bufs[2]) else np.zeros(1, np.uint8)
        starts, ends = offsets[:-1], offsets[1:].copy()
        if values.null_count:
            null = ~_valid_bools(values)
            ends[null] = starts[null]
    else:
        valid = _valid_bools(values)
        starts, ends = np.zeros(m, np.int64), np.zeros(m, np.int64)
        if pa.types.is_decimal(t):
            width = t.byte_width
            raw = np.frombuffer(values.buffers()[1], np.uint8)[values.offset * width : (values.offset + m) * width]
            limbs = raw.view(np.uint32).reshape(m, width // 4)
            data = np.zeros(max(1, m * (width * 3 + abs(t.scale) + 4)), np.uint8)
            work = np.zeros(width // 4, np.uint64)
            digits = np.zeros(width * 3, np.uint8)
            _decimal_texts(limbs, valid, t.scale, data, starts, ends, work, digits)
        elif t == pa.float64():
            x = _np(values, np.float64)
            data = np.zeros(max(1, m * 32), np.uint8)
            slow = np.zeros(m, np.bool_)
            p = _float_texts(x, valid, data, starts, ends, slow)
            if slow.any():  # a float with more than 8 decimals, NaN, inf, or |x| >= 2**26
                extra = [np.format_float_positional(v, unique=True, trim="-").encode() for v in x[slow]]
                lens = np.array([len(b) for b in extra], np.int64)
                starts[slow] = p + np.concatenate(([0], np.cumsum(lens)[:-1]))
                ends[slow] = starts[slow] + lens
                data = np.concatenate((data[:p], np.frombuffer(b"".join(extra), np.uint8)))
        else:
            raise TypeError(f"no text for {t}")  # _accepts lets no other type through
    # the empty text for null rows
    starts = np.append(starts, 0)
    ends = np.append(ends, 0)
    return _readonly(data), starts, ends


def _short_distinct(chunk: pa.Array):
    """A string chunk dictionary-encoded by _short_strings (twice as fast as pyarrow's
    dictionary_encode on the flow's short tokens): (texts of its distinct values plus the empty
    text, each row's index among them), or None when it holds a longer value."""
    if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
        return None
    n = len(chunk)
    bufs = chunk.buffers()
    if bufs[2] is None or not len(bufs[2]):
        return None
    otype = np.int32 if pa.types.is_string(chunk.type) else np.int64
    offsets = _readonly(np.frombuffer(bufs[1], otype)[chunk.offset : chunk.offset + n + 1])
    data = _readonly(np.frombuffer(bufs[2], np.uint8))
    bits, off, has_nulls = _validity(chunk)
    slots = np.full(_SLOTS, -1, np.int32)
    keys = np.zeros(_SLOTS // 2, np.uint64)
    dstart, dend = np.zeros(_SLOTS // 2 + 1, np.int64), np.zeros(_SLOTS // 2 + 1, np.int64)
    idx = np.empty(n, np.int32)
    m = _short_strings(data, offsets, bits, off, has_nulls, slots, keys, dstart, dend, idx)
    if m < 0:
        return None
    dstart[m] = dend[m] = 0  # the empty text, for nulls
    return (data, dstart[: m + 1], dend[: m + 1]), _readonly(idx)


def _distinct(chunk: pa.Array):
    """(texts of the chunk's distinct values plus the empty text, each row's index among them)."""
    if _is_text(chunk.type):
        found = _short_distinct(chunk)
        if found is not None:
            return found
    if pa.types.is_decimal(chunk.type) and chunk.type.byte_width < 16:
        chunk = chunk.cast(pa.decimal128(chunk.type.precision, chunk.type.scale))  # widened exactly: hashable
    if not pa.types.is_dictionary(chunk.type):
        chunk = pc.dictionary_encode(chunk)
    indices = chunk.indices if chunk.indices.type == pa.int32() else chunk.indices.cast(pa.int32())
    return _texts(chunk.dictionary), _np(indices, np.int32)


def _by_distinct(col: pa.ChunkedArray, out: np.ndarray, codes_of, source: str, name: str) -> None:
    """out[row] = codes_of(texts of the chunk's distinct values)[row's value]."""
    pos = 0
    for chunk in col.chunks:
        n = len(chunk)
        if pa.types.is_null(chunk.type):  # every row empty
            out[pos : pos + n] = codes_of(*_texts(pa.nulls(0)))[-1]
            pos += n
            continue
        texts, idx = _distinct(chunk)
        table = codes_of(*texts)
        bits, off, has_nulls = _validity(chunk.indices if pa.types.is_dictionary(chunk.type) else chunk)
        bad = _gather(table, idx, bits, off, has_nulls, out, pos)
        if bad >= 0:
            raise FlowError(f"{source}: column '{name}': dictionary index out of range at row {pos + bad + 1}")
        pos += n


def _token_column(col, name, venue_tab, source) -> np.ndarray:
    if name == "symbol":
        tab, lens = venue_tab
        out = np.zeros(len(col), np.uint16)
    else:
        tab, lens = _TOKEN_TABLES[name]
        out = np.zeros(len(col), np.uint8)

    def codes_of(data, starts, ends):
        codes = np.zeros(len(starts), out.dtype)
        _token_codes(data, starts, ends, tab, lens, name == "symbol", codes)
        return codes

    _by_distinct(col, out, codes_of, source, name)
    return out


def _number_column(col, name, source) -> np.ndarray:
    is_qty = name == "qty"
    out = np.zeros(len(col), np.int64)
    t = col.type
    if pa.types.is_dictionary(t) and pa.types.is_integer(t.value_type):
        col = pa.chunked_array([c.dictionary_decode() for c in col.chunks], t.value_type)
        t = t.value_type
    if pa.types.is_integer(t):
        pos = 0
        for chunk in col.chunks:
            v = _np(chunk, chunk.type.to_pandas_dtype())
            if v.dtype == np.uint64:
                v = np.minimum(v, np.uint64(2**62)).astype(np.int64)
            elif v.dtype != np.int64:
                v = v.astype(np.int64)
            bits, off, has_nulls = _validity(chunk)
            _int_numbers(_readonly(v), bits, off, has_nulls, is_qty, out, pos)
            pos += len(chunk)
        return out

    def codes_of(data, starts, ends):
        codes = np.zeros(len(starts), np.int64)
        _number_codes(data, starts, ends, is_qty, codes)
        return codes

    _by_distinct(col, out, codes_of, source, name)
    return out


def _uint_column(col, name) -> tuple[np.ndarray, np.ndarray]:
    n = len(col)
    out = np.zeros(n, np.uint32 if UINT_COLUMNS[name] == 0xFFFFFFFF else np.uint64)
    ok = np.zeros(n, np.bool_)
    max_value = np.uint64(UINT_COLUMNS[name])
    pos = 0
    for chunk in col.chunks:
        if not pa.types.is_null(chunk.type):  # a column of nulls: every row not ok
            bits, off, has_nulls = _validity(chunk)
            v = _np(chunk, chunk.type.to_pandas_dtype())
            if v.dtype.itemsize < 4:  # 32- and 64-bit columns as they are; narrower ones widened
                v = _readonly(v.astype(np.int64 if v.dtype.kind == "i" else np.uint64))
            kernel = _uints_signed if v.dtype.kind == "i" else _uints_unsigned
            kernel(v, bits, off, has_nulls, max_value, out, ok, pos)
        pos += len(chunk)
    return out, ok


def flow_from_table(table: pa.Table, venue: VenueConfig, source: str = "<table>") -> Flow:
    """Order records from an Arrow table with the flow's columns (checked as a file's are).
    The columns are read side by side, then the records assembled in THREADS row ranges (the
    njit loops and pyarrow release the GIL)."""
    _check_schema(table.schema, source)
    n = table.num_rows
    sym = symbol_table(venue)
    jobs = {"price": (_number_column, table.column("price"), "price", source)}  # the longest first
    jobs |= {name: (_token_column, table.column(name), name, sym, source) for name in TOKEN_COLUMNS}
    jobs |= {"qty": (_number_column, table.column("qty"), "qty", source)}
    jobs |= {name: (_uint_column, table.column(name), name) for name in UINT_COLUMNS}
    pool = thread_pool()
    done = {name: pool.submit(*job) for name, job in jobs.items()}
    c = {name: f.result() for name, f in done.items()}  # a FlowError of a column is raised here
    orders = np.zeros(n, ORDER_DTYPE)
    args = (c["action"], c["symbol"], c["side"], c["type"], c["tif"], c["price"], c["qty"], *c["ts"], *c["account"],
            *c["order_id"])
    cuts = [n * k // THREADS for k in range(THREADS + 1)]
    for f in [pool.submit(_assemble, orders, *args, cuts[k], cuts[k + 1]) for k in range(THREADS)]:
        f.result()
    return Flow(orders, source=source)


def read_columnar_flow(path: str | Path, venue: VenueConfig) -> Flow:
    """A flow from a Parquet file (.parquet) or an Arrow IPC / Feather v2 file (.arrow, .feather)."""
    p = Path(path)
    fmt = SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise FlowError(f"{p}: not a columnar file name (expected {', '.join(SUFFIXES)})")
    return flow_from_table(_read_table(p, fmt), venue, str(p))


# --- events ---------------------------------------------------------------------------------


def _names(mapping: dict[int, str]) -> tuple[pa.Array, np.ndarray]:
    """A dictionary of the non-empty names and the code -> index lookup (-1: none)."""
    codes = [k for k in sorted(mapping) if mapping[k]]
    lut = np.full(256, -1, np.int8)
    lut[codes] = np.arange(len(codes))
    return pa.array([mapping[k] for k in codes], pa.string()), lut


_EVENT_DICT, _EVENT_LUT = _names(EVENT_NAMES)
_SIDE_DICT, _SIDE_LUT = _names(SIDE_NAMES)
_REASON_DICT, _REASON_LUT = _names(REASON_NAMES)


def venue_price_scale(venue: VenueConfig) -> int:
    """Decimals of the events' price column: the most any tick of the venue has."""
    return max([s.decimals for s in venue.symbols] + [0])


def event_schema(venue: VenueConfig) -> pa.Schema:
    names = pa.dictionary(pa.int8(), pa.string())
    return pa.schema(
        [
            ("seq", pa.int64()),
            ("event", names),
            ("symbol", pa.dictionary(pa.int32(), pa.string())),
            ("order_id", pa.uint64()),
            ("account", pa.uint32()),
            ("side", names),
            ("price", pa.decimal128(18, venue_price_scale(venue))),
            ("qty", pa.uint32()),
            ("leaves", pa.uint32()),
            ("contra_id", pa.uint64()),
            ("detail", names),
        ]
    )


@njit(**_JIT)
def _event_columns(ev, n_sym, event_lut, side_lut, reason_lut, div, ints, u32, names, sym, u64, price, valid):
    """One pass over event records: the columns, contiguous, and valid[c, i] where the events
    CSV writes field c of row i (codec.format_events): c = symbol, order_id, side, price,
    qty and leaves, contra_id, detail."""
    for i in range(len(ev)):
        e = ev[i]
        k = e.kind
        rej = k == EV_REJECT
        killed = k == EV_KILLED
        plain = not (rej or killed)
        ints[i] = e.seq
        u32[0, i] = e.account
        u32[1, i] = e.qty
        u32[2, i] = e.leaves
        names[0, i] = event_lut[k]
        s = np.int32(e.symbol)
        sym[i] = s
        valid[0, i] = not killed and s < n_sym
        u64[0, i] = e.order_id
        valid[1, i] = not killed
        side = side_lut[e.side]
        names[1, i] = side
        valid[2, i] = plain and side >= 0
        has_price = plain and e.price != PRICE_NONE
        units = e.price // div if has_price else 0
        price[i, 0] = units
        price[i, 1] = -1 if units < 0 else 0
        valid[3, i] = has_price
        valid[4, i] = plain
        u64[1, i] = e.contra_id
        valid[5, i] = k == EV_FILL
        r = reason_lut[e.reason]
        names[2, i] = r
        valid[6, i] = (rej or k == EV_FILL or k == EV_CANCELED) and r >= 0


_DONE = object()


class ColumnarEventWriter:
    """Event records to a Parquet or Arrow IPC file, one row group (record batch) per chunk
    written. Same use as codec.EventWriter: write(events) per chunk, then close(), which writes
    the file's footer (the caller closes fh). For Parquet a thread of its own encodes and writes
    the chunks while the matcher goes on (pyarrow and the njit pass release the GIL: 1.2M events,
    0.33 s -> 0.24 s for matching and writing); at most QUEUE chunks wait for it, so nothing like
    the whole run is ever held. An error of that thread (a full disk) is raised by the next
    write() or by close().

    Columns as the events CSV: integers as integers, the names (event, symbol, side, detail) as
    dictionary strings, price as decimal128(18, S) with S the venue's most tick decimals, and a
    null wherever the CSV leaves the field empty. A REJECT's symbol, order_id and account are the
    record's, as for a .npy flow (a typed column cannot hold a malformed row's raw text)."""

    QUEUE = 4

    def __init__(self, fh, venue: VenueConfig, flow: Flow | None = None, fmt: str = "parquet"):
        self.schema = event_schema(venue)
        self.div = 10 ** (PRICE_DECIMALS - venue_price_scale(venue))
        self.symbols = pa.array([s.name for s in venue.symbols], pa.string())
        if fmt == "parquet":
            # Dictionary pages for the names only, statistics for seq only (row groups found by
            # seq): the other columns' statistics took a fifth of the writing time (1.2M events).
            self._writer = pq.ParquetWriter(
                fh, self.schema, compression="snappy", use_dictionary=["event", "symbol", "side", "detail"],
                write_statistics=["seq"],
            )
        elif fmt == "arrow":
            self._writer = ipc.new_file(fh, self.schema)
        else:
            raise ValueError(f"unknown columnar format {fmt!r}")
        self._error: BaseException | None = None
        self._thread = None
        if fmt == "parquet":  # encoding Parquet takes longer than matching: overlap them
            self._queue: queue.Queue = queue.Queue(self.QUEUE)
            self._thread = threading.Thread(target=self._drain, name="events-writer", daemon=True)
            self._thread.start()

    def batch(self, events: np.ndarray) -> pa.RecordBatch:
        n = len(events)
        ints = np.empty(n, np.int64)
        u32 = np.empty((3, n), np.uint32)
        names = np.empty((3, n), np.int8)
        sym = np.empty(n, np.int32)
        u64 = np.empty((2, n), np.uint64)
        price = np.empty((n, 2), np.int64)
        valid = np.empty((7, n), np.bool_)
        _event_columns(events, len(self.symbols), _EVENT_LUT, _SIDE_LUT, _REASON_LUT, self.div,
                       ints, u32, names, sym, u64, price, valid)
        bits = np.packbits(valid, axis=1, bitorder="little")

        def array(t, values, v=None):
            return pa.Array.from_buffers(t, n, [None if v is None else pa.py_buffer(bits[v]), pa.py_buffer(values)])

        def named(values, dictionary, v=None):
            indices = array(pa.from_numpy_dtype(values.dtype), values, v)
            return pa.DictionaryArray.from_arrays(indices, dictionary, safe=False)

        columns = [
            array(pa.int64(), ints),
            named(names[0], _EVENT_DICT),
            named(sym, self.symbols, 0),
            array(pa.uint64(), u64[0], 1),
            array(pa.uint32(), u32[0]),
            named(names[1], _SIDE_DICT, 2),
            array(self.schema.field("price").type, price, 3),
            array(pa.uint32(), u32[1], 4),
            array(pa.uint32(), u32[2], 4),
            array(pa.uint64(), u64[1], 5),
            named(names[2], _REASON_DICT, 6),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def bind(self, flow: Flow | None) -> None:
        """Nothing to keep: a REJECT's fields come from its record, not the flow's text."""

    def _drain(self) -> None:
        while True:
            events = self._queue.get()
            if events is _DONE:
                return
            if self._error is None:  # after an error, only empty the queue
                try:
                    self._writer.write_batch(self.batch(events))
                except BaseException as e:  # handed to the caller's thread
                    self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise e

    def write(self, events: np.ndarray) -> None:
        self._raise()
        if not len(events):
            return
        if self._thread is None:  # Arrow: writing a batch costs less than handing it over
            self._writer.write_batch(self.batch(events))
        else:
            self._queue.put(events.copy())  # the caller reuses its buffer

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        self._raise()
        self._writer.close()


def event_writer(fh, venue: VenueConfig, flow: Flow | None, path: str | Path) -> ColumnarEventWriter:
    """The columnar writer for an events file named `path` (.parquet, .arrow or .feather)."""
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: not a columnar file name (expected {', '.join(SUFFIXES)})")
    return ColumnarEventWriter(fh, venue, flow, fmt)


def warm_up(venue: VenueConfig) -> float:
    """Load the compiled kernels of both directions (Numba's cache) on a two-row table and a
    few events; returns the seconds it took, so that timings afterwards measure the work."""
    t0 = perf_counter()
    table = pa.table(
        {
            "ts": pa.array([1, 2], pa.uint64()),
            "account": pa.array([1, 1], pa.uint32()),
            "action": ["NEW", "CANCEL"],
            "symbol": [venue.symbols[0].name if venue.symbols else "X", None],
            "order_id": pa.array([1, 1], pa.uint64()),
            "side": ["BUY", None],
            "type": ["LIMIT", None],
            "tif": ["GTC", None],
            "price": ["1", None],
            "qty": pa.array([1, None], pa.int64()),
        }
    )
    flow = flow_from_table(table, venue, "<warm-up>")
    # signed integer columns, as pandas writes them
    signed = table
    for name in UINT_COLUMNS:
        signed = signed.set_column(FLOW_COLUMNS.index(name), name, table.column(name).cast(pa.int64()))
    flow_from_table(signed, venue, "<warm-up>")
    events = np.zeros(2, EVENT_DTYPE)  # the writer's kernels, without the matcher's
    events["kind"] = EV_ACK
    for fmt in ("parquet", "arrow"):
        w = ColumnarEventWriter(io.BytesIO(), venue, flow, fmt)
        w.write(events)
        w.close()
    return perf_counter() - t0
