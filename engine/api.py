"""Python API for notebooks and tools: a venue you submit order records to.

    from engine.api import Venue
    v = Venue()                       # built-in venue, or Venue("venue.toml")
    events = v.submit(orders)         # ORDER_DTYPE array (or a DataFrame) -> EVENT_DTYPE array
    v.events_frame(events)            # the same events as a pandas DataFrame
    v.depth("AAPL")                   # the book, best first

The matcher runs the same njit `process_batch` as `tickbook replay` and the live engine.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import wait
from pathlib import Path

import numpy as np

from engine.book import level_count, level_orders, top_levels
from engine.codec import FLOW_HEADER, EventWriter, Flow, parse_flow_bytes
from engine.config import VenueConfig, load_venue, parse_venue
from engine.matcher import process_batch
from engine.records import (
    EVENT_DTYPE,
    EVENT_NAMES,
    ORDER_DTYPE,
    PRICE_NONE,
    PRICE_SCALE,
    REASON_NAMES,
    SIDE_BUY,
    SIDE_NAMES,
    SIDE_SELL,
)
from engine.state import C_RESTING, make_state
from engine.threads import in_order

DEFAULT_EVENT_CHUNK = 1 << 16


def as_venue(venue: VenueConfig | str | Path | None) -> VenueConfig:
    if isinstance(venue, VenueConfig):
        return venue
    return load_venue(venue)


class Venue:
    """One matcher state; messages submitted in several calls continue the same run."""

    def __init__(self, venue: VenueConfig | str | Path | None = None, n_messages: int | None = 0):
        """n_messages: the most messages the flow to come can hold, if known; the hashed
        tables' pages it could reach at random are touched now (engine/state.py, prefault),
        and the rest as the book grows into them; None touches everything (the live engine)."""
        self.config = as_venue(venue)
        self.state = make_state(self.config, n_messages)
        # zeros: emit never writes the reserved bytes, which must stay zero
        self._out = np.zeros(DEFAULT_EVENT_CHUNK, EVENT_DTYPE)
        self._spare = None  # the second buffer of process(overlap=True)

    # -- processing ----------------------------------------------------------------------

    def process(self, orders: np.ndarray, on_events, overlap: bool = False) -> float:
        """Run orders through the matcher, handing each filled chunk of events to
        on_events(view); the view is reused once the call returns, so copy what you keep.
        Returns the seconds spent in the matcher.

        overlap: on_events runs in a thread of its own (engine/threads.py, in_order) while the
        matcher fills a second buffer, so writing the events takes a second core instead of the
        matcher's time. The calls still come one at a time and in order, and all of them have
        returned when process does; an error raised by one is raised here."""
        if orders.dtype != ORDER_DTYPE:
            raise TypeError(f"orders must have ORDER_DTYPE, got {orders.dtype}")
        i, n = 0, len(orders)
        match_s = 0.0
        busy = None  # the on_events call in flight (overlap), on the buffer that is not self._out
        try:
            while i < n:
                t0 = time.perf_counter()
                nxt, n_ev = process_batch(self.state, orders, i, n, self._out, 0)
                match_s += time.perf_counter() - t0
                if nxt == i and n_ev == 0:
                    # The next message may need more room than the buffer has (a deep sweep).
                    self._out = np.zeros(2 * len(self._out), EVENT_DTYPE)
                    continue
                i = nxt
                if n_ev == 0:
                    continue
                if not overlap:
                    on_events(self._out[:n_ev])
                    continue
                if busy is not None:
                    busy.result()  # the other buffer is free again
                busy = in_order().submit(on_events, self._out[:n_ev])
                if self._spare is None or len(self._spare) < len(self._out):
                    self._spare = np.zeros(len(self._out), EVENT_DTYPE)
                self._out, self._spare = self._spare, self._out
        except BaseException:
            if busy is not None:
                wait([busy])  # no call left running on a buffer after we return
            raise
        if busy is not None:
            busy.result()
        return match_s

    def submit(self, orders) -> np.ndarray:
        """Orders (ORDER_DTYPE array, or a DataFrame) in, their events out (a new array)."""
        if not isinstance(orders, np.ndarray):
            orders = self._orders_from_frame(orders)
        chunks: list[np.ndarray] = []
        self.process(orders, lambda ev: chunks.append(ev.copy()))
        return np.concatenate(chunks) if chunks else np.empty(0, EVENT_DTYPE)

    def replay(self, flow: Flow, fh) -> None:
        """Replay a parsed flow, writing the events CSV to the binary file fh."""
        writer = EventWriter(fh, self.config, flow)
        self.process(flow.orders, writer.write)

    def _orders_from_frame(self, frame) -> np.ndarray:
        """A DataFrame either of record fields (ORDER_DTYPE names) or of the flow CSV's columns."""
        if set(ORDER_DTYPE.names) - {"reserved"} <= set(frame.columns):
            out = np.zeros(len(frame), ORDER_DTYPE)
            for name in ORDER_DTYPE.names:
                if name != "reserved":
                    out[name] = frame[name].to_numpy()
            return out
        from engine.codec import FLOW_HEADER

        cols = FLOW_HEADER.split(",")
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"DataFrame lacks flow columns {missing}")
        text = frame[cols].to_csv(index=False, header=True, lineterminator="\n", na_rep="")
        return parse_flow_bytes(text.encode(), self.config, "<DataFrame>").orders

    # -- looking at results --------------------------------------------------------------

    def events_frame(self, events: np.ndarray):
        """Events as a DataFrame with readable names and decimal prices."""
        import pandas as pd

        names = [s.name for s in self.config.symbols]
        sym = events["symbol"].astype(np.int64)
        price = np.where(events["price"] == PRICE_NONE, np.nan, events["price"] / PRICE_SCALE)
        return pd.DataFrame(
            {
                "seq": events["seq"],
                "msg_seq": events["msg_seq"],
                "event": [EVENT_NAMES.get(int(k), "?") for k in events["kind"]],
                "symbol": [names[s] if s < len(names) else "" for s in sym],
                "order_id": events["order_id"],
                "account": events["account"],
                "side": [SIDE_NAMES.get(int(s), "") for s in events["side"]],
                "price": price,
                "qty": events["qty"],
                "leaves": events["leaves"],
                "contra_id": events["contra_id"],
                "detail": [REASON_NAMES.get(int(r), "?") for r in events["reason"]],
            }
        )

    def depth(self, symbol: str, levels: int | None = None) -> dict[str, list[tuple[float, int, int]]]:
        """{'bids': [(price, qty, orders)...], 'asks': [...]}, best first."""
        sym = self.config.symbol_index[symbol]
        tick = self.config.symbols[sym].tick
        book = {}
        for name, side in (("bids", SIDE_BUY), ("asks", SIDE_SELL)):
            n = int(level_count(self.state, sym, side)) if levels is None else levels
            prices = np.zeros(max(n, 1), np.int64)
            qtys = np.zeros(max(n, 1), np.int64)
            k = top_levels(self.state, sym, side, n, prices, qtys)
            book[name] = [
                (float(prices[i] * tick), int(qtys[i]), int(level_orders(self.state, sym, side, i)))
                for i in range(k)
            ]
        return book

    @property
    def resting(self) -> int:
        return int(self.state.ctr[C_RESTING])


