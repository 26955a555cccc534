"""CSV and .npy edges: order-flow CSV -> order records, event records -> events CSV.

Both directions are njit loops over the bytes: a CSV library would hand back
Python strings or typed columns, and the rulebook's row-level rules (MALFORMED per
field, raw echo of the request in REJECT) need the bytes anyway. Parsing follows
docs/rulebook.md, section 3: a well-formed row goes through a fast path (one 64-byte look a
row, numbers 8 digits at a time), any other row through the general field-by-field parser,
which the fast path must agree with byte for byte (tests/test_codec_fastpath.py). Writing
follows section 6.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from llvmlite import ir  # the fast path's intrinsics (engine/book.py has others)
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from engine.config import VenueConfig
from engine.jit import NO_WRAPAROUND
from engine.records import (
    ACTION_CANCEL,
    ACTION_KILL,
    ACTION_MALFORMED,
    ACTION_NEW,
    ACTION_REPLACE,
    EV_CANCELED,
    EV_FILL,
    EV_KILLED,
    EV_REJECT,
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
_JIT = dict(NO_WRAPAROUND, cache=True, nogil=True, _nrt=False)

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
    """Rows in buf[start:end] (end is a row's end: a newline's next byte, or len(buf)).

    One branch-free pass that LLVM vectorises (~0.05 ns a byte): the loop runs over a slice, so
    its index is known non-negative and carries no wraparound select."""
    if end <= start:
        return 0
    piece = buf[start:end]
    n = 0
    for j in range(len(piece)):
        n += piece[j] == 10
    return n + (piece[len(piece) - 1] != 10)  # a last row without its newline


# --- the fast path: a row's structure in one 64-byte compare, its fields in word operations ---
# _fast_row finds the ','s and the '\n' of a row (and its '.'s and digits) with one 64-byte load
# and four vector compares that give a bit a byte (LLVM emits them for any x86-64: AVX-512,
# AVX2 or SSE2), then reads each field from its known bounds: a number's digits are checked
# with a mask and converted 8 at a time in a few multiplies (SWAR: SIMD within a register), a
# word (NEW, BUY, GTC, ...) is compared whole as an 8-byte load. Each field's work waits for
# nothing but the masks, so the fields of a row, and the next row, overlap in the CPU.
# It takes only rows that _parse_row would read as a valid NEW, CANCEL, REPLACE or KILL, and
# fills exactly the fields _parse_row fills; any other row, and any row near a limit it would
# have to think about, goes to _parse_row unchanged.



def _bytes_vector(context, builder, aryty, ary, i, n):
    """arr[i:i + n] of a uint8 array as an LLVM <n x i8>: one unaligned load (byte by byte for a
    strided array)."""
    vty = ir.VectorType(ir.IntType(8), n)
    if aryty.is_contig:
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [i])
        return builder.load(builder.bitcast(ptr, vty.as_pointer()), align=1)
    v = ir.Constant(vty, ir.Undefined)
    for k in range(n):
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [builder.add(i, i.type(k))])
        v = builder.insert_element(v, builder.load(ptr), ir.IntType(32)(k))
    return v


def _byte_array_and_index(arr, idx):
    is_bytes = isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.uint8
    return is_bytes and isinstance(idx, types.Integer)


def _window(context, builder, signature, args, n):
    """The n bytes arr[idx:idx + n] of an intrinsic's (arr, idx) arguments, as an <n x i8>."""
    aryty, idxty = signature.args
    ary = context.make_array(aryty)(context, builder, args[0])
    return _bytes_vector(context, builder, aryty, ary, context.cast(builder, args[1], idxty, types.intp), n)


@intrinsic
def _load8(typingctx, arr, idx):
    """arr[idx:idx + 8] as one little-endian uint64 (the caller makes sure idx + 8 <= len(arr))."""
    if not _byte_array_and_index(arr, idx):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(_window(context, builder, signature, args, 8), ir.IntType(64))

    return types.uint64(arr, idx), codegen


