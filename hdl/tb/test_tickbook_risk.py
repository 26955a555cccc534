"""cocotb 2.x tests of the pre-trade risk stage (hdl/rtl/tickbook_risk.v) in front of the block-RAM
book, as the benches run them (hdl/sim/tb_book.v), and their pytest runner at the end.

Directed cases, one per rule the stage decides: UNKNOWN_ACCOUNT, ACCOUNT_DISABLED (listed
disabled, default disabled), the account CAPACITY of max_accounts, RATE_LIMIT at the edges of its
one-second buckets (ts 0, 999,999,999, 1e9, the last bucket of 64 bits, ts going back), and
MAX_QTY in its place among the book's checks; MAX_NOTIONAL (the book's check 8 with the account's
limit from the stage) in its place, MARKET orders at their protection price or the reference
price, and at the extremes of prices, quantities and limits; MAX_OPEN_ORDERS (the book's check 10,
counted by the account's entry in the stage's table) in its place, each way an order leaves the
book, and across a reset; MAX_POSITION (the book's check 9) for buys and sells at the limit,
moved by fills, cancels and replaces, at the extremes of quantities and limits; KILL (the
account's orders cancelled in acceptance order across symbols and levels, then KILLED and the
account disabled; of unknown, disabled and new accounts, and the account CAPACITY). Each is a
few CSV rows (with their ts) and the events expected in the rulebook's CSV form, and is also
checked against the Numba engine. Plus:
random flows on tight limits with back-pressure and idle cycles, reset in the middle of traffic,
and resets past the generation tag's wrap (the table swept).
"""

from __future__ import annotations

import os
import random

import cocotb
import cocotb.regression
import numpy as np
import pytest
from cocotb.triggers import FallingEdge
from test_tickbook_book import BookDriver, BuildParams, csv_events, write_config  # beside this file

from engine.api import replay_records
from engine.codec import parse_flow_bytes
from engine.compare import first_divergence
from engine.config import parse_venue
from engine.records import EV_REJECT, R_CAPACITY, R_MAX_OPEN_ORDERS
from hdl.sim.driver import BOOK_SELECT, BRAM_SOURCES, RISK_SOURCES, engine_venue, run_cocotb_module
from testkit.flows import RISK_ACCOUNTS, random_records, risk_venue

pytestmark = pytest.mark.hdl

SYMBOLS = """
[symbols.AAPL]
tick = "0.01"
ref_price = "100.00"
band_bps = 1000
"""
ACCOUNTS = """
[accounts.7]
max_order_qty = 5
max_msgs_per_sec = 100
enabled = true

[accounts.8]
enabled = false

[accounts.4294967295]
max_msgs_per_sec = 2

[engine]
max_accounts = 5
"""
DEFAULTS = {
    "limits": "[accounts.default]\nmax_order_qty = 100\nmax_msgs_per_sec = 3\n",
    "none": "",
    "disabled": "[accounts.default]\nenabled = false\n",
}
HEADER = "ts,account,action,symbol,order_id,side,type,tif,price,qty\n"


def venue(default: str = "limits"):
    return parse_venue(SYMBOLS + DEFAULTS[default] + ACCOUNTS, f"<risk directed venue, default {default}>")


def records(rows: str, v) -> np.ndarray:
    """CSV rows with their own ts (the rate limit's buckets) -> order records, msg_seq 1, 2, ..."""
    text = HEADER + "\n".join(r.strip() for r in rows.strip().splitlines())
    orders = parse_flow_bytes(text.encode(), v).orders
    orders["msg_seq"] = np.arange(1, len(orders) + 1)
    return orders


def flows_venue(default: str):
    """testkit.flows.risk_venue cut to the symbols the build holds."""
    import dataclasses

    v = risk_venue(default)
    return dataclasses.replace(v, symbols=v.symbols[: BuildParams.from_env().nsym])


def build_params() -> tuple[BuildParams, int]:
    e = os.environ
    return BuildParams.from_env(), int(e["HDL_NACCT"])


async def start(dut, v, idle=0, stall=0, seed=1) -> BookDriver:
    build, _ = build_params()
    book = BookDriver(dut, build, idle, stall, seed)
    await book.start(v)
    return book


async def reload(book: BookDriver, v) -> None:
    """Another venue for the next flow: loaded in reset, as the host does."""
    d = book.dut
    await FallingEdge(d.clk)
    d.rst.value = 1
    d.in_valid.value = 0
    await write_config(d, v, False)
    await book.reset()


def check_engine(orders, events, v):
    build, nacct = build_params()
    eng = replay_records(orders, engine_venue(v, build.nord, build.nlvl, nacct))
    diff = first_divergence(events, eng, names=("hw", "engine"))
    assert diff is None, diff


async def run_case(dut, default, rows, expected, idle=0, stall=0, v=None):
    v = v or venue(default)
    orders = records(rows, v)
    book = await start(dut, v, idle, stall)
    assert await book.run(orders) == len(orders)
    got = csv_events(book.event_array(), v)
    want = [line.strip() for line in expected.strip().splitlines()]
    assert got == want, "\n".join(["got:", *got, "want:", *want])
    check_engine(orders, book.event_array(), v)


