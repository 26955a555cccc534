"""benchmarks/peers (`make bench-peers`): the shared operation stream, the adapters' plumbing and
run.py's agreement check. Cheap: no peers' venv is built here. The one test that replays the
stream through the real peer libraries runs only when build/peers-venv exists already."""

from __future__ import annotations

import json
import subprocess
from collections import deque

import numpy as np
import pytest

from benchmarks.peers import adapters
from benchmarks.peers import run as peers_run
from benchmarks.peers.stream import (
    BUY_ACCOUNT,
    OP_ADD,
    OP_CANCEL,
    OP_MARKET,
    SELL_ACCOUNT,
    STREAM_DTYPE,
    generate,
    load_stream,
    mix,
    peers_stream,
    save_stream,
    to_records,
)
from engine.api import Venue
from engine.config import load_venue, parse_venue
from engine.records import (
    ACTION_CANCEL,
    ACTION_NEW,
    EV_CANCELED,
    EV_FILL,
    EV_REJECT,
    PRICE_NONE,
    R_IOC,
    R_TAKER,
    R_USER,
    SIDE_BUY,
    TIF_GTC,
    TIF_IOC,
    TYPE_LIMIT,
    TYPE_MARKET,
)

N = 20_000


@pytest.fixture(scope="module")
def ops():
    return peers_stream(3, N)


def reference_replay(ops: np.ndarray) -> int:
    """A small price-time book, independent of tickbook: asserts that every cancel finds its order
    resting, returns the traded quantity. Market orders have no limit and never rest."""
    books = {1: {}, 2: {}}  # side -> price -> deque of [id, leaves]
    where = {}  # resting id -> (side, price)
    traded = 0
    for op, side, oid, price, qty in ops[["op", "side", "id", "price", "qty"]].tolist():
        if op == OP_CANCEL:
            assert oid in where, f"cancel of order {oid}, which is not resting"
            s, p = where.pop(oid)
            level = books[s][p]
            level.remove(next(e for e in level if e[0] == oid))
            if not level:
                del books[s][p]
            continue
        opp = books[3 - side]
        while qty and opp:
            best = min(opp) if side == SIDE_BUY else max(opp)
            if op == OP_ADD and (best > price if side == SIDE_BUY else best < price):
                break
            level = opp[best]
            maker = level[0]
            m = min(qty, maker[1])
            qty -= m
            maker[1] -= m
            traded += m
            if maker[1] == 0:
                level.popleft()
                del where[maker[0]]
                if not level:
                    del opp[best]
        if qty and op == OP_ADD:
            books[side].setdefault(price, deque()).append([oid, qty])
            where[oid] = (side, price)
    return traded


def tickbook_events(ops):
    return Venue(load_venue(None)).submit(to_records(ops))


# ----------------------------------------------------------------------------------- the stream


def test_mix_is_adds_cancels_and_a_few_market_orders(ops):
    m = mix(ops)
    assert 0.40 <= m["cancel"] <= 0.44
    assert 0.02 <= m["market"] <= 0.04
    assert m["add"] == pytest.approx(1 - m["cancel"] - m["market"])
    adds = ops[ops["op"] == OP_ADD]
    assert set(np.unique(ops["side"]).tolist()) == {1, 2}
    assert (adds["qty"] > 0).all() and (ops["qty"][ops["op"] == OP_CANCEL] == 0).all()
    # integer ticks around AAPL's reference (18,500), within the bound the collar argument needs
    assert np.abs(adds["price"] - 18_500).max() <= 102
    # ids: every add and market order a new one, 1, 2, 3, ...; a cancel names an earlier add
    new = ops["op"] != OP_CANCEL
    assert (ops["id"][new] == np.arange(1, new.sum() + 1)).all()


def test_same_seed_same_stream_other_seed_other_stream(ops):
    assert np.array_equal(peers_stream(3, N), ops)
    assert not np.array_equal(peers_stream(4, N), ops)
    assert np.array_equal(peers_stream(3, 1000), ops[:1000])  # a prefix does not depend on n


def test_cancels_only_of_resting_orders_in_an_independent_book(ops):
    # the reference asserts liveness at every cancel; both books trade the same quantity
    traded = reference_replay(ops)
    ev = tickbook_events(ops)
    assert traded == ev["qty"][(ev["kind"] == EV_FILL) & (ev["reason"] == R_TAKER)].sum()
    assert traded > 0


