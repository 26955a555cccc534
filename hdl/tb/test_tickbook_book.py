"""cocotb 2.x tests of the Verilog order book, hdl/rtl/tickbook_book.v, and their pytest runner
(`test_tickbook_book_passes_the_cocotb_tests`, at the end), which builds the book in Icarus over a
sweep of its parameters and runs them. test_tickbook_book_area.py beside this file runs the same
cocotb tests on the area build (tickbook_book_area: the same ports and events).

Directed cases: a few CSV rows each (encoded to records by the engine's codec, as the CLI does)
and the events expected, written in the rulebook's event CSV form. Every run is also checked
against the Numba engine with the same capacities. Plus: random back-pressure and idle cycles,
reset in the middle of traffic, top of book the cycle after a message's last event, CAPACITY.

The cocotb tests are named `*_test`, as in cocotb's own examples, so that pytest collects only
the runners; cocotb finds its tests by their decorator. WAVES=1 dumps FST waveforms into
build/hdl/cocotb_*/.
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

import cocotb
import cocotb.regression
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from engine.api import Venue, replay_records
from engine.codec import EventWriter, parse_flow_bytes
from engine.compare import first_divergence
from engine.config import parse_venue
from engine.records import EVENT_DTYPE, PRICE_NONE, PRICE_SCALE
from hdl.sim.driver import RTL_SOURCES, REPO, TB_DIR, cocotb_build, config_words, engine_venue, on_simulator_path
from testkit.flows import diff_venue, random_records

pytestmark = pytest.mark.hdl


@dataclass(frozen=True)
class BuildParams:
    """The build the simulator runs, as its runner (run_book_tests) passes it in the environment."""

    nsym: int
    nord: int
    nlvl: int
    top: str  # tickbook_book, tickbook_book_area or tickbook_book_bram

    @classmethod
    def from_env(cls) -> BuildParams:
        e = os.environ
        return cls(int(e["HDL_NSYM"]), int(e["HDL_NORD"]), int(e["HDL_NLVL"]), e["HDL_TOP"])

    @property
    def area(self) -> bool:
        """The area build: it takes the reference price in 1e-8 units (config_words(area=True))."""
        return self.top == "tickbook_book_area"

    @property
    def tob_when_idle(self) -> bool:
        """Its top of book is valid when busy is low (the area and block-RAM builds end a message
        with steps of their own); the fast build's the cycle after the message's last event."""
        return self.top != "tickbook_book"

    def venue(self):
        """The random flows' venue (testkit.flows.diff_venue) cut to the symbols this build holds,
        so that every test runs on every build of the sweep."""
        import dataclasses

        v = diff_venue()
        return dataclasses.replace(v, symbols=v.symbols[: self.nsym])

VENUE = parse_venue(
    """
