"""LOBSTER import: strict reading, book agreement at every message, match mode, bad input.

The sample files are read in place from ../shared/data/lobster (never copied into the repo);
small derived files for bad-input cases are written to pytest's tmp_path.
"""

from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine import lobster as L
from engine.diagnostics import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from engine.lobster.cli import _fmt_message
from engine.lobster.read import M_TS
from engine.records import ACTION_CANCEL, ACTION_NEW, ACTION_REPLACE, SIDE_BUY, SIDE_SELL, TIF_IOC

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lobster"
GOOG10 = DATA / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip"
AMZN5 = DATA / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"
GOOG1 = DATA / "LOBSTER_SampleFile_GOOG_2012-06-21_1.zip"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"LOBSTER samples not found at {DATA}")


def _members(zpath: Path) -> tuple[bytes, bytes]:
    with zipfile.ZipFile(zpath) as z:
        names = z.namelist()
        msg = next(n for n in names if "_message_" in n)
        book = next(n for n in names if "_orderbook_" in n)
        return z.read(msg), z.read(book)


def _head(zpath: Path, n: int) -> tuple[list[str], list[str]]:
    msg, book = _members(zpath)
    return msg.decode().splitlines()[:n], book.decode().splitlines()[:n]


def _write_pair(tmp_path: Path, msgs: list[str], books: list[str], stem="GOOG_2012-06-21_34200000_57600000") -> Path:
    m = tmp_path / f"{stem}_message_1.csv"
    b = tmp_path / f"{stem}_orderbook_1.csv"
    m.write_text("\n".join(msgs) + "\n")
    b.write_text("\n".join(books) + "\n")
    return m


# --- the oracle: LOBSTER's row format read here, and a pure-Python book -------------------------

# LOBSTER's readme (LOBSTER_SampleFiles_ReadMe.txt beside the samples): an orderbook row holds, per
# level and best first, ask price, ask size, bid price, bid size; a level the book does not have
# holds the dummy price 9999999999 (ask) or -9999999999 (bid) with size 0. Prices are dollars x
# 10000; a flow record's price is in 1e-8 dollars (engine/records.py), so 10^4 times a LOBSTER price.
# Written out here rather than taken from engine.lobster, so a misreading there cannot agree
# with itself.
ASK_PRICE, ASK_SIZE, BID_PRICE, BID_SIZE = range(4)
DUMMY_PRICE = {SIDE_SELL: 9999999999, SIDE_BUY: -9999999999}
RECORD_UNITS_PER_LOBSTER_PRICE = 10**4


@functools.lru_cache(maxsize=2)
def _zip_orderbook_lines(zpath: Path) -> list[str]:
    return _members(zpath)[1].decode().splitlines()


def _orderbook_rows(src: Path) -> list[str]:
    """The lines of the orderbook file of a sample zip, or of a message CSV written by _write_pair."""
    if src.suffix == ".zip":
        return _zip_orderbook_lines(src)  # the samples never change: unzip each once
    return Path(str(src).replace("_message_", "_orderbook_")).read_text().splitlines()


def _row_side(line: str, side: int) -> list[tuple[int, int]]:
    """One side of an orderbook row: [(price, size)] best first, the empty levels left out."""
    row = [int(x) for x in line.split(",")]
    price_col, size_col = (ASK_PRICE, ASK_SIZE) if side == SIDE_SELL else (BID_PRICE, BID_SIZE)
    levels = []
    for k in range(0, len(row), 4):
        price, size = row[k + price_col], row[k + size_col]
        if size == 0:
            assert price == DUMMY_PRICE[side], (line, side)
            continue
        levels.append((price, size))
    return levels


