"""Bad input a fuzzing run found, each mended where its concept lives (docs/rulebook.md section 3,
engine/diagnostics.py): a user error is one line on stderr naming the file, exit status 2, never
a traceback; a run that did not answer every message does not exit 0; a binary flow gives the
same events in process and over the shared-memory rings, whatever its records hold.

The command-line faults run the real `tickbook` command in a subprocess."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.config import ConfigError, load_venue, parse_venue
from engine.gen import generate
from engine.records import ACTION_SHUTDOWN, ORDER_DTYPE

GOLDEN = Path(__file__).parent / "golden"
EXAMPLE = ["--config", str(GOLDEN / "example_venue.toml")]
_SCRIPT = Path(sys.executable).with_name("tickbook")
TICKBOOK = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tickbook"]
WAIT = 600  # a first run may compile the matcher (and the engine's loop) before it answers
VENUE_HEAD = '[symbols.X]\ntick = "0.01"\nref_price = "100.00"\n'


def run(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*TICKBOOK, *map(str, argv)], capture_output=True, text=True, timeout=WAIT, **kw)


def one_line(r: subprocess.CompletedProcess, status: int = 2) -> str:
    """The one stderr line of a refused run (status checked)."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert r.returncode == status, (r.returncode, r.stderr)
    assert lines[0].startswith("tickbook: "), lines[0]
    return lines[0]


# --- 1, 2: venue.toml ------------------------------------------------------------------------


def test_a_venue_file_that_is_not_utf8_is_one_line(tmp_path):
    cfg = tmp_path / "venue.toml"
    cfg.write_bytes(VENUE_HEAD.encode() + b"# caf\xe9 au lait\n")
    line = one_line(run("replay", GOLDEN / "example_flow.csv", "--config", cfg))
    assert line == f"tickbook: {cfg}: not UTF-8 text (byte 0xe9 at offset {len(VENUE_HEAD) + 5})", line


@pytest.mark.parametrize("key", ["²", "٣"], ids=["superscript-two", "arabic-indic-three"])
def test_an_account_key_of_other_digits_is_one_line_naming_file_and_key(tmp_path, key):
    cfg = tmp_path / "venue.toml"
    cfg.write_text(VENUE_HEAD + f'[accounts."{key}"]\nmax_order_qty = 5\n', encoding="utf-8")
    line = one_line(run("replay", GOLDEN / "example_flow.csv", "--config", cfg))
    assert line.startswith(f"tickbook: {cfg}: [accounts.") and key in line, line
    assert "ASCII digits" in line, line


@pytest.mark.parametrize(
    "key",
    ["²", "٣", "+7", "-1", " 7", "7 ", "", "1e3", "4294967296", "99999999999999999999", "A\\nB", "\\u200b7"],
)
def test_account_keys_are_ascii_digits_in_range(key):
    with pytest.raises(ConfigError) as e:
        parse_venue(VENUE_HEAD + f'[accounts."{key}"]\nmax_order_qty = 5\n', "v.toml")
    msg = str(e.value)
    assert msg.startswith("v.toml: [accounts.") and "\n" not in msg, msg


def test_account_keys_that_are_fine_and_one_listed_twice():
    v = parse_venue(VENUE_HEAD + '[accounts."0"]\n[accounts."4294967295"]\n[accounts."007"]\n', "v.toml")
    assert sorted(v.accounts) == [0, 7, 2**32 - 1]  # leading zeros are fine, as in the flow
    v = parse_venue(VENUE_HEAD + '[accounts."' + "0" * 5000 + '7"]\n', "v.toml")  # over int()'s digit limit
    assert list(v.accounts) == [7]
    with pytest.raises(ConfigError, match=r"v.toml: \[accounts.007\]: account 7 is listed twice"):
        parse_venue(VENUE_HEAD + "[accounts.7]\n[accounts.007]\n", "v.toml")


def test_a_symbol_name_with_a_newline_stays_one_line():
    with pytest.raises(ConfigError) as e:
        parse_venue('[symbols."A\\nB"]\ntick = "1"\nref_price = "1"\n', "v.toml")
    assert str(e.value).startswith('v.toml: [symbols."A\\nB"]: ') and "\n" not in str(e.value)


# --- 3: .npy flows that are not a 1-D array of order records ---------------------------------