def test_tickbook_rejects_nothing_and_cancels_every_cancel(ops):
    ev = tickbook_events(ops)
    assert not (ev["kind"] == EV_REJECT).any()
    user = (ev["kind"] == EV_CANCELED) & (ev["reason"] == R_USER)
    assert user.sum() == (ops["op"] == OP_CANCEL).sum()
    # only market orders are cancelled IOC (the remainder of a sweep of a thin side)
    ioc_ids = ev["order_id"][(ev["kind"] == EV_CANCELED) & (ev["reason"] == R_IOC)]
    assert set(ioc_ids.tolist()) <= set(ops["id"][ops["op"] == OP_MARKET].tolist())
    _, _, info = generate(3, N)
    assert info["rejects"] == 0 and info["traded_qty"] == reference_replay(ops)


def test_records_say_the_same_as_the_stream(ops):
    venue = load_venue(None)
    rec = to_records(ops, venue)
    tick = venue.symbols[0].tick_units
    add, cancel, market = (ops["op"] == k for k in (OP_ADD, OP_CANCEL, OP_MARKET))
    assert (rec["order_id"] == ops["id"]).all() and (rec["symbol"] == 0).all()
    assert (rec["action"][cancel] == ACTION_CANCEL).all() and (rec["action"][~cancel] == ACTION_NEW).all()
    assert (rec["type"][add] == TYPE_LIMIT).all() and (rec["tif"][add] == TIF_GTC).all()
    assert (rec["price"][add] == ops["price"][add] * tick).all()
    assert (rec["type"][market] == TYPE_MARKET).all() and (rec["tif"][market] == TIF_IOC).all()
    assert (rec["price"][market] == PRICE_NONE).all()
    assert (rec["side"][~cancel] == ops["side"][~cancel]).all()
    # buys and sells from two accounts: tickbook's self-trade prevention never fires
    assert (rec["account"] == np.where(ops["side"] == SIDE_BUY, BUY_ACCOUNT, SELL_ACCOUNT)).all()
    assert np.all(np.diff(rec["ts"].astype(np.int64)) > 0) and (rec["msg_seq"] == np.arange(1, len(ops) + 1)).all()


def test_a_collar_that_could_bind_is_refused():
    narrow = parse_venue('[symbols.X]\ntick = "0.01"\nref_price = "185.00"\nband_bps = 50\n[accounts.default]\n')
    with pytest.raises(ValueError, match="collar"):
        peers_stream(1, 10, narrow)
    no_collar = parse_venue('[symbols.X]\ntick = "0.01"\nref_price = "185.00"\nband_bps = 0\n[accounts.default]\n')
    assert len(peers_stream(1, 10, no_collar)) == 10


def test_stream_file_round_trip(ops, tmp_path):
    path = save_stream(tmp_path / "s.npy", ops)
    assert np.array_equal(load_stream(path), ops)
    np.save(tmp_path / "other.npy", np.zeros(3, [("a", "u1")]))
    with pytest.raises(ValueError, match="not a peers stream"):
        load_stream(tmp_path / "other.npy")


# ----------------------------------------------------------------------------------- adapters.py


def test_adapters_read_the_stream_as_python_ints(ops, tmp_path):
    assert (adapters.OP_ADD, adapters.OP_CANCEL, adapters.OP_MARKET) == (OP_ADD, OP_CANCEL, OP_MARKET)
    assert adapters.STREAM_FIELDS == STREAM_DTYPE.names
    rows = adapters.read_stream(save_stream(tmp_path / "s.npy", ops[:50]))
    assert len(rows) == 50 and all(type(v) is int for v in rows[0])
    assert rows[3] == tuple(int(ops[3][f]) for f in STREAM_DTYPE.names)
    np.save(tmp_path / "bad.npy", np.zeros(3, [("op", "u1")]))
    with pytest.raises(ValueError, match="missing"):
        adapters.read_stream(tmp_path / "bad.npy")


def test_adapters_summarize_rounds():
    ok = adapters.summarize("x", "1.0", [(3.0, 10, 5, 0), (1.0, 10, 5, 0), (2.0, 10, 5, 0)])
    assert ok["status"] == "ok" and ok["seconds"] == 2.0 and ok["best_seconds"] == 1.0 and ok["traded_qty"] == 10
    bad = adapters.summarize("x", "1.0", [(1.0, 10, 5, 0), (1.0, 11, 5, 0)])
    assert bad["status"] == "failed" and "differs between rounds" in bad["reason"]