def _book_before_first_message(zpath: Path) -> dict[int, set[int]]:
    """The prices of each side before message 1: orderbook row 1 with message 1 undone (row 1 is
    the book after it)."""
    first_msg = _head(zpath, 1)[0][0].split(",")
    typ, size, price, direction = (int(first_msg[k]) for k in (1, 3, 4, 5))  # time, type, id, size, price, direction
    levels = {s: dict(_row_side(_orderbook_rows(zpath)[0], s)) for s in (SIDE_BUY, SIDE_SELL)}
    side = SIDE_BUY if direction == 1 else SIDE_SELL
    if typ in (1, 2, 3, 4):  # a submission added size at its price; a cancel, delete or execution took it
        lv = levels[side]
        lv[price] = lv.get(price, 0) + (-size if typ == 1 else size)
        if lv[price] <= 0:
            del lv[price]
    return {s: set(levels[s]) for s in levels}


class LobsterOracleBook:
    """Price-time book applying flow records (NEW GTC/IOC, CANCEL, REPLACE) the way the rulebook
    says, without checks: enough to replay the converter's output independently of the engine."""

    def __init__(self):
        self.levels = {SIDE_BUY: {}, SIDE_SELL: {}}  # price -> list of [id, leaves]
        self.where = {}  # id -> (side, price)
        self.fills = []  # (msg_seq, maker id, price, qty)

    def apply(self, r):
        a = int(r["action"])
        oid = int(r["order_id"])
        if a == ACTION_NEW:
            side, price, qty = int(r["side"]), int(r["price"]) // RECORD_UNITS_PER_LOBSTER_PRICE, int(r["qty"])
            opp = self.levels[3 - side]
            while qty and opp:
                best = max(opp) if side == SIDE_SELL else min(opp)
                if (side == SIDE_BUY and best > price) or (side == SIDE_SELL and best < price):
                    break
                q = opp[best]
                o = q[0]
                t = min(qty, o[1])
                o[1] -= t
                qty -= t
                self.fills.append((int(r["msg_seq"]), o[0], best, t))
                if o[1] == 0:
                    q.pop(0)
                    del self.where[o[0]]
                    if not q:
                        del opp[best]
            if qty and int(r["tif"]) != TIF_IOC:
                self.levels[side].setdefault(price, []).append([oid, qty])
                self.where[oid] = (side, price)
        elif a == ACTION_CANCEL:
            side, price = self.where.pop(oid)
            q = self.levels[side][price]
            q[:] = [o for o in q if o[0] != oid]
            if not q:
                del self.levels[side][price]
        elif a == ACTION_REPLACE:
            side, price = self.where[oid]
            q = self.levels[side][price]
            o = next(o for o in q if o[0] == oid)
            new_price, qty = int(r["price"]) // RECORD_UNITS_PER_LOBSTER_PRICE, int(r["qty"])
            assert new_price == price and qty <= o[1], "the converter only shrinks orders in place"
            o[1] = qty

    def top(self, side, n):
        lv = self.levels[side]
        prices = sorted(lv, reverse=side == SIDE_BUY)[:n]
        return [(p, sum(o[1] for o in lv[p])) for p in prices]


def _oracle_replay(src: Path, conv):
    """(rows identical, rows compared, fills) of the converted flow on LobsterOracleBook, each
    compared row read from src's orderbook file by this module."""
    rows = _orderbook_rows(src)
    assert len(rows) == len(conv.msg_end)
    pb = LobsterOracleBook()
    orders = conv.orders
    o = 0
    same = compared = 0
    for i, row in enumerate(rows):
        while o < conv.msg_end[i]:
            pb.apply(orders[o])
            o += 1
        if conv.compare[i]:
            compared += 1
            levels = (row.count(",") + 1) // 4
            same += all(pb.top(side, levels) == _row_side(row, side) for side in (SIDE_BUY, SIDE_SELL))
    return same, compared, pb.fills


# --- reading: bad input ----------------------------------------------------------------------


def test_reads_zip_in_place():
    d = L.read_lobster(str(GOOG1))
    assert d.levels == 1 and d.ticker == "GOOG"
    assert len(d.messages) == len(d.book) == 49_482
    assert d.type_counts == {1: 24_368, 2: 7, 3: 13_429, 4: 7_765, 5: 3_913}
    # time is parsed as a decimal string to integer nanoseconds
    assert d.messages[0, M_TS] == 34200 * 10**9 + int(_head(GOOG1, 1)[0][0].split(",")[0].split(".")[1].ljust(9, "0"))


