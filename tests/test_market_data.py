"""The L2 depth feed, depth snapshots and the counterparty rule, end to end: a real gateway
(`python -m offload.gateway`, TCP on 127.0.0.1 with ports chosen by the OS) that spawns its
engine on a ring name of its own, and Clients on real sockets (docs/offload.md#market-data).

- A subscriber from the start sees every depth message: numbered 1, 2, 3 ... per symbol with
  no gap, and the book rebuilt from them alone equals the engine's book replayed from the
  journal, level by level, both sides, every symbol.
- A late joiner that subscribes after thousands of orders, while orders keep coming, rebuilds
  each symbol from a snapshot plus the following depth messages; one depth message dropped on
  purpose is seen as a gap and repaired by a new snapshot; its books equal the replay.
- A fill's contra_id: 0 in the taker's EV reply and in the maker's REP report when the other
  order is another client's, the real id when both are the same client's; a message sent
  again in a named session is answered with the same rule on the message's accounts.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.api import Venue, as_venue
from engine.gen import generate
from engine.records import (
    EV_ACK,
    EV_FILL,
    PRICE_SCALE,
    R_MAKER,
    R_TAKER,
    SIDE_BUY,
    SIDE_SELL,
)
from offload.gateway import Client, GatewayError
from offload.gateway.wire import DEPTH_DTYPE, TRADE_DTYPE
from offload.journal import load_journal
from testkit.gatewayproc import GatewayProcess, order

STEP = 60.0


class Gateway(GatewayProcess):
    """A gateway with a journal (the flow as stamped, for the reference replay) and 50 ms heartbeats."""

    def __init__(self, tmp: Path):
        self.journal = tmp / "journal"
        super().__init__(tmp, "--journal", str(self.journal), "--heartbeat", "0.05", step=STEP, tag="mdtest")


@pytest.fixture
def gateway(tmp_path):
    g = Gateway(tmp_path)
    yield g
    g.close()


def expected_depth(venue, journal):
    """Every level of every symbol after the journaled flow, from the engine's own replay:
    {symbol: {'bids': [(price in 1e-8 units, qty, orders) ...], 'asks': [...]}}, best first."""
    v = Venue(venue)
    events = v.submit(journal)
    out = {}
    for s in venue.symbols:
        d = v.depth(s.name)
        out[s.name] = {side: [(round(p * PRICE_SCALE), q, n) for p, q, n in d[side]] for side in ("bids", "asks")}
    return out, int(events["seq"][-1]) if len(events) else 0


def book_of(levels_by_side) -> dict:
    return {side: list(levels_by_side[side]) for side in ("bids", "asks")}


def replay_depth_messages(msgs):
    """The book from depth messages alone, in order, starting empty."""
    books: dict[str, tuple[dict, dict]] = {}
    for m in msgs:
        bids, asks = books.setdefault(m.symbol, ({}, {}))
        for r in m.records:
            lv = bids if r["side"] == SIDE_BUY else asks
            if r["qty"] == 0:
                del lv[int(r["price"])]  # a removal names a level that exists
            else:
                lv[int(r["price"])] = (int(r["qty"]), int(r["orders"]))
    return {s: {"bids": [(p, *b[p]) for p in sorted(b, reverse=True)], "asks": [(p, *a[p]) for p in sorted(a)]}
            for s, (b, a) in books.items()}


def wait_heartbeat(c: Client, last_seq: int, into=None) -> None:
    """Read market data (the depth books are fed as it is read) until a heartbeat says the
    gateway has applied event `last_seq`: every depth message before it has been read."""
    deadline = time.monotonic() + STEP
    while True:
        m = c.market_data(0.05, heartbeats=True)
        if m is not None:
            if m.kind == "hb" and int(m.records["last_seq"][0]) >= last_seq:
                return
            if into is not None and m.kind != "hb":
                into.append(m)
        assert time.monotonic() < deadline, f"no heartbeat with last_seq >= {last_seq}"


def test_depth_feed_late_joiner_snapshot_and_gap_repair(gateway):
    venue = as_venue(None)
    names = [s.name for s in venue.symbols]
    flow = generate(venue, 7000, seed=17)
    flow["msg_seq"] = np.arange(1, len(flow) + 1)
    FIRST, JOIN_WHILE = 3000, 1500  # orders before the late joiner; orders sent while it joins

    early = gateway.client()
    early.subscribe([], gateway.md, wait=STEP)
    joined, first_done = threading.Event(), threading.Event()
    errors = []

    def trade():
        try:
            with gateway.client() as c:
                for i in range(0, len(flow), 50):
                    if i == FIRST:
                        first_done.set()
                    if i == FIRST + JOIN_WHILE:
                        assert joined.wait(STEP), "the late joiner never joined"
                    r = c.recv(c.send(flow[i : i + 50]))
                    assert r.error is None, r.error
        except BaseException as e:  # noqa: BLE001  surfaced by the test
            errors.append(repr(e))
            first_done.set()

    t = threading.Thread(target=trade, daemon=True)
    t.start()
    late = gateway.client()
    try:
        assert first_done.wait(STEP) and not errors, errors
        # joins while orders keep coming: depth messages buffered while each snapshot is awaited
        books = {n: late.depth_book(n, gateway.md) for n in names}
        assert all(b.synced and b.snapshots == 1 and b.gaps == 0 for b in books.values())
        # one AAPL depth message lost on the way (as PUB drops for a slow subscriber)
        aapl = books["AAPL"]
        real, seen, dropped = aapl.on_depth, [], []

        def lossy(records):
            seq = int(records["seq"][0])
            seen.append(seq)
            if len(seen) >= 3 and not dropped and aapl.synced and seq == aapl.seq + 1:
                dropped.append(seq)  # the next one the book needs: lost
                return
            real(records)

        aapl.on_depth = lossy
        joined.set()
        t.join(300)
        assert not t.is_alive() and not errors, f"{errors}\n{gateway.logs()}"

        journal = load_journal(gateway.journal).records
        assert len(journal) == len(flow)
        want, last = expected_depth(venue, journal)
        assert sum(len(w["bids"]) + len(w["asks"]) for w in want.values()) > 20, "the flow leaves no book"

        # the subscriber from the start: consecutive numbers, and the messages alone give the book
        msgs = []
        wait_heartbeat(early, last, msgs)
        depth = [m for m in msgs if m.kind == "depth"]
        for n in names:
            mine = [m for m in depth if m.symbol == n]
            assert mine, f"no depth message for {n}"
            seqs = [int(m.records["seq"][0]) for m in mine]
            assert seqs == list(range(1, len(seqs) + 1)), f"depth numbers of {n} are not 1, 2, 3 ..."
            for m in mine:
                assert m.records.dtype == DEPTH_DTYPE and len(m.records) > 0
                assert (m.records["seq"] == m.records["seq"][0]).all()
                assert (m.records["symbol"] == names.index(n)).all()
        rebuilt = replay_depth_messages(depth)
        for n in names:
            assert rebuilt.get(n, {"bids": [], "asks": []}) == want[n], f"depth messages of {n} give another book"
        counts = {}
        for m in msgs:
            counts.setdefault(m.symbol, []).append(m.count)
        for key, c in counts.items():
            assert c == list(range(c[0], c[0] + len(c))), f"gap in the market data counter of {key}"

        # the late joiner: snapshot + what followed, one gap repaired
        wait_heartbeat(late, last)
        for n in names:
            books[n].wait_synced(STEP)
        assert dropped and aapl.gaps == 1 and aapl.snapshots == 2, (dropped, aapl.gaps, aapl.snapshots, seen[:5])
        for n in names:
            b = books[n]
            assert b.synced and b.error is None
            if n != "AAPL":
                assert b.gaps == 0 and b.snapshots == 1, (n, b.gaps, b.snapshots)
            assert book_of(b.levels()) == want[n], f"the late joiner's {n} differs from the replay"
            # and a fresh snapshot says the same, numbered as the last depth message
            seq, levels = late.snapshot(n)
            assert seq == b.seq and (levels["seq"] == seq).all()
            got = {"bids": [], "asks": []}
            for r in levels:
                side = "bids" if r["side"] == SIDE_BUY else "asks"
                got[side].append((int(r["price"]), int(r["qty"]), int(r["orders"])))
            assert got == want[n]
        print(f"late joiner: {sum(b.applied for b in books.values())} depth messages applied, "
              f"{sum(b.stale for b in books.values())} older than their snapshot dropped, "
              f"gap of AAPL repaired by snapshot {aapl.seq}")

        # a snapshot by index equals by name; an unknown symbol is an ERR, the symbol's name in it
        assert late.snapshot(str(names.index("MSFT")))[0] == late.snapshot("MSFT")[0]
        with pytest.raises(GatewayError, match="unknown symbol 'NOPE'"):
            late.snapshot("NOPE")
        with pytest.raises(GatewayError, match="unknown symbol"):
            late.depth_book("NOPE")
        # the trade feed names no order and no account
        assert not {"order_id", "contra_id", "account"} & set(TRADE_DTYPE.names)
        assert not {"order_id", "contra_id", "account"} & set(DEPTH_DTYPE.names)
    finally:
        early.close()
        late.close()


def fills(ev, reason):
    return ev[(ev["kind"] == EV_FILL) & (ev["reason"] == reason)]


def test_contra_id_only_reaches_the_owner_of_both_orders(gateway):
    with gateway.client() as a, gateway.client() as b, gateway.client() as c:
        # another client's order: hidden in the taker's reply and in the maker's report
        assert list(a.submit(order(1, 501, SIDE_SELL, 185.00, 10))["kind"]) == [EV_ACK]
        ev = b.submit(order(2, 502, SIDE_BUY, 185.00, 10))
        taker = fills(ev, R_TAKER)
        assert len(taker) == 1 and int(taker["order_id"][0]) == 2 and int(taker["contra_id"][0]) == 0
        rep = a.reports(STEP)
        while len(rep) == 0:
            rep = a.reports(1.0)
        maker = fills(rep, R_MAKER)
        assert len(maker) == 1 and int(maker["order_id"][0]) == 1 and int(maker["contra_id"][0]) == 0
        assert len(fills(b.reports(0.2), R_MAKER)) == 0
        # both orders of one client (two accounts): the real ids, in its reply
        assert list(c.submit(order(3, 503, SIDE_SELL, 185.00, 7))["kind"]) == [EV_ACK]
        ev = c.submit(order(4, 504, SIDE_BUY, 185.00, 7))
        taker, maker = fills(ev, R_TAKER), fills(ev, R_MAKER)
        assert len(taker) == 1 and int(taker["order_id"][0]) == 4 and int(taker["contra_id"][0]) == 3
        assert len(maker) == 1 and int(maker["order_id"][0]) == 3 and int(maker["contra_id"][0]) == 4
        assert len(c.reports(0.2)) == 0
        # a partial fill against two makers, one of them the taker's own client's
        assert list(a.submit(order(5, 501, SIDE_SELL, 185.00, 3))["kind"]) == [EV_ACK]
        assert list(c.submit(order(6, 503, SIDE_SELL, 185.00, 3))["kind"]) == [EV_ACK]
        ev = c.submit(order(7, 504, SIDE_BUY, 185.00, 6))
        taker = fills(ev, R_TAKER)
        assert [(int(x["contra_id"])) for x in taker] == [0, 6], taker
        maker = fills(ev, R_MAKER)
        assert [(int(x["order_id"]), int(x["contra_id"])) for x in maker] == [(6, 7)]
        rep = a.reports(STEP)
        while len(rep) == 0:
            rep = a.reports(1.0)
        assert [(int(x["order_id"]), int(x["contra_id"])) for x in fills(rep, R_MAKER)] == [(5, 0)]

    # a named session's message sent again: the contra_id only of orders of the message's accounts
    with gateway.client(session="desk-9") as s:
        one = np.concatenate([order(10, 505, SIDE_SELL, 185.00, 4, msg_seq=1),
                              order(11, 506, SIDE_BUY, 185.00, 4, msg_seq=2)])  # both accounts in one message
        r1 = s.submit(one)
        assert [int(x) for x in fills(r1, R_TAKER)["contra_id"]] == [10]
        r2 = s.submit(order(12, 505, SIDE_SELL, 185.00, 2, msg_seq=3))
        r3 = s.submit(order(13, 506, SIDE_BUY, 185.00, 2, msg_seq=4))  # the maker: another account, same client
        assert [int(x) for x in fills(r3, R_TAKER)["contra_id"]] == [12] and len(r2) == 1
    with gateway.client(session="desk-9") as s:  # a new connection of the same session: answered from the record
        again = s.recv(s.send(one))
        assert again.error is None
        assert [int(x) for x in fills(again.events, R_TAKER)["contra_id"]] == [10]
        assert [(int(x["order_id"]), int(x["contra_id"])) for x in fills(again.events, R_MAKER)] == [(10, 11)]
        again = s.recv(s.send(order(13, 506, SIDE_BUY, 185.00, 2, msg_seq=4)))
        assert again.error is None
        assert [int(x) for x in fills(again.events, R_TAKER)["contra_id"]] == [0]  # account 505 not in the message


def test_level_changes_are_tracked_without_a_scan_and_net_of_a_batch():
    """MarketDataBook notes the levels it touches: a level changed and changed back within a
    batch is not sent; a partial fill sends the new total, the last order leaving sends qty 0."""
    from engine.records import EV_CANCELED, PRICE_NONE
    from offload.gateway.l2book import MarketDataBook

    b = MarketDataBook(2)
    px = 18_500_000_000
    b.event(0, 1, EV_ACK, 1, 0, SIDE_BUY, px, 10, 10)
    b.event(1, 2, EV_ACK, 2, 0, SIDE_BUY, px, 5, 5)
    b.event(2, 3, EV_ACK, 3, 1, SIDE_SELL, px + 100, 7, 7)
    b.finish()
    assert b.level_changes() == {0: [(SIDE_BUY, px, 15, 2)], 1: [(SIDE_SELL, px + 100, 7, 1)]}
    assert b.level_changes() == {}
    b.event(3, 4, EV_ACK, 4, 0, SIDE_BUY, px - 100, 3, 3)
    b.finish()
    b.event(4, 5, EV_CANCELED, 4, 0, SIDE_BUY, px - 100, 3, 0)  # placed and gone within one publish
    b.event(4, 6, EV_FILL, 1, 0, SIDE_BUY, px, 4, 6)  # a partial fill of the first order
    b.finish()
    assert b.level_changes() == {0: [(SIDE_BUY, px, 11, 2)]}
    b.event(5, 7, EV_CANCELED, 3, 1, SIDE_SELL, px + 100, 7, 0)
    b.finish()
    assert b.level_changes() == {1: [(SIDE_SELL, px + 100, 0, 0)]}
    assert b.depth(0) == [(SIDE_BUY, px, 11, 2)] and b.depth(1) == []
    assert b.top(1) == (PRICE_NONE, 0, 0, PRICE_NONE, 0, 0)
