"""Columnar flows and events (engine/columnar.py, docs/rulebook.md sections 3 and 6).

A Parquet or Arrow flow gives, cell for cell, the records the CSV parser gives for the same
text (so the matcher answers them alike: MALFORMED, UNKNOWN_SYMBOL, BAD_PRICE ...); a file
with a missing, extra or mistyped column is one line and exit status 2; events written to
Parquet or Arrow hold the events CSV's values."""

import io
import random
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from engine.api import Venue
from engine.codec import FLOW_HEADER, EVENTS_HEADER, FlowError, parse_flow_bytes, write_flow_csv
from engine.columnar import SUFFIXES, ColumnarEventWriter, flow_from_table, read_columnar_flow
from engine.config import load_venue
from engine.gen import generate
from engine.records import EV_REJECT, REASON_NAMES
from tickbook.cli import COLUMNAR_SUFFIXES, main

REPO = Path(__file__).resolve().parents[1]
COLUMNS = FLOW_HEADER.split(",")
INT_TYPES = {"ts": pa.uint64(), "account": pa.uint32(), "order_id": pa.uint64(), "qty": pa.int64()}


@pytest.fixture(scope="module")
def venue():
    return load_venue(None)


def _same_records(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and len(a) == len(b)
    diff = np.flatnonzero((a.view(np.uint8).reshape(len(a), -1) != b.view(np.uint8).reshape(len(b), -1)).any(axis=1))
    assert len(diff) == 0, f"first differing row {diff[0] + 1}: {a[diff[0]]} != {b[diff[0]]}"


def _csv_table(data: bytes) -> pa.Table:
    """A flow CSV as a quant's table: integer ts/account/order_id/qty, string columns, empty -> null."""
    types = {c: INT_TYPES.get(c, pa.string()) for c in COLUMNS}
    opts = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    return pacsv.read_csv(io.BytesIO(data), convert_options=opts)


def _write(table: pa.Table, path: Path, **kw) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path, **kw)
    else:
        with ipc.new_file(str(path), table.schema) as w:
            w.write_table(table)
    return path


@pytest.fixture(scope="module")
def generated(venue, tmp_path_factory):
    """A generated flow as CSV bytes, its parse, and its .npy file."""
    orders = generate(venue, 30_000, seed=7)
    buf = io.BytesIO()
    write_flow_csv(buf, orders, venue)
    data = buf.getvalue()
    d = tmp_path_factory.mktemp("gen")
    np.save(d / "flow.npy", orders)
    (d / "flow.csv").write_bytes(data)
    return data, parse_flow_bytes(data, venue), d


def test_the_command_line_and_the_module_agree_on_the_suffixes():
    assert set(COLUMNAR_SUFFIXES) == set(SUFFIXES)


def test_a_generated_flow_as_parquet_and_arrow_gives_the_csv_records_and_events(venue, generated, tmp_path):
    data, from_csv, _ = generated
    table = _csv_table(data)
    files = [
        _write(table, tmp_path / "strings.parquet"),
        # dictionary columns, several row groups (chunks with dictionaries of their own)
        _write(table, tmp_path / "rowgroups.parquet", row_group_size=7_000),
        _write(table, tmp_path / "flow.arrow"),
    ]
    feather.write_feather(table, tmp_path / "flow.feather")  # Feather v2: lz4-compressed IPC
    files.append(tmp_path / "flow.feather")
    expected = Venue(venue).submit(from_csv.orders)
    for f in files:
        flow = read_columnar_flow(f, venue)
        _same_records(flow.orders, from_csv.orders)
        assert flow.raw is None and flow.source == str(f)
        _same_records(Venue(venue).submit(flow.orders), expected)
    # the IPC stream format (some tools write it to .arrow files)
    with ipc.new_stream(str(tmp_path / "stream.arrow"), table.schema) as w:
        w.write_table(table, max_chunksize=10_000)
    _same_records(read_columnar_flow(tmp_path / "stream.arrow", venue).orders, from_csv.orders)
    # tables in memory: large strings, string views, dictionaries
    strings = [n for n in COLUMNS if table.schema.field(n).type == pa.string()]
    for t in [pa.large_string()] + ([pa.string_view()] if hasattr(pa, "string_view") else []):
        cast = table.cast(pa.schema([(n, t if n in strings else table.schema.field(n).type) for n in COLUMNS]))
        _same_records(flow_from_table(cast, venue).orders, from_csv.orders)
    encoded = table
    for name in ("action", "symbol", "side", "type", "tif", "price"):
        encoded = encoded.set_column(COLUMNS.index(name), name, table.column(name).dictionary_encode())
    _same_records(flow_from_table(encoded, venue).orders, from_csv.orders)