def test_wrong_column_count(tmp_path):
    msgs, books = _head(GOOG1, 50)
    msgs[6] = ",".join(msgs[6].split(",")[:5])
    m = _write_pair(tmp_path, msgs, books)
    with pytest.raises(L.LobsterError, match=r"_message_1\.csv: row 7: expected 6 fields, found 5"):
        L.read_lobster(str(m))
    msgs, books = _head(GOOG1, 50)
    books[9] += ",1"
    m = _write_pair(tmp_path, msgs, books)
    with pytest.raises(L.LobsterError, match=r"_orderbook_1\.csv: row 10: expected 4 fields, found 5"):
        L.read_lobster(str(m))


def test_length_mismatch(tmp_path):
    msgs, books = _head(GOOG1, 50)
    m = _write_pair(tmp_path, msgs, books[:-3])
    with pytest.raises(L.LobsterError, match=r"_message_1\.csv: row 48: message file has 50 rows, orderbook file 47 rows"):
        L.read_lobster(str(m))


def test_unknown_type_and_bad_fields(tmp_path):
    msgs, books = _head(GOOG1, 50)
    f = msgs[11].split(",")
    f[1] = "8"
    msgs[11] = ",".join(f)
    m = _write_pair(tmp_path, msgs, books)
    with pytest.raises(L.LobsterError, match=r"row 12: unknown event type 8"):
        L.read_lobster(str(m))
    msgs, books = _head(GOOG1, 50)
    msgs[3] = msgs[3].replace(",", ",x", 1)
    m = _write_pair(tmp_path, msgs, books)
    with pytest.raises(L.LobsterError, match=r"row 4: field 2: not an integer"):
        L.read_lobster(str(m))
    msgs, books = _head(GOOG1, 50)
    msgs[20] = msgs[20][: msgs[20].rindex(",")] + ",0"
    m = _write_pair(tmp_path, msgs, books)
    with pytest.raises(L.LobsterError, match=r"row 21: direction 0"):
        L.read_lobster(str(m))


def test_error_is_one_line_and_exit_status_2(tmp_path, capsys):
    msgs, books = _head(GOOG1, 50)
    m = _write_pair(tmp_path, msgs, books[:10])
    assert L.main([str(m)]) == EXIT_USAGE == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 11" in err and "_message_1.csv" in err


def test_float_rendered_time_is_rounded_and_counted(tmp_path):
    msgs, books = _head(GOOG1, 20)
    f = msgs[5].split(",")
    f[0] = f[0] + "004" if len(f[0].split(".")[1]) == 9 else f[0].ljust(len(f[0].split(".")[0]) + 10, "0") + "004"
    msgs[5] = ",".join(f)
    d = L.read_lobster(str(_write_pair(tmp_path, msgs, books)))
    assert d.times_rounded == 1


def test_trading_halt_rows_are_counted_and_change_nothing(tmp_path):
    """Type 7 as LOBSTER documents it: halt (price -1), quoting (0), resume (1); direction -1,
    every other field 0, and the orderbook row repeats the previous one."""
    msgs, books = _head(GOOG1, 400)
    ts = msgs[199].split(",")[0]
    halt = [f"{ts},7,0,0,-1,-1", f"{ts},7,0,0,0,-1", f"{ts},7,0,0,1,-1"]
    msgs = msgs[:200] + halt + msgs[200:]
    books = books[:200] + [books[199]] * 3 + books[200:]
    m = _write_pair(tmp_path, msgs, books)
    d = L.read_lobster(str(m))
    assert d.type_counts[7] == 3 and d.halts == {"halt": 1, "quoting": 1, "resume": 1}
    conv = L.convert(d, "book")
    assert conv.stats["type7"] == 3
    assert (np.diff(conv.msg_end)[199:202] == 0).all()  # no order for a halt row (rows 201-203)
    same, compared, _ = _oracle_replay(m, conv)
    assert same == compared == 403
    # a halt row whose book row differs is inconsistent input
    books[201] = books[0] if books[0] != books[200] else books[5]
    with pytest.raises(L.LobsterError, match=r"_orderbook_1\.csv: row 202: the row of a trading halt"):
        L.read_lobster(str(_write_pair(tmp_path, msgs, books)))