[symbols.AAPL]
tick = "0.01"
ref_price = "100.00"
band_bps = 1000
[symbols.NOBAND]
tick = "0.5"
ref_price = "50.0"
band_bps = 0
[symbols.WIDE]
tick = "0.01"
ref_price = "1.00"
band_bps = 15000
[accounts.default]
""",
    "<directed venue>",
)
HEADER = "ts,account,action,symbol,order_id,side,type,tif,price,qty\n"


def records(rows: str, venue=VENUE) -> np.ndarray:
    text = HEADER + "\n".join(f"{i + 1},{r.strip()}" for i, r in enumerate(rows.strip().splitlines()))
    orders = parse_flow_bytes(text.encode(), venue).orders
    orders["msg_seq"] = np.arange(1, len(orders) + 1)
    return orders


def csv_events(events: np.ndarray, venue=VENUE) -> list[str]:
    buf = io.BytesIO()
    EventWriter(buf, venue, None, header=False).write(events)
    return buf.getvalue().decode().splitlines()


async def write_config(d, venue, area: bool) -> None:
    """The venue's configuration words through the configuration port, one a cycle on falling
    edges (config_words: what the host loads), then cfg_we low."""
    for addr, sym, data in config_words(venue, area):
        await FallingEdge(d.clk)
        d.cfg_we.value, d.cfg_addr.value, d.cfg_sym.value, d.cfg_data.value = 1, addr, sym, data
    await FallingEdge(d.clk)
    d.cfg_we.value = 0


class BookDriver:
    """Drives the book's ports (the DUT) and collects its events: inputs change on falling
    edges and outputs are read there."""

    def __init__(self, dut, build: BuildParams, idle: int = 0, stall: int = 0, seed: int = 1):
        self.dut, self.build, self.idle, self.stall = dut, build, idle, stall
        self.rng = random.Random(seed)
        self.events: list[bytes] = []

    async def start(self, venue=VENUE):
        d = self.dut
        cocotb.start_soon(Clock(d.clk, 10, unit="ns", impl="gpi").start())
        d.rst.value = 1
        d.in_valid.value = 0
        d.in_data.value = 0
        d.out_ready.value = 1
        d.cfg_we.value = 0
        d.cfg_addr.value = 0
        d.cfg_sym.value = 0
        d.cfg_data.value = 0
        await ClockCycles(d.clk, 2)
        await write_config(d, venue, self.build.area)
        await self.reset()

    async def reset(self, cycles: int = 2):
        d = self.dut
        await FallingEdge(d.clk)
        d.rst.value = 1
        d.in_valid.value = 0
        for _ in range(cycles):
            await FallingEdge(d.clk)
        d.rst.value = 0
        self.events = []

    async def run(self, orders: np.ndarray, stop_after: int | None = None, on_message_done=None) -> int:
        """Send orders; return how many were accepted (all, unless stop_after cuts in). With
        on_message_done, messages go one at a time and the callback runs (awaited) on the
        falling edge one cycle after each message's last event."""
        d, rng = self.dut, self.rng
        recs = [int.from_bytes(r.tobytes(), "little") for r in orders]
        n = len(recs) if stop_after is None else min(stop_after, len(recs))
        sent = 0
        valid = False
        in_hs = ev_hs = False
        ev_val = 0
        quiet = 0
        waiting = False  # one-at-a-time mode: a message is in flight
        while True:
            await FallingEdge(d.clk)
            if in_hs:
                sent += 1
                valid = False
                waiting = on_message_done is not None
                if stop_after is not None and sent == n:
                    d.in_valid.value = 0
                    return sent
            if ev_hs:
                self.events.append(ev_val.to_bytes(64, "little"))
            ready = bool(d.in_ready.value)
            ov = bool(d.out_valid.value)
            busy = bool(d.busy.value)
            # the fast build: the last event left at the edge before, the top of book must be
            # valid now; the area and block-RAM builds may stay busy after the last event (the
            # collar, the top of book), their top of book must be valid when no longer busy
            if waiting and not busy and not in_hs and not ov and (ev_hs or self.build.tob_when_idle):
                await on_message_done(sent)
                waiting = False
            if not valid and sent < n and not waiting and rng.randrange(100) >= self.idle:
                valid = True
                d.in_data.value = recs[sent]
            d.in_valid.value = int(valid)
            ordy = (rng.randrange(100) >= self.stall) if self.stall else True
            d.out_ready.value = int(ordy)
            in_hs = valid and ready
            ev_hs = ov and ordy
            if ev_hs:
                ev_val = d.out_data.value.to_unsigned()
            quiet = quiet + 1 if (sent == n and not valid and not busy and not ov and not waiting) else 0
            if quiet >= 3:
                return sent

    def event_array(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.events), EVENT_DTYPE).copy()

    def tob(self, sym: int) -> tuple[int, int, int, int]:
        d = self.dut

        def word(sig):
            return (sig.value.to_unsigned() >> (64 * sym)) & ((1 << 64) - 1)

        def px(w):
            return w - (1 << 64) if w >> 63 else w

        return (px(word(d.tob_bid_px)), word(d.tob_bid_qty), px(word(d.tob_ask_px)), word(d.tob_ask_qty))


def check_engine(orders, events, build: BuildParams, venue=VENUE):
    eng = replay_records(orders, engine_venue(venue, build.nord, build.nlvl))
    diff = first_divergence(events, eng, names=("hw", "engine"))
    assert diff is None, diff


