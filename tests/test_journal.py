"""The write-ahead journal (offload/journal.py) on real files: round trip across rotated files,
recovery of a torn tail at every byte, corruption refused, failed writes undone, fsync policies,
and `tickbook journal`."""

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import crc32c
import numpy as np
import pytest

from engine.codec import read_flow
from engine.config import DEFAULT_VENUE_PATH, load_venue
from engine.records import ORDER_DTYPE
from offload import journal
from offload.journal import (
    BATCH_MAGIC,
    JournalError,
    JournalWriter,
    load_journal,
    parse_fsync,
    read_journal,
    scan_journal,
)
from offload.journal_cli import main as journal_main

REPO = Path(__file__).resolve().parents[1]
VENUE = load_venue()
DIGEST = VENUE.digest()
OTHER_DIGEST = VENUE.with_capacity(max_orders=1 << 10).digest()


def stamped(first, n, seed=0):
    """n order records with random fields, stamped msg_seq first, first + 1, ..."""
    rng = np.random.default_rng(seed + first)
    r = np.zeros(n, ORDER_DTYPE)
    for f in ("ts", "order_id", "price", "qty", "account", "symbol", "action", "side"):
        r[f] = rng.integers(0, 200, n)
    r["msg_seq"] = np.arange(first, first + n)
    return r


class Flow:
    """Appends to a writer and remembers what it appended, for comparing with what is read back."""

    def __init__(self):
        self.batches = []  # (session, records, cseqs)
        self.cseq = {}

    def add(self, w, session, n):
        r = stamped(w.next_msg_seq, n)
        c = self.cseq.get(session, 1000)
        cs = list(range(c, c + n))
        self.cseq[session] = c + n
        w.append(session, r, cs if n % 2 else np.array(cs))  # lists and arrays both
        self.batches.append((session, r, cs))

    def records(self):
        return np.concatenate([b[1] for b in self.batches])


def read_all(path, digest=DIGEST, **kw):
    return [(s, r.copy(), c.copy()) for s, r, c in read_journal(path, digest, **kw)]


def files(d):
    return sorted(Path(d).glob("journal-*.tbj"))


def assert_same(got, batches):
    assert len(got) == len(batches)
    for (s, r, c), (s2, r2, c2) in zip(got, batches):
        assert s == s2 and np.array_equal(r, r2) and list(c) == list(c2)


def build(d, sizes=(3, 1, 20, 2, 5, 1, 17, 4), sessions=(b"alice", b"bob", b"\x00\x8f\x01\x02\x03"), commit_every=2,
          **kw):
    flow = Flow()
    w = JournalWriter(d, DIGEST, **kw)
    for i, n in enumerate(sizes):
        flow.add(w, sessions[i % len(sessions)], n)
        if i % commit_every == commit_every - 1:
            w.commit()
    w.commit()
    w.close()
    return flow


# --- round trip -------------------------------------------------------------------------------


def test_round_trip_across_rotated_files_and_reopen(tmp_path):
    d = tmp_path / "j"
    flow = build(d, sizes=[1 + (i * 7) % 23 for i in range(40)], rotate_bytes=2048)
    fs = files(d)
    assert len(fs) >= 4
    got = read_all(d)
    assert_same(got, flow.batches)
    seqs = np.concatenate([r["msg_seq"] for _, r, _ in got])
    assert np.array_equal(seqs, np.arange(1, len(seqs) + 1))
    firsts = [int(f.name[8:24]) for f in fs]  # each file named by its first msg_seq
    assert firsts[0] == 1 and firsts == sorted(firsts)

    s = scan_journal(d, DIGEST)
    assert (s.batches, s.records, s.first_msg_seq, s.last_msg_seq) == (40, len(seqs), 1, len(seqs))
    assert [f.first_msg_seq for f in s.files] == firsts and s.torn_tail is None
    for f, nxt in zip(s.files, s.files[1:]):
        assert f.last_msg_seq + 1 == nxt.first_msg_seq
    per = {}
    for sess, r, _ in flow.batches:
        per[sess] = per.get(sess, 0) + len(r)
    assert s.sessions == per

    later = read_all(d, after_msg_seq=50)
    assert np.array_equal(np.concatenate([r for _, r, _ in later])["msg_seq"], np.arange(51, len(seqs) + 1))

    w = JournalWriter(d, DIGEST, rotate_bytes=2048)
    assert w.next_msg_seq == len(seqs) + 1
    assert w.sessions == {sess: c - 1 for sess, c in flow.cseq.items()}
    seq = 1
    for sess, r, cs in flow.batches:  # every (session, cseq) found in its file
        assert w.lookup(sess, cs[-1]) == seq + len(r) - 1
        assert w.lookup(sess, cs[0], cs[-1]) == (seq, seq + len(r) - 1)  # a message's ends in one pass
        seq += len(r)
    assert w.lookup(b"alice", 10**9) is None and w.lookup(b"nobody", 1000) is None
    flow.add(w, b"alice", 3)
    w.commit()
    assert w.lookup(b"alice", flow.cseq[b"alice"] - 1) == w.next_msg_seq - 1
    w.close()
    assert_same(read_all(d), flow.batches)