# ----------------------------------------------------------------------------------- directed
@cocotb.test()
async def rate_limit_buckets_test(dut):
    """Account 4294967295 may send 2 NEW or REPLACE a second: counted before the check (a
    rejected one counts too), CANCEL not counted, a new bucket at 1e9, the last bucket of 64-bit
    ts, and ts going back (a bucket of its own)."""
    await run_case(dut, "limits", """
        0,4294967295,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,1
        999999999,4294967295,NEW,AAPL,2,BUY,LIMIT,GTC,99.00,1
        999999999,4294967295,REPLACE,,1,,,,99.01,1
        1000000000,4294967295,REPLACE,,1,,,,99.01,1
        1000000000,4294967295,CANCEL,,2,,,,,
        1000000001,4294967295,NEW,AAPL,3,BUY,LIMIT,GTC,99.00,1
        1000000002,4294967295,NEW,AAPL,4,BUY,LIMIT,GTC,99.00,1
        18446744073000000000,4294967295,NEW,AAPL,5,BUY,LIMIT,GTC,99.00,1
        18446744073709551615,4294967295,NEW,AAPL,6,BUY,LIMIT,GTC,99.00,1
        18446744073709551615,4294967295,NEW,AAPL,7,BUY,LIMIT,GTC,99.00,1
        5,4294967295,NEW,AAPL,8,BUY,LIMIT,GTC,99.00,1
    """, """
        1,ACK,AAPL,1,4294967295,BUY,99.00,1,1,,
        2,ACK,AAPL,2,4294967295,BUY,99.00,1,1,,
        3,REJECT,AAPL,1,4294967295,,,,,,RATE_LIMIT
        4,REPLACED,AAPL,1,4294967295,BUY,99.01,1,1,,
        5,CANCELED,AAPL,2,4294967295,BUY,99.00,1,0,,USER
        6,ACK,AAPL,3,4294967295,BUY,99.00,1,1,,
        7,REJECT,AAPL,4,4294967295,,,,,,RATE_LIMIT
        8,ACK,AAPL,5,4294967295,BUY,99.00,1,1,,
        9,ACK,AAPL,6,4294967295,BUY,99.00,1,1,,
        10,REJECT,AAPL,7,4294967295,,,,,,RATE_LIMIT
        11,ACK,AAPL,8,4294967295,BUY,99.00,1,1,,
    """)


@cocotb.test()
async def max_qty_in_its_place_test(dut):
    """Account 7's max_order_qty 5, the default's 100: MAX_QTY after UNKNOWN_SYMBOL,
    DUPLICATE_ORDER_ID, BAD_TIF and BAD_QTY and before BAD_PRICE; a REPLACE's after
    UNKNOWN_ORDER and NOT_OWNER; the largest quantity the records allow."""
    await run_case(dut, "limits", """
        1,7,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,5
        2,7,NEW,AAPL,2,BUY,LIMIT,GTC,99.00,6
        3,7,NEW,NOSUCH,3,BUY,LIMIT,GTC,99.00,6
        4,7,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,6
        5,7,NEW,AAPL,4,BUY,MARKET,GTC,,6
        6,7,NEW,AAPL,5,BUY,LIMIT,GTC,99.00,0
        7,7,NEW,AAPL,6,BUY,LIMIT,GTC,99.001,6
        8,7,REPLACE,,1,,,,99.00,6
        9,7,REPLACE,,99,,,,99.00,6
        10,9,REPLACE,,1,,,,99.00,600
        11,7,NEW,AAPL,7,BUY,LIMIT,GTC,99.00,4294967295
        12,9,NEW,AAPL,8,SELL,LIMIT,GTC,99.00,100
        13,9,NEW,AAPL,9,SELL,LIMIT,GTC,99.00,101
    """, """
        1,ACK,AAPL,1,7,BUY,99.00,5,5,,
        2,REJECT,AAPL,2,7,,,,,,MAX_QTY
        3,REJECT,,3,7,,,,,,UNKNOWN_SYMBOL
        4,REJECT,AAPL,1,7,,,,,,DUPLICATE_ORDER_ID
        5,REJECT,AAPL,4,7,,,,,,BAD_TIF
        6,REJECT,AAPL,5,7,,,,,,BAD_QTY
        7,REJECT,AAPL,6,7,,,,,,MAX_QTY
        8,REJECT,AAPL,1,7,,,,,,MAX_QTY
        9,REJECT,AAPL,99,7,,,,,,UNKNOWN_ORDER
        10,REJECT,AAPL,1,9,,,,,,NOT_OWNER
        11,REJECT,AAPL,7,7,,,,,,MAX_QTY
        12,ACK,AAPL,8,9,SELL,99.00,100,100,,
        13,FILL,AAPL,8,9,SELL,99.00,5,95,1,TAKER
        14,FILL,AAPL,1,7,BUY,99.00,5,0,8,MAKER
        15,REJECT,AAPL,9,9,,,,,,MAX_QTY
    """)


@cocotb.test()
async def accounts_known_disabled_and_capacity_test(dut):
    """A disabled listed account (NEW and REPLACE; CANCEL has no account rule), two accounts
    past the three listed ones (max_accounts 5), then CAPACITY for a sixth, account 0 too;
    MALFORMED comes before every account rule."""
    await run_case(dut, "limits", """
        1,8,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,1
        2,8,REPLACE,,1,,,,99.00,1
        3,8,CANCEL,,1,,,,,
        4,10,NEW,AAPL,2,BUY,LIMIT,GTC,99.00,1
        5,11,NEW,AAPL,3,BUY,LIMIT,GTC,99.00,1
        6,12,NEW,AAPL,4,BUY,LIMIT,GTC,99.00,1
        7,12,REPLACE,,2,,,,99.00,1
        8,10,NEW,AAPL,5,BUY,LIMIT,GTC,99.00,1
        9,0,NEW,AAPL,6,BUY,LIMIT,GTC,99.00,1
        10,8,NEW,AAPL,7,UP,LIMIT,GTC,99.00,1
    """, """
        1,REJECT,AAPL,1,8,,,,,,ACCOUNT_DISABLED
        2,REJECT,AAPL,1,8,,,,,,ACCOUNT_DISABLED
        3,REJECT,AAPL,1,8,,,,,,UNKNOWN_ORDER
        4,ACK,AAPL,2,10,BUY,99.00,1,1,,
        5,ACK,AAPL,3,11,BUY,99.00,1,1,,
        6,REJECT,AAPL,4,12,,,,,,CAPACITY
        7,REJECT,AAPL,2,12,,,,,,CAPACITY
        8,ACK,AAPL,5,10,BUY,99.00,1,1,,
        9,REJECT,AAPL,6,0,,,,,,CAPACITY
        10,REJECT,AAPL,7,8,,,,,,MALFORMED
    """)