def test_replay_of_parquet_writes_the_events_of_the_same_records(generated, tmp_path):
    """End to end: `tickbook replay flow.parquet` gives byte for byte the events of the same
    records from .npy (both echo a REJECT from its record) and, REJECT echoes aside, the CSV's."""
    data, _, d = generated
    flow = _write(_csv_table(data), tmp_path / "flow.parquet")
    out = {}
    for name, src in (("parquet", flow), ("npy", d / "flow.npy"), ("csv", d / "flow.csv")):
        out[name] = tmp_path / f"events_{name}.csv"
        assert main(["replay", str(src), "-q", "--events", str(out[name])]) == 0
    assert out["parquet"].read_bytes() == out["npy"].read_bytes()
    lines_p, lines_c = out["parquet"].read_text().splitlines(), out["csv"].read_text().splitlines()
    assert len(lines_p) == len(lines_c) > 30_000
    for x, y in zip(lines_p, lines_c):
        if x != y:
            assert ",REJECT," in x and ",REJECT," in y and x.split(",")[-1] == y.split(",")[-1]


# --- bad values: the CSV parse of the same text --------------------------------------------

U64 = 2**64 - 1
POOLS = {
    "ts": [0, 1, 34_200_000_000_000, -1, 2**63 - 1, None],
    "account": [100, 7, 0, 2**32 - 1, 2**32, -5, 2**62, None],
    "action": ["NEW", "CANCEL", "REPLACE", "KILL", "new", "NEW ", "", None, "MALFORMED", "KIL"],
    "symbol": ["AAPL", "MSFT", "aapl", "ZZZ", "", None, "AAPL "],
    "order_id": [1, 2, 0, -1, 2**63 - 1, None],
    "side": ["BUY", "SELL", "buy", "", None, "B"],
    "type": ["LIMIT", "MARKET", "limit", "", None, "STOP"],
    "tif": ["GTC", "IOC", "FOK", "POST", "gtc", "", None, "DAY"],
    "price": [
        "185.01", "185.010", "185.", ".5", "+185.00", "185.001", "185.000000001", "185.000000000", "-1", "0",
        "0.00", "99999999999", "90071992.54740991", "90071992.54740992", "1e5", "abc", "", None, " 1", "1.2.3",
        "-", ".", "nan", "inf", "00000185.01", "184.99", "-0",
    ],
    "qty": [
        "100", "100.0", "100.5", "-5", "0", "", None, "4294967295", "4294967296", "99999999999999999999999",
        "abc", "1e3", "+7", "7.", ".0", "0.000000001", "-0",
    ],
}
BASE = {"ts": 1, "account": 100, "action": "NEW", "symbol": "AAPL", "order_id": 1, "side": "BUY", "type": "LIMIT",
        "tif": "GTC", "price": "185.01", "qty": "100"}
TYPES = {"ts": pa.int64(), "account": pa.int64(), "order_id": pa.int64(), "price": pa.string(), "qty": pa.string()}


def _text(v) -> str:
    return "" if v is None else str(v)


def _rows(seed: int = 3, n_random: int = 3000) -> list[dict]:
    """Every bad value of every column in a row of every action, then random mixtures."""
    rows = []
    for action in ("NEW", "REPLACE", "CANCEL", "KILL"):
        for col, pool in POOLS.items():
            for v in pool:
                rows.append({**BASE, "action": action, "order_id": 1000 + len(rows), col: v})
    rng = random.Random(seed)
    rows += [{c: rng.choice(p) for c, p in POOLS.items()} for _ in range(n_random)]
    return rows


