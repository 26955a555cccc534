"""`tickbook` replay / gen / book / demo and the Python API, as a quant uses them.

Run in-process through `tickbook.cli.main` (same compiled code as the console script), with
the bad-input contract of docs/rulebook.md: a user error is one line on stderr naming the
file (and row or key) and exit status 2; a malformed row is a MALFORMED reject and the
replay goes on; the summary accounts for every row."""

import io
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from engine.api import Venue
from tickbook.cli import main
from engine.codec import parse_flow_bytes, read_flow
from engine.config import load_venue
from engine.records import EV_REJECT, EVENT_DTYPE, EVENT_NAMES, ORDER_DTYPE, R_MALFORMED, REASON_NAMES
from testkit.flows import generated_csv

GOLDEN = Path(__file__).parent / "golden"
EXAMPLE = ["--config", str(GOLDEN / "example_venue.toml")]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tickbook: ")
    return lines[0]


def test_replay_writes_the_golden_events_and_accounts_for_every_row(tmp_path, capsys):
    out = tmp_path / "events.csv"
    assert main(["replay", str(GOLDEN / "example_flow.csv"), *EXAMPLE, "--events", str(out)]) == 0
    assert out.read_bytes() == (GOLDEN / "example_events.csv").read_bytes()
    err = capsys.readouterr().err
    assert "messages   4" in err and "events     8" in err
    assert "every message answered" in err
    assert "FILL                4   (TAKER 2, MAKER 2)" in err