def warm_up(venue: VenueConfig | str | Path | None = None) -> float:
    """Load the compiled parser, matcher and writer (from Numba's cache, or by compiling
    them once) by replaying one row on a tiny book; returns the seconds it took. Timings
    taken afterwards measure the work, not the start."""
    t0 = time.perf_counter()
    tiny = _tiny(venue)
    flow = parse_flow_bytes(f"{FLOW_HEADER}\n1,1,CANCEL,,1,,,,,\n".encode(), tiny, "<warm-up>")
    Venue(tiny).replay(flow, io.BytesIO())
    return time.perf_counter() - t0


def warm_up_matcher(venue: VenueConfig | str | Path | None = None) -> None:
    """Load (or compile) the batch matcher alone: one all-zero record (MALFORMED) on a tiny book."""
    Venue(_tiny(venue)).submit(np.zeros(1, ORDER_DTYPE))


def _tiny(venue) -> VenueConfig:
    return as_venue(venue).with_capacity(max_orders=16, max_levels=4)


def replay_records(orders: np.ndarray, venue: VenueConfig | str | Path | None = None) -> np.ndarray:
    """A fresh venue, the orders through it, every event back."""
    return Venue(venue, n_messages=len(orders)).submit(orders)


def replay_csv_text(flow_text: str, venue_toml_text: str | None = None) -> str:
    """Flow CSV text in, events CSV text out: the byte-for-byte contract of the rulebook."""
    config = parse_venue(venue_toml_text) if venue_toml_text is not None else load_venue(None)
    flow = parse_flow_bytes(flow_text.encode(), config)
    buf = io.BytesIO()
    Venue(config).replay(flow, buf)
    return buf.getvalue().decode()