def _csv_of(rows: list[dict], cell=_text) -> bytes:
    lines = [FLOW_HEADER] + [",".join(cell(r[c]) if c in ("price", "qty") else _text(r[c]) for c in COLUMNS) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _decimals(values: list, dtype: pa.DataType) -> pa.Array:
    """A decimal array built from its bytes: two's complement of value * 10**scale."""
    w = dtype.byte_width
    data = b"".join(int(v.scaleb(dtype.scale)).to_bytes(w, "little", signed=True) if v is not None else bytes(w) for v in values)
    valid = pa.array([v is not None for v in values]).buffers()[1]
    return pa.Array.from_buffers(dtype, len(values), [valid, pa.py_buffer(data)])


def _table_of(rows: list[dict], types: dict) -> pa.Table:
    def column(c):
        t, values = types.get(c, pa.string()), [r[c] for r in rows]
        return _decimals(values, t) if pa.types.is_decimal(t) else pa.array(values, t)

    return pa.table({c: column(c) for c in COLUMNS})


def _check(rows, types, venue, cell=_text, tmp_path=None):
    expected = parse_flow_bytes(_csv_of(rows, cell), venue).orders
    table = _table_of(rows, types)
    _same_records(flow_from_table(table, venue).orders, expected)
    if tmp_path is not None:  # and through both file formats
        for name in ("bad.parquet", "bad.arrow"):
            _same_records(read_columnar_flow(_write(table, tmp_path / name), venue).orders, expected)
    return expected


def test_bad_values_in_every_column_give_the_records_of_the_csv_text(venue, tmp_path):
    rows = _rows()
    expected = _check(rows, TYPES, venue, tmp_path=tmp_path)
    # the matcher answers them alike: the NEW rows (first; no KILL among them) show every reject
    new_rows = [i for i, r in enumerate(rows[: sum(len(p) for p in POOLS.values())]) if r["action"] != "KILL"]
    events = Venue(venue).submit(expected[new_rows])
    reasons = {REASON_NAMES[r] for r in events["reason"][events["kind"] == EV_REJECT]}
    assert {"MALFORMED", "UNKNOWN_SYMBOL", "BAD_PRICE", "BAD_QTY", "MAX_QTY"} <= reasons
    # unsigned columns, numbers from integer columns, nulls and dictionaries in every column
    unsigned = [{**r, "ts": U64 if r["ts"] == -1 else r["ts"], "order_id": U64 - 1 if r["order_id"] == -1 else r["order_id"]}
                for r in rows]
    _check(unsigned, {**TYPES, "ts": pa.uint64(), "order_id": pa.uint64()}, venue)
    qtys = [5, 0, -5, 2**32 - 1, 2**32, 2**62 + 3, -(2**63), 2**63 - 1, None] * len(rows)
    _check([{**r, "qty": q} for r, q in zip(rows, qtys)], {**TYPES, "qty": pa.int64()}, venue)
    _check([{**r, "qty": q} for r, q in zip(rows, [5, 0, 2**32, U64, None] * len(rows))], {**TYPES, "qty": pa.uint64()}, venue)
    _check([{**r, "price": p} for r, p in zip(rows, [185, 0, -3, 90071993, 2**63 - 1, None] * len(rows))],
           {**TYPES, "price": pa.int64()}, venue)
    for narrow in (pa.int32(), pa.uint32(), pa.int8(), pa.uint16()):  # narrower integer columns
        info = np.iinfo(narrow.to_pandas_dtype())
        fit = [{**r, **{c: r[c] if r[c] is None or info.min <= r[c] <= info.max else None for c in ("ts", "account", "order_id")}}
               for r in rows]
        _check(fit, {**TYPES, "ts": narrow, "account": narrow, "order_id": narrow}, venue)
    dict_types = {c: pa.dictionary(pa.int8(), pa.string()) for c in COLUMNS if TYPES.get(c, pa.string()) == pa.string()}
    _check(rows, {**TYPES, **dict_types}, venue)


def _float_text(x) -> str:
    """A float's shortest round-trip decimal (Python's repr), written out without exponent."""
    return "" if x is None else format(Decimal(repr(x)), "f")


def test_float_prices_are_their_shortest_round_trip_decimal(venue):
    specials = [185.01, 0.1 + 0.2, 1e-9, 1e-8, -0.0, 0.0, float("nan"), float("inf"), -float("inf"), 1e20, 1e300,
                5e-324, 67108864.5, 67108863.99999999, 12345678.12345678, 90071992.54740991, 185.0, None, -185.01]
    rng = random.Random(11)
    values = specials + [round(rng.uniform(0, 2e3), rng.randrange(0, 10)) for _ in range(3000)]
    values += [rng.randrange(0, 10**12) / 10 ** rng.randrange(0, 12) for _ in range(3000)]
    values += [rng.uniform(-1e8, 1e8) for _ in range(500)]
    rows = [{**BASE, "action": rng.choice(["NEW", "REPLACE"]), "price": x, "qty": x} for x in values]
    _check(rows, {**TYPES, "price": pa.float64(), "qty": pa.float64()}, venue, cell=_float_text)


@pytest.mark.parametrize(
    "dtype",
    [pa.decimal128(10, 2), pa.decimal128(38, 12), pa.decimal128(38, 0), pa.decimal128(20, -3), pa.decimal256(60, 30)]
    + ([pa.decimal32(9, 4), pa.decimal64(18, 9)] if hasattr(pa, "decimal32") else []),
)
def test_decimal_prices_are_their_exact_value(venue, dtype):
    rng = random.Random(dtype.precision * 100 + dtype.scale)
    limit = 10**dtype.precision - 1
    units = [0, 1, -1, limit, -limit, 18501 * 10 ** max(dtype.scale - 2, 0)]
    units += [rng.randrange(-limit, limit + 1) for _ in range(2000)]
    units += [rng.randrange(0, 10**9) * 10 ** max(dtype.scale - 2, 0) for _ in range(1000)]
    values = [Decimal(u).scaleb(-dtype.scale) for u in units if abs(u) <= limit] + [None]
    rows = [{**BASE, "action": rng.choice(["NEW", "REPLACE"]), "price": v, "qty": v} for v in values]
    _check(rows, {**TYPES, "price": dtype, "qty": dtype}, venue, cell=lambda v: "" if v is None else format(v, "f"))


def test_many_distinct_and_long_strings(venue):
    """Past the short-string encoder (more than 32768 distinct values, values over 7 bytes):
    the same records all the same."""
    rng = random.Random(5)
    rows = [{**BASE, "order_id": i, "symbol": f"S{i}" if i % 7 else "AAPL",
             "price": rng.choice([f"{i % 900}.{i % 100:02d}", "185.01", f"185.{i:09d}"])} for i in range(40_000)]
    orders = _check(rows, TYPES, venue)
    assert (orders["symbol"] == 0).sum() == len(rows[::7])


def test_a_cell_is_one_field_whatever_it_holds(venue):
    """No row splitting: a comma or line end inside a cell is part of its value."""
    rows = [{**BASE, "symbol": "AA,PL"}, {**BASE, "action": "NEW\n"}, {**BASE, "price": "1,5"}, {**BASE, "qty": "5\r"}]
    orders = flow_from_table(_table_of(rows, TYPES), venue).orders
    assert orders[0]["symbol"] == 0xFFFF and orders[0]["action"] == 1  # an unknown symbol, not MALFORMED
    assert list(orders["action"][1:]) == [5, 5, 5]


def test_null_columns_and_empty_tables(venue):
    rows = [{**BASE, "action": "KILL"}, {**BASE, "action": "CANCEL"}]
    table = _table_of(rows, TYPES).set_column(COLUMNS.index("price"), "price", pa.nulls(2))
    table = table.set_column(COLUMNS.index("side"), "side", pa.nulls(2))
    _same_records(flow_from_table(table, venue).orders, parse_flow_bytes(_csv_of([{**r, "price": None, "side": None} for r in rows]), venue).orders)
    assert len(flow_from_table(_table_of([], TYPES), venue).orders) == 0


# --- files that cannot be replayed: one line, exit status 2 ---------------------------------


def _flow_table() -> pa.Table:
    return _table_of([BASE], {**TYPES, "ts": pa.uint64(), "account": pa.uint32(), "order_id": pa.uint64()})


def _replay_subprocess(path: Path) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-m", "tickbook", "replay", str(path), "-q"], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    return r.returncode, r.stderr


@pytest.mark.parametrize(
    "name, change, words",
    [
        ("missing.parquet", lambda t: t.drop_columns(["qty"]), "missing column 'qty'"),
        ("mistyped.arrow", lambda t: t.set_column(0, "ts", t.column("ts").cast(pa.string())), "column 'ts' is string, expected an integer column"),
    ],
)
def test_a_missing_or_mistyped_column_is_one_line_and_exit_2(tmp_path, name, change, words):
    path = _write(change(_flow_table()), tmp_path / name)
    code, err = _replay_subprocess(path)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"tickbook: {path}: {words}"), err


