"""The gateway's copy of the book, rebuilt from the event stream for market data."""

from __future__ import annotations

import heapq

from engine.records import EV_ACK, EV_CANCELED, EV_FILL, EV_REPLACED, PRICE_NONE, event_from_words


class MarketDataBook:
    """The gateway's copy of the book, kept only to publish market data (`top` messages): per-symbol
    price levels rebuilt from the event stream alone (the engine publishes no book). An order
    rests once the events of the message that placed it are all seen and it is still alive, so
    a taker never shows in the book and no transient crossed book is published. Prices in 1e-8
    units."""

    def __init__(self, n_symbols: int):
        self.orders: dict[int, list] = {}  # order_id -> [sym, side, price, leaves, resting]
        self.levels = [({}, {}) for _ in range(n_symbols)]  # [sym][side-1]: price -> [qty, orders]
        self.heaps = [([], []) for _ in range(n_symbols)]  # bids as -price, asks as price
        self.open_pos = -1  # message whose events are being applied
        self.candidates: list[int] = []  # orders placed/moved by that message
        # levels touched since the last depth publish: sym -> {(side, price): (qty, orders) before};
        # its symbols are those whose top of book may have changed too
        self.changed: dict[int, dict[tuple, tuple]] = {}
        self.last_seq = 0

    def seed(self, orders, last_seq: int) -> None:
        """Start from a recovered book: (order_id, symbol, side, price, leaves), resting."""
        for oid, sym, side, price, leaves in orders:
            self.orders[oid] = [sym, side, price, leaves, True]
            self._level_add(sym, side, price, leaves)
        self.last_seq = last_seq

    def _touch(self, sym, side, price, cur) -> None:
        """Remember a level's (qty, orders) before its first change since the last depth publish."""
        ch = self.changed.get(sym)
        if ch is None:
            ch = self.changed[sym] = {}
        if (side, price) not in ch:
            ch[side, price] = (0, 0) if cur is None else (cur[0], cur[1])

    def _level_add(self, sym, side, price, qty):
        lv = self.levels[sym][side - 1]
        cur = lv.get(price)
        self._touch(sym, side, price, cur)
        if cur is None:
            lv[price] = [qty, 1]
            hp = self.heaps[sym][side - 1]
            heapq.heappush(hp, -price if side == 1 else price)
            if len(hp) > 4 * len(lv) + 64:  # stale entries of removed levels: rebuild
                hp[:] = [-p if side == 1 else p for p in lv]
                heapq.heapify(hp)
        else:
            cur[0] += qty
            cur[1] += 1

    def _level_sub(self, sym, side, price, qty, gone):
        lv = self.levels[sym][side - 1]
        cur = lv[price]
        self._touch(sym, side, price, cur)
        cur[0] -= qty
        if gone:
            cur[1] -= 1
            if cur[1] == 0:
                del lv[price]

    def event(self, pos, seq, kind, oid, sym, side, price, qty, leaves):
        if pos != self.open_pos:
            self.finish()
            self.open_pos = pos
        self.last_seq = seq
        if kind == EV_ACK:
            if price != PRICE_NONE and sym < len(self.levels):  # MARKET orders never rest
                self.orders[oid] = [sym, side, price, qty, False]
                self.candidates.append(oid)
        elif kind == EV_FILL:
            o = self.orders.get(oid)
            if o is None:
                return
            if o[4]:
                self._level_sub(o[0], o[1], o[2], qty, leaves == 0)
            o[3] = leaves
            if leaves == 0:
                del self.orders[oid]
        elif kind == EV_CANCELED:
            o = self.orders.pop(oid, None)
            if o is not None and o[4]:
                self._level_sub(o[0], o[1], o[2], o[3], True)
        elif kind == EV_REPLACED:
            o = self.orders.get(oid)
            if o is not None:
                if o[4]:
                    self._level_sub(o[0], o[1], o[2], o[3], True)
                o[2], o[3], o[4] = price, qty, False
                self.candidates.append(oid)

    def apply(self, rows: list, t: int) -> int:
        """Apply events (rows of 8 int64 words) while their message (ring position
        msg_seq - 1) is < t, i.e. finished; return how many were applied."""
        for j, w in enumerate(rows):
            pos = w[1] - 1
            if pos >= t:
                return j
            seq, _, oid, price, qty, leaves, _, sym, kind, side, _ = event_from_words(w)
            self.event(pos, seq, kind, oid, sym, side, price, qty, leaves)
        return len(rows)

    def finish(self):
        """The open message is complete: what it placed and is still alive rests now."""
        for oid in self.candidates:
            o = self.orders.get(oid)
            if o is not None and not o[4] and o[3] > 0:
                o[4] = True
                self._level_add(o[0], o[1], o[2], o[3])
        self.candidates.clear()
        self.open_pos = -1

    def top(self, sym) -> tuple:
        out = []
        for s in (0, 1):
            lv, hp = self.levels[sym][s], self.heaps[sym][s]
            while hp and (-hp[0] if s == 0 else hp[0]) not in lv:
                heapq.heappop(hp)
            if hp:
                p = -hp[0] if s == 0 else hp[0]
                out += [p, lv[p][0], lv[p][1]]
            else:
                out += [PRICE_NONE, 0, 0]
        return tuple(out)

    def level_changes(self) -> dict[int, list[tuple]]:
        """The levels whose (qty, orders) changed since the last call, per symbol: (side, price,
        qty, orders), qty 0 for a level that is gone; a level changed and changed back is left
        out. Only the levels touched are looked at, never the whole book."""
        out = {}
        for sym, ch in self.changed.items():
            bids, asks = self.levels[sym]
            ups = []
            for (side, price), before in ch.items():
                cur = (bids if side == 1 else asks).get(price)
                now = (0, 0) if cur is None or cur[1] == 0 else (cur[0], cur[1])
                if now != before:
                    ups.append((side, price, now[0], now[1]))
            if ups:
                ups.sort(key=lambda u: (u[0], -u[1] if u[0] == 1 else u[1]))  # bids then asks, best first
                out[sym] = ups
        self.changed = {}
        return out

    def depth(self, sym) -> list[tuple]:
        """Every level of a symbol, (side, price, qty, orders): bids best first, then asks best first."""
        bids, asks = self.levels[sym]
        return ([(1, p, bids[p][0], bids[p][1]) for p in sorted(bids, reverse=True)]
                + [(2, p, asks[p][0], asks[p][1]) for p in sorted(asks)])