def test_load_journal_gathers_what_read_journal_yields(tmp_path):
    d = tmp_path / "j"
    build(d, sizes=[1 + (i * 5) % 19 for i in range(30)], rotate_bytes=1500)
    for after in (0, 1, 37, 200, 10**6):
        got = load_journal(d, DIGEST, after)
        batches = read_all(d, after_msg_seq=after)
        if not batches:
            assert len(got.records) == len(got.cseqs) == len(got.session) == 0
            continue
        assert np.array_equal(got.records, np.concatenate([r for _, r, _ in batches]))
        assert np.array_equal(got.cseqs, np.concatenate([c for _, _, c in batches]))
        assert [got.names[i] for i in got.session] == [s for s, r, _ in batches for _ in range(len(r))]
        assert got.records["msg_seq"][0] == after + 1 and got.torn_tail is None


def test_batch_magic_inside_records_and_cseqs_does_not_confuse_the_reader(tmp_path):
    d = tmp_path / "j"
    w = JournalWriter(d, DIGEST)
    batches = []
    for i in range(20):
        r = stamped(w.next_msg_seq, 1 + i % 4)
        r["order_id"] = BATCH_MAGIC  # an 8-aligned word that looks like a batch's start
        r["price"] = BATCH_MAGIC | 7 << 32
        cs = [BATCH_MAGIC] * len(r)
        w.append(b"m", r, cs)
        batches.append((b"m", r, cs))
        w.commit()
    w.close()
    assert_same(read_all(d), batches)
    f = files(d)[0]
    f.write_bytes(f.read_bytes()[:-30])  # a torn tail after batches full of false magics
    assert_same(read_all(d), batches[:-1])
    JournalWriter(d, DIGEST).close()
    assert np.array_equal(load_journal(d).records, np.concatenate([b[1] for b in batches[:-1]]))


def test_the_batches_are_laid_out_as_the_module_documents(tmp_path):
    d = tmp_path / "j"
    flow = build(d, sizes=(2, 3), sessions=(b"abc",))
    data = files(d)[0].read_bytes()
    head = data[:64]
    magic, version, size, digest, _sid, first, _created, crc = struct.unpack("<8sII16sQqQI", head[:60])
    assert (magic, version, size, digest, first) == (b"TBJRNL\x00\x01", 1, 64, bytes.fromhex(DIGEST), 1)
    assert crc == crc32c.crc32c(head[:56]) and head[60:] == bytes(4)
    pos, seq = 64, 1
    for sess, r, cs in flow.batches:
        body = sess + bytes(-len(sess) % 8) + r.tobytes() + np.array(cs, "<i8").tobytes()
        tail = struct.pack("<qIHH8x", seq, len(r), len(sess), 0)
        expect = struct.pack("<4sI", b"TBJB", crc32c.crc32c(tail + body)) + tail + body
        assert data[pos : pos + len(expect)] == expect
        pos, seq = pos + len(expect), seq + len(r)
    assert pos == len(data)