def test_a_file_that_is_not_parquet_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "flow.parquet"
    path.write_text(FLOW_HEADER + "\n1,7,KILL,,,,,,,\n")
    code, err = _replay_subprocess(path)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"tickbook: {path}: not a Parquet file"), err


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("extra.parquet", lambda t: t.append_column("note", pa.array(["x"])), "unexpected column 'note'"),
        ("twice.arrow", lambda t: pa.Table.from_arrays(t.columns + [t.column("qty")], COLUMNS + ["qty"]), "column 'qty' appears 2 times"),
        ("bool.parquet", lambda t: t.set_column(8, "price", pa.array([True])), "column 'price' is bool"),
        ("float.arrow", lambda t: t.set_column(2, "action", pa.array([1.5])), "column 'action' is double"),
        ("garbage.feather", None, "not an Arrow IPC (Feather v2) file"),
        ("absent.arrow", False, "cannot read: No such file or directory"),
    ],
)
def test_a_file_that_cannot_be_replayed_is_one_line(tmp_path, capsys, name, content, words):
    path = tmp_path / name
    if content is None:
        path.write_bytes(b"\x00garbage" * 10)
    elif content is not False:
        _write(content(_flow_table()), path)
    with pytest.raises(FlowError, match=re.escape(words)):
        read_columnar_flow(path, load_venue(None))
    assert main(["replay", str(path), "-q"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"tickbook: {path}: ") and words in err


# --- events ---------------------------------------------------------------------------------


def _csv_cells(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0] == EVENTS_HEADER
    return [line.split(",") for line in lines[1:]]


def _columnar_cells(table: pa.Table) -> list[list]:
    return [list(row.values()) for row in table.to_pylist()]


def _same_cell(col: str, text: str, value) -> bool:
    if value is None:
        return text == ""
    if col == "price":
        return text != "" and Decimal(text) == value  # the CSV writes the symbol's decimals
    return text == str(value)


@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".feather"])
def test_events_written_columnar_hold_the_events_csv_values(tmp_path, suffix):
    golden = REPO / "tests" / "golden"
    cfg = ["--config", str(golden / "random_venue.toml"), "-q"]
    venue = load_venue(golden / "random_venue.toml")
    npy = tmp_path / "flow.npy"
    np.save(npy, parse_flow_bytes((golden / "random_flow.csv").read_bytes(), venue).orders)
    for src in (npy, golden / "random_flow.csv"):  # the REJECT echo: the record's, or the CSV row's
        csv_out, col_out = tmp_path / "events.csv", tmp_path / f"events{suffix}"
        assert main(["replay", str(src), *cfg, "--events", str(csv_out)]) == 0
        assert main(["replay", str(src), *cfg, "--events", str(col_out)]) == 0
        table = pq.read_table(col_out) if suffix == ".parquet" else feather.read_table(col_out)
        assert table.column_names == EVENTS_HEADER.split(",")
        assert table.schema.field("price").type == pa.decimal128(18, max(s.decimals for s in venue.symbols))
        assert pa.types.is_dictionary(table.schema.field("event").type) and table.schema.field("order_id").type == pa.uint64()
        csv_rows, col_rows = _csv_cells(csv_out), _columnar_cells(table)
        assert len(csv_rows) == len(col_rows) == 2634
        assert {r[1] for r in csv_rows} == {"ACK", "REJECT", "FILL", "CANCELED", "REPLACED", "KILLED"}
        for text_row, row in zip(csv_rows, col_rows):
            for i, (col, text, value) in enumerate(zip(table.column_names, text_row, row)):
                if src != npy and text_row[1] == "REJECT" and col in ("symbol", "order_id", "account"):
                    continue  # the CSV echoes the row as written; a typed column holds the record's value
                assert _same_cell(col, text, value), (text_row, row, col)