@cocotb.test()
async def no_default_account_test(dut):
    """Without [accounts.default] an account not listed is UNKNOWN_ACCOUNT (NEW and REPLACE)."""
    await run_case(dut, "none", """
        1,10,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,1
        2,7,NEW,AAPL,2,BUY,LIMIT,GTC,99.00,1
        3,10,REPLACE,,2,,,,99.00,1
        4,4294967295,NEW,AAPL,3,SELL,LIMIT,GTC,99.00,1
    """, """
        1,REJECT,AAPL,1,10,,,,,,UNKNOWN_ACCOUNT
        2,ACK,AAPL,2,7,BUY,99.00,1,1,,
        3,REJECT,AAPL,2,10,,,,,,UNKNOWN_ACCOUNT
        4,ACK,AAPL,3,4294967295,SELL,99.00,1,1,,
        5,FILL,AAPL,3,4294967295,SELL,99.00,1,0,2,TAKER
        6,FILL,AAPL,2,7,BUY,99.00,1,0,3,MAKER
    """)


@cocotb.test()
async def default_account_disabled_test(dut):
    """A disabled [accounts.default]: an account not listed is ACCOUNT_DISABLED, and never
    tracked (the listed ones still trade)."""
    await run_case(dut, "disabled", """
        1,10,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,1
        2,7,NEW,AAPL,2,BUY,LIMIT,GTC,99.00,1
        3,11,NEW,AAPL,3,BUY,LIMIT,GTC,99.00,1
    """, """
        1,REJECT,AAPL,1,10,,,,,,ACCOUNT_DISABLED
        2,ACK,AAPL,2,7,BUY,99.00,1,1,,
        3,REJECT,AAPL,3,11,,,,,,ACCOUNT_DISABLED
    """, idle=30, stall=40)


# MAX_NOTIONAL (the block-RAM book's check 8, with the account's limit from the stage): AAPL's
# collar is 10 % around 100.00, so a MARKET order is valued at 110.00 (BUY) or 90.00 (SELL) until
# a trade moves the reference price
NOTIONAL_ACCOUNTS = """
[accounts.default]
max_notional = "1045"

[accounts.6]
max_notional = "0.00000001"

[accounts.7]
max_notional = "0"

[engine]
max_accounts = 5
"""
# the extremes: a price of 2**53 - 1 units, quantities of 2**32 - 1, the largest limit the stage
# holds (2**62 - 1 units) and the smallest (1 unit), and no collar (a MARKET order is valued at
# the reference price, which the trades move)
EXTREME_VENUE = """
[symbols.BIG]
tick = "0.00000001"
ref_price = "90071992.54740991"
band_bps = 0

[accounts.default]
max_notional = "46116860184.27387903"

[accounts.6]
max_notional = "0.00000001"

[engine]
max_accounts = 5
"""


@cocotb.test()
async def max_notional_in_its_place_test(dut):
    """The default's max_notional 1045: price x qty at the limit passes, a cent above fails;
    MAX_NOTIONAL after BAD_QTY, BAD_PRICE, PRICE_BAND and DUPLICATE_ORDER_ID; MARKET orders at
    their protection price, before and after a trade moved it; a REPLACE's at its new price and
    quantity, after UNKNOWN_ORDER and NOT_OWNER; account 6's limit of 1e-8; account 7's 0 (none)
    over the default's."""
    await run_case(dut, "", """
        1,10,NEW,AAPL,1,BUY,LIMIT,GTC,104.50,10
        2,10,NEW,AAPL,2,BUY,LIMIT,GTC,104.51,10
        3,10,NEW,AAPL,3,BUY,LIMIT,GTC,104.51,0
        4,10,NEW,AAPL,4,BUY,LIMIT,GTC,111.00,10
        5,10,NEW,AAPL,5,BUY,LIMIT,GTC,104.505,10
        6,10,NEW,AAPL,1,BUY,LIMIT,GTC,104.51,10
        7,10,NEW,AAPL,6,BUY,MARKET,IOC,,10
        8,10,NEW,AAPL,7,BUY,MARKET,IOC,,9
        9,10,NEW,AAPL,8,SELL,MARKET,IOC,,12
        10,10,NEW,AAPL,9,SELL,MARKET,IOC,,11
        11,10,REPLACE,,1,,,,104.50,11
        12,10,REPLACE,,1,,,,95.00,11
        13,10,REPLACE,,99,,,,95.00,11
        14,7,NEW,AAPL,10,SELL,LIMIT,GTC,95.00,1000
        15,10,NEW,AAPL,11,BUY,MARKET,IOC,,10
        16,10,NEW,AAPL,12,BUY,MARKET,IOC,,11
        17,6,NEW,AAPL,13,SELL,LIMIT,GTC,95.00,1
        18,6,NEW,AAPL,14,SELL,LIMIT,GTC,95.00,0
        19,6,CANCEL,,10,,,,,
        20,6,REPLACE,,10,,,,95.00,1
    """, """
        1,ACK,AAPL,1,10,BUY,104.50,10,10,,
        2,REJECT,AAPL,2,10,,,,,,MAX_NOTIONAL
        3,REJECT,AAPL,3,10,,,,,,BAD_QTY
        4,REJECT,AAPL,4,10,,,,,,PRICE_BAND
        5,REJECT,AAPL,5,10,,,,,,BAD_PRICE
        6,REJECT,AAPL,1,10,,,,,,DUPLICATE_ORDER_ID
        7,REJECT,AAPL,6,10,,,,,,MAX_NOTIONAL
        8,ACK,AAPL,7,10,BUY,,9,9,,
        9,CANCELED,AAPL,7,10,BUY,,9,0,,IOC
        10,REJECT,AAPL,8,10,,,,,,MAX_NOTIONAL
        11,ACK,AAPL,9,10,SELL,,11,11,,
        12,CANCELED,AAPL,9,10,SELL,,11,0,,SELF_TRADE
        13,REJECT,AAPL,1,10,,,,,,MAX_NOTIONAL
        14,REPLACED,AAPL,1,10,BUY,95.00,11,11,,
        15,REJECT,AAPL,99,10,,,,,,UNKNOWN_ORDER
        16,ACK,AAPL,10,7,SELL,95.00,1000,1000,,
        17,FILL,AAPL,10,7,SELL,95.00,11,989,1,TAKER
        18,FILL,AAPL,1,10,BUY,95.00,11,0,10,MAKER
        19,ACK,AAPL,11,10,BUY,,10,10,,
        20,FILL,AAPL,11,10,BUY,95.00,10,0,10,TAKER
        21,FILL,AAPL,10,7,SELL,95.00,10,979,11,MAKER
        22,REJECT,AAPL,12,10,,,,,,MAX_NOTIONAL
        23,REJECT,AAPL,13,6,,,,,,MAX_NOTIONAL
        24,REJECT,AAPL,14,6,,,,,,BAD_QTY
        25,REJECT,AAPL,10,6,,,,,,NOT_OWNER
        26,REJECT,AAPL,10,6,,,,,,NOT_OWNER
    """, v=parse_venue(SYMBOLS + NOTIONAL_ACCOUNTS, "<risk directed venue, notional>"))