def test_append_refuses_records_not_stamped_with_the_next_msg_seq(tmp_path):
    w = JournalWriter(tmp_path, DIGEST)
    for r in (stamped(2, 1), stamped(1, 20)[::-1].copy(), np.concatenate([stamped(1, 3), stamped(5, 1)])):
        with pytest.raises(ValueError, match="msg_seq"):
            w.append(b"s", r, [0] * len(r))
    with pytest.raises(ValueError):
        w.append(b"s", stamped(1, 2), [1])
    assert w.next_msg_seq == 1
    w.commit()  # nothing appended: nothing written
    w.close()
    assert files(tmp_path)[0].stat().st_size == 64


# --- torn tails -------------------------------------------------------------------------------


def test_a_torn_tail_is_cut_at_every_byte_of_the_last_batch(tmp_path):
    d = tmp_path / "j"
    flow = build(d, sizes=(2, 1, 3))
    f = files(d)[0]
    whole = f.read_bytes()
    last_start = len(whole) - (32 + 8 + 72 * 3)
    keep = flow.batches[:-1]
    for cut in range(last_start + 1, len(whole)):
        f.write_bytes(whole[:cut])
        torn = []
        assert_same(read_all(d, on_torn_tail=torn.append), keep)
        assert [(t.offset, t.bytes) for t in torn] == [(last_start, cut - last_start)]
        lines = []
        w = JournalWriter(d, DIGEST, log=lines.append)
        assert len(lines) == 1 and str(f) in lines[0] and f"offset {last_start}:" in lines[0]
        assert f"cut {cut - last_start} bytes" in lines[0]
        assert f.stat().st_size == last_start and w.next_msg_seq == 4
        r = stamped(4, 2, seed=cut)
        w.append(b"after", r, [7, 8])
        w.commit()
        w.close()
        got = read_all(d)
        assert_same(got[:-1], keep)
        assert got[-1][0] == b"after" and np.array_equal(got[-1][1], r) and list(got[-1][2]) == [7, 8]


@pytest.mark.parametrize("garbage", [bytes(4096), bytes(range(256)) * 3, b"TBJB" + bytes(60)])
def test_garbage_after_the_last_batch_is_a_torn_tail(tmp_path, garbage):
    d = tmp_path / "j"
    flow = build(d)
    f = files(d)[-1]
    good = f.stat().st_size
    with open(f, "ab") as fh:
        fh.write(garbage)
    assert scan_journal(d).torn_tail.offset == good
    lines = []
    JournalWriter(d, DIGEST, log=lines.append).close()
    assert len(lines) == 1 and f"offset {good}:" in lines[0] and f"cut {len(garbage)} bytes" in lines[0]
    assert f.stat().st_size == good
    assert_same(read_all(d), flow.batches)


def test_a_file_torn_at_its_creation_is_started_again(tmp_path):
    d = tmp_path / "j"
    flow = build(d, rotate_bytes=512)
    nxt = scan_journal(d).last_msg_seq + 1
    f = files(d)[-1]
    if f.stat().st_size > 64:  # the writer left a written last file: add a new one, torn
        f = d / f"journal-{nxt:016d}.tbj"
    f.write_bytes(b"TBJRNL\x00\x01" + bytes(20))
    assert scan_journal(d).torn_tail.offset == 0
    lines = []
    w = JournalWriter(d, DIGEST, log=lines.append)
    assert len(lines) == 1 and str(f) in lines[0]
    assert w.next_msg_seq == nxt and f.stat().st_size == 64
    flow.add(w, b"alice", 2)
    w.commit()
    w.close()
    assert_same(read_all(d), flow.batches)


# --- corruption -------------------------------------------------------------------------------


