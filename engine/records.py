"""The one record layout: 64-byte order and event records, and their enums.

Every path uses these: the CSV codec, the .npy files, the shared-memory rings, the
journal and the Verilog ports (which unpack the same bit fields). `docs/protocol.md`
documents them field by field; `tests/test_records.py` pins offsets and sizes so a
change here cannot slip through unnoticed.

Integers only. Quantities are int64 inside the engine (Numba turns uint64 + int64
into float64, so unsigned arithmetic is kept off the hot path).
"""

import numpy as np

LAYOUT_VERSION = 1
RECORD_SIZE = 64

# Prices travel as fixed-point integers of 1e-8 price units, not ticks: a REPLACE names
# no symbol, so whoever encodes it cannot know the tick. The matcher divides by the
# symbol's tick (also in 1e-8 units) and rejects remainders as BAD_PRICE.
PRICE_DECIMALS = 8
PRICE_SCALE = 10**PRICE_DECIMALS
# The venue's price range: |units| must stay below 2**53 (about 90 million price units).
MAX_PRICE_UNITS = 2**53 - 1
# Sentinels of the order record's price field.
PRICE_NONE = -(2**63)  # the field was empty
PRICE_INVALID = -(2**63) + 1  # a number no tick can divide: more than 8 decimals, or out of range
# The venue's largest order quantity; larger numbers are clamped to QTY_CLAMP by encoders
# so MAX_QTY still fires. A non-integer quantity is encoded as QTY_INVALID (-> BAD_QTY).
MAX_QTY = 2**32 - 1
QTY_CLAMP = 2**32
QTY_INVALID = -(2**63)

ORDER_DTYPE = np.dtype(
    [
        ("ts", "<u8"),  # 0   nanoseconds; only the rate limit reads it
        ("order_id", "<u8"),  # 8   NEW: the new id; CANCEL/REPLACE: the target
        ("price", "<i8"),  # 16  1e-8 price units, or PRICE_NONE / PRICE_INVALID
        ("qty", "<i8"),  # 24  NEW: quantity; REPLACE: new leaves; QTY_INVALID if not an integer
        ("msg_seq", "<i8"),  # 32  the sender's message number, echoed in every event it causes
        ("account", "<u4"),  # 40
        ("symbol", "<u2"),  # 44  index in the venue's symbol table; SYMBOL_UNKNOWN if not listed
        ("action", "u1"),  # 46  Action
        ("side", "u1"),  # 47  Side (NEW only)
        ("type", "u1"),  # 48  OrdType (NEW only)
        ("tif", "u1"),  # 49  Tif (NEW only)
        ("reserved", "u1", (14,)),  # 50  zero
    ],
    align=False,
)

EVENT_DTYPE = np.dtype(
    [
        ("seq", "<i8"),  # 0   1, 2, 3 ... per venue
        ("msg_seq", "<i8"),  # 8   msg_seq of the order record that caused the event
        ("order_id", "<u8"),  # 16
        ("contra_id", "<u8"),  # 24  FILL: the other order
        ("price", "<i8"),  # 32  1e-8 price units; PRICE_NONE when the event has no price
        ("qty", "<u4"),  # 40
        ("leaves", "<u4"),  # 44
        ("account", "<u4"),  # 48
        ("symbol", "<u2"),  # 52
        ("kind", "u1"),  # 54  Event
        ("side", "u1"),  # 55  Side, 0 when empty
        ("reason", "u1"),  # 56  Reason (REJECT, CANCELED), TAKER/MAKER (FILL), 0 otherwise
        ("reserved", "u1", (7,)),  # 57 zero
    ],
    align=False,
)

assert ORDER_DTYPE.itemsize == RECORD_SIZE and EVENT_DTYPE.itemsize == RECORD_SIZE

SYMBOL_UNKNOWN = 0xFFFF

# --- enums: plain ints (Numba freezes module globals as constants); 0 is never valid,
# so a zeroed record is recognisably empty.

ACTION_NEW = 1
ACTION_CANCEL = 2
ACTION_REPLACE = 3
ACTION_KILL = 4
ACTION_MALFORMED = 5  # the encoder could not parse the row: the matcher rejects it MALFORMED
ACTION_SHUTDOWN = 255  # control record for the live engine; never in a flow

SIDE_BUY = 1
SIDE_SELL = 2

TYPE_LIMIT = 1
TYPE_MARKET = 2

TIF_GTC = 1
TIF_IOC = 2
TIF_FOK = 3
TIF_POST = 4

EV_ACK = 1
EV_REJECT = 2
EV_FILL = 3
EV_CANCELED = 4
EV_REPLACED = 5
EV_KILLED = 6