@cocotb.test()
async def max_notional_at_the_extremes_test(dut):
    """512 x (2**53 - 1) units is 2**62 - 512, within the largest limit (2**62 - 1), 513 x is not;
    a quantity of 2**32 - 1 at the top price, and at the lowest; a limit of one unit (one unit x
    1 passes, x 2 fails); MARKET orders without a collar at the reference price, which each
    trade moves."""
    await run_case(dut, "", """
        1,10,NEW,BIG,1,BUY,LIMIT,GTC,90071992.54740991,512
        2,10,NEW,BIG,2,BUY,LIMIT,GTC,90071992.54740991,513
        3,10,NEW,BIG,3,SELL,MARKET,IOC,,4294967295
        4,10,NEW,BIG,4,BUY,MARKET,IOC,,512
        5,11,NEW,BIG,5,SELL,LIMIT,GTC,0.00000001,4294967295
        6,6,NEW,BIG,6,BUY,LIMIT,GTC,0.00000001,1
        7,6,NEW,BIG,7,BUY,LIMIT,GTC,0.00000001,2
        8,11,REPLACE,,5,,,,0.00000002,4294967295
        9,10,NEW,BIG,8,BUY,MARKET,IOC,,4294967295
        10,6,NEW,BIG,9,SELL,MARKET,IOC,,1
        11,6,NEW,BIG,10,SELL,MARKET,IOC,,2
    """, """
        1,ACK,BIG,1,10,BUY,90071992.54740991,512,512,,
        2,REJECT,BIG,2,10,,,,,,MAX_NOTIONAL
        3,REJECT,BIG,3,10,,,,,,MAX_NOTIONAL
        4,ACK,BIG,4,10,BUY,,512,512,,
        5,CANCELED,BIG,4,10,BUY,,512,0,,IOC
        6,ACK,BIG,5,11,SELL,0.00000001,4294967295,4294967295,,
        7,FILL,BIG,5,11,SELL,90071992.54740991,512,4294966783,1,TAKER
        8,FILL,BIG,1,10,BUY,90071992.54740991,512,0,5,MAKER
        9,ACK,BIG,6,6,BUY,0.00000001,1,1,,
        10,FILL,BIG,6,6,BUY,0.00000001,1,0,5,TAKER
        11,FILL,BIG,5,11,SELL,0.00000001,1,4294966782,6,MAKER
        12,REJECT,BIG,7,6,,,,,,MAX_NOTIONAL
        13,REPLACED,BIG,5,11,SELL,0.00000002,4294967295,4294967295,,
        14,ACK,BIG,8,10,BUY,,4294967295,4294967295,,
        15,FILL,BIG,8,10,BUY,0.00000002,4294967295,0,5,TAKER
        16,FILL,BIG,5,11,SELL,0.00000002,4294967295,0,8,MAKER
        17,REJECT,BIG,9,6,,,,,,MAX_NOTIONAL
        18,REJECT,BIG,10,6,,,,,,MAX_NOTIONAL
    """, v=parse_venue(EXTREME_VENUE, "<risk directed venue, extremes>"))


# MAX_OPEN_ORDERS (the block-RAM book's check 10, by the account's entry in the stage's table):
# the default may have 2 resting orders, account 6 one, account 7 any number
OPEN_ACCOUNTS = """
[accounts.default]
max_open_orders = 2

[accounts.6]
max_open_orders = 1

[accounts.7]
max_open_orders = 0

[engine]
max_accounts = 5
"""


def open_venue():
    return parse_venue(SYMBOLS + OPEN_ACCOUNTS, "<risk directed venue, open orders>")