def test_a_corrupted_byte_in_the_middle_is_refused_never_cut(tmp_path):
    d = tmp_path / "j"
    build(d)
    f = files(d)[0]
    data = bytearray(f.read_bytes())
    data[64 + 32 + 8 + 70] ^= 0x10  # the first batch's second record
    f.write_bytes(bytes(data))
    for attempt in (lambda: read_all(d), lambda: scan_journal(d), lambda: JournalWriter(d, DIGEST)):
        with pytest.raises(JournalError) as e:
            attempt()
        assert str(e.value).startswith(f"{f}: offset 64: crc mismatch")
    assert f.read_bytes() == bytes(data)


def test_a_bad_batch_at_the_end_of_a_file_that_is_not_the_last_is_corruption(tmp_path):
    d = tmp_path / "j"
    build(d, rotate_bytes=600)
    f = files(d)[0]
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"^{f}: offset \\d+: crc mismatch"):
        JournalWriter(d, DIGEST)


def test_a_valid_batch_with_records_out_of_sequence_is_corruption(tmp_path):
    d = tmp_path / "j"
    build(d, sizes=(2, 3, 1))
    f = files(d)[0]
    data = bytearray(f.read_bytes())
    at = 64 + 32 + 8 + 72 * 2  # the second batch: 3 records from msg_seq 3
    recs = np.frombuffer(data, ORDER_DTYPE, 3, at + 32 + 8).copy()
    recs["msg_seq"][1] = 99
    data[at + 40 : at + 40 + 192] = recs.tobytes()
    data[at + 4 : at + 8] = struct.pack("<I", crc32c.crc32c(bytes(data[at + 8 : at + 40 + 216])))
    f.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"^{f}: offset {at}: record 1 of the batch has msg_seq 99, expected 4"):
        read_all(d)


def test_a_missing_file_is_an_error(tmp_path):
    d = tmp_path / "j"
    build(d, rotate_bytes=600)
    fs = files(d)
    assert len(fs) >= 3
    fs[1].unlink()
    with pytest.raises(JournalError, match=f"^{fs[2]}: offset 40: .*a file missing"):
        scan_journal(d)


def test_another_venue_or_layout_version_is_refused(tmp_path):
    d = tmp_path / "j"
    build(d)
    f = files(d)[0]
    for attempt in (lambda: JournalWriter(d, OTHER_DIGEST), lambda: read_all(d, OTHER_DIGEST)):
        with pytest.raises(JournalError, match=f"^{f}: offset 16: written under venue {DIGEST}, not this venue"):
            attempt()
    data = bytearray(f.read_bytes())
    data[8:12] = struct.pack("<I", 2)
    data[56:60] = struct.pack("<I", crc32c.crc32c(bytes(data[:56])))
    f.write_bytes(bytes(data))
    for attempt in (lambda: JournalWriter(d, DIGEST), lambda: scan_journal(d)):
        with pytest.raises(JournalError, match=f"^{f}: offset 8: layout version 2, this tickbook reads version 1"):
            attempt()


# --- failed writes ----------------------------------------------------------------------------

FSIZE_CHILD = """
import json, resource, signal, sys
import numpy as np
from engine.records import ORDER_DTYPE
from offload.journal import JournalError, JournalWriter
d, digest, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
def recs(first, n):
    r = np.zeros(n, ORDER_DTYPE); r["msg_seq"] = np.arange(first, first + n); r["order_id"] = 7; return r
w = JournalWriter(d, digest)
out = {}
for i in range(3):
    w.append(b"s", recs(w.next_msg_seq, 1), [i])
    w.commit()
out["good"] = w.path.stat().st_size
w.append(b"s", recs(4, 2), [10, 11])
try:
    w.commit()
except JournalError as e:
    out["error"] = str(e)
out["after"], out["next"] = w.path.stat().st_size, w.next_msg_seq
w.append(b"s", recs(4, 1), [20])  # fits
w.commit()
out["final"] = w.path.stat().st_size
w.close()
print(json.dumps(out))
"""