def test_a_peer_that_does_not_import_is_reported_unavailable(ops, tmp_path, monkeypatch):
    monkeypatch.setitem(adapters.MODULES, "fastlob", "tickbook_no_such_peer_module")
    res = adapters.run_peer("fastlob", save_stream(tmp_path / "s.npy", ops[:10]), 1)
    assert res["status"] == "unavailable" and "tickbook_no_such_peer_module" in res["reason"]
    with pytest.raises(SystemExit, match="unknown peers"):
        adapters.parse_peers("liquibook,orderbook9000")


# ----------------------------------------------------------------------------------- run.py


def _report(peers):
    tickbook = {"status": "ok", "seconds": 0.1, "rounds": 5, "round_seconds": [0.1] * 5, "traded_qty": 1234,
                "ops": 1_000_000}
    return peers_run.build_report("12:00:00 up 1 day, load average: 0.50, 0.40, 0.30", 1_000_000, 1,
                                  {"add": 0.55, "cancel": 0.42, "market": 0.03}, tickbook, peers)


def _peer(traded, seconds=2.0, ops=1_000_000):
    return {"status": "ok", "version": "1", "rounds": 3, "round_seconds": [seconds] * 3, "seconds": seconds,
            "best_seconds": seconds, "traded_qty": traded, "ops": ops, "missed_cancels": 0}


def test_run_checks_traded_quantity_before_any_time():
    rep = _report({
        "good": _peer(1234),
        "wrong": _peer(1200, seconds=0.01),
        "short": _peer(1234, ops=999),
        "absent": adapters.unavailable("ModuleNotFoundError: No module named 'absent'"),
    })
    peers = rep["peers"]
    assert peers["good"]["status"] == "ok"
    assert peers["good"]["ns_per_op"] == pytest.approx(2000.0) and peers["good"]["ratio"] == pytest.approx(20.0)
    assert rep["tickbook"]["ns_per_op"] == pytest.approx(100.0) and rep["tickbook"]["ratio"] == 1.0
    assert peers["wrong"]["status"] == "disagrees" and peers["wrong"]["ns_per_op"] is None
    assert peers["wrong"]["reason"] == "traded quantity disagrees: 1200 vs 1234"
    assert peers["short"]["status"] == "failed" and peers["short"]["ratio"] is None
    assert peers["absent"]["status"] == "unavailable" and peers["absent"]["ns_per_op"] is None
    lines = peers_run.table(rep)
    wrong = next(line for line in lines if line.startswith("wrong"))
    assert "traded quantity disagrees: 1200 vs 1234" in wrong and "10" not in wrong.split("disagrees")[0]
    assert any(line.startswith("good") and "2,000" in line for line in lines)
    assert any(line.startswith("absent") and "unavailable" in line for line in lines)


def test_report_schema_is_plain_json():
    rep = json.loads(json.dumps(_report({"good": _peer(1234)})))
    assert set(rep) >= {"when", "machine", "ops", "tickbook", "peers"}
    assert rep["machine"].startswith("12:00:00 up") and rep["ops"] == 1_000_000
    for r in [rep["tickbook"], *rep["peers"].values()]:
        assert {"status", "ns_per_op", "ops_per_s", "ratio", "traded_qty"} <= set(r)


def test_tickbook_timing_replays_the_whole_stream(ops):
    venue = load_venue(None)
    rec = to_records(ops, venue)
    res = peers_run.time_tickbook(rec, venue, 2)
    assert res["rounds"] == 2 and len(res["round_seconds"]) == 2 and res["seconds"] > 0
    assert peers_run.tickbook_traded(rec, venue) == reference_replay(ops)


# ----------------------------------------------------------------------------------- the real peers


@pytest.mark.skipif(not (peers_run.PEERS_VENV / ".peers-installed").exists(),
                    reason="build/peers-venv not built (make bench-peers or benchmarks/peers/setup.sh builds it; "
                           "the test run never does)")
def test_installed_peers_trade_what_tickbook_trades(ops, tmp_path):
    small = ops[:3000]
    path = save_stream(tmp_path / "s.npy", small)
    out = tmp_path / "a.json"
    subprocess.run([str(peers_run.PEERS_VENV / "bin" / "python"), str(peers_run.HERE / "adapters.py"), str(path),
                    "--json", str(out), "--rounds", "1"], check=True, capture_output=True, timeout=300)
    res = json.loads(out.read_text())["peers"]
    expected = reference_replay(small)
    assert set(res) == set(adapters.PEERS)
    for name, r in res.items():
        assert r["status"] == "ok", (name, r)
        assert (r["traded_qty"], r["ops"], r["missed_cancels"]) == (expected, 3000, 0), name