# ----------------------------------------------------------------------------------- directed
# (rows, expected events). Capacities needed: NORD >= 4, NLVL >= 2 (the smallest build).
CASES = {
    "rest_and_price_time_priority": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,100.10,5
           2,NEW,AAPL,2,SELL,LIMIT,GTC,100.05,5
           3,NEW,AAPL,3,SELL,LIMIT,GTC,100.05,4
           4,NEW,AAPL,4,BUY,LIMIT,GTC,100.10,12""",
        """1,ACK,AAPL,1,1,SELL,100.10,5,5,,
           2,ACK,AAPL,2,2,SELL,100.05,5,5,,
           3,ACK,AAPL,3,3,SELL,100.05,4,4,,
           4,ACK,AAPL,4,4,BUY,100.10,12,12,,
           5,FILL,AAPL,4,4,BUY,100.05,5,7,2,TAKER
           6,FILL,AAPL,2,2,SELL,100.05,5,0,4,MAKER
           7,FILL,AAPL,4,4,BUY,100.05,4,3,3,TAKER
           8,FILL,AAPL,3,3,SELL,100.05,4,0,4,MAKER
           9,FILL,AAPL,4,4,BUY,100.10,3,0,1,TAKER
           10,FILL,AAPL,1,1,SELL,100.10,3,2,4,MAKER""",
    ),
    "partial_fill_rests_gtc": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,100.00,3
           2,NEW,AAPL,2,BUY,LIMIT,GTC,100.02,5
           2,CANCEL,,2,,,,,
           2,CANCEL,,2,,,,,""",
        """1,ACK,AAPL,1,1,SELL,100.00,3,3,,
           2,ACK,AAPL,2,2,BUY,100.02,5,5,,
           3,FILL,AAPL,2,2,BUY,100.00,3,2,1,TAKER
           4,FILL,AAPL,1,1,SELL,100.00,3,0,2,MAKER
           5,CANCELED,AAPL,2,2,BUY,100.02,2,0,,USER
           6,REJECT,AAPL,2,2,,,,,,UNKNOWN_ORDER""",
    ),
    "ioc_remainder_and_no_match": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,100.00,3
           2,NEW,AAPL,2,BUY,LIMIT,IOC,100.00,5
           3,NEW,AAPL,3,BUY,LIMIT,IOC,99.00,5""",
        """1,ACK,AAPL,1,1,SELL,100.00,3,3,,
           2,ACK,AAPL,2,2,BUY,100.00,5,5,,
           3,FILL,AAPL,2,2,BUY,100.00,3,2,1,TAKER
           4,FILL,AAPL,1,1,SELL,100.00,3,0,2,MAKER
           5,CANCELED,AAPL,2,2,BUY,100.00,2,0,,IOC
           6,ACK,AAPL,3,3,BUY,99.00,5,5,,
           7,CANCELED,AAPL,3,3,BUY,99.00,5,0,,IOC""",
    ),
    "fok_short_passes_and_self_order_ahead": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,100.00,3
           2,NEW,AAPL,2,SELL,LIMIT,GTC,100.01,3
           3,NEW,AAPL,3,BUY,LIMIT,FOK,100.01,7
           2,NEW,AAPL,4,BUY,LIMIT,FOK,100.01,5
           9,NEW,AAPL,5,BUY,LIMIT,FOK,100.01,6""",
        """1,ACK,AAPL,1,1,SELL,100.00,3,3,,
           2,ACK,AAPL,2,2,SELL,100.01,3,3,,
           3,ACK,AAPL,3,3,BUY,100.01,7,7,,
           4,CANCELED,AAPL,3,3,BUY,100.01,7,0,,FOK
           5,ACK,AAPL,4,2,BUY,100.01,5,5,,
           6,CANCELED,AAPL,4,2,BUY,100.01,5,0,,FOK
           7,ACK,AAPL,5,9,BUY,100.01,6,6,,
           8,FILL,AAPL,5,9,BUY,100.00,3,3,1,TAKER
           9,FILL,AAPL,1,1,SELL,100.00,3,0,5,MAKER
           10,FILL,AAPL,5,9,BUY,100.01,3,0,2,TAKER
           11,FILL,AAPL,2,2,SELL,100.01,3,0,5,MAKER""",
    ),
    # a FOK's count of what it can trade goes past 32 bits: 3 + 4294967295 covers 4294967295
    # (in 32 bits the sum would wrap to 2, and the FOK be cancelled)
    "fok_counts_past_32_bits": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,100.00,3
           2,NEW,AAPL,2,SELL,LIMIT,GTC,100.01,4294967295
           3,NEW,AAPL,3,BUY,LIMIT,FOK,100.01,4294967295""",
        """1,ACK,AAPL,1,1,SELL,100.00,3,3,,
           2,ACK,AAPL,2,2,SELL,100.01,4294967295,4294967295,,
           3,ACK,AAPL,3,3,BUY,100.01,4294967295,4294967295,,
           4,FILL,AAPL,3,3,BUY,100.00,3,4294967292,1,TAKER
           5,FILL,AAPL,1,1,SELL,100.00,3,0,3,MAKER
           6,FILL,AAPL,3,3,BUY,100.01,4294967292,0,2,TAKER
           7,FILL,AAPL,2,2,SELL,100.01,4294967292,3,3,MAKER""",
    ),
    "post_only": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,100.00,3
           2,NEW,AAPL,2,BUY,LIMIT,POST,100.00,5
           2,NEW,AAPL,3,BUY,LIMIT,POST,99.99,5
           3,REPLACE,,3,,,,100.00,5""",
        """1,ACK,AAPL,1,1,SELL,100.00,3,3,,
           2,ACK,AAPL,2,2,BUY,100.00,5,5,,
           3,CANCELED,AAPL,2,2,BUY,100.00,5,0,,POST_ONLY
           4,ACK,AAPL,3,2,BUY,99.99,5,5,,
           5,REJECT,AAPL,3,3,,,,,,NOT_OWNER""",
    ),
    "replace_post_only_crossing": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,100.00,3
           2,NEW,AAPL,3,BUY,LIMIT,POST,99.99,5
           2,REPLACE,,3,,,,100.00,4""",
        """1,ACK,AAPL,1,1,SELL,100.00,3,3,,
           2,ACK,AAPL,3,2,BUY,99.99,5,5,,
           3,REPLACED,AAPL,3,2,BUY,100.00,4,4,,
           4,CANCELED,AAPL,3,2,BUY,100.00,4,0,,POST_ONLY""",
    ),
    "self_trade_prevention": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,100.00,2
           2,NEW,AAPL,2,SELL,LIMIT,GTC,100.01,2
           2,NEW,AAPL,4,BUY,LIMIT,GTC,100.01,9""",
        """1,ACK,AAPL,1,1,SELL,100.00,2,2,,
           2,ACK,AAPL,2,2,SELL,100.01,2,2,,
           3,ACK,AAPL,4,2,BUY,100.01,9,9,,
           4,FILL,AAPL,4,2,BUY,100.00,2,7,1,TAKER
           5,FILL,AAPL,1,1,SELL,100.00,2,0,4,MAKER
           6,CANCELED,AAPL,4,2,BUY,100.01,7,0,,SELF_TRADE""",
    ),
    "market_protection_and_no_collar": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,110.00,2
           1,NEW,AAPL,2,SELL,LIMIT,GTC,109.00,2
           2,NEW,AAPL,3,BUY,MARKET,IOC,,5
           1,NEW,NOBAND,4,SELL,LIMIT,GTC,60.5,2
           2,NEW,NOBAND,5,BUY,MARKET,IOC,,3
           1,NEW,WIDE,6,BUY,LIMIT,GTC,0.01,2
           2,NEW,WIDE,7,SELL,MARKET,FOK,,2""",
        """1,ACK,AAPL,1,1,SELL,110.00,2,2,,
           2,ACK,AAPL,2,1,SELL,109.00,2,2,,
           3,ACK,AAPL,3,2,BUY,,5,5,,
           4,FILL,AAPL,3,2,BUY,109.00,2,3,2,TAKER
           5,FILL,AAPL,2,1,SELL,109.00,2,0,3,MAKER
           6,FILL,AAPL,3,2,BUY,110.00,2,1,1,TAKER
           7,FILL,AAPL,1,1,SELL,110.00,2,0,3,MAKER
           8,CANCELED,AAPL,3,2,BUY,,1,0,,IOC
           9,ACK,NOBAND,4,1,SELL,60.5,2,2,,
           10,ACK,NOBAND,5,2,BUY,,3,3,,
           11,FILL,NOBAND,5,2,BUY,60.5,2,1,4,TAKER
           12,FILL,NOBAND,4,1,SELL,60.5,2,0,5,MAKER
           13,CANCELED,NOBAND,5,2,BUY,,1,0,,IOC
           14,ACK,WIDE,6,1,BUY,0.01,2,2,,
           15,ACK,WIDE,7,2,SELL,,2,2,,
           16,FILL,WIDE,7,2,SELL,0.01,2,0,6,TAKER
           17,FILL,WIDE,6,1,BUY,0.01,2,0,7,MAKER""",
    ),
    "market_protection_stops_sweep": (
        # the ask at 120.98 entered while ref was 109.99; after a trade at 100.00 a MARKET
        # BUY's protection price is 110.00 and it cannot reach it
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,109.99,1
           2,NEW,AAPL,2,BUY,LIMIT,GTC,109.99,1
           1,NEW,AAPL,3,SELL,LIMIT,GTC,120.98,1
           1,NEW,AAPL,5,SELL,LIMIT,GTC,100.00,1
           2,NEW,AAPL,6,BUY,LIMIT,GTC,100.00,1
           2,NEW,AAPL,4,BUY,MARKET,IOC,,1""",
        """1,ACK,AAPL,1,1,SELL,109.99,1,1,,
           2,ACK,AAPL,2,2,BUY,109.99,1,1,,
           3,FILL,AAPL,2,2,BUY,109.99,1,0,1,TAKER
           4,FILL,AAPL,1,1,SELL,109.99,1,0,2,MAKER
           5,ACK,AAPL,3,1,SELL,120.98,1,1,,
           6,ACK,AAPL,5,1,SELL,100.00,1,1,,
           7,ACK,AAPL,6,2,BUY,100.00,1,1,,
           8,FILL,AAPL,6,2,BUY,100.00,1,0,5,TAKER
           9,FILL,AAPL,5,1,SELL,100.00,1,0,6,MAKER
           10,ACK,AAPL,4,2,BUY,,1,1,,
           11,CANCELED,AAPL,4,2,BUY,,1,0,,IOC""",
    ),
    "collar_moves_with_trades": (
        """1,NEW,AAPL,1,BUY,LIMIT,GTC,110.01,1
           1,NEW,AAPL,2,SELL,LIMIT,GTC,109.00,1
           2,NEW,AAPL,3,BUY,LIMIT,GTC,109.00,1
           1,NEW,AAPL,4,BUY,LIMIT,GTC,119.90,1
           1,NEW,AAPL,5,BUY,LIMIT,GTC,119.91,1""",
        """1,REJECT,AAPL,1,1,,,,,,PRICE_BAND
           2,ACK,AAPL,2,1,SELL,109.00,1,1,,
           3,ACK,AAPL,3,2,BUY,109.00,1,1,,
           4,FILL,AAPL,3,2,BUY,109.00,1,0,2,TAKER
           5,FILL,AAPL,2,1,SELL,109.00,1,0,3,MAKER
           6,ACK,AAPL,4,1,BUY,119.90,1,1,,
           7,REJECT,AAPL,5,1,,,,,,PRICE_BAND""",
    ),
    "new_rejects_in_order": (
        """1,NEW,AAPL,1,BUY,LIMIT,GTC,100.00,1
           1,NEW,AAPL,1,BUY,LIMIT,GTC,100.00,1
           1,NEW,ZZZ,2,BUY,LIMIT,GTC,100.00,1
           1,NEW,AAPL,2,BUY,MARKET,GTC,,1
           1,NEW,AAPL,2,BUY,MARKET,POST,,1
           1,NEW,AAPL,2,BUY,LIMIT,GTC,100.00,0
           1,NEW,AAPL,2,BUY,LIMIT,GTC,100.00,1.5
           1,NEW,AAPL,2,BUY,LIMIT,GTC,100.00,4294967296
           1,NEW,AAPL,2,BUY,LIMIT,GTC,100.001,1
           1,NEW,AAPL,2,BUY,LIMIT,GTC,,1
           1,NEW,AAPL,2,BUY,LIMIT,GTC,-1.00,1
           1,NEW,AAPL,2,BUY,LIMIT,GTC,95000000.00,1
           1,NEW,AAPL,2,BUY,MARKET,IOC,100.00,1
           1,NEW,AAPL,2,BUY,LIMIT,GTC,89.99,1
           1,NEW,AAPL,2,BUY,LIMIT,GTC,90.00,4294967295
           1,NEW,AAPL,2,BUY,SIDEWAYS,GTC,90.00,1
           1,FROB,AAPL,2,BUY,LIMIT,GTC,90.00,1""",
        """1,ACK,AAPL,1,1,BUY,100.00,1,1,,
           2,REJECT,AAPL,1,1,,,,,,DUPLICATE_ORDER_ID
           3,REJECT,,2,1,,,,,,UNKNOWN_SYMBOL
           4,REJECT,AAPL,2,1,,,,,,BAD_TIF
           5,REJECT,AAPL,2,1,,,,,,BAD_TIF
           6,REJECT,AAPL,2,1,,,,,,BAD_QTY
           7,REJECT,AAPL,2,1,,,,,,BAD_QTY
           8,REJECT,AAPL,2,1,,,,,,MAX_QTY
           9,REJECT,AAPL,2,1,,,,,,BAD_PRICE
           10,REJECT,AAPL,2,1,,,,,,BAD_PRICE
           11,REJECT,AAPL,2,1,,,,,,BAD_PRICE
           12,REJECT,AAPL,2,1,,,,,,BAD_PRICE
           13,REJECT,AAPL,2,1,,,,,,BAD_PRICE
           14,REJECT,AAPL,2,1,,,,,,PRICE_BAND
           15,ACK,AAPL,2,1,BUY,90.00,4294967295,4294967295,,
           16,REJECT,AAPL,2,1,,,,,,MALFORMED
           17,REJECT,AAPL,0,0,,,,,,MALFORMED""",
    ),
    "cancel_and_replace_rules": (
        """1,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,5
           1,NEW,AAPL,2,BUY,LIMIT,GTC,99.00,5
           2,CANCEL,,1,,,,,
           1,REPLACE,,1,,,,99.00,0
           1,REPLACE,,1,,,,99.00,4294967296
           1,REPLACE,,1,,,,99.005,4
           1,REPLACE,,1,,,,,4
           1,REPLACE,,1,,,,80.00,4
           1,REPLACE,,7,,,,99.00,4
           1,REPLACE,,1,,,,99.00,4
           2,NEW,AAPL,3,SELL,LIMIT,IOC,99.00,5
           1,REPLACE,,2,,,,99.00,6
           2,NEW,AAPL,4,SELL,LIMIT,IOC,99.00,5""",
        """1,ACK,AAPL,1,1,BUY,99.00,5,5,,
           2,ACK,AAPL,2,1,BUY,99.00,5,5,,
           3,REJECT,AAPL,1,2,,,,,,NOT_OWNER
           4,REJECT,AAPL,1,1,,,,,,BAD_QTY
           5,REJECT,AAPL,1,1,,,,,,MAX_QTY
           6,REJECT,AAPL,1,1,,,,,,BAD_PRICE
           7,REJECT,AAPL,1,1,,,,,,BAD_PRICE
           8,REJECT,AAPL,1,1,,,,,,PRICE_BAND
           9,REJECT,AAPL,7,1,,,,,,UNKNOWN_ORDER
           10,REPLACED,AAPL,1,1,BUY,99.00,4,4,,
           11,ACK,AAPL,3,2,SELL,99.00,5,5,,
           12,FILL,AAPL,3,2,SELL,99.00,4,1,1,TAKER
           13,FILL,AAPL,1,1,BUY,99.00,4,0,3,MAKER
           14,FILL,AAPL,3,2,SELL,99.00,1,0,2,TAKER
           15,FILL,AAPL,2,1,BUY,99.00,1,4,3,MAKER
           16,REPLACED,AAPL,2,1,BUY,99.00,6,6,,
           17,ACK,AAPL,4,2,SELL,99.00,5,5,,
           18,FILL,AAPL,4,2,SELL,99.00,5,0,2,TAKER
           19,FILL,AAPL,2,1,BUY,99.00,5,1,4,MAKER""",
    ),
    "replace_crossing_trades_as_taker": (
        """1,NEW,AAPL,1,SELL,LIMIT,GTC,100.05,2
           2,NEW,AAPL,2,BUY,LIMIT,GTC,100.00,5
           2,REPLACE,,2,,,,100.05,3""",
        """1,ACK,AAPL,1,1,SELL,100.05,2,2,,
           2,ACK,AAPL,2,2,BUY,100.00,5,5,,
           3,REPLACED,AAPL,2,2,BUY,100.05,3,3,,
           4,FILL,AAPL,2,2,BUY,100.05,2,1,1,TAKER
           5,FILL,AAPL,1,1,SELL,100.05,2,0,2,MAKER""",
    ),
}