@cocotb.test()
async def max_open_orders_in_its_place_test(dut):
    """Account 10's two resting orders stop a third NEW (an IOC too: the rule counts what rests
    before), after PRICE_BAND; a CANCEL, a maker filled to 0 and a REPLACE that trades away all
    its quantity each give a place back; a REPLACE is not checked; account 6's one, account 7's
    none; a MARKET order of an account with one resting."""
    await run_case(dut, "", """
        1,10,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,1
        2,10,NEW,AAPL,2,BUY,LIMIT,GTC,98.00,1
        3,10,NEW,AAPL,3,BUY,LIMIT,GTC,97.00,1
        4,10,NEW,AAPL,4,BUY,LIMIT,IOC,97.00,1
        5,10,NEW,AAPL,5,BUY,LIMIT,GTC,111.00,1
        6,10,CANCEL,,1,,,,,
        7,10,NEW,AAPL,6,BUY,LIMIT,GTC,97.00,1
        8,10,REPLACE,,6,,,,96.00,1
        9,11,NEW,AAPL,7,SELL,LIMIT,GTC,98.00,5
        10,10,NEW,AAPL,8,BUY,LIMIT,GTC,95.00,1
        11,10,NEW,AAPL,9,BUY,LIMIT,GTC,94.00,1
        12,6,NEW,AAPL,10,SELL,LIMIT,GTC,99.50,1
        13,6,NEW,AAPL,11,SELL,LIMIT,GTC,99.60,1
        14,6,REPLACE,,10,,,,96.00,1
        15,6,NEW,AAPL,12,SELL,LIMIT,GTC,99.60,1
        16,7,NEW,AAPL,13,SELL,LIMIT,GTC,101.00,1
        17,7,NEW,AAPL,14,SELL,LIMIT,GTC,101.00,1
        18,7,NEW,AAPL,15,SELL,LIMIT,GTC,101.00,1
        19,11,NEW,AAPL,16,BUY,MARKET,IOC,,2
        20,10,NEW,AAPL,17,BUY,LIMIT,GTC,94.00,1
    """, """
        1,ACK,AAPL,1,10,BUY,99.00,1,1,,
        2,ACK,AAPL,2,10,BUY,98.00,1,1,,
        3,REJECT,AAPL,3,10,,,,,,MAX_OPEN_ORDERS
        4,REJECT,AAPL,4,10,,,,,,MAX_OPEN_ORDERS
        5,REJECT,AAPL,5,10,,,,,,PRICE_BAND
        6,CANCELED,AAPL,1,10,BUY,99.00,1,0,,USER
        7,ACK,AAPL,6,10,BUY,97.00,1,1,,
        8,REPLACED,AAPL,6,10,BUY,96.00,1,1,,
        9,ACK,AAPL,7,11,SELL,98.00,5,5,,
        10,FILL,AAPL,7,11,SELL,98.00,1,4,2,TAKER
        11,FILL,AAPL,2,10,BUY,98.00,1,0,7,MAKER
        12,ACK,AAPL,8,10,BUY,95.00,1,1,,
        13,REJECT,AAPL,9,10,,,,,,MAX_OPEN_ORDERS
        14,ACK,AAPL,10,6,SELL,99.50,1,1,,
        15,REJECT,AAPL,11,6,,,,,,MAX_OPEN_ORDERS
        16,REPLACED,AAPL,10,6,SELL,96.00,1,1,,
        17,FILL,AAPL,10,6,SELL,96.00,1,0,6,TAKER
        18,FILL,AAPL,6,10,BUY,96.00,1,0,10,MAKER
        19,ACK,AAPL,12,6,SELL,99.60,1,1,,
        20,ACK,AAPL,13,7,SELL,101.00,1,1,,
        21,ACK,AAPL,14,7,SELL,101.00,1,1,,
        22,ACK,AAPL,15,7,SELL,101.00,1,1,,
        23,ACK,AAPL,16,11,BUY,,2,2,,
        24,CANCELED,AAPL,16,11,BUY,,2,0,,SELF_TRADE
        25,ACK,AAPL,17,10,BUY,94.00,1,1,,
    """, v=open_venue())


@cocotb.test()
async def reset_forgets_resting_orders_test(dut):
    """A reset empties the book, and with it every account's count of resting orders: account
    10, at its limit before, has its two places again after."""
    v = open_venue()
    rows = """
        1,10,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,1
        2,10,NEW,AAPL,2,BUY,LIMIT,GTC,98.00,1
        3,10,NEW,AAPL,3,BUY,LIMIT,GTC,97.00,1
    """
    book = await start(dut, v, stall=30)
    for _ in range(2):
        orders = records(rows, v)
        assert await book.run(orders) == len(orders)
        got = book.event_array()
        assert [int(e["reason"]) for e in got if e["kind"] == EV_REJECT] == [R_MAX_OPEN_ORDERS]
        check_engine(orders, got, v)
        await book.reset()


KILL_VENUE = SYMBOLS + """
[symbols.MSFT]
tick = "0.05"
ref_price = "300.00"
band_bps = 500

[accounts.default]

[accounts.8]
enabled = false

[engine]
max_accounts = 5
"""
KILL_ROWS = """
    1,10,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,1
    2,10,NEW,MSFT,2,SELL,LIMIT,GTC,300.50,2
    3,11,NEW,MSFT,9,BUY,LIMIT,IOC,300.50,1
    4,11,NEW,AAPL,3,BUY,LIMIT,GTC,99.00,1
    5,10,NEW,AAPL,4,BUY,LIMIT,GTC,98.00,3
    6,10,NEW,AAPL,5,BUY,LIMIT,GTC,99.00,1
    7,10,REPLACE,,1,,,,97.00,1
    8,10,NEW,MSFT,6,SELL,LIMIT,GTC,301.00,1
    9,11,NEW,AAPL,7,SELL,LIMIT,GTC,101.00,1
    10,10,KILL,,,,,,,
    11,10,NEW,AAPL,8,BUY,LIMIT,GTC,99.00,1
    12,10,KILL,,,,,,,
    13,11,CANCEL,,3,,,,,
    14,12,KILL,,,,,,,
    15,12,NEW,AAPL,10,BUY,LIMIT,GTC,99.00,1
    16,8,KILL,,,,,,,
    17,13,KILL,,,,,,,
    18,14,KILL,,,,,,,
    19,11,NEW,AAPL,11,BUY,LIMIT,GTC,99.00,1
"""
KILL_EVENTS = """
    1,ACK,AAPL,1,10,BUY,99.00,1,1,,
    2,ACK,MSFT,2,10,SELL,300.50,2,2,,
    3,ACK,MSFT,9,11,BUY,300.50,1,1,,
    4,FILL,MSFT,9,11,BUY,300.50,1,0,2,TAKER
    5,FILL,MSFT,2,10,SELL,300.50,1,1,9,MAKER
    6,ACK,AAPL,3,11,BUY,99.00,1,1,,
    7,ACK,AAPL,4,10,BUY,98.00,3,3,,
    8,ACK,AAPL,5,10,BUY,99.00,1,1,,
    9,REPLACED,AAPL,1,10,BUY,97.00,1,1,,
    10,ACK,MSFT,6,10,SELL,301.00,1,1,,
    11,ACK,AAPL,7,11,SELL,101.00,1,1,,
    12,CANCELED,AAPL,1,10,BUY,97.00,1,0,,KILL
    13,CANCELED,MSFT,2,10,SELL,300.50,1,0,,KILL
    14,CANCELED,AAPL,4,10,BUY,98.00,3,0,,KILL
    15,CANCELED,AAPL,5,10,BUY,99.00,1,0,,KILL
    16,CANCELED,MSFT,6,10,SELL,301.00,1,0,,KILL
    17,KILLED,,,10,,,,,,
    18,REJECT,AAPL,8,10,,,,,,ACCOUNT_DISABLED
    19,KILLED,,,10,,,,,,
    20,CANCELED,AAPL,3,11,BUY,99.00,1,0,,USER
    21,KILLED,,,12,,,,,,
    22,REJECT,AAPL,10,12,,,,,,ACCOUNT_DISABLED
    23,KILLED,,,8,,,,,,
    24,KILLED,,,13,,,,,,
    25,REJECT,AAPL,0,14,,,,,,CAPACITY
    26,ACK,AAPL,11,11,BUY,99.00,1,1,,
"""