def test_replay_without_events_option_writes_to_stdout(capsys):
    assert main(["replay", str(GOLDEN / "example_flow.csv"), *EXAMPLE, "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (GOLDEN / "example_events.csv").read_text()
    assert captured.err == ""


def test_malformed_rows_are_rejected_and_the_replay_goes_on(tmp_path, capsys):
    out = tmp_path / "events.csv"
    assert main(["replay", str(GOLDEN / "syntax_flow.csv"), "--config", str(GOLDEN / "syntax_venue.toml"),
                 "--events", str(out)]) == 0
    assert out.read_bytes() == (GOLDEN / "syntax_events.csv").read_bytes()
    err = capsys.readouterr().err
    rows = (GOLDEN / "syntax_flow.csv").read_bytes().rstrip(b"\n").count(b"\n")  # some rows hold a stray \r
    assert f"messages   {rows:,}" in err
    assert "MALFORMED" in err and "every message answered" in err


def test_npy_flow_gives_the_same_events_as_its_csv(tmp_path, capsys):
    venue = load_venue(GOLDEN / "random_venue.toml")
    flow = read_flow(GOLDEN / "random_flow.csv", venue)
    npy = tmp_path / "flow.npy"
    np.save(npy, flow.orders)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    cfg = ["--config", str(GOLDEN / "random_venue.toml"), "-q"]
    assert main(["replay", str(GOLDEN / "random_flow.csv"), *cfg, "--events", str(a)]) == 0
    assert main(["replay", str(npy), *cfg, "--events", str(b)]) == 0
    # A .npy flow has no source text: a REJECT echoes the record's fields rather than the
    # row as written (an unknown symbol's name is gone). Every other event is the same.
    assert a.read_bytes() == (GOLDEN / "random_events.csv").read_bytes()
    lines_a, lines_b = a.read_text().splitlines(), b.read_text().splitlines()
    assert len(lines_a) == len(lines_b)
    for x, y in zip(lines_a, lines_b):
        if x != y:
            assert ",REJECT," in x and ",REJECT," in y and x.split(",")[-1] == y.split(",")[-1]


@pytest.mark.parametrize(
    "argv, names",
    [
        (["replay", "no/such/flow.csv"], ["no/such/flow.csv", "cannot read"]),
        (["replay", str(GOLDEN / "example_venue.toml")], ["example_venue.toml", "row 1", "header"]),
        (["replay", str(GOLDEN / "example_flow.csv"), "--config", "no/such/venue.toml"], ["no/such/venue.toml"]),
    ],
    ids=["missing-flow", "wrong-header", "missing-config"],
)
def test_user_errors_are_one_line_and_exit_status_2(argv, names, capsys):
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    for name in names:
        assert name in line


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", str(GOLDEN / "example_flow.csv"), *EXAMPLE, "--events", "{out}"],
        ["gen", "--orders", "10", "-o", "{out}"],
        ["gen", "--orders", "10", "-o", "{out}.npy"],
    ],
    ids=["replay-events", "gen-csv", "gen-npy"],
)
def test_an_output_that_cannot_be_written_is_one_line_and_exit_status_2(tmp_path, argv, capsys):
    out = str(tmp_path / "no-such-dir" / "out.csv")
    argv = [a.replace("{out}", out) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert line == f"tickbook: {argv[-1]}: cannot write: No such file or directory", line
    assert captured.out == ""


def _npy_of_event_records(path):
    np.save(path, np.zeros(3, EVENT_DTYPE))


def _npy_of_int64(path):
    np.save(path, np.zeros((3, 8), np.int64))


def _npy_of_objects(path):
    np.save(path, np.array([{"order_id": 1}], dtype=object), allow_pickle=True)


@pytest.mark.parametrize(
    "write, names",
    [
        (_npy_of_event_records, ["records of dtype", "'seq', '<i8'", "expected tickbook's ORDER_DTYPE"]),
        (_npy_of_int64, ["records of dtype int64", "expected tickbook's ORDER_DTYPE"]),
        # the header is read, never the pickle: the file holds other records, it is not unreadable
        (_npy_of_objects, ["records of dtype object", "expected tickbook's ORDER_DTYPE"]),
    ],
    ids=["event-records", "int64-words", "pickled-objects"],
)
def test_a_npy_flow_of_another_dtype_is_one_line_and_exit_status_2(tmp_path, write, names, capsys):
    flow = tmp_path / "flow.npy"
    write(flow)
    assert main(["replay", str(flow), "-q"]) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert line.startswith(f"tickbook: {flow}: "), line
    for name in names:
        assert name in line, line
    assert "not a readable" not in line and line.count(str(flow)) == 1, line
    assert captured.out == ""


@pytest.mark.parametrize(
    "toml, names",
    [
        ('[symbols.X]\ntick = "0.01"\nref_price = "100.005"\n', ["symbols.X", "ref_price"]),
        ('[symbols.X]\ntick = "0.01"\nref_price = "100.00"\ncolour = 3\n', ["symbols.X", "colour"]),
        ('[symbols.X]\ntick = "0.01"\nref_price = "100.00"\nband_bps = -5\n', ["symbols.X", "band_bps"]),
    ],
    ids=["off-tick-ref", "unknown-key", "bad-value"],
)
def test_bad_venue_names_file_and_key(tmp_path, toml, names, capsys):
    cfg = tmp_path / "venue.toml"
    cfg.write_text(toml)
    assert main(["replay", str(GOLDEN / "example_flow.csv"), "--config", str(cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "venue.toml" in line
    for name in names:
        assert name in line


def test_gen_is_deterministic_and_replayable(tmp_path, capsys):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    assert main(["gen", "--orders", "5000", "--seed", "3", "-o", str(a)]) == 0
    assert main(["gen", "--orders", "5000", "--seed", "3", "-o", str(b)]) == 0
    assert main(["gen", "--orders", "5000", "--seed", "4", "-o", str(c)]) == 0
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    flow = read_flow(a, load_venue(None))
    assert len(flow) == 5000
    events = Venue().submit(flow.orders)
    # Generated rows are well formed, and the flow mixes what a venue sees.
    assert not ((events["kind"] == EV_REJECT) & (events["reason"] == R_MALFORMED)).any()
    actions = np.bincount(flow.orders["action"], minlength=5)
    assert actions[1] > 1000 and actions[2] > 1000 and actions[3] > 300  # NEW, CANCEL, REPLACE


def test_book_prints_the_final_depth(tmp_path, capsys):
    # The example without its last row (the CANCEL): order 2 rests with 3 left at 100.20.
    rows = (GOLDEN / "example_flow.csv").read_text().splitlines()[:-1]
    flow = tmp_path / "flow.csv"
    flow.write_text("\n".join(rows) + "\n")
    assert main(["book", str(flow), *EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert "AAPL  (ref 100.20)" in out  # the reference price moved with the last trade
    row = next(line for line in out.splitlines() if "|" in line and "100.20" in line)
    assert row.split("|")[1].split()[:3] == ["100.20", "3", "1"]


def test_python_api_array_and_dataframe_agree():
    pd = pytest.importorskip("pandas")
    venue = load_venue(GOLDEN / "example_venue.toml")
    flow = read_flow(GOLDEN / "example_flow.csv", venue)
    from_array = Venue(venue).submit(flow.orders)
    frame = pd.read_csv(GOLDEN / "example_flow.csv", dtype=str, keep_default_na=False)
    from_csv_frame = Venue(venue).submit(frame)
    records = pd.DataFrame({name: flow.orders[name] for name in ORDER_DTYPE.names if name != "reserved"})
    from_record_frame = Venue(venue).submit(records)
    assert len(from_array) == 8
    for other in (from_csv_frame, from_record_frame):
        np.testing.assert_array_equal(other, from_array)
    shown = Venue(venue).events_frame(from_array)
    assert list(shown["event"]) == ["ACK", "ACK", "ACK", "FILL", "FILL", "FILL", "FILL", "CANCELED"]
    assert shown["price"].iloc[3] == pytest.approx(100.10)
    v = Venue(venue)
    v.submit(flow.orders[:-1])  # all but the final CANCEL
    assert v.depth("AAPL") == {"bids": [], "asks": [(100.20, 3, 1)]}
    assert v.resting == 1


def _summary_counts(text: str) -> dict[str, int]:
    """'ACK 8,823' and '(SELF_TRADE 13, ...)' lines of a printed summary as {name: count}."""
    counts = {}
    for line in text.splitlines():
        m = re.match(r"^  ([A-Z_]+)\s+([\d,]+)(?:\s+\((.*)\))?$", line)
        if not m:
            continue
        counts[m.group(1)] = int(m.group(2).replace(",", ""))
        for part in (m.group(3) or "").split(", "):
            if part:
                name, n = part.rsplit(" ", 1)
                counts[f"{m.group(1)}/{name}"] = int(n.replace(",", ""))
    return counts


def test_demo_prints_the_figures_of_the_flow_it_generated_and_replayed(tmp_path, monkeypatch, capsys):
    """`tickbook demo` (what `make run` runs, there with 1M messages): every figure it prints
    is that of the seeded flow, replayed here again on its own: the sizes of the CSV files,
    the message and event counts by kind and reason, the orders resting, and each symbol's
    book. Its temporary files are removed."""
    n, seed, levels = 20_000, 3, 3
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the demo puts its files
    assert main(["demo", "--orders", str(n), "--seed", str(seed), "--levels", str(levels)]) == 0
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [], "the demo left its files behind"

    venue = load_venue(None)
    flow_csv = generated_csv(venue, n, seed)
    v = Venue(venue)
    events_csv = io.BytesIO()
    v.replay(parse_flow_bytes(flow_csv, venue), events_csv)
    events = Venue(venue).submit(parse_flow_bytes(flow_csv, venue).orders)

    lines = out.splitlines()
    assert re.fullmatch(rf"generated {n:,} messages in [\d.]+ s -> {len(flow_csv) / 2**20:.0f} MiB CSV", lines[0]), lines[0]
    assert lines[1] == f"replayed flow.csv -> events.csv ({len(events_csv.getvalue()) / 2**20:.0f} MiB)", lines[1]
    assert f"messages   {n:,}" in lines and f"events     {len(events):,}" in lines, out
    assert len(events) == events_csv.getvalue().count(b"\n") - 1  # the CSV has a header line
    want = {}
    for k, name in EVENT_NAMES.items():
        of_kind = events[events["kind"] == k]
        if len(of_kind):
            want[name] = len(of_kind)
            for r, cnt in zip(*np.unique(of_kind["reason"], return_counts=True)):
                if r:
                    want[f"{name}/{REASON_NAMES[int(r)]}"] = int(cnt)
    assert _summary_counts(out) == want
    assert "accounting every message answered" in out
    assert re.search(r"^matcher +[\d,.]+ ns/message, [\d,]+ messages/s$", out, re.M), out
    assert f"resting    {v.resting:,} orders at the end" in lines and v.resting > 0
    # the books: per symbol its header, then one row per level, best first
    book = lines[lines.index(f"resting    {v.resting:,} orders at the end") + 2 :]
    for s in venue.symbols:
        i = next(j for j, line in enumerate(book) if line.startswith(f"{s.name}  (ref "))
        d = v.depth(s.name, levels)
        rows = book[i + 2 : i + 2 + max(len(d["bids"]), len(d["asks"]))]
        assert len(rows) > 0, f"no book printed for {s.name}"
        for j, row in enumerate(rows):
            left, right = row.split("|")
            if j < len(d["bids"]):
                price, qty, orders = d["bids"][j]
                assert [int(x) for x in left.split()[:2]] == [orders, qty] and float(left.split()[2]) == pytest.approx(price), (s.name, row)
            if j < len(d["asks"]):
                price, qty, orders = d["asks"][j]
                a = right.split()
                assert float(a[0]) == pytest.approx(price) and [int(a[1]), int(a[2])] == [qty, orders], (s.name, row)