@pytest.mark.parametrize("transport", ["inproc", "shm"])
def test_a_two_dimensional_npy_of_order_records_is_one_line(tmp_path, transport):
    flow = tmp_path / "x.npy"
    np.save(flow, np.zeros((4, 3), ORDER_DTYPE))
    line = one_line(run("replay", flow, "-q", "--transport", transport))
    assert line == f"tickbook: {flow}: an array of shape (4, 3), expected a 1-D array of order records", line


def test_a_zero_dimensional_npy_is_one_line(tmp_path):
    flow = tmp_path / "x.npy"
    np.save(flow, np.zeros((), ORDER_DTYPE))
    assert "an array of shape ()" in one_line(run("replay", flow, "-q", "--transport", "shm"))


@pytest.mark.parametrize(
    "content",
    [b"ts,account,action,symbol,order_id,side,type,tif,price,qty\n", b"", b"PK\x03\x04" + bytes(60)],
    ids=["csv-text", "empty", "zip"],
)
def test_a_file_that_is_not_a_npy_names_its_path_once(tmp_path, content):
    flow = tmp_path / "x.npy"
    flow.write_bytes(content)
    line = one_line(run("replay", flow, "-q", "--transport", "shm"))  # refused before any server starts
    assert line.startswith(f"tickbook: {flow}: not a .npy file of order records ("), line
    assert line.count(str(flow)) == 1 and "pickle" not in line, line


def test_a_npy_cut_short_is_one_line(tmp_path):
    flow = tmp_path / "x.npy"
    np.save(flow, np.zeros(4, ORDER_DTYPE))
    data = flow.read_bytes()
    for cut in (8, 20, len(data) - 10):
        flow.write_bytes(data[:cut])
        line = one_line(run("replay", flow, "-q", "--transport", "shm"))
        assert line.startswith(f"tickbook: {flow}: not a readable .npy file: "), line


# --- 4: outputs that fail at a write, a flush or a close --------------------------------------

NO_SPACE = "cannot write: No space left on device"


@pytest.mark.parametrize(
    "argv, name",
    [
        (["replay", GOLDEN / "example_flow.csv", *EXAMPLE, "-q", "--events", "/dev/full"], "/dev/full"),
        (["gen", "--orders", "10", "-o", "/dev/full"], "/dev/full"),
        (["gen", "--orders", "10", "-o", "{full.npy}"], "{full.npy}"),
    ],
    ids=["replay-events", "gen-csv", "gen-npy"],
)
def test_a_full_disk_is_one_cannot_write_line(tmp_path, argv, name):
    full_npy = tmp_path / "full.npy"
    full_npy.symlink_to("/dev/full")  # `gen` writes .npy when the name says so
    argv = [str(full_npy) if a == "{full.npy}" else a for a in argv]
    name = str(full_npy) if name == "{full.npy}" else name
    assert one_line(run(*argv)) == f"tickbook: {name}: {NO_SPACE}"


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", GOLDEN / "example_flow.csv", *EXAMPLE, "-q"],
        ["book", GOLDEN / "example_flow.csv", *EXAMPLE],
        ["gen", "--orders", "20000"],
    ],
    ids=["replay", "book", "gen"],
)
def test_stdout_on_a_full_disk_is_one_cannot_write_line(argv):
    with open("/dev/full", "w") as full:
        r = subprocess.run([*TICKBOOK, *map(str, argv)], stdout=full, stderr=subprocess.PIPE, text=True, timeout=WAIT)
    assert one_line(r) == f"tickbook: <stdout>: {NO_SPACE}"  # and no second message at exit