@cocotb.test()
async def kill_in_acceptance_order_test(dut):
    """KILL of account 10 cancels its orders in the order they were accepted, across symbols
    and levels: the first one REPLACEd to another price keeps its place (first), a partly filled
    one is cancelled for its leaves, and the walk empties levels behind the best (the ladder's
    shift), a best level with one behind it (the next read in), a level shared with account 11
    (it stays) and a side (MSFT's asks); then KILLED, and the account is ACCOUNT_DISABLED. A
    second KILL of it, a KILL of an account with nothing resting (tracked by it, then disabled)
    and of a disabled listed one are KILLED; the account CAPACITY applies to a KILL. Twice: at
    once, and with idle input and a stalling consumer (the cancels wait on the event port)."""
    build, _ = build_params()
    assert build.nsym >= 2, "the runner builds this bench with two symbols or more"
    v = parse_venue(KILL_VENUE, "<risk directed venue, kill>")
    for idle, stall in ((0, 0), (30, 60)):
        await run_case(dut, "", KILL_ROWS, KILL_EVENTS, idle, stall, v=v)


@cocotb.test()
async def kill_of_an_unknown_account_test(dut):
    """Without a default account a KILL of an unlisted account is UNKNOWN_ACCOUNT; a listed one
    (the top id of 32 bits) is KILLED with its order cancelled, and is then ACCOUNT_DISABLED
    while account 7 trades on."""
    await run_case(dut, "none", """
        1,4294967295,NEW,AAPL,1,SELL,LIMIT,GTC,101.00,4
        2,99,KILL,,,,,,,
        3,4294967295,KILL,,,,,,,
        4,4294967295,NEW,AAPL,2,SELL,LIMIT,GTC,101.00,4
        5,7,NEW,AAPL,3,BUY,LIMIT,GTC,101.00,4
    """, """
        1,ACK,AAPL,1,4294967295,SELL,101.00,4,4,,
        2,REJECT,AAPL,0,99,,,,,,UNKNOWN_ACCOUNT
        3,CANCELED,AAPL,1,4294967295,SELL,101.00,4,0,,KILL
        4,KILLED,,,4294967295,,,,,,
        5,REJECT,AAPL,2,4294967295,,,,,,ACCOUNT_DISABLED
        6,ACK,AAPL,3,7,BUY,101.00,4,4,,
    """)