def test_events_are_written_a_row_group_per_chunk(venue, generated, tmp_path):
    events = Venue(venue).submit(generated[1].orders)
    buf = io.BytesIO()
    w = ColumnarEventWriter(buf, venue)
    for part in np.array_split(events, 3):
        w.write(part)
    w.close()
    f = pq.ParquetFile(io.BytesIO(buf.getvalue()))
    assert f.metadata.num_row_groups == 3 and f.metadata.num_rows == len(events)
    assert f.read().column("seq").to_numpy().tolist() == events["seq"].tolist()


class _FullDisk(io.RawIOBase):
    """A file that fills up after 100 kB."""

    def __init__(self):
        self.n = 0

    def writable(self):
        return True

    def write(self, b):
        self.n += len(b)
        if self.n > 100_000:
            raise OSError(28, "No space left on device")
        return len(b)


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_a_write_that_fails_is_an_oserror_for_the_cannot_write_line(venue, generated, fmt):
    """Whichever thread wrote: the command line turns it into its one 'cannot write' line."""
    events = Venue(venue).submit(generated[1].orders)
    w = ColumnarEventWriter(_FullDisk(), venue, None, fmt)
    with pytest.raises(OSError, match="No space left on device"):
        for part in np.array_split(events, 20):
            w.write(part)
        w.close()