def test_a_write_past_the_file_size_limit_is_undone_and_a_smaller_one_succeeds(tmp_path):
    d = tmp_path / "j"
    one, two = 32 + 8 + 72, 32 + 8 + 144
    limit = 64 + 3 * one + one + 20  # room for a fourth one-record batch, not for a two-record one
    r = subprocess.run([sys.executable, "-c", FSIZE_CHILD, str(d), DIGEST, str(limit)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    f = files(d)[0]
    assert out["good"] == 64 + 3 * one and out["after"] == out["good"] and out["next"] == 4
    assert out["error"].startswith(f"{f}: offset {out['good']}: write failed (EFBIG")
    assert "2 records not journaled" in out["error"]
    assert out["final"] == out["good"] + one < out["good"] + two
    got = read_all(d)
    assert [list(c) for _, _, c in got] == [[0], [1], [2], [20]]
    assert np.array_equal(np.concatenate([r for _, r, _ in got])["msg_seq"], [1, 2, 3, 4])


@pytest.mark.parametrize("fail", ["short write then ENOSPC", "fdatasync EIO"])
def test_any_os_error_in_commit_cuts_the_file_back(tmp_path, monkeypatch, fail):
    d = tmp_path / "j"
    flow = build(d)
    f = files(d)[0]
    good = f.stat().st_size
    w = JournalWriter(d, DIGEST)
    real_pwritev = os.pwritev
    if fail.startswith("short"):
        calls = []

        def pwritev(fd, bufs, offset):
            calls.append(1)
            if len(calls) == 1:
                return real_pwritev(fd, [bytes(bufs[0])[:10]], offset)  # short: the writer goes on
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "pwritev", pwritev)
    else:
        monkeypatch.setattr(os, "fdatasync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    nxt = w.next_msg_seq
    w.append(b"x", stamped(nxt, 5), list(range(5)))
    w.append(b"y", stamped(nxt + 5, 1), [9])
    with pytest.raises(JournalError, match=f"^{f}: offset {good}: write failed \\((ENOSPC|EIO).*6 records not journaled"):
        w.commit()
    assert f.stat().st_size == good and w.next_msg_seq == nxt
    monkeypatch.undo()
    flow.add(w, b"x", 2)  # the writer stays usable
    w.commit()
    w.close()
    assert_same(read_all(d), flow.batches)


# --- fsync policies ---------------------------------------------------------------------------


def count_syncs(monkeypatch):
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    return calls


def test_batch_policy_syncs_once_per_commit_for_all_its_appends(tmp_path, monkeypatch):
    calls = count_syncs(monkeypatch)
    w = JournalWriter(tmp_path, DIGEST, fsync="batch")
    flow = Flow()
    for _ in range(3):
        for k in range(10):
            flow.add(w, b"c%d" % k, 1)
        w.commit()
        w.commit()  # nothing new: no write, no sync
    assert len(calls) == 3
    w.close()
    assert len(calls) == 3


def test_interval_policy_syncs_at_most_once_per_interval(tmp_path, monkeypatch):
    calls = count_syncs(monkeypatch)
    now = [0]
    w = JournalWriter(tmp_path, DIGEST, fsync="interval:1", clock=lambda: now[0])
    flow = Flow()
    ms = 1_000_000
    for t in range(0, 10 * ms, ms // 4):  # four commits a millisecond: synced at 1, 2, ... 9 ms
        now[0] = t
        flow.add(w, b"c", 1)
        w.commit()
    assert len(calls) == 9
    now[0] = 9 * ms + ms // 2
    flow.add(w, b"c", 1)
    w.commit()
    w.tick()
    assert len(calls) == 9  # the interval has not passed
    w.tick(10 * ms)
    assert len(calls) == 10
    n = 9
    w.tick(now[0] + 5 * ms)
    assert len(calls) == n + 1  # nothing unsynced
    flow.add(w, b"c", 1)
    w.commit()
    w.close()  # what is unsynced is synced at close
    assert len(calls) == n + 2


def test_none_policy_never_syncs(tmp_path, monkeypatch):
    calls = count_syncs(monkeypatch)
    w = JournalWriter(tmp_path, DIGEST, fsync="none")
    flow = Flow()
    for _ in range(5):
        flow.add(w, b"c", 4)
        w.commit()
        w.tick(10**18)
    w.close()
    assert calls == []
    assert_same(read_all(tmp_path), flow.batches)


@pytest.mark.parametrize("text", ["", "always", "interval", "interval:", "interval:0", "interval:-1", "interval:x"])
def test_a_bad_fsync_policy_is_a_clear_value_error(text):
    with pytest.raises(ValueError, match="expected batch, none or interval:<ms>"):
        parse_fsync(text)
    assert str(parse_fsync("interval:0.5")) == "interval:0.5" and parse_fsync("none").kind == "none"


# --- tickbook journal -------------------------------------------------------------------------


def test_the_command_summarises_verifies_and_exports(tmp_path, capsys):
    d = tmp_path / "j"
    flow = build(d, rotate_bytes=1024)
    n = len(flow.records())
    from tickbook.cli import main as tickbook_main

    assert tickbook_main(["journal", str(d), "--config", str(DEFAULT_VENUE_PATH)]) == 0
    out = capsys.readouterr().out
    s = scan_journal(d)
    assert f"{len(s.files)} files, {s.batches} batches, {n} records, msg_seq 1..{n}, every crc32c verified" in out
    assert f"  alice  {s.sessions[b'alice']} records" in out and "  0x008f010203  " in out
    assert "torn tail: none" in out

    npy = tmp_path / "flow.npy"
    assert journal_main([str(d), "--export", str(npy)]) == 0
    assert f"exported {n} records" in capsys.readouterr().out
    assert np.array_equal(np.load(npy), flow.records())
    assert np.array_equal(read_flow(npy, VENUE).orders, flow.records())  # what `tickbook replay` reads

    assert journal_main([str(d), "--export", str(npy), "--after", "10"]) == 0
    assert np.array_equal(np.load(npy)["msg_seq"], np.arange(11, n + 1))


def test_the_command_refuses_a_corrupt_journal_or_another_venue_in_one_line(tmp_path, capsys):
    d = tmp_path / "j"
    build(d)
    venue = tmp_path / "other.toml"
    venue.write_text(DEFAULT_VENUE_PATH.read_text().replace("max_orders = 1048576", "max_orders = 1024"))
    assert load_venue(venue).digest() != DIGEST
    assert journal_main([str(d), "--config", str(venue)]) == 2
    err = capsys.readouterr().err
    f = files(d)[0]
    assert err.count("\n") == 1 and err.startswith(f"tickbook journal: {f}: offset 16: written under venue")

    data = bytearray(f.read_bytes())
    data[200] ^= 0xFF
    f.write_bytes(bytes(data))
    assert journal_main([str(d)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"tickbook journal: {f}: offset 64: crc mismatch (a valid batch follows at offset 320)\n"
    assert journal_main([str(tmp_path / "nothing")]) == 2


def test_the_command_reports_a_torn_tail_and_does_not_export_it(tmp_path, capsys):
    d = tmp_path / "j"
    flow = build(d)
    f = files(d)[0]
    f.write_bytes(f.read_bytes()[:-5])
    npy = tmp_path / "flow.npy"
    assert journal_main([str(f), "--export", str(npy)]) == 0
    out = capsys.readouterr().out
    assert "torn tail: " + str(f) + ": offset " in out
    assert np.array_equal(np.load(npy), np.concatenate([b[1] for b in flow.batches[:-1]]))


def test_the_module_keeps_its_imports_inside_offload_and_engine():
    src = Path(journal.__file__).read_text() + (REPO / "offload" / "journal_cli.py").read_text()
    assert "tickbook" not in "".join(line for line in src.splitlines() if line.startswith(("import", "from")))


def test_a_journal_path_that_is_not_a_directory_is_refused_in_one_line():
    """`--journal /dev/full` (or any file): one line and exit 2 from the gateway, no traceback."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "offload.gateway", "--insecure-local", "--rings", f"tickbook-jtest-{os.getpid()}",
                        "--journal", "/dev/full", "--orders", "ipc:///tmp/tickbook-jtest-o", "--md",
                        "ipc:///tmp/tickbook-jtest-m"], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[1])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "/dev/full: not a directory" in lines[0], r.stderr