def _norm(text: str) -> list[str]:
    return [ln.strip() for ln in text.strip().splitlines()]


@cocotb.test()
async def directed_rules_test(dut):
    """Every rule and reason, one small flow each; events as the rulebook writes them."""
    build = BuildParams.from_env()
    book = BookDriver(dut, build)
    await book.start()
    bad = []
    for name, (rows, expected) in CASES.items():
        await book.reset()
        orders = records(rows)
        await book.run(orders)
        got = book.event_array()
        if csv_events(got) != _norm(expected):
            exp = _norm(expected)
            lines = csv_events(got)
            k = next((i for i, (a, b) in enumerate(zip(lines, exp)) if a != b), min(len(lines), len(exp)))
            bad.append(f"{name}: event {k + 1}: got {lines[k:k + 1]} expected {exp[k:k + 1]}")
        check_engine(orders, got, build)
    assert not bad, "\n".join(bad)


@cocotb.test()
async def capacity_test(dut):
    """CAPACITY exactly as docs/rulebook.md section 7, with this build's NORD and NLVL."""
    build = BuildParams.from_env()
    nord, nlvl = build.nord, build.nlvl
    book = BookDriver(dut, build)
    await book.start()
    # levels: nlvl buy levels, then a new level is CAPACITY, an existing one is not, an IOC is not
    rows = [f"1,NEW,AAPL,{i + 1},BUY,LIMIT,GTC,{95 + i}.00,1" for i in range(nlvl)]
    rows += [f"1,NEW,AAPL,100,BUY,LIMIT,GTC,{90}.00,1", "1,NEW,AAPL,101,BUY,LIMIT,IOC,91.00,1"]
    if nord > nlvl:
        rows.append("1,NEW,AAPL,102,BUY,LIMIT,GTC,95.00,1")
    rows.append("1,REPLACE,,1,,,,91.00,1")  # new price without a level: CAPACITY
    rows.append(f"1,REPLACE,,1,,,,{95 + nlvl - 1}.00,1")  # onto an existing level
    orders = records("\n".join(rows))
    await book.run(orders)
    got = book.event_array()
    lines = csv_events(got)
    assert lines[nlvl].endswith(",CAPACITY") and ",100," in lines[nlvl]
    assert "ACK" in lines[nlvl + 1] and "IOC" in lines[nlvl + 2]
    check_engine(orders, got, build)
    # orders: fill the book (nord orders over at most nlvl levels per side per symbol)
    await book.reset()
    rows = []
    k = 0
    for s in ("AAPL", "NOBAND"):
        for side, px in (("BUY", "99.00" if s == "AAPL" else "49.0"), ("SELL", "101.00" if s == "AAPL" else "51.0")):
            for _ in range(nord):
                k += 1
                rows.append(f"1,NEW,{s},{k},{side},LIMIT,GTC,{px},1")
    orders = records("\n".join(rows))
    await book.run(orders)
    got = book.event_array()
    kinds = [ln.split(",")[1] for ln in csv_events(got)]
    assert kinds.count("ACK") == nord and kinds.count("REJECT") == 3 * nord
    check_engine(orders, got, build)


