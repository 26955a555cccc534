"""A client's local copy of one symbol's L2 depth, kept from the gateway's `depth` messages and a
snapshot asked for over the order socket (docs/offload.md#market-data). `Client.depth_book`
makes one; the Client feeds it every depth message and snapshot answer it reads.

How it stays equal to the gateway's book: it is subscribed before it asks for the snapshot, so
every depth message after the snapshot reaches it. While the answer is awaited it buffers the
depth messages (at most `max_buffer`, the oldest dropped first); the snapshot is the book after
exactly the messages numbered <= its seq, so those are dropped and the rest applied in order.
Afterwards each message must be numbered one more than the last applied; a jump (PUB dropped
messages for a slow subscriber, or an overflowing buffer) is a gap: counted, and repaired by
asking for a new snapshot, buffering meanwhile. Messages numbered at or below the book's
number are old and ignored."""

from __future__ import annotations

import collections
import time

import numpy as np

BUY, SELL = 1, 2


class DepthBook:
    def __init__(self, client, symbol: str, max_buffer: int = 100_000):
        self.client, self.symbol = client, symbol
        self.bids: dict[int, tuple[int, int]] = {}  # price (1e-8 units) -> (qty, orders)
        self.asks: dict[int, tuple[int, int]] = {}
        self.seq = 0  # number of the last depth message applied (valid once synced)
        self.synced = False  # a snapshot is applied and no gap is pending
        self.token = None  # the snapshot request in flight
        self.buffer: collections.deque = collections.deque(maxlen=max_buffer)
        self.gaps = 0  # sequence jumps seen (each repaired by a new snapshot)
        self.snapshots = 0  # snapshots applied
        self.overflowed = 0  # buffered messages dropped because the buffer was full
        self.stale = 0  # messages at or below the book's number, ignored
        self.applied = 0  # depth messages applied
        self.error = None  # an ERR answer to the snapshot request

    # -- fed by the Client
    def request(self) -> None:
        """Ask for a snapshot; until it is applied, depth messages are buffered."""
        self.synced = False
        self.token = self.client.request_snapshot(self.symbol, book=self)

    def on_depth(self, records: np.ndarray) -> None:
        """One depth message (DEPTH_DTYPE records, all with the same seq)."""
        if not len(records):
            return
        if not self.synced:
            if len(self.buffer) == self.buffer.maxlen:
                self.overflowed += 1
            self.buffer.append(records)
            return
        seq = int(records["seq"][0])
        if seq <= self.seq:
            self.stale += 1
            return
        if seq != self.seq + 1:
            self.gaps += 1
            self.buffer.append(records)
            self.request()
            return
        self._apply(records)
        self.seq = seq
        self.applied += 1

    def on_snapshot(self, seq: int, levels: np.ndarray) -> None:
        self.token = None
        self.bids, self.asks = {}, {}
        self._apply(levels)
        self.seq, self.synced = seq, True
        self.snapshots += 1
        pending = list(self.buffer)
        self.buffer.clear()
        for recs in pending:  # a gap among them asks again and buffers the rest
            self.on_depth(recs)

    def on_error(self, reason: str) -> None:
        self.token, self.error = None, reason

    def _apply(self, recs: np.ndarray) -> None:
        for side, price, qty, n in zip(recs["side"].tolist(), recs["price"].tolist(), recs["qty"].tolist(),
                                       recs["orders"].tolist()):
            lv = self.bids if side == BUY else self.asks
            if qty == 0:
                lv.pop(price, None)
            else:
                lv[price] = (qty, n)

    # -- for the user
    def levels(self) -> dict[str, list[tuple[int, int, int]]]:
        """{'bids': [(price, qty, orders) ...], 'asks': [...]}, best first, prices in 1e-8 units."""
        return {"bids": [(p, *self.bids[p]) for p in sorted(self.bids, reverse=True)],
                "asks": [(p, *self.asks[p]) for p in sorted(self.asks)]}

    def update(self, timeout: float = 0.0) -> int:
        """Read the market data that arrives within `timeout` s (at least what is there now) and
        the snapshot answers: the books are kept; other market data read here is dropped (read
        it with Client.market_data instead, which keeps the books as well). Returns the number
        of market data messages read."""
        return self.client.update_depth(timeout)

    def wait_synced(self, timeout: float = 10.0) -> None:
        """Until a snapshot is applied with no gap pending; GatewayError on an ERR answer."""
        from offload.gateway.client import GatewayError

        deadline = time.monotonic() + timeout
        while not self.synced:
            if self.error is not None:
                raise GatewayError(self.error)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"depth of {self.symbol}: no snapshot within {timeout} s")
            self.client.update_depth(min(left, 0.01))