@intrinsic
def _masks64(typingctx, arr, idx):
    """Bit masks of the 64 bytes arr[idx:idx + 64], bit i for byte idx + i: (its ','s, its '\n's,
    its '.'s, its ASCII digits). The caller makes sure idx + 64 <= len(arr)."""
    if not _byte_array_and_index(arr, idx):
        return None

    def codegen(context, builder, signature, args):
        v = _window(context, builder, signature, args, 64)

        def splat(c):
            return ir.Constant(v.type, [c] * 64)

        def bits(cond):  # <64 x i1> -> i64, element i in bit i
            return builder.bitcast(cond, ir.IntType(64))

        comma = bits(builder.icmp_unsigned("==", v, splat(44)))
        newline = bits(builder.icmp_unsigned("==", v, splat(10)))
        dot = bits(builder.icmp_unsigned("==", v, splat(46)))
        digit = bits(builder.icmp_unsigned("<", builder.sub(v, splat(48)), splat(10)))
        return context.make_tuple(builder, signature.return_type, [comma, newline, dot, digit])

    return types.UniTuple(types.uint64, 4)(arr, idx), codegen


@intrinsic
def _ctz(typingctx, v):
    """Trailing zero bits of an integer (its width for 0)."""
    if not isinstance(v, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.IntType(1)(0))

    return v(v), codegen


def _word(text: bytes) -> np.uint64:
    """The first bytes of a _load8 word equal to `text`: compare (word & _MASK[len]) with this."""
    return np.uint64(int.from_bytes(text, "little"))


# The fast path's functions that take arrays are inlined at Numba IR level: a call LLVM leaves
# out of line passes each array as a handful of words on the stack and costs more than the
# function's work (with _fast_row out of line, 45 ns a row instead of 38). Those that take only
# integers are plain functions that LLVM inlines: inlining them in Numba's IR too gave the same
# code and 0.8 s more compiling.
_JIT_INLINE = dict(_JIT, inline="always")
_LITTLE_ENDIAN = bool(np.little_endian)  # the words below are laid out for it
# Bytes from a row's start that _fast_row may read, whatever the row: at most 103 (the second
# 64-byte window starts at most 31 bytes in, after 19 + 10 digits and two ','s, and an 8-byte
# load starts at most one byte past its end); rows with fewer bytes left in buf go to _parse_row.
FAST_SPAN = 136
_MASK = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], np.uint64)  # the first k bytes
_LOW_BITS = np.array([(1 << k) - 1 for k in range(64)] + [2**64 - 1], np.uint64)  # the lowest k bits
_POW10_U = np.array([10**k for k in range(9)], np.uint64)
_W_NEW, _W_CANCEL, _W_REPLACE, _W_KILL = _word(b"NEW,"), _word(b"CANCEL,"), _word(b"REPLACE,"), _word(b"KILL,")
_W_BUY, _W_SELL, _W_LIMIT, _W_MARKET = _word(b"BUY,"), _word(b"SELL,"), _word(b"LIMIT,"), _word(b"MARKET,")
_W_GTC, _W_IOC, _W_FOK, _W_POST = _word(b"GTC,"), _word(b"IOC,"), _word(b"FOK,"), _word(b"POST,")
_B_ZERO = np.uint64(0x3030303030303030)  # '0' in every byte


@njit(**_JIT)
def _same_table(tab, lens, ref_tab, ref_lens):
    if len(lens) != len(ref_lens) or tab.shape[0] < len(lens):
        return False
    for k in range(len(lens)):
        if lens[k] != ref_lens[k] or lens[k] > tab.shape[1]:
            return False
        for i in range(lens[k]):
            if tab[k, i] != ref_tab[k, i]:
                return False
    return True


@njit(**_JIT)
def _fast_tables(atab, alen, stab, slen, ttab, tlen, itab, ilen):
    """Whether the token tables are the module's: _fast_row knows those words by heart, and
    parse_rows uses it only with them (other tables: every row through _parse_row)."""
    return (
        _same_table(atab, alen, _ACTION_TAB, _ACTION_LEN)
        and _same_table(stab, slen, _SIDE_TAB, _SIDE_LEN)
        and _same_table(ttab, tlen, _TYPE_TAB, _TYPE_LEN)
        and _same_table(itab, ilen, _TIF_TAB, _TIF_LEN)
    )