def test_an_events_file_that_fails_in_mid_write_is_one_line(tmp_path):
    flow = tmp_path / "flow.csv"
    assert run("gen", "--orders", "20000", "-o", flow).returncode == 0
    assert run("replay", flow, "-q", "--events", "/dev/null").returncode == 0  # compiled and cached first:
    out = tmp_path / "events.csv"  # the limit would stop Numba writing its cache too
    limit = 1 << 16  # the file may grow to 64 KiB, then a write fails (EFBIG; Python ignores SIGXFSZ)
    r = run("replay", flow, "-q", "--events", out,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert one_line(r) == f"tickbook: {out}: cannot write: File too large"
    assert out.stat().st_size == limit  # it failed after writing, not at open


def test_offloaded_events_on_a_full_disk_are_one_cannot_write_line(tmp_path):
    flow = tmp_path / "flow.npy"
    np.save(flow, generate(load_venue(None), 200, seed=2))
    r = run("replay", flow, "-q", "--transport", "shm", "--events", "/dev/full")
    assert "Traceback" not in r.stderr and r.returncode == 2, r.stderr
    ours = [line for line in r.stderr.splitlines() if not line.startswith("engine[")]
    assert ours == [f"tickbook: /dev/full: {NO_SPACE}"], r.stderr


# --- 5: any record, the same events in process and over the rings ------------------------------


def garbage_flow(n: int = 1000, seed: int = 3) -> np.ndarray:
    """A generated flow with records of action 255 (the rings' SHUTDOWN) and other enum values
    out of range, and a few records of random bytes."""
    orders = generate(load_venue(None), n, seed=seed)
    rng = np.random.default_rng(seed)
    for i, (field, value) in enumerate([("action", ACTION_SHUTDOWN), ("action", 0), ("action", 6), ("action", 77),
                                        ("side", 9), ("type", 200), ("tif", 0), ("tif", 5), ("symbol", 0xFFFF),
                                        ("symbol", 777), ("action", ACTION_SHUTDOWN)]):
        orders[field][n // 2 + 37 * i] = value
    orders["action"][[10, n - 1]] = ACTION_SHUTDOWN  # early, and the last one
    rand = rng.integers(0, 256, size=(20, ORDER_DTYPE.itemsize), dtype=np.uint8).view(ORDER_DTYPE).reshape(-1)
    rand["action"][:3] = ACTION_SHUTDOWN
    orders[rng.choice(np.arange(20, n // 2 - 20), 20, replace=False)] = rand
    return orders


def test_records_with_action_255_and_other_garbage_give_the_same_events_in_process_and_over_shm(tmp_path):
    flow = tmp_path / "flow.npy"
    orders = garbage_flow()
    np.save(flow, orders)
    a, b = tmp_path / "inproc.csv", tmp_path / "shm.csv"
    r = run("replay", flow, "--events", a)
    assert r.returncode == 0 and "every message answered" in r.stderr, r.stderr
    r = run("replay", flow, "--transport", "shm", "--offload", "sw", "--events", b)
    assert r.returncode == 0, r.stderr
    assert f"processed {len(orders):,} orders" in r.stderr and "every message answered" in r.stderr, r.stderr
    assert a.read_bytes() == b.read_bytes()
    assert a.read_text().count(",MALFORMED\n") >= 12


def _stopped_first(real_stream):
    """offload.server.stream, but the server is stopped (its STOP word) before the flow goes in:
    it closes its event ring having answered nothing."""

    def stream(seg, orders, alive, timeout=60.0, shutdown=True):
        seg.request_stop()
        t0 = time.monotonic()
        while not seg.ring(1).closed():
            assert time.monotonic() - t0 < 60, "the engine did not stop"
            time.sleep(0.01)
        return real_stream(seg, orders, alive, timeout, shutdown)

    return stream


def test_a_stream_the_server_closed_early_raises_unanswered():
    from offload.server import Server, Unanswered, stream

    v = load_venue(None)
    srv = Server("offload.engine_process", v, extra=("--yield-after", "4096"))
    try:
        srv.wait_ready(WAIT)
        with pytest.raises(Unanswered, match=r"with 1,000 of 1,000 messages unanswered"):
            _stopped_first(stream)(srv.seg, generate(v, 1000, seed=1), srv.alive, timeout=60)
    finally:
        srv.close()


def test_a_replay_that_left_messages_unanswered_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    import offload.server
    from tickbook.cli import main

    flow = tmp_path / "flow.npy"
    np.save(flow, generate(load_venue(None), 300, seed=4))
    monkeypatch.setattr(offload.server, "stream", _stopped_first(offload.server.stream))
    out = tmp_path / "events.csv"
    assert main(["replay", str(flow), "--transport", "shm", "--events", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("tickbook:")]
    assert len(ours) == 1 and ours[0].endswith("with 300 of 300 messages unanswered"), err
    assert not out.exists()  # no short event file passed off as the run's