def test_runs_group_same_time_and_direction():
    m = np.array(
        [
            [1, 4, 11, 10, 100, 1],
            [1, 5, 0, 5, 101, 1],
            [1, 4, 12, 10, 100, 1],
            [1, 4, 13, 10, 100, -1],
            [2, 5, 0, 10, 100, 1],
            [3, 1, 14, 10, 100, 1],
            [3, 4, 14, 10, 100, 1],
        ],
        np.int64,
    )
    assert L.execution_runs(m) == [(0, 2), (3, 3), (6, 6)]


# --- book mode: every row agrees ---------------------------------------------------------------


def test_converter_alone_agrees_on_a_pure_python_book():
    """The conversion checked without the engine: LobsterOracleBook replays the flow, every row agrees."""
    d = L.read_lobster(str(GOOG1))
    conv = L.convert(d, "book")
    same, compared, fills = _oracle_replay(GOOG1, conv)
    assert same == compared == len(d.messages)
    assert fills == []  # book mode never trades


@pytest.mark.parametrize("path", [GOOG10, AMZN5], ids=["GOOG10", "AMZN5"])
def test_book_mode_every_row_agrees(path):
    buf = io.StringIO()
    data, conv, rep, _, t = L.run(str(path), mode="book", out=buf)
    assert rep.rejects == 0, buf.getvalue()
    assert rep.compared == len(data.messages)
    assert rep.identical == rep.compared, buf.getvalue()
    st = conv.stats
    assert st["adj_seeded"] + st["adj_reduced"] + st["adj_dropped"] > 0  # reported, not hidden
    assert "identical" in buf.getvalue() and "adjusted" in buf.getvalue()