@njit(**_JIT)
def _eight_digits(x):
    """The number whose 8 decimal digits are the bytes of x (values 0..9), the first byte the most
    significant."""
    x = (x * np.uint64(10) + (x >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x * np.uint64(100) + (x >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    return (x * np.uint64(10000) + (x >> np.uint64(32))) & np.uint64(0xFFFFFFFF)


@njit(**_JIT)
def _int_value(x, n):
    """The number of the first n (0..8) digits of x (bytes of values 0..9)."""
    sh = np.uint64(32 - 4 * n)  # shifting by 64 - 8n in two steps: 0 for n = 0, not undefined
    return _eight_digits((x << sh) << sh)  # the n digits last, zeros (leading) before them


@njit(**_JIT_INLINE)
def _digits_at(buf, p, n):
    """The number of the n (1..19: no overflow) ASCII digits buf[p:p + n]."""
    v = np.uint64(0)
    while n > 8:
        v = v * np.uint64(10**8) + _eight_digits(_load8(buf, p) ^ _B_ZERO)
        p += 8
        n -= 8
    return v * _POW10_U[n] + _int_value(_load8(buf, p) ^ _B_ZERO, n)


@njit(**_JIT_INLINE)
def _number_at(buf, j, s, e, dot, dig):
    """The field buf[j + s:j + e] (e - s <= 63), whose bytes' '.' and digit masks from j are dot and
    dig, as (ok, integer part, fraction in 1e-8 units, fraction non-zero). ok only for digits with
    at most one '.', at least one digit, at most 8 on each side; False for anything else (a sign,
    9 digits or more, no digits, ...)."""
    n = e - s
    odd = ~dig >> np.uint64(s) & _LOW_BITS[n]  # the bytes that are not digits
    if odd == 0:
        d = n  # no '.'
    elif odd & (odd - np.uint64(1)) == 0 and (dot >> np.uint64(s)) & odd != 0:
        d = np.int64(_ctz(odd))  # the one '.'
    else:
        return False, np.int64(0), np.int64(0), False
    n_frac = max(n - d - 1, 0)
    if d > 8 or n_frac > 8 or d + n_frac == 0:
        return False, np.int64(0), np.int64(0), False
    ip = np.int64(_int_value(_load8(buf, j + s) ^ _B_ZERO, d))
    x = (_load8(buf, j + s + d + 1) ^ _B_ZERO) & _MASK[n_frac]  # the decimals first, zeros after
    return True, ip, np.int64(_eight_digits(x)), x != 0


@njit(**_JIT_INLINE)
def _fast_row(buf, j, rec, sym_tab, sym_len):
    """Parse the row at buf[j] and return the index of its '\n' (a '\r' before it is the row's
    line end), having filled exactly the fields _parse_row fills, with the same values; or return
    -1 and leave rec as it was: a row _parse_row reads as MALFORMED, or one of a shape this path
    does not take (a sign, a number of more than 19 digits, an account of more than 10, a price or
    quantity of more than 8 integer digits or 8 decimals, a '\r' in a field it reads, a row whose
    fields from the action on are 64 bytes or more, no '\n', ...).

    Reads buf[j:j + FAST_SPAN], whatever the row's length: the caller makes sure that is in buf."""
    comma, newline, dot, dig = _masks64(buf, j)
    k = np.int64(_ctz(newline))  # 64: the row is longer than the window
    # ts and account: 1..19 and 1..10 digits, ended by the row's first two ','s
    cm = comma & _LOW_BITS[k]
    e0 = np.int64(_ctz(cm))
    e1 = np.int64(_ctz(cm & (cm - np.uint64(1))))
    n1 = e1 - e0 - 1
    if e0 < 1 or e0 > 19 or n1 < 1 or n1 > 10:
        return -1
    if dig & _LOW_BITS[e0] != _LOW_BITS[e0] or (dig >> np.uint64(e0 + 1)) & _LOW_BITS[n1] != _LOW_BITS[n1]:
        return -1
    acct = _digits_at(buf, j + e0 + 1, n1)
    if acct > U32_MAX:
        return -1
    ts = _digits_at(buf, j, e0)
    # the rest of the row, from the action on: in the same window, or (a long row) in the next
    j2 = j + e1 + 1
    if k < 64:
        sh = np.uint64(e1 + 1)
        comma, newline, dot, dig = comma >> sh, newline >> sh, dot >> sh, dig >> sh
    else:
        comma, newline, dot, dig = _masks64(buf, j2)
    k2 = np.int64(_ctz(newline))
    if k2 == 64:
        return -1
    cm = comma & _LOW_BITS[k2]
    one = np.uint64(1)
    e2 = np.int64(_ctz(cm))  # the ends of the fields 2 to 8, from j2
    cm &= cm - one
    e3 = np.int64(_ctz(cm))
    cm &= cm - one
    e4 = np.int64(_ctz(cm))
    cm &= cm - one
    e5 = np.int64(_ctz(cm))
    cm &= cm - one
    e6 = np.int64(_ctz(cm))
    cm &= cm - one
    e7 = np.int64(_ctz(cm))
    cm &= cm - one
    e8 = np.int64(_ctz(cm))
    if cm & (cm - one) != 0 or e8 > k2:  # not 10 fields: more ','s, or fewer (ctz(0) = 64)
        return -1
    w = _load8(buf, j2)
    if w & _MASK[4] == _W_NEW:
        action = ACTION_NEW
    elif w & _MASK[7] == _W_CANCEL:
        action = ACTION_CANCEL
    elif w == _W_REPLACE:
        action = ACTION_REPLACE
    elif w & _MASK[5] == _W_KILL:
        action = ACTION_KILL
    else:
        return -1
    if action == ACTION_KILL:  # fields 3 to 9 are not read
        rec.ts = ts
        rec.account = np.uint32(acct)
        rec.action = ACTION_KILL
        return j2 + k2
    n4 = e4 - e3 - 1
    if n4 < 1 or n4 > 19 or (dig >> np.uint64(e3 + 1)) & _LOW_BITS[n4] != _LOW_BITS[n4]:
        return -1
    oid = _digits_at(buf, j2 + e3 + 1, n4)
    if action == ACTION_CANCEL:  # fields 5 to 9 are not read
        rec.ts = ts
        rec.account = np.uint32(acct)
        rec.order_id = oid
        rec.action = ACTION_CANCEL
        return j2 + k2
    side = 0
    otype = 0
    tif = 0
    if action == ACTION_NEW:  # each word compared whole (with its ','), without a branch on which
        w = _load8(buf, j2 + e4 + 1)
        buy = w & _MASK[4] == _W_BUY
        sell = w & _MASK[5] == _W_SELL
        w = _load8(buf, j2 + e5 + 1)
        limit = w & _MASK[6] == _W_LIMIT
        market = w & _MASK[7] == _W_MARKET
        w = _load8(buf, j2 + e6 + 1)
        w4 = w & _MASK[4]
        tif = (w4 == _W_GTC) * TIF_GTC + (w4 == _W_IOC) * TIF_IOC + (w4 == _W_FOK) * TIF_FOK
        tif += (w & _MASK[5] == _W_POST) * TIF_POST
        if not (buy or sell) or not (limit or market) or tif == 0:
            return -1
        side = SIDE_SELL - buy
        otype = TYPE_MARKET - limit
    # price: empty, or a number; qty: a number, up to the line end (a '\r' before the '\n' is not in it)
    if e8 == e7 + 1:
        price = np.int64(PRICE_NONE)
    else:
        ok, ip, frac, _ = _number_at(buf, j2, e7 + 1, e8, dot, dig)
        if not ok:
            return -1
        units = ip * 10**PRICE_DECIMALS + frac
        price = units if units <= MAX_PRICE_UNITS else np.int64(PRICE_INVALID)
    qty_end = k2 - 1 if buf[j2 + k2 - 1] == 13 else k2
    ok, q, _, nonzero = _number_at(buf, j2, e8 + 1, qty_end, dot, dig)
    if not ok:
        return -1
    rec.ts = ts
    rec.account = np.uint32(acct)
    rec.order_id = oid
    if action == ACTION_NEW:
        rec.side = side
        rec.type = otype
        rec.tif = tif
        rec.symbol = _find_symbol(buf, j2 + e2 + 1, j2 + e3, sym_tab, sym_len)
    rec.qty = np.int64(QTY_INVALID) if nonzero else q
    rec.price = price
    rec.action = action
    return j2 + k2


@njit(**_JIT)
def parse_rows(
    buf, start, end, n, seq0, orders, row_start, row_end, fs, fe, sym_tab, sym_len, atab, alen, stab, slen, ttab,
    tlen, itab, ilen,
):
    """Parse the rows of buf[start:end] into orders[n:], numbered msg_seq seq0 + n, seq0 + n + 1, ...;
    return the index after the last record written. fs/fe (N_FIELDS + 1 each) are scratch for
    the field bounds of one row.

    A row goes through _fast_row when FAST_SPAN bytes from its start are in buf (all but the last
    rows of buf); a row it does not take, and those last rows, are parsed by _parse_row. Both
    give the same record (tests/test_codec_fastpath.py)."""
    last = end  # the rows before `last` end with a '\n'
    while last > start and buf[last - 1] != 10:
        last -= 1
    fast = _LITTLE_ENDIAN and _fast_tables(atab, alen, stab, slen, ttab, tlen, itab, ilen)
    fast_end = len(buf) - FAST_SPAN if fast else start - 1  # rows starting at most here
    j = start
    while j < last:
        rec = orders[n]
        rec.msg_seq = seq0 + n
        k = _fast_row(buf, j, rec, sym_tab, sym_len) if j <= fast_end else -1
        if k < 0:
            k = j
            while buf[k] != 10:
                k += 1
            e = k - 1 if k > j and buf[k - 1] == 13 else k  # \r
            _parse_row(buf, j, e, rec, fs, fe, sym_tab, sym_len, atab, alen, stab, slen, ttab, tlen, itab, ilen)
        else:
            e = k - 1 if buf[k - 1] == 13 else k
        row_start[n] = j
        row_end[n] = e
        n += 1
        j = k + 1
    if j < end:  # the last row, without its '\n'
        e = end - 1 if buf[end - 1] == 13 else end
        rec = orders[n]
        rec.msg_seq = seq0 + n
        _parse_row(buf, j, e, rec, fs, fe, sym_tab, sym_len, atab, alen, stab, slen, ttab, tlen, itab, ilen)
        row_start[n] = j
        row_end[n] = e
        n += 1
    return n


@dataclass
class Flow:
    """An order flow ready for the matcher, with its source text kept for REJECT echoes."""

    orders: np.ndarray
    raw: np.ndarray | None = None  # the file's bytes (CSV input only)
    row_start: np.ndarray | None = None
    row_end: np.ndarray | None = None
    source: str = "<memory>"
    seq0: int = 1  # msg_seq of orders[0]: a block of a longer flow starts further on

    def __len__(self) -> int:
        return len(self.orders)


def symbol_table(venue: VenueConfig) -> tuple[np.ndarray, np.ndarray]:
    return _table([s.name.encode() for s in venue.symbols])


def check_header(header: bytes, source: str) -> None:
    """The flow's first row (without its newline) must be FLOW_HEADER."""
    if header.endswith(b"\r"):
        header = header[:-1]
    if header != FLOW_HEADER.encode():
        shown = header[:120].decode("utf-8", "replace")
        raise FlowError(f"{source}: row 1: header must be '{FLOW_HEADER}', got '{shown}'")


def parse_flow_bytes(data: bytes | bytearray, venue: VenueConfig, source: str = "<memory>") -> Flow:
    """A flow from CSV text. The text is kept as a writable array (bytes are copied): Numba
    compiles a function again for a read-only array, and the replay's blocks are writable."""
    nl = data.find(b"\n")
    check_header(data if nl < 0 else data[:nl], source)
    buf = np.frombuffer(data if isinstance(data, bytearray) else bytearray(data), np.uint8)
    orders, row_start, row_end = parse_region(buf, len(data) if nl < 0 else nl + 1, len(data), 1, *symbol_table(venue))
    return Flow(orders, buf, row_start, row_end, source)


def _fresh_rows(n: int):
    return np.zeros(n, ORDER_DTYPE), np.zeros(n, np.int64), np.zeros(n, np.int64)


def _newline_at_or_after(buf: np.ndarray, pos: int, end: int) -> int:
    window = 1 << 12
    while pos < end:
        hits = np.flatnonzero(buf[pos : min(end, pos + window)] == 10)
        if len(hits):
            return pos + int(hits[0])
        pos, window = pos + window, 2 * window
    return -1


def parse_region(buf: np.ndarray, start: int, end: int, seq0: int, sym_tab, sym_len, rows=_fresh_rows):
    """Parse the rows of buf[start:end] (whole rows: end is a row's end) into records numbered
    msg_seq seq0, seq0 + 1, ...; returns (orders, row_start, row_end), n rows each. rows(n)
    gives arrays of at least n rows: fresh ones, or a caller's reused ones (zeroed here first,
    as a malformed row's record keeps zeros in the fields it never reached)."""
    # Pieces that end at row ends, parsed side by side (the njit loops release the GIL).
    cuts = [start]
    for k in range(1, PARSE_THREADS if end - start >= PARSE_PIECE_MIN else 1):
        nl_k = _newline_at_or_after(buf, max(cuts[-1], start + (end - start) * k // PARSE_THREADS), end)
        if nl_k < 0:
            break
        cuts.append(nl_k + 1)
    cuts.append(end)
    pieces = list(zip(cuts[:-1], cuts[1:]))
    counts = list(pool().map(lambda p: _count_rows(buf, p[0], p[1]), pieces))
    firsts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n = int(firsts[-1])
    orders, row_start, row_end = (a[:n] for a in rows(n))
    if rows is not _fresh_rows:
        orders.view(np.uint8)[:] = 0

    def parse(k):
        fs = np.zeros(N_FIELDS + 1, np.int64)
        fe = np.zeros(N_FIELDS + 1, np.int64)
        return parse_rows(
            buf, pieces[k][0], pieces[k][1], firsts[k], seq0, orders, row_start, row_end, fs, fe, sym_tab, sym_len,
            _ACTION_TAB, _ACTION_LEN, _SIDE_TAB, _SIDE_LEN, _TYPE_TAB, _TYPE_LEN, _TIF_TAB, _TIF_LEN,
        )

    list(pool().map(parse, range(len(pieces))))
    return orders, row_start, row_end


def read_npy_header(fh, p: Path) -> int:
    """Check the .npy header of a file of order records, open at its start; returns how many
    records it announces, with fh at the first. Anything else is one FlowError naming p."""
    try:
        version = np.lib.format.read_magic(fh)
    except ValueError:  # np.load would take it for a pickle or a zip, in numpy's own words
        raise FlowError(f"{p}: not a .npy file of order records (it does not begin with the .npy magic)") from None
    try:
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fh)  # 3.0 differs from 2.0 in its text's encoding alone
    except (ValueError, EOFError) as e:
        raise FlowError(f"{p}: not a readable .npy file: {e}") from None
    if dtype != ORDER_DTYPE:
        raise FlowError(f"{p}: records of dtype {dtype}, expected tickbook's ORDER_DTYPE")
    if len(shape) != 1:  # the matcher takes a 1-D array of records, nothing else
        raise FlowError(f"{p}: an array of shape {shape}, expected a 1-D array of order records")
    return shape[0]


def read_flow(path: str | Path, venue: VenueConfig) -> Flow:
    """A flow from a CSV file or a .npy file of ORDER_DTYPE records, whole (engine.stream
    reads one a block at a time)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            if p.suffix == ".npy":
                orders = np.empty(read_npy_header(fh, p), ORDER_DTYPE)
                got = fh.readinto(orders.view(np.uint8))
                if got != orders.nbytes:
                    raise FlowError(
                        f"{p}: not a readable .npy file: {len(orders):,} records announced, "
                        f"{got // ORDER_DTYPE.itemsize:,} present (cut short)"
                    )
                return Flow(orders, source=str(p))
            data = bytearray(fh.read())  # a pipe has no size to read into
    except OSError as e:
        raise FlowError(f"{p}: cannot read: {e.strerror}") from None
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


# 10**k, and the two ASCII digits of 0..99: numbers are written two digits a step, and their
# length found by comparisons, not divisions (a division by a constant is a multiply, but a
# number took two loops of them).
_POW10 = np.array([10**k for k in range(20)], np.uint64)
_DIGIT_PAIRS = np.frombuffer("".join(f"{k:02d}" for k in range(100)).encode(), np.uint8).copy()


@njit(**_JIT)
def _put_uint(out, p, v):
    v = np.uint64(v)
    n = 1
    while n < 20 and v >= _POW10[n]:
        n += 1
    q = p + n
    while v >= np.uint64(100):
        r = np.int64(v % np.uint64(100)) * 2
        v //= np.uint64(100)
        q -= 2
        out[q] = _DIGIT_PAIRS[r]
        out[q + 1] = _DIGIT_PAIRS[r + 1]
    if v >= np.uint64(10):
        r = np.int64(v) * 2
        out[q - 2] = _DIGIT_PAIRS[r]
        out[q - 1] = _DIGIT_PAIRS[r + 1]
    else:
        out[q - 1] = 48 + np.uint8(v)
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
    events, start, stop, out, margin, sym_tab, sym_len, sym_dec, raw, row_start, row_end, seq0, has_raw,
    etab, elen, rtab, rlen, stab, slen,
):
    """Write events[start:stop] as CSV lines into out while at least `margin` bytes stay
    free; returns (next event index, bytes written). A REJECT echoes the raw fields of its
    row, row msg_seq - seq0 of raw/row_start/row_end (a flow, or one block of it)."""
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
                m = ev.msg_seq - seq0
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
    """Streams event records to a binary file object as CSV, chunk by chunk. A REJECT echoes
    its row's raw fields from the flow bound to the writer (a whole flow, or the block being
    replayed: bind() the next one)."""

    CHUNK = 1 << 22

    def __init__(self, fh, venue: VenueConfig, flow: Flow | None = None, header: bool = True):
        self.fh = fh
        self.sym_tab, self.sym_len = symbol_table(venue)
        self.sym_dec = np.array([s.decimals for s in venue.symbols], np.int64)
        self.bufs: list[np.ndarray] = []
        self.bind(flow)
        if header:
            fh.write((EVENTS_HEADER + "\n").encode())

    def bind(self, flow: Flow | None) -> None:
        """Echo REJECTs from this flow (or block) from now on; its rows must outlive the writes."""
        self.has_raw = flow is not None and flow.raw is not None
        if self.has_raw:
            self.raw, self.row_start, self.row_end = flow.raw, flow.row_start, flow.row_end
            self.seq0 = flow.seq0
            longest_row = int((flow.row_end - flow.row_start).max(initial=0))
        else:
            self.raw = np.zeros(1, np.uint8)
            self.row_start = self.row_end = np.zeros(1, np.int64)
            self.seq0 = 1
            longest_row = 0
        # Longest line: numbers (20 digits each), names, and a REJECT's raw fields.
        self.margin = 320 + int(self.sym_len.max()) + longest_row
        size = max(self.CHUNK, 2 * self.margin)
        if not self.bufs or len(self.bufs[0]) < size:
            self.bufs = [np.empty(size, np.uint8) for _ in range(PARSE_THREADS)]
        # A block of events that surely fits one buffer: no line is longer than the margin.
        self.block = len(self.bufs[0]) // self.margin

    def _format(self, events, k, start, stop):
        nxt, nbytes = format_events(
            events, start, stop, self.bufs[k], self.margin, self.sym_tab, self.sym_len, self.sym_dec,
            self.raw, self.row_start, self.row_end, self.seq0, self.has_raw,
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