# Reasons: reject reasons in rulebook order, then cancel reasons, then fill roles.
R_NONE = 0
R_UNKNOWN_ACCOUNT = 1
R_ACCOUNT_DISABLED = 2
R_RATE_LIMIT = 3
R_UNKNOWN_SYMBOL = 4
R_DUPLICATE_ORDER_ID = 5
R_BAD_TIF = 6
R_BAD_QTY = 7
R_MAX_QTY = 8
R_BAD_PRICE = 9
R_PRICE_BAND = 10
R_MAX_NOTIONAL = 11
R_MAX_POSITION = 12
R_MAX_OPEN_ORDERS = 13
R_CAPACITY = 14
R_MALFORMED = 15
R_UNKNOWN_ORDER = 16
R_NOT_OWNER = 17
R_SELF_TRADE = 32
R_FOK = 33
R_POST_ONLY = 34
R_IOC = 35
R_USER = 36
R_KILL = 37
R_TAKER = 48
R_MAKER = 49

ACTION_NAMES = {ACTION_NEW: "NEW", ACTION_CANCEL: "CANCEL", ACTION_REPLACE: "REPLACE", ACTION_KILL: "KILL"}
SIDE_NAMES = {SIDE_BUY: "BUY", SIDE_SELL: "SELL"}
TYPE_NAMES = {TYPE_LIMIT: "LIMIT", TYPE_MARKET: "MARKET"}
TIF_NAMES = {TIF_GTC: "GTC", TIF_IOC: "IOC", TIF_FOK: "FOK", TIF_POST: "POST"}
EVENT_NAMES = {
    EV_ACK: "ACK",
    EV_REJECT: "REJECT",
    EV_FILL: "FILL",
    EV_CANCELED: "CANCELED",
    EV_REPLACED: "REPLACED",
    EV_KILLED: "KILLED",
}
REASON_NAMES = {
    R_NONE: "",
    R_UNKNOWN_ACCOUNT: "UNKNOWN_ACCOUNT",
    R_ACCOUNT_DISABLED: "ACCOUNT_DISABLED",
    R_RATE_LIMIT: "RATE_LIMIT",
    R_UNKNOWN_SYMBOL: "UNKNOWN_SYMBOL",
    R_DUPLICATE_ORDER_ID: "DUPLICATE_ORDER_ID",
    R_BAD_TIF: "BAD_TIF",
    R_BAD_QTY: "BAD_QTY",
    R_MAX_QTY: "MAX_QTY",
    R_BAD_PRICE: "BAD_PRICE",
    R_PRICE_BAND: "PRICE_BAND",
    R_MAX_NOTIONAL: "MAX_NOTIONAL",
    R_MAX_POSITION: "MAX_POSITION",
    R_MAX_OPEN_ORDERS: "MAX_OPEN_ORDERS",
    R_CAPACITY: "CAPACITY",
    R_MALFORMED: "MALFORMED",
    R_UNKNOWN_ORDER: "UNKNOWN_ORDER",
    R_NOT_OWNER: "NOT_OWNER",
    R_SELF_TRADE: "SELF_TRADE",
    R_FOK: "FOK",
    R_POST_ONLY: "POST_ONLY",
    R_IOC: "IOC",
    R_USER: "USER",
    R_KILL: "KILL",
    R_TAKER: "TAKER",
    R_MAKER: "MAKER",
}


def empty_orders(n: int) -> np.ndarray:
    return np.zeros(n, dtype=ORDER_DTYPE)


def empty_events(n: int) -> np.ndarray:
    return np.zeros(n, dtype=EVENT_DTYPE)


# An event as 8 little-endian int64 words, the cheapest way for Python to walk a batch of them
# (`as_event_words(view).tolist()`): word 0 seq, 1 msg_seq, 2 order_id, 3 contra_id, 4 price,
# 5 qty | leaves << 32, 6 account | symbol << 32 | kind << 48 | side << 56, 7 reason in the low byte.
def as_event_words(events: np.ndarray) -> np.ndarray:
    return events.view(np.int64).reshape(-1, 8)


def event_from_words(w) -> tuple:
    """(seq, msg_seq, order_id, price, qty, leaves, account, symbol, kind, side, reason) of one
    event's words."""
    w5, w6 = w[5], w[6]
    return (w[0], w[1], w[2], w[4], w5 & 0xFFFFFFFF, (w5 >> 32) & 0xFFFFFFFF, w6 & 0xFFFFFFFF,
            (w6 >> 32) & 0xFFFF, (w6 >> 48) & 0xFF, (w6 >> 56) & 0xFF, w[7] & 0xFF)