@cocotb.test()
async def backpressure_and_idle_test(dut):
    """A random flow with idle input cycles and a stalling consumer, against the engine."""
    build = BuildParams.from_env()
    nord, nlvl = build.nord, build.nlvl
    v = build.venue()
    for idle, stall, seed in ((30, 0, 1), (0, 60, 2), (25, 40, 3)):
        book = BookDriver(dut, build, idle=idle, stall=stall, seed=seed)
        if seed == 1:
            await book.start(v)
        else:
            await book.reset()
        orders = random_records(seed, 600, v, nord=nord, nlvl=nlvl)
        await book.run(orders)
        got = book.event_array()
        diff = first_divergence(got, replay_records(orders, engine_venue(v, nord, nlvl)), names=("hw", "engine"))
        assert diff is None, f"idle {idle} stall {stall}: {diff}"


@cocotb.test()
async def reset_in_traffic_test(dut):
    """rst in the middle of a flow (with events pending and the consumer stalling): the book
    comes back empty, seq at 1 and the reference prices as configured."""
    build = BuildParams.from_env()
    nord, nlvl = build.nord, build.nlvl
    v = build.venue()
    book = BookDriver(dut, build, idle=10, stall=30, seed=9)
    await book.start(v)
    first = random_records(11, 400, v, nord=nord, nlvl=nlvl)
    accepted = await _run_until(book, first, 150)
    assert accepted >= 150
    await book.reset()
    second = random_records(12, 400, v, nord=nord, nlvl=nlvl)
    await book.run(second)
    diff = first_divergence(book.event_array(), replay_records(second, engine_venue(v, nord, nlvl)), names=("hw", "engine"))
    assert diff is None, diff