def test_cli_exit_status_and_flow_file(tmp_path, capsys):
    flow = tmp_path / "goog1.csv"
    assert L.main([str(GOOG1), "--flow", str(flow)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "identical 49,482 (100.000%)" in out
    text = flow.read_text()
    assert text.startswith("ts,account,action,symbol,order_id,side,type,tif,price,qty\n")
    assert (tmp_path / "goog1.venue.toml").read_text().startswith("[symbols.GOOG]")
    # the flow reads back through the project's codec as exactly the records that were replayed
    from engine.codec import read_flow
    from engine.config import load_venue

    data = L.read_lobster(str(GOOG1))
    conv = L.convert(data, "book")
    back = read_flow(flow, load_venue(tmp_path / "goog1.venue.toml")).orders
    assert len(back) == len(conv.orders)
    for name in ("ts", "account", "action", "symbol", "order_id", "side", "type", "tif", "qty"):
        assert np.array_equal(back[name], conv.orders[name]), name
    live = conv.orders["action"] != ACTION_CANCEL  # a CANCEL's price is never looked at
    assert np.array_equal(back["price"][live], conv.orders["price"][live])


# --- match mode ----------------------------------------------------------------------------------


def test_match_mode_goog10():
    buf = io.StringIO()
    data, conv, rep, match, _ = L.run(str(GOOG10), mode="match", out=buf, evidence="full")
    assert rep.rejects == 0, buf.getvalue()
    assert rep.identical == rep.compared, buf.getvalue()
    assert match.executions == data.type_counts[4]
    assert match.reproduced / match.compared >= 0.98, buf.getvalue()
    assert match.known_reproduced / match.known >= 0.99, buf.getvalue()
    # the engine's fills are exactly what an independent price-time book does with the flow
    _, _, py_fills = _oracle_replay(GOOG10, conv)
    eng = [(int(a), int(b), int(c) // RECORD_UNITS_PER_LOBSTER_PRICE, int(d)) for a, b, c, d in rep.fills]
    assert eng == py_fills


def test_evidence_levels_only_reorder_or_move_size_within_a_level():
    """Without the engine: each evidence level keeps every row identical (LobsterOracleBook), and using more
    of NASDAQ's executions never reproduces fewer of them."""
    d = L.read_lobster(str(GOOG1))
    shares = []
    for ev in L.EVIDENCE:
        conv = L.convert(d, "match", evidence=ev)
        same, compared, fills = _oracle_replay(GOOG1, conv)
        assert same == compared
        fa = np.array([(a, b, p * RECORD_UNITS_PER_LOBSTER_PRICE, q) for a, b, p, q in fills], np.int64).reshape(-1, 4)
        rep = L.Replay(compared, same, 0, np.zeros(0, np.int64), fa, 0, np.zeros(0, np.int64), np.zeros((0, 4), np.int64), 0.0)
        m = L.compare_executions(conv, rep)
        shares.append(m.reproduced / m.compared)
    assert shares[0] <= shares[1] <= shares[2]


def test_divergence_is_reported_with_message_and_levels(tmp_path, capsys):
    """An orderbook row that no message explains (a level visible in the previous row changes
    size) is a divergence: message number, the message, expected and actual levels; exit 1."""
    msgs, books = _head(GOOG1, 300)
    f = books[149].split(",")
    f[3] = str(int(f[3]) + 7)  # best bid size of row 150
    books[149] = ",".join(f)
    m = _write_pair(tmp_path, msgs, books)
    assert L.main([str(m)]) == EXIT_FAILURE
    out = capsys.readouterr().out
    assert "compared 300, identical 299" in out
    assert "DIVERGENCE at message 150: " + _fmt_message(L.read_lobster(str(m)).messages[149]) in out
    exp = next(line for line in out.splitlines() if line.strip().startswith("expected"))
    act = next(line for line in out.splitlines() if line.strip().startswith("actual"))
    assert f"{int(f[3])}@{int(f[2]) / 10000:.4f}" in exp and f"{int(f[3]) - 7}@{int(f[2]) / 10000:.4f}" in act


def test_csv_pair_input_fifty_levels_no_adjustment_needed():
    """Two CSVs instead of a zip, the orderbook file inferred (`_msgs` -> `_book`); MSFT's last
    line has no newline. At 50 levels nothing changes out of view: no adjustment at all."""
    msgs = DATA / "excerpt-50-levels" / "MSFT_msgs.csv"
    buf = io.StringIO()
    data, conv, rep, _, _ = L.run(str(msgs), mode="book", out=buf)
    assert data.levels == 50 and len(data.messages) == 1_950
    assert rep.identical == rep.compared == 1_950 and rep.rejects == 0
    st = conv.stats
    assert st["adj_seeded"] == st["adj_reduced"] == st["adj_dropped"] == 0


@pytest.mark.parametrize("path", [GOOG1, GOOG10], ids=["GOOG1", "GOOG10"])
def test_adjustments_never_touch_a_level_visible_in_the_previous_row(path):
    """Checked from the raw rows (parsed here), independently of the converter's bookkeeping."""
    d = L.read_lobster(str(path))
    conv = L.convert(d, "book")
    st = conv.stats
    assert len(conv.adjusted) == st["adj_seeded"] + st["adj_reduced"] + st["adj_dropped"] > 0
    before = _book_before_first_message(path)
    rows = _orderbook_rows(path)
    for i, side, price, kind in conv.adjusted:
        if i == 0:
            prev = before[side]
        else:
            prev = {p for p, _ in _row_side(rows[i - 1], side)}
        assert price not in prev, (i + 1, side, price, kind)
        shown = {p for p, _ in _row_side(rows[i], side)}
        assert (price in shown) == (kind != "dropped"), (i + 1, side, price, kind)
