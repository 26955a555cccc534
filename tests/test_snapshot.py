"""Snapshots (engine/snapshot.py) on real files: a run cut anywhere, saved, loaded and continued
equals the run left alone, events and state byte for byte; any damage to a file is refused with
its name and the offset of the damaged part; saves are atomic; the directory keeps what recovery
needs.

The flows are engine/gen.py's, on the built-in venue at small capacities, on the golden random
venue (listed accounts with every kind of limit, a disabled account) with kills added, and once
on the built-in venue at full size, where the pools are stored only up to their high-water marks.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import snapshot as S
from engine.accounts import A_TRACKED
from engine.api import Venue
from engine.config import load_venue
from engine.gen import generate
from engine.records import ORDER_DTYPE
from engine.state import C_LVL_UNUSED, C_RESTING, C_UNUSED, EngineState, make_state
from testkit.flows import with_kills

GOLDEN = Path(__file__).parent / "golden"
SMALL = load_venue().with_capacity(max_orders=2048, max_levels=48, max_accounts=64)
RISKY = load_venue(GOLDEN / "random_venue.toml").with_capacity(max_orders=2048, max_levels=48, max_accounts=64)


FLOWS = {
    "small": (SMALL, lambda: generate(SMALL, 12_000, seed=11)),
    "risky": (RISKY, lambda: with_kills(generate(RISKY, 12_000, seed=12), [7, 8, 105, 3, 13, 120], 1_500)),
}


def _assert_same_state(a: EngineState, b: EngineState) -> None:
    for name, x, y in zip(EngineState._fields, a, b):
        assert (x.dtype, x.shape) == (y.dtype, y.shape), name
        assert x.tobytes() == y.tobytes(), f"{name} differs"


def _run(venue, orders) -> tuple[np.ndarray, EngineState]:
    v = Venue(venue)
    return v.submit(orders), v.state


def _snapshot_at(tmp_path, venue, orders, k):
    """Replay orders[:k], save the state as the snapshot of msg_seq k; (events, state, path)."""
    events, st = _run(venue, orders[:k])
    msg_seq = int(orders[k - 1]["msg_seq"]) if k else 0
    return events, st, S.save_snapshot(tmp_path, st, venue, msg_seq)


# --- a run cut, saved, loaded and continued is the run left alone --------------------------


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_a_run_continued_from_a_snapshot_equals_the_run_left_alone(tmp_path, flow):
    venue, make = FLOWS[flow]
    orders = make()
    whole_events, whole_state = _run(venue, orders)
    n = len(orders)
    for k in (0, 1, 777, n // 2 + 13, n - 1, n):
        first, st, path = _snapshot_at(tmp_path, venue, orders, k)
        loaded, msg_seq = S.load_snapshot(path, venue)
        assert msg_seq == (int(orders[k - 1]["msg_seq"]) if k else 0)
        _assert_same_state(loaded, st)
        rest = S.advance(loaded, venue, orders[k:])
        assert np.concatenate([first, rest]).tobytes() == whole_events.tobytes(), f"events differ cut at {k}"
        _assert_same_state(loaded, whole_state)


def test_the_risky_flow_reaches_the_account_state_it_is_meant_to_round_trip():
    venue, make = FLOWS["risky"]
    events, st = _run(venue, make())
    reasons = {int(r) for r in events["reason"]}
    from engine.records import R_KILL, R_MAX_OPEN_ORDERS, R_MAX_POSITION, R_RATE_LIMIT, R_ACCOUNT_DISABLED

    assert {R_KILL, R_RATE_LIMIT, R_ACCOUNT_DISABLED, R_MAX_POSITION, R_MAX_OPEN_ORDERS} <= reasons
    tracked = int(st.a_ctr[A_TRACKED])
    assert st.a_disabled[:tracked].sum() >= 3  # 13 (listed disabled) and killed accounts
    assert np.count_nonzero(st.pos[:tracked]) > 0 and np.count_nonzero(st.a_count[:tracked]) > 0


def test_a_chain_of_snapshots_built_one_from_another(tmp_path):
    """snapshot(n) = advance(load(snapshot(m)), records m+1..n), three times over."""
    venue, make = FLOWS["risky"]
    orders = make()
    whole_events, whole_state = _run(venue, orders)
    cuts = [0, 2_500, 6_000, 9_999, len(orders)]
    st, events = make_state(venue), []
    path = S.save_snapshot(tmp_path, st, venue, 0)
    for m, n in zip(cuts, cuts[1:]):
        st, msg_seq = S.load_snapshot(path, venue)
        assert msg_seq == m
        events.append(S.advance(st, venue, orders[m:n]))
        path = S.save_snapshot(tmp_path, st, venue, int(orders[n - 1]["msg_seq"]))
    final, _ = S.load_snapshot(path, venue)
    _assert_same_state(final, whole_state)
    assert np.concatenate(events).tobytes() == whole_events.tobytes()


def test_the_built_in_venue_at_full_size(tmp_path):
    venue = load_venue()
    orders = generate(venue, 40_000, seed=3)
    whole_events, whole_state = _run(venue, orders)
    k = 23_456
    first, st, path = _snapshot_at(tmp_path, venue, orders, k)
    assert st.ctr[C_RESTING] > 0
    # the pools are stored up to their marks: the 32 MiB id table is most of the file
    state_bytes = sum(a.nbytes for a in st)
    assert path.stat().st_size < st.id_tab.nbytes + 4 * 2**20 < state_bytes / 2
    loaded, _ = S.load_snapshot(path, venue, n_messages=None)  # prefaulted as the live engine
    _assert_same_state(loaded, st)
    rest = S.advance(loaded, venue, orders[k:])
    assert np.concatenate([first, rest]).tobytes() == whole_events.tobytes()
    _assert_same_state(loaded, whole_state)


def test_the_pool_columns_are_the_ones_sized_by_their_pool():
    venue = SMALL
    st = make_state(venue)
    n_lvl = len(st.l_price)
    for name in S.ORDER_POOL:
        assert len(getattr(st, name)) == venue.max_orders, name
    for name in S.LEVEL_POOL:
        assert len(getattr(st, name)) == n_lvl, name
    for name in S.ACCOUNT_SLOTS:
        assert len(getattr(st, name)) == venue.max_accounts, name
    hashed = {"id_tab", "a_key", "a_val"}
    assert not hashed & set(S.ORDER_POOL + S.LEVEL_POOL + S.ACCOUNT_SLOTS)


def test_a_column_written_past_its_pools_mark_is_stored_whole(tmp_path):
    """The marks only make snapshots small: whatever lies past them is kept."""
    _, st = _run(SMALL, generate(SMALL, 3_000, seed=4))
    assert st.ctr[C_UNUSED] < len(st.o_id) and st.ctr[C_LVL_UNUSED] < len(st.l_qty)
    st.o_id[-1], st.l_qty[-1], st.pos[-1, -1] = 99, 7, -5
    loaded, _ = S.load_snapshot(S.save_snapshot(tmp_path, st, SMALL, 3_000), SMALL)
    _assert_same_state(loaded, st)


# --- damaged files ------------------------------------------------------------------------


def _entries(data: bytes) -> list[tuple[str, int, int, int]]:
    """(name, entry offset, data offset, data length) of every array, read with the format of
    the module's docstring."""
    pos, out = S.HEADER.size, []
    for _ in range(struct.unpack_from("<I", data, S.H_ARRAYS)[0]):
        name, dtype, ndim, *rest = S.ENTRY.unpack_from(data, pos)
        shape, rows = rest[:ndim], rest[S.MAX_NDIM]
        length = rows * int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype.rstrip(b"\0").decode()).itemsize
        out.append((name.rstrip(b"\0").decode(), pos, pos + S.ENTRY.size, length))
        pos += S.ENTRY.size + length
    assert pos == len(data)
    return out


