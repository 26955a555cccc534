"""The gateway's wire format: frame kinds, market data payloads and the limits of a message
(docs/offload.md#gateway). The records themselves are engine/records.py's."""

from __future__ import annotations

import struct

import numpy as np

DEFAULT_ORDERS = "tcp://*:5555"
DEFAULT_MD = "tcp://*:5556"
LOCAL_ORDERS = "tcp://127.0.0.1:5555"  # --insecure-local
LOCAL_MD = "tcp://127.0.0.1:5556"
MAX_RECORDS = 1 << 16  # records in one request message
MAX_TOKEN = 64  # bytes of a request token
MAX_CSV_BYTES = 6 << 20  # a CSV message; its rows are counted before any is parsed
MAX_FRAME = 8 << 20  # libzmq's MAXMSGSIZE: a bigger frame closes the connection before it is read whole

# frame kinds
K_ORD, K_CSV = b"ORD", b"CSV"  # client -> gateway
K_EV, K_ERR, K_REP = b"EV", b"ERR", b"REP"  # gateway -> client
MD_TRADE, MD_TOP, MD_HEARTBEAT = b"trade", b"top", b"hb"
HEARTBEAT_TOPIC = b"\x00"  # no symbol name contains NUL: subscribers to a symbol never see it

# Market data payloads (little-endian, packed). Prices in 1e-8 units like the records.
TRADE_DTYPE = np.dtype(
    [
        ("seq", "<i8"),  # 0  event seq of the taker's FILL
        ("ts", "<u8"),  # 8  gateway clock (ns since the epoch) when published
        ("price", "<i8"),  # 16
        ("qty", "<u4"),  # 24
        ("symbol", "<u2"),  # 28 venue symbol index
        ("side", "u1"),  # 30 aggressor: 1 BUY, 2 SELL
        ("reserved", "u1"),  # 31
    ]
)
TOP_DTYPE = np.dtype(
    [
        ("seq", "<i8"),  # 0  last event seq applied
        ("ts", "<u8"),  # 8
        ("bid_price", "<i8"),  # 16 PRICE_NONE when the side is empty
        ("bid_qty", "<i8"),  # 24
        ("ask_price", "<i8"),  # 32
        ("ask_qty", "<i8"),  # 40
        ("bid_orders", "<u4"),  # 48
        ("ask_orders", "<u4"),  # 52
        ("symbol", "<u2"),  # 56
        ("reserved", "u1", (6,)),  # 58
    ]
)
HEARTBEAT_DTYPE = np.dtype([("ts", "<u8"), ("last_seq", "<i8"), ("engine_ready", "<i8")])
TRADE = struct.Struct("<qQqIHBx")  # TRADE_DTYPE
TOP = struct.Struct("<qQqqqqIIH6x")  # TOP_DTYPE
HB = struct.Struct("<Qqq")  # HEARTBEAT_DTYPE
SEQ = struct.Struct("<q")
assert TRADE.size == TRADE_DTYPE.itemsize == 32 and TOP.size == TOP_DTYPE.itemsize == 64
assert HB.size == HEARTBEAT_DTYPE.itemsize

# L2 depth (docs/offload.md#market-data): incremental level updates on the symbol's topic, and
# the snapshot a client asks for over the order socket.
MD_DEPTH = b"depth"
K_SNAP = b"SNAP"  # client -> gateway [SNAP, token, symbol]; gateway -> client [SNAP, token, seq, levels]
DEPTH_DTYPE = np.dtype(
    [
        ("seq", "<i8"),  # 0  the symbol's depth sequence number (1, 2, 3 ... per depth message)
        ("price", "<i8"),  # 8  1e-8 units
        ("qty", "<i8"),  # 16 the level's total quantity after the change; 0 = the level is gone
        ("orders", "<u4"),  # 24 orders resting at the level
        ("symbol", "<u2"),  # 28 venue symbol index
        ("side", "u1"),  # 30 1 BUY (bid), 2 SELL (ask)
        ("reserved", "u1"),  # 31
    ]
)
DEPTH = struct.Struct("<qqqIHBx")  # DEPTH_DTYPE
assert DEPTH.size == DEPTH_DTYPE.itemsize == 32