POSITION_VENUE = SYMBOLS + """
[symbols.BIG]
tick = "1"
ref_price = "100"
band_bps = 0

[accounts.default]

[accounts.20]
max_position = 4611686018427387904

[accounts.21]
max_position = 10

[accounts.24]
max_position = 8589934590

[accounts.25]
max_position = 5

[engine]
max_accounts = 8
"""
POSITION_ROWS = """
    1,21,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,5
    2,21,NEW,AAPL,2,BUY,LIMIT,GTC,98.00,6
    3,21,NEW,AAPL,3,BUY,LIMIT,GTC,98.00,5
    4,21,NEW,AAPL,4,SELL,LIMIT,GTC,101.00,10
    5,21,NEW,AAPL,5,SELL,LIMIT,GTC,102.00,1
    6,23,NEW,AAPL,6,SELL,LIMIT,IOC,99.00,5
    7,21,NEW,AAPL,7,SELL,LIMIT,GTC,103.00,5
    8,21,NEW,AAPL,8,SELL,LIMIT,GTC,103.00,1
    9,21,NEW,AAPL,9,BUY,LIMIT,GTC,97.00,1
    10,21,CANCEL,,3,,,,,
    11,21,NEW,AAPL,10,BUY,MARKET,IOC,,5
    12,21,NEW,AAPL,11,BUY,LIMIT,GTC,97.00,5
    13,21,REPLACE,,11,,,,97.00,6
    14,21,REPLACE,,11,,,,96.00,5
    15,21,NEW,AAPL,12,BUY,LIMIT,GTC,96.00,1
    16,23,NEW,AAPL,13,SELL,LIMIT,GTC,100.00,3
    17,21,REPLACE,,11,,,,100.00,3
    18,21,NEW,AAPL,14,BUY,LIMIT,GTC,90.00,3
    19,21,NEW,AAPL,15,BUY,LIMIT,GTC,90.00,2
    20,21,NEW,AAPL,16,SELL,LIMIT,GTC,104.00,3
    21,21,NEW,AAPL,17,SELL,LIMIT,GTC,104.00,1
    22,24,NEW,BIG,20,BUY,LIMIT,GTC,50,4294967295
    23,24,NEW,BIG,21,BUY,LIMIT,GTC,50,4294967295
    24,24,NEW,BIG,22,BUY,LIMIT,GTC,50,1
    25,23,NEW,BIG,23,SELL,LIMIT,IOC,50,4294967295
    26,23,NEW,BIG,24,SELL,LIMIT,IOC,50,4294967295
    27,24,NEW,BIG,25,BUY,LIMIT,GTC,49,1
    28,24,NEW,BIG,26,SELL,LIMIT,GTC,900000,4294967295
    29,24,NEW,BIG,27,SELL,LIMIT,GTC,900000,4294967295
    30,24,NEW,BIG,28,SELL,LIMIT,GTC,900000,4294967295
    31,23,NEW,BIG,29,BUY,LIMIT,IOC,900000,4294967295
    32,23,NEW,BIG,30,BUY,LIMIT,IOC,900000,4294967295
    33,23,NEW,BIG,31,BUY,LIMIT,IOC,900000,4294967295
    34,24,NEW,BIG,32,SELL,LIMIT,GTC,900001,4294967295
    35,24,NEW,BIG,33,SELL,LIMIT,GTC,900001,1
    36,24,NEW,BIG,34,BUY,LIMIT,GTC,10,4294967295
    37,24,NEW,BIG,35,BUY,LIMIT,GTC,10,4294967295
    38,24,NEW,BIG,36,BUY,LIMIT,GTC,10,4294967295
    39,24,NEW,BIG,37,BUY,LIMIT,GTC,10,1
    40,25,NEW,BIG,40,SELL,LIMIT,GTC,70,3
    41,25,NEW,BIG,41,SELL,LIMIT,GTC,70,3
    42,23,NEW,BIG,42,BUY,LIMIT,IOC,70,3
    43,25,NEW,BIG,43,SELL,LIMIT,GTC,70,2
    44,25,NEW,BIG,44,BUY,LIMIT,GTC,40,8
    45,25,NEW,BIG,45,BUY,LIMIT,GTC,40,1
    46,20,NEW,BIG,46,BUY,LIMIT,GTC,45,4294967295
    47,20,NEW,BIG,47,SELL,LIMIT,GTC,999999,4294967295
"""
POSITION_EVENTS = """
    1,ACK,AAPL,1,21,BUY,99.00,5,5,,
    2,REJECT,AAPL,2,21,,,,,,MAX_POSITION
    3,ACK,AAPL,3,21,BUY,98.00,5,5,,
    4,ACK,AAPL,4,21,SELL,101.00,10,10,,
    5,REJECT,AAPL,5,21,,,,,,MAX_POSITION
    6,ACK,AAPL,6,23,SELL,99.00,5,5,,
    7,FILL,AAPL,6,23,SELL,99.00,5,0,1,TAKER
    8,FILL,AAPL,1,21,BUY,99.00,5,0,6,MAKER
    9,ACK,AAPL,7,21,SELL,103.00,5,5,,
    10,REJECT,AAPL,8,21,,,,,,MAX_POSITION
    11,REJECT,AAPL,9,21,,,,,,MAX_POSITION
    12,CANCELED,AAPL,3,21,BUY,98.00,5,0,,USER
    13,ACK,AAPL,10,21,BUY,,5,5,,
    14,CANCELED,AAPL,10,21,BUY,,5,0,,SELF_TRADE
    15,ACK,AAPL,11,21,BUY,97.00,5,5,,
    16,REJECT,AAPL,11,21,,,,,,MAX_POSITION
    17,REPLACED,AAPL,11,21,BUY,96.00,5,5,,
    18,REJECT,AAPL,12,21,,,,,,MAX_POSITION
    19,ACK,AAPL,13,23,SELL,100.00,3,3,,
    20,REPLACED,AAPL,11,21,BUY,100.00,3,3,,
    21,FILL,AAPL,11,21,BUY,100.00,3,0,13,TAKER
    22,FILL,AAPL,13,23,SELL,100.00,3,0,11,MAKER
    23,REJECT,AAPL,14,21,,,,,,MAX_POSITION
    24,ACK,AAPL,15,21,BUY,90.00,2,2,,
    25,ACK,AAPL,16,21,SELL,104.00,3,3,,
    26,REJECT,AAPL,17,21,,,,,,MAX_POSITION
    27,ACK,BIG,20,24,BUY,50,4294967295,4294967295,,
    28,ACK,BIG,21,24,BUY,50,4294967295,4294967295,,
    29,REJECT,BIG,22,24,,,,,,MAX_POSITION
    30,ACK,BIG,23,23,SELL,50,4294967295,4294967295,,
    31,FILL,BIG,23,23,SELL,50,4294967295,0,20,TAKER
    32,FILL,BIG,20,24,BUY,50,4294967295,0,23,MAKER
    33,ACK,BIG,24,23,SELL,50,4294967295,4294967295,,
    34,FILL,BIG,24,23,SELL,50,4294967295,0,21,TAKER
    35,FILL,BIG,21,24,BUY,50,4294967295,0,24,MAKER
    36,REJECT,BIG,25,24,,,,,,MAX_POSITION
    37,ACK,BIG,26,24,SELL,900000,4294967295,4294967295,,
    38,ACK,BIG,27,24,SELL,900000,4294967295,4294967295,,
    39,ACK,BIG,28,24,SELL,900000,4294967295,4294967295,,
    40,ACK,BIG,29,23,BUY,900000,4294967295,4294967295,,
    41,FILL,BIG,29,23,BUY,900000,4294967295,0,26,TAKER
    42,FILL,BIG,26,24,SELL,900000,4294967295,0,29,MAKER
    43,ACK,BIG,30,23,BUY,900000,4294967295,4294967295,,
    44,FILL,BIG,30,23,BUY,900000,4294967295,0,27,TAKER
    45,FILL,BIG,27,24,SELL,900000,4294967295,0,30,MAKER
    46,ACK,BIG,31,23,BUY,900000,4294967295,4294967295,,
    47,FILL,BIG,31,23,BUY,900000,4294967295,0,28,TAKER
    48,FILL,BIG,28,24,SELL,900000,4294967295,0,31,MAKER
    49,ACK,BIG,32,24,SELL,900001,4294967295,4294967295,,
    50,REJECT,BIG,33,24,,,,,,MAX_POSITION
    51,ACK,BIG,34,24,BUY,10,4294967295,4294967295,,
    52,ACK,BIG,35,24,BUY,10,4294967295,4294967295,,
    53,ACK,BIG,36,24,BUY,10,4294967295,4294967295,,
    54,REJECT,BIG,37,24,,,,,,MAX_POSITION
    55,ACK,BIG,40,25,SELL,70,3,3,,
    56,REJECT,BIG,41,25,,,,,,MAX_POSITION
    57,ACK,BIG,42,23,BUY,70,3,3,,
    58,FILL,BIG,42,23,BUY,70,3,0,40,TAKER
    59,FILL,BIG,40,25,SELL,70,3,0,42,MAKER
    60,ACK,BIG,43,25,SELL,70,2,2,,
    61,ACK,BIG,44,25,BUY,40,8,8,,
    62,REJECT,BIG,45,25,,,,,,MAX_POSITION
    63,ACK,BIG,46,20,BUY,45,4294967295,4294967295,,
    64,ACK,BIG,47,20,SELL,999999,4294967295,4294967295,,
"""