async def _run_until(book: BookDriver, orders, n: int) -> int:
    """Send n records and return at once, while the book is still busy."""
    return await book.run(orders, stop_after=n)


@cocotb.test()
async def top_of_book_test(dut):
    """Best bid/ask price and size of the message's symbol, the cycle after its last event,
    against the engine's book after the same messages."""
    build = BuildParams.from_env()
    nord, nlvl = build.nord, build.nlvl
    v = build.venue()
    book = BookDriver(dut, build)
    await book.start(v)
    orders = random_records(21, 300, v, nord=nord, nlvl=nlvl)
    eng = Venue(engine_venue(v, nord, nlvl))
    names = [s.name for s in v.symbols]
    checked = 0

    async def done(sent):
        nonlocal checked
        eng.submit(orders[sent - 1 : sent])
        for s, name in enumerate(names):
            dep = eng.depth(name, 1)
            tick = v.symbols[s].tick_units

            def side(levels):
                if not levels:
                    return PRICE_NONE, 0
                return round(levels[0][0] * PRICE_SCALE / tick) * tick, levels[0][1]

            exp = (*side(dep["bids"]), *side(dep["asks"]))
            assert book.tob(s) == exp, f"message {sent} symbol {name}: tob {book.tob(s)} engine {exp}"
        checked += 1

    await book.run(orders, on_message_done=done)
    assert checked == len(orders)