@pytest.fixture
def saved(tmp_path):
    _, st = _run(RISKY, FLOWS["risky"][1]()[:5_000])
    path = S.save_snapshot(tmp_path, st, RISKY, 5_000)
    return path, path.read_bytes()


def _refused(path: Path, data: bytes, venue=RISKY) -> S.SnapshotError:
    path.write_bytes(data)
    with pytest.raises(S.SnapshotError) as info:
        S.load_snapshot(path, venue)
    assert str(info.value).startswith(f"{path}: offset {info.value.offset}: ")
    return info.value


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def test_a_flipped_header_byte_is_refused_at_the_part_it_spoils(saved):
    path, data = saved
    for at in range(S.HEADER.size):
        e = _refused(path, _flipped(data, at))
        assert e.offset == (0 if at < S.H_VERSION else S.H_VERSION if at < S.H_DIGEST else S.H_CRC), at


def test_a_flipped_byte_in_any_array_is_refused_at_that_array(saved):
    path, data = saved
    entries = _entries(data)
    assert {name for name, *_ in entries} == set(EngineState._fields)
    for name, entry_at, data_at, length in entries:
        for at in (entry_at, entry_at + S.E_SHAPE, entry_at + S.E_ROWS, entry_at + S.E_CRC + 3):
            e = _refused(path, _flipped(data, at))
            assert (e.offset, "entry crc mismatch") == (entry_at + S.E_CRC, e.why[:18]), name
        for at in sorted({data_at, data_at + length // 2, data_at + length - 1}) if length else ():
            e = _refused(path, _flipped(data, at))
            assert (e.offset, e.why) == (data_at, f"{name}: data crc mismatch")


def test_a_truncated_file_is_refused(saved):
    path, data = saved
    entries = _entries(data)
    name, entry_at, data_at, length = entries[len(entries) // 2]
    for size in (0, 7, S.HEADER.size - 1, S.HEADER.size, entry_at + 50, data_at + length // 2, len(data) - 1):
        e = _refused(path, data[:size])
        assert e.why.startswith("truncated"), size
    e = _refused(path, data + b"\0")
    assert (e.offset, e.why) == (len(data), "1 unexpected bytes after the last array")


def test_a_snapshot_of_another_venue_or_layout_version_is_refused(saved):
    path, data = saved
    other = RISKY.with_capacity(max_orders=4096)
    e = _refused(path, data, other)
    assert e.offset == S.H_DIGEST and "another venue" in e.why
    e = _refused(path, data, SMALL)
    assert e.offset == S.H_DIGEST
    # a version 2 file with a good crc: refused for its version
    head = bytearray(data[: S.HEADER.size])
    struct.pack_into("<I", head, S.H_VERSION, 2)
    struct.pack_into("<I", head, S.H_CRC, S.crc32c.crc32c(bytes(head[: S.H_CRC])))
    e = _refused(path, bytes(head) + data[S.HEADER.size:])
    assert e.offset == S.H_VERSION and "version 2" in e.why


def test_a_snapshot_renamed_to_another_msg_seq_is_refused(saved):
    path, data = saved
    e = _refused(path.with_name(S.snapshot_name(6_000)), data)
    assert e.offset == S.H_MSG_SEQ


def test_a_file_that_cannot_be_read_is_refused_the_same_way(tmp_path):
    missing = tmp_path / S.snapshot_name(1)
    with pytest.raises(S.SnapshotError, match=f"^{missing}: offset 0: cannot read"):
        S.load_snapshot(missing, SMALL)


def test_the_error_survives_a_trip_to_another_process():
    import pickle

    e = pickle.loads(pickle.dumps(S.SnapshotError("/x/snapshot.tbs", 56, "header crc mismatch")))
    assert (str(e), e.offset, e.why) == ("/x/snapshot.tbs: offset 56: header crc mismatch", 56, "header crc mismatch")


def test_a_state_of_another_venue_is_not_saved(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        S.save_snapshot(tmp_path, make_state(SMALL), RISKY, 1)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="layout"):
        S.advance(make_state(SMALL), RISKY, np.zeros(1, ORDER_DTYPE))


# --- atomic saves -------------------------------------------------------------------------


def test_a_save_that_fails_before_its_rename_leaves_no_file(tmp_path, monkeypatch):
    st = make_state(SMALL)
    good = S.save_snapshot(tmp_path, st, SMALL, 10)
    before = good.read_bytes()

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        S.save_snapshot(tmp_path, st, SMALL, 20)
    with pytest.raises(OSError):
        S.save_snapshot(tmp_path, _run(SMALL, generate(SMALL, 500))[1], SMALL, 10)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [good.name]  # no temp file either
    assert good.read_bytes() == before


def test_a_save_that_dies_while_writing_leaves_no_file(tmp_path, monkeypatch):
    def half_then_die(f, *args):
        f.write(b"TICKSNAP")
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "_write", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        S.save_snapshot(tmp_path, make_state(SMALL), SMALL, 1)
    assert list(tmp_path.iterdir()) == []


# --- the directory ------------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_newest_snapshot_skips_a_damaged_newer_file_and_cleans_up(tmp_path):
    venue, make = FLOWS["risky"]
    orders = make()[:6_000]
    states = {}
    for k in (2_000, 4_000, 6_000):
        states[k] = _snapshot_at(tmp_path, venue, orders, k)[1]
    newest = tmp_path / S.snapshot_name(6_000)
    data = newest.read_bytes()
    newest.write_bytes(_flipped(data, len(data) - 5))
    dead = tmp_path / f".snapshot-{7_000:016d}.{_dead_pid()}.0badf00d.tmp"
    live = tmp_path / f".snapshot-{7_000:016d}.{os.getpid()}.0000cafe.tmp"
    for p in (dead, live):
        p.write_bytes(b"TICKSNAP half written")
    lines = []
    path, st, msg_seq = S.newest_snapshot(tmp_path, venue, log=lines.append)
    assert (path.name, msg_seq) == (S.snapshot_name(4_000), 4_000)
    _assert_same_state(st, states[4_000])
    assert len(lines) == 1 and str(newest) in lines[0] and "crc mismatch" in lines[0]
    assert not dead.exists() and live.exists()  # a writer still running keeps its file


def test_newest_snapshot_of_an_empty_or_missing_directory_is_none(tmp_path):
    assert S.newest_snapshot(tmp_path, SMALL) is None
    assert S.newest_snapshot(tmp_path / "nowhere", SMALL) is None
    (tmp_path / S.snapshot_name(5)).write_bytes(b"junk")
    lines = []
    assert S.newest_snapshot(tmp_path, SMALL, log=lines.append) is None
    assert len(lines) == 1 and "offset 0: truncated" in lines[0]


def test_prune_keeps_the_newest(tmp_path):
    st = make_state(SMALL)
    for msg_seq in (5, 900, 40, 12_000, 300):
        S.save_snapshot(tmp_path, st, SMALL, msg_seq)
    (tmp_path / "journal-0001.tbj").write_bytes(b"not ours")
    removed = S.prune_snapshots(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == sorted(S.snapshot_name(m) for m in (5, 40, 300))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "journal-0001.tbj", S.snapshot_name(900), S.snapshot_name(12_000)]
    assert S.prune_snapshots(tmp_path, keep=2) == []
    with pytest.raises(ValueError):
        S.prune_snapshots(tmp_path, keep=0)