@cocotb.test()
async def max_position_test(dut):
    """MAX_POSITION (the book's check 9, positions by the account's entry and the symbol): account
    21 (limit 10) at the limit exactly and one above, for buys (position + open buys + qty) and
    sells (open sells + qty - position), its position moved by a fill as a maker and as a taker
    (a REPLACE that crosses), its open quantity by a CANCEL, a REPLACE that keeps its place and
    one that moves (its own old leaves out of the check), a MARKET order; account 24 at the
    extremes of the records (quantities of 2**32 - 1, a limit of 2 x (2**32 - 1) reached
    exactly, a position of 2 x (2**32 - 1) and of -(2**32 - 1) that lets it buy past its limit's
    size); account 25 short by 3 (a buy of 8 under a limit of 5); account 20 with the largest
    limit the engine takes (2**62). At once, and with idle input and a stalling consumer."""
    v = parse_venue(POSITION_VENUE, "<risk directed venue, positions>")
    for idle, stall in ((0, 0), (30, 60)):
        await run_case(dut, "", POSITION_ROWS, POSITION_EVENTS, idle, stall, v=v)


# ----------------------------------------------------------------------------------- random
@cocotb.test()
async def random_flows_with_back_pressure_test(dut):
    """Random flows on tight limits (testkit.flows.risk_venue), each default, a KILL in 250
    records, with idle input and a stalling consumer: events identical to the engine's."""
    build, _ = build_params()
    book = None
    for k, default in enumerate(("limits", "none", "disabled")):
        v = flows_venue(default)
        orders = random_records(70 + k, 1500, v, nord=build.nord, nlvl=build.nlvl,
                                accounts=RISK_ACCOUNTS, ts_gap=3_000_000, kill=0.004)
        if book is None:
            book = await start(dut, v, idle=20, stall=30)
        else:
            await reload(book, v)
        assert await book.run(orders) == len(orders)
        check_engine(orders, book.event_array(), v)


@cocotb.test()
async def reset_in_traffic_forgets_accounts_test(dut):
    """rst in the middle of a flow: the accounts tracked since the last reset are forgotten,
    the listed ones loaded again, and the next flow's events are a fresh engine's."""
    build, _ = build_params()
    v = flows_venue("limits")
    first = random_records(91, 600, v, nord=build.nord, nlvl=build.nlvl, accounts=RISK_ACCOUNTS, ts_gap=2_000_000,
                           kill=0.01)
    book = await start(dut, v, stall=40)
    assert await book.run(first, stop_after=300) == 300
    for _ in range(random.Random(5).randrange(1, 5)):
        await FallingEdge(dut.clk)
    await book.reset()
    second = random_records(92, 600, v, nord=build.nord, nlvl=build.nlvl, accounts=RISK_ACCOUNTS, ts_gap=2_000_000)
    assert await book.run(second) == len(second)
    check_engine(second, book.event_array(), v)


@cocotb.test()
async def generations_wrap_test(dut):
    """More resets than the generation tag counts (the runner builds GEN_W = 2 once): each reset
    forgets the accounts tracked before it, through the wrap and the table's sweep."""
    v = venue("limits")
    orders = records("""
        1,10,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,1
        2,11,NEW,AAPL,2,BUY,LIMIT,GTC,99.00,1
        3,12,NEW,AAPL,3,BUY,LIMIT,GTC,99.00,1
    """, v)
    book = await start(dut, v)
    for rnd in range(6):
        if rnd:
            await book.reset()
        # each round, two of the three accounts first (room for two past the listed ones): the
        # third is CAPACITY, whichever the rounds before tracked
        flow = orders[[(rnd + i) % 3 for i in range(3)]].copy()
        flow["msg_seq"] = np.arange(1, 4)
        assert await book.run(flow) == 3
        got = book.event_array()
        refused = [int(e["account"]) for e in got if e["kind"] == EV_REJECT and e["reason"] == R_CAPACITY]
        assert refused == [int(flow[2]["account"])], f"round {rnd}: {refused}"
        check_engine(flow, got, v)


# ----------------------------------------------------------------------------------- the runner
COCOTB_TESTS = [name for name, obj in list(globals().items()) if isinstance(obj, cocotb.regression.TestGenerator)]
SOURCES = [*BRAM_SOURCES, *RISK_SOURCES, BOOK_SELECT]


@pytest.mark.parametrize("nsym,nord,nlvl,nacct,gen_w", [
    (2, 16, 4, 5, 2),      # the directed venue's max_accounts exactly; the tag wraps every 3 resets
    (4, 64, 16, 16, 8),
])
def test_tickbook_risk_passes_the_cocotb_tests(nsym, nord, nlvl, nacct, gen_w):
    """Build tb_book (the risk stage in front of the block-RAM book) in Icarus with these
    parameters and run every cocotb test above; fails unless all ran and passed."""
    params = {"NSYM": nsym, "NORD": nord, "NLVL": nlvl, "BRAM": 1, "NACCT": nacct, "GEN_W": gen_w}
    env = {"HDL_NSYM": str(nsym), "HDL_NORD": str(nord), "HDL_NLVL": str(nlvl), "HDL_TOP": "tb_book",
           "HDL_NACCT": str(nacct)}
    run_cocotb_module(__file__, "tb_book", SOURCES, params, env, COCOTB_TESTS)