# ----------------------------------------------------------------------------------- the runner
COCOTB_TESTS = [name for name, obj in list(globals().items()) if isinstance(obj, cocotb.regression.TestGenerator)]


def run_book_tests(top: str, sources, nsym: int, nord: int, nlvl: int) -> None:
    """Build `top` from `sources` with these parameters in Icarus (cocotb's Python runner) and run
    every cocotb test of this module on it; fails unless all of them ran and passed."""
    from cocotb_tools.check_results import get_results

    waves = bool(os.environ.get("WAVES"))
    runner, build_dir = cocotb_build("cocotb", top, sources, nsym, nord, nlvl, waves=waves)
    params = {"NSYM": nsym, "NORD": nord, "NLVL": nlvl}
    env = {"HDL_NSYM": str(nsym), "HDL_NORD": str(nord), "HDL_NLVL": str(nlvl), "HDL_TOP": top}
    on_simulator_path(REPO, TB_DIR)
    results = runner.test(
        test_module=Path(__file__).stem,
        hdl_toplevel=top,
        parameters=params,
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env=env,
        waves=waves,
        results_xml=str(build_dir / "results.xml"),
    )
    ran, failed = get_results(Path(results))
    assert failed == 0, f"{failed} of {ran} cocotb tests failed (log above, results in {results})"
    # every test of the module reported (none lost to an import error or a renamed decorator)
    assert ran == len(COCOTB_TESTS), f"{ran} cocotb results, this module has {len(COCOTB_TESTS)}: {COCOTB_TESTS}"


@pytest.mark.parametrize("nsym,nord,nlvl", [
    (4, 4, 2),
    (4, 12, 5),
    (5, 7, 3),  # not powers of two
])
def test_tickbook_book_passes_the_cocotb_tests(nsym, nord, nlvl):
    run_book_tests("tickbook_book", RTL_SOURCES, nsym, nord, nlvl)
