"""The venue's write-ahead journal: every stamped order record on disk before the engine sees it.

A journal is a directory of files `journal-<first_msg_seq:016d>.tbj`, each named by the msg_seq
of its first record (the previous file's last + 1; 1 for the first file). Layout version 1,
little-endian:

    file header, 64 bytes
       0  magic b"TBJRNL\\0\\1"                   8
       8  layout version u32 (1)                 4
      12  header size u32 (64)                   4
      16  venue digest (VenueConfig.digest())   16  a journal replays only under its venue
      32  session id u64                         8  random per writer open: the run that created the file
      40  first_msg_seq i64                      8
      48  created u64, ns since the epoch        8
      56  crc32c u32 of bytes 0..55              4
      60  zero                                   4
    batches, back to back; each a multiple of 8 bytes long, so each starts 8-aligned
       0  magic u32 b"TBJB"
       4  crc32c u32 of the batch from byte 8 to its end
       8  first_msg_seq i64                          the previous batch's first_msg_seq + its n
      16  n u32                                      records in the batch
      20  session name length u16
      22  flags u16 (0)
      24  zero, 8 bytes
      32  session name, zero-padded to a multiple of 8
          n records (ORDER_DTYPE, 64 B) as the gateway stamped them: msg_seq first_msg_seq, +1, ...
          n int64: each record's msg_seq before the stamp, the client's number (to answer a resend)

A batch is valid when its magic, crc and msg_seq continuity hold. A bad batch with no valid
batch after it, in the last file, is a torn tail (a crash during a write): readers stop there
and the writer cuts it, with one log line. A bad batch anywhere else is corruption: a
JournalError "<file>: offset <N>: <why>", never cut silently. So is a gap between files, a file
of another layout version or of another venue.

read_journal yields batches, load_journal gives every record in one array (recovery),
scan_journal counts; `tickbook journal` (offload/journal_cli.py) summarises, verifies, exports.
"""

from __future__ import annotations

import errno
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import crc32c
import numpy as np

from engine.durable import fsync_dir
from engine.records import ORDER_DTYPE, RECORD_SIZE

VERSION = 1
FILE_MAGIC = b"TBJRNL\x00\x01"
BATCH_MAGIC = int.from_bytes(b"TBJB", "little")
HEADER_SIZE = 64
BATCH_HEADER = 32
_FILE_HEAD = struct.Struct("<8sII16sQqQ")  # the 56 bytes the header's crc covers
_U32 = struct.Struct("<I")
_BATCH = struct.Struct("<IIqIHH8x")
_MAGIC_CRC = struct.Struct("<II")
_BATCH_TAIL = struct.Struct("<qIHH8x")  # bytes 8..31: covered by the batch's crc
_STAMPED = [None] + [struct.Struct("<" + "32xq24x" * n) for n in range(1, 17)]  # msg_seq fields
_FILE_NAME = re.compile(r"journal-(\d{16})\.tbj")
_IOV_MAX = 1024  # Linux's limit of buffers in one writev
_crc = crc32c.crc32c


class JournalError(Exception):
    """A journal that cannot be read or written as it is: "<file>: offset <N>: <why>"."""


# --- fsync policies ------------------------------------------------------------------------


@dataclass(frozen=True)
class FsyncPolicy:
    kind: str  # "batch", "interval" or "none"
    interval_ns: int = 0

    def __str__(self) -> str:
        return f"interval:{self.interval_ns / 1e6:g}" if self.kind == "interval" else self.kind


def parse_fsync(text: str | FsyncPolicy) -> FsyncPolicy:
    """batch: fdatasync after every commit (group commit: one sync for all its batches);
    interval:<ms>: at most one fdatasync every <ms> ms, a crash loses at most that much;
    none: never, the OS writes back when it likes."""
    if isinstance(text, FsyncPolicy):
        return text
    if text in ("batch", "none"):
        return FsyncPolicy(text)
    kind, _, ms = str(text).partition(":")
    try:
        value = float(ms) if kind == "interval" else -1.0
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"fsync policy {text!r}: expected batch, none or interval:<ms> with ms > 0 (e.g. interval:1)")
    return FsyncPolicy("interval", int(value * 1e6))


# --- reading and verifying -----------------------------------------------------------------


@dataclass(frozen=True)
class TornTail:
    file: str
    offset: int
    bytes: int
    why: str

    def __str__(self) -> str:
        return f"{self.file}: offset {self.offset}: {self.bytes} bytes of torn tail ({self.why})"


@dataclass
class _Verified:
    """One file checked whole, its bytes in memory, its batches located."""

    path: Path
    buf: np.ndarray  # the whole file, uint8
    session_id: int
    created_ns: int
    first: int  # msg_seq of its first record
    pos: np.ndarray  # offset of each valid batch
    rec: np.ndarray  # offset of each valid batch's first record
    counts: np.ndarray  # records of each valid batch
    sess: np.ndarray  # index in names of each valid batch's session
    names: list[bytes]
    end: int  # the end of the last valid batch
    torn: TornTail | None  # the bytes after end, in the last file
    header_torn: bool = False  # torn at creation: no valid header, nothing journaled in it

    @property
    def next_seq(self) -> int:
        return self.first + int(self.counts.sum())

    def cseqs(self) -> np.ndarray:
        """Every record's client sequence number, in record order."""
        return self._gather(self.rec + RECORD_SIZE * self.counts, 8, 0)

    def stamped(self) -> np.ndarray:
        """Every record's msg_seq field."""
        return self._gather(self.rec, RECORD_SIZE, 32)

    def _offsets(self, starts, stride):
        before = np.cumsum(self.counts) - self.counts
        return np.repeat(starts - before * stride, self.counts) + np.arange(int(self.counts.sum())) * stride

    def _gather(self, starts, stride, field):
        # every batch, so every record and cseq, is 8-aligned: one int64 view, one fancy index
        return self.buf[: len(self.buf) & ~7].view("<i8")[(self._offsets(starts, stride) + field) >> 3]


def _journal_files(path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise JournalError(f"{p}: no such journal (neither a directory nor a file)")
    named = sorted((int(m[1]), f) for f in p.iterdir() if (m := _FILE_NAME.fullmatch(f.name)))
    return [f for _, f in named]


def _header(path: Path, mv, size: int, digest: str | None, expect: int | None):
    """(session id, created, first_msg_seq), or JournalError; None when it is torn (short, no
    magic, bad crc: the caller decides whether that may be a torn creation)."""
    if size < HEADER_SIZE or mv[:8] != FILE_MAGIC:
        return None
    magic, version, hsize, vdigest, sid, first, created = _FILE_HEAD.unpack_from(mv, 0)
    if version != VERSION:
        raise JournalError(f"{path}: offset 8: layout version {version}, this tickbook reads version {VERSION}")
    if _U32.unpack_from(mv, 56)[0] != _crc(mv[:56]):
        return None
    if hsize != HEADER_SIZE:
        raise JournalError(f"{path}: offset 12: header size {hsize}, expected {HEADER_SIZE}")
    if digest is not None and vdigest != bytes.fromhex(digest):
        raise JournalError(f"{path}: offset 16: written under venue {vdigest.hex()}, not this venue {digest}")
    m = _FILE_NAME.fullmatch(path.name)
    if m and int(m[1]) != first:
        raise JournalError(f"{path}: offset 40: first msg_seq {first}, but the file name says {int(m[1])}")
    if expect is not None and first != expect:
        raise JournalError(f"{path}: offset 40: first msg_seq {first}, expected {expect} (a file missing?)")
    return sid, created, first


def _chain(buf, size: int, pos: int):
    """The batches from pos found at once: the 8-aligned batch magics, each header's length
    leading to the next one. (offset, n, name length, first_msg_seq, crc) arrays, unchecked."""
    words = buf[: size & ~7].view("<i8")
    k0 = pos >> 3
    c = np.flatnonzero((words[k0:] & 0xFFFFFFFF) == BATCH_MAGIC) + k0
    c = c[c + 4 <= len(words)]  # a whole header
    if not len(c) or c[0] != k0:
        c = c[:0]
    meta = words[c + 2]
    n, nlen = meta & 0xFFFFFFFF, meta >> 32 & 0xFFFF
    at = c * 8
    end = at + BATCH_HEADER + (nlen + 7 & ~7) + (RECORD_SIZE + 8) * n
    broken = np.flatnonzero(end[:-1] != at[1:])  # a magic inside a record, or a bad batch
    k = int(broken[0]) + 1 if len(broken) else len(c)
    return at[:k], n[:k], nlen[:k], words[c[:k] + 1], words[c[:k]] >> 32 & 0xFFFFFFFF


def _sessions(data: bytes, buf, name_at, nlen) -> tuple[np.ndarray, list[bytes]]:
    """Each batch's session as an index into the distinct names, in order of first appearance.
    A million batches name a handful of sessions: the zero-padded name words and the length are
    hashed, the hashes grouped by numpy, and every batch compared with its group's first (a
    collision falls back to a slice a batch)."""
    if not len(name_at):
        return np.zeros(0, np.int64), []
    words = buf[: len(buf) & ~7].view("<u8")
    nw = (nlen + 7) >> 3
    key = nlen.astype(np.uint64)
    cols = []
    for c in range(int(nw.max())):
        col = np.where(nw > c, words[np.minimum((name_at >> 3) + c, len(words) - 1)], np.uint64(0))
        cols.append(col)
        key = key * np.uint64(0x9E3779B97F4A7C15) ^ col  # (wraps: a hash)
    _, first, codes = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes, first = rank[codes.reshape(-1)], first[order]
    rep = first[codes]
    if (nlen != nlen[rep]).any() or any((col != col[rep]).any() for col in cols):
        names = [data[a:b] for a, b in zip(name_at.tolist(), (name_at + nlen).tolist())]
        index = dict.fromkeys(names)
        for i, name in enumerate(index):
            index[name] = i
        return np.array(list(map(index.__getitem__, names)), np.int64), list(index)
    return codes.astype(np.int64), [data[int(name_at[i]) : int(name_at[i] + nlen[i])] for i in first]


def _walk(data: bytes, buf, size: int, pos: int, seq: int, trusted: int = 0):
    """Follow the batches from pos while they are valid; their arrays (offset, first record,
    n, session index), the session names, the end of the last valid batch, and (offset, why)
    of the first bad one or None. numpy finds and checks the chain of batches and their sessions
    (a crc call a batch is all that is left to Python); a Python step a batch takes over where
    that chain stops. Slices of bytes: cheaper than memoryviews for small batches. Batches whose
    records all have msg_seq <= trusted skip the crc: a snapshot covers them (recovery)."""
    at, n, nlen, first, crc = _chain(buf, size, pos)
    end = at + BATCH_HEADER + (nlen + 7 & ~7) + (RECORD_SIZE + 8) * n
    k = int(np.searchsorted(end, size, side="right"))  # whole batches (only the last may be cut short)
    wrong = np.flatnonzero(first[:k] != seq + np.cumsum(n[:k]) - n[:k])
    k = int(wrong[0]) if len(wrong) else k
    j = int(np.searchsorted(first[:k] + n[:k], trusted + 1, side="right"))  # batches ending <= trusted
    crcs = np.array([_crc(data[a:b]) for a, b in zip((at[j:k] + 8).tolist(), end[j:k].tolist())], np.int64)
    wrong = np.flatnonzero(crcs != crc[j:k]) + j
    k = int(wrong[0]) if len(wrong) else k
    sess, names = _sessions(data, buf, at[:k] + BATCH_HEADER, nlen[:k])
    index = dict(zip(names, range(len(names))))
    chain = [at[:k], end[:k] - (RECORD_SIZE + 8) * n[:k], n[:k], sess]
    if k:
        pos, seq = int(end[k - 1]), seq + int(n[:k].sum())
    steps = [], [], [], []
    unpack = _BATCH.unpack_from
    bad = None
    while pos < size:  # one batch a step: where the chain stopped, to the end or the first bad batch
        if size - pos < BATCH_HEADER:
            bad = (pos, f"batch header cut short ({size - pos} of {BATCH_HEADER} bytes)")
            break
        magic, c, f, m, ln, _ = unpack(data, pos)
        if magic != BATCH_MAGIC:
            bad = (pos, "no batch magic")
            break
        rec = pos + BATCH_HEADER + (ln + 7 & ~7)
        stop = rec + (RECORD_SIZE + 8) * m
        if stop > size:
            bad = (pos, f"batch of {stop - pos} bytes cut short at {size - pos}")
            break
        if _crc(data[pos + 8 : stop]) != c:
            bad = (pos, "crc mismatch")
            break
        if f != seq:
            bad = (pos, f"batch begins at msg_seq {f}, expected {seq}")
            break
        for col, x in zip(steps, (pos, rec, m, index.setdefault(data[pos + BATCH_HEADER : pos + BATCH_HEADER + ln],
                                                                 len(index)))):
            col.append(x)
        pos, seq = stop, seq + m
    arrays = [np.concatenate([a, np.array(b, np.int64)]) if b else a for a, b in zip(chain, steps)]
    return arrays, list(index), pos, bad


def _valid_batch_after(buf, mv, pos: int) -> int | None:
    """Offset of a valid batch (magic and crc) after the bad one at pos: then pos is not a torn tail."""
    start, size = pos + 8, len(buf)
    if size - start < BATCH_HEADER:
        return None
    words = np.frombuffer(buf, "<u4", (size - start) // 4, start)[::2]  # the 8-aligned words
    for k in np.flatnonzero(words == BATCH_MAGIC).tolist():
        p = start + 8 * k
        if size - p < BATCH_HEADER:
            break
        _, crc, _, n, nlen, _ = _BATCH.unpack_from(mv, p)
        end = p + BATCH_HEADER + (nlen + 7 & ~7) + (RECORD_SIZE + 8) * n
        if end <= size and _crc(mv[p + 8 : end]) == crc:
            return p
    return None


def _verify_file(path: Path, digest: str | None, expect: int | None, last: bool, trusted: int = 0) -> _Verified:
    try:
        data = path.read_bytes()  # one read: verification then slices memory
    except OSError as e:
        raise JournalError(f"{path}: offset 0: cannot read: {e.strerror}") from None
    buf, mv, size = np.frombuffer(data, np.uint8), memoryview(data), len(data)
    head = _header(path, mv, size, digest, expect)
    if head is None:
        why = "file header cut short" if size < HEADER_SIZE else "no valid file header (magic or crc)"
        if not (last and size <= HEADER_SIZE):
            raise JournalError(f"{path}: offset 0: {why}")
        m = _FILE_NAME.fullmatch(path.name)
        first = int(m[1]) if m else (expect or 1)
        if expect is not None and first != expect:
            raise JournalError(f"{path}: offset 0: {why}; its name says msg_seq {first}, expected {expect}")
        empty = np.zeros(0, np.int64)
        return _Verified(path, buf, 0, 0, first, empty, empty, empty, empty, [], 0,
                         TornTail(str(path), 0, size, why), header_torn=True)
    sid, created, first = head
    (pos, rec, counts, sess), names, end, bad = _walk(data, buf, size, HEADER_SIZE, first, trusted)
    v = _Verified(path, buf, sid, created, first, pos, rec, counts, sess, names, end, None)
    seqs = v.stamped()  # every record's msg_seq field, checked at once
    wrong = np.flatnonzero(seqs != np.arange(first, first + len(seqs)))
    if len(wrong):
        r = int(wrong[0])
        k = int(np.searchsorted(np.cumsum(counts), r, side="right"))
        bad = (int(pos[k]), f"record {r - int(counts[:k].sum())} of the batch has msg_seq {int(seqs[r])}, "
                            f"expected {first + r}")
        v.pos, v.rec, v.counts, v.sess, v.end = pos[:k], rec[:k], counts[:k], sess[:k], int(pos[k])
    if bad is not None:
        at, why = bad
        later = _valid_batch_after(buf, mv, at)
        if later is not None or not last:
            follows = f" (a valid batch follows at offset {later})" if later is not None else ""
            raise JournalError(f"{path}: offset {at}: {why}{follows}")
        v.torn = TornTail(str(path), at, size - at, why)
    return v


def _verified(path, digest: str | None, trusted: int = 0, whole_files: bool = False):
    """Each file of the journal, verified, in order; one file in memory at a time. trusted: the
    msg_seq a snapshot covers; files that end before it are skipped (their successor's name
    says where it starts; not with whole_files, the writer's case: it needs every session's
    numbers), and batches up to it are not crc-checked: recovery replays only what follows a
    snapshot, which has its own checksums."""
    files = _journal_files(path)
    expect = None
    for i, f in enumerate(files):
        after = (_FILE_NAME.fullmatch(files[i + 1].name) if i + 1 < len(files) and trusted and not whole_files
                 else None)
        if after is not None and int(after[1]) <= trusted + 1:
            expect = None
            continue
        v = _verify_file(f, digest, expect, last=i == len(files) - 1, trusted=trusted)
        expect = v.next_seq
        yield v


def read_journal(path, venue_digest: str | None = None, after_msg_seq: int = 0, on_torn_tail=None):
    """(session, records, cseqs) of every batch, in msg_seq order, from after_msg_seq + 1 on:
    records a view of ORDER_DTYPE, cseqs int64. Every file is verified whole before its first
    batch is yielded. A torn tail ends the iteration; on_torn_tail(TornTail) is told of it."""
    for v in _verified(path, venue_digest):
        ends = v.first + np.cumsum(v.counts)  # msg_seq after each batch
        k0 = int(np.searchsorted(ends, after_msg_seq + 1, side="right"))
        names, buf = v.names, v.buf
        seq = v.first + int(v.counts[:k0].sum())
        for r, n, s in zip(v.rec[k0:].tolist(), v.counts[k0:].tolist(), v.sess[k0:].tolist()):
            recs = np.frombuffer(buf, ORDER_DTYPE, n, r)
            cs = np.frombuffer(buf, "<i8", n, r + RECORD_SIZE * n)
            if seq <= after_msg_seq:
                skip = after_msg_seq + 1 - seq
                recs, cs = recs[skip:], cs[skip:]
            seq += n
            yield names[s], recs, cs
        if v.torn is not None and on_torn_tail is not None:
            on_torn_tail(v.torn)


@dataclass
class JournalRecords:
    """A journal's records at once, for recovery and export."""

    records: np.ndarray  # ORDER_DTYPE, as stamped: msg_seq consecutive
    cseqs: np.ndarray  # int64, each record's client sequence number
    session: np.ndarray  # int32, each record's index in names
    names: list[bytes]
    torn_tail: TornTail | None


def _runs(words, starts, lengths) -> np.ndarray:
    """The words of runs [start, start + length) (disjoint, in order), gathered at once: +1 where
    a run starts, -1 where it ends, and the running sum marks the words inside one."""
    some = lengths > 0
    inside = np.zeros(len(words) + 1, np.int8)
    inside[starts[some]] = 1
    inside[(starts + lengths)[some]] = -1  # (runs never touch: a header or the cseqs lie between)
    return words[np.cumsum(inside[:-1], dtype=np.int8).view(bool)]


def load_journal(path, venue_digest: str | None = None, after_msg_seq: int = 0,
                 covered: bool = False) -> JournalRecords:
    """Every record after after_msg_seq in one array, verified as read_journal does: what
    recovery feeds the matcher and the command exports. Gathered with numpy, not a batch object
    a message as read_journal yields (a million one-record messages). covered: a snapshot
    covers the records up to after_msg_seq, so they are not checked (recovery's case)."""
    recs, cseqs, session, names, torn = [], [], [], {}, None
    for v in _verified(path, venue_digest, after_msg_seq if covered else 0):
        torn = v.torn
        skip = max(0, min(after_msg_seq + 1 - v.first, int(v.counts.sum())))
        if skip == int(v.counts.sum()):
            continue
        ends = np.cumsum(v.counts)
        b0 = int(np.searchsorted(ends, skip, side="right"))  # the batch of the first record wanted
        drop = skip - (int(ends[b0 - 1]) if b0 else 0)
        rec, counts = v.rec[b0:], v.counts[b0:]
        lo = int(rec[0]) >> 3
        words = v.buf[lo * 8 : len(v.buf) & ~7].view("<i8")
        recs.append(_runs(words, (rec >> 3) - lo, counts * (RECORD_SIZE // 8)).view(ORDER_DTYPE)[drop:])
        cseqs.append(_runs(words, ((rec + RECORD_SIZE * counts) >> 3) - lo, counts)[drop:])
        local = np.array([names.setdefault(name, len(names)) for name in v.names], np.int32)
        session.append(np.repeat(local[v.sess[b0:]], counts)[drop:])
    if not recs:
        return JournalRecords(np.zeros(0, ORDER_DTYPE), np.zeros(0, np.int64), np.zeros(0, np.int32), list(names), torn)
    return JournalRecords(np.concatenate(recs), np.concatenate(cseqs), np.concatenate(session), list(names), torn)


@dataclass(frozen=True)
class FileSummary:
    name: str
    first_msg_seq: int
    last_msg_seq: int  # first_msg_seq - 1 when it holds no record
    bytes: int
    session_id: int
    created_ns: int


@dataclass
class JournalSummary:
    path: str
    files: list[FileSummary]
    batches: int
    records: int
    first_msg_seq: int  # 0 for an empty journal
    last_msg_seq: int
    sessions: dict[bytes, int]  # records per session name
    torn_tail: TornTail | None


def scan_journal(path, venue_digest: str | None = None) -> JournalSummary:
    """Verify every file and batch (crcs, msg_seq continuity) and count what is there."""
    files, sessions, batches, torn = [], {}, 0, None
    for v in _verified(path, venue_digest):
        files.append(FileSummary(v.path.name, v.first, v.next_seq - 1, len(v.buf), v.session_id, v.created_ns))
        batches += len(v.counts)
        per = np.bincount(v.sess, weights=v.counts, minlength=len(v.names))
        for name, k in zip(v.names, per.tolist()):
            sessions[name] = sessions.get(name, 0) + int(k)
        torn = v.torn
    records = sum(f.last_msg_seq - f.first_msg_seq + 1 for f in files)
    first = files[0].first_msg_seq if records else 0
    return JournalSummary(str(path), files, batches, records, first, first + records - 1 if records else 0,
                          sessions, torn)


# --- writing -------------------------------------------------------------------------------


def _write_all(fd: int, bufs: list, offset: int) -> None:
    """pwritev everything at offset: IOV_MAX buffers a call, on after a short write."""
    i = 0
    while i < len(bufs):
        chunk = bufs[i : i + _IOV_MAX]
        done = os.pwritev(fd, chunk, offset)
        if done == 0:
            raise OSError(errno.EIO, "write made no progress")
        offset += done
        for b in chunk:
            if done < len(b):
                bufs[i] = memoryview(b)[done:]
                break
            done -= len(b)
            i += 1


def _os_error(e: OSError) -> str:
    return f"{errno.errorcode.get(e.errno, e.errno)} {e.strerror or e}"


class JournalWriter:
    """Appends stamped records to a journal directory: append() buffers, commit() makes durable
    (per the fsync policy) what was appended, in one pwritev. Reopening recovers: verifies every
    file, cuts a torn tail, continues msg_seq and the sessions' state.

    sessions maps a session name to the highest client sequence number journaled for it. Finding
    the msg_seq of an older (session, cseq) is lookup(): memory holds only one cseq range a file
    and session, and lookup reads the files whose range holds it, newest first. Resends are rare
    and recent, and an index of every record (16+ bytes each, forever) would grow without bound."""

    def __init__(self, directory, venue_digest: str, fsync="batch", rotate_bytes: int = 256 << 20, log=None,
                 clock=time.monotonic_ns, trusted: int = 0):
        self.directory = Path(directory)
        self.digest = venue_digest
        self._digest_bytes = bytes.fromhex(venue_digest)
        if len(self._digest_bytes) != 16:
            raise ValueError(f"venue digest {venue_digest!r}: expected 32 hex digits")
        self.policy = parse_fsync(fsync)
        self.rotate_bytes = rotate_bytes
        self.log = log or (lambda msg: None)
        self.clock = clock  # monotonic ns: the interval policy's time
        self.session_id = int.from_bytes(os.urandom(8), "little")
        self.sessions: dict[bytes, int] = {}
        self._ranges: list[tuple[Path, dict[bytes, list[int]]]] = []  # per file: session -> [lo, hi]
        self._padded: dict[bytes, bytes] = {}
        self._pending, self._pending_sessions, self._pending_bytes = [], [], 0
        self._fd, self._dirty, self._synced_ns, self._rotate_failed = -1, False, clock(), False
        if self.directory.exists() and not self.directory.is_dir():
            raise JournalError(f"{self.directory}: not a directory (a journal is a directory of files)")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JournalError(f"{self.directory}: cannot create the journal directory: {e.strerror}") from None
        self._next = self._committed = self._recover(trusted)

    @property
    def next_msg_seq(self) -> int:
        """The msg_seq the next appended record must carry (appended but uncommitted included)."""
        return self._next

    @property
    def path(self) -> Path:
        return self._path

    def _recover(self, trusted: int) -> int:
        """trusted: what a snapshot covers; those batches' crcs are not checked (recovery does not
        replay them), their sessions' numbers are read all the same."""
        last = None
        for v in _verified(self.directory, self.digest, trusted, whole_files=True):
            ranges = {}
            if len(v.counts):
                cs, per_record = v.cseqs(), np.repeat(v.sess, v.counts)
                if len(v.names) < 1 << 15:
                    per_record = per_record.astype(np.int16)  # a stable sort of int16 is a radix sort
                order = np.argsort(per_record, kind="stable")
                keys, grouped = per_record[order], cs[order]
                starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys[:0]
                lo, hi = np.minimum.reduceat(grouped, starts), np.maximum.reduceat(grouped, starts)
                for i, a, b in zip(keys[starts].tolist(), lo.tolist(), hi.tolist()):
                    name = v.names[i]
                    ranges[name] = [a, b]
                    self.sessions[name] = max(self.sessions.get(name, b), b)
            self._ranges.append((v.path, ranges))
            last = v
        if last is None:
            self._start_file(1)
            return 1
        v, path = last, last.path
        v.buf = None  # the writer keeps no file in memory
        try:
            if v.header_torn:  # created, never written: start it again
                self.log(f"{path}: offset 0: removed a file torn at its creation ({v.torn.bytes} bytes, {v.torn.why})")
                os.unlink(path)
                fsync_dir(self.directory)
                self._ranges.pop()
                self._start_file(v.first)
                return v.first
            self._fd = os.open(path, os.O_RDWR)
            if v.torn is not None:
                os.ftruncate(self._fd, v.end)
                os.fsync(self._fd)
                self.log(f"{path}: offset {v.end}: cut {v.torn.bytes} bytes of torn tail ({v.torn.why})")
        except OSError as e:
            raise JournalError(f"{path}: offset {v.end}: cannot recover: {_os_error(e)}") from None
        self._path, self._offset = path, v.end
        return v.next_seq

    def start_at(self, msg_seq: int) -> None:
        """Number an empty journal's first record msg_seq: a gateway attached to a running
        engine journals from where the engine's ring is. Refused when records are journaled
        and the next is not msg_seq (another venue's journal, or a gap)."""
        if msg_seq == self._next:
            return
        if self._next != 1 or self._pending or self._offset != HEADER_SIZE or len(self._ranges) != 1:
            raise JournalError(f"{self._path}: offset {self._offset}: the journal continues at msg_seq {self._next}, "
                               f"the venue at {msg_seq}: not this venue's journal")
        os.close(self._fd)
        self._fd = -1
        os.unlink(self._path)
        self._ranges.pop()
        self._start_file(msg_seq)
        self._next = self._committed = msg_seq

    def _start_file(self, first: int) -> None:
        path = self.directory / f"journal-{first:016d}.tbj"
        try:
            self._fd = self._create(path, first)
        except OSError as e:
            raise JournalError(f"{path}: offset 0: cannot create: {_os_error(e)}") from None
        self._path, self._offset = path, HEADER_SIZE
        self._ranges.append((path, {}))

    def _create(self, path: Path, first: int) -> int:
        head = _FILE_HEAD.pack(FILE_MAGIC, VERSION, HEADER_SIZE, self._digest_bytes, self.session_id, first,
                               time.time_ns())
        head += _U32.pack(_crc(head)) + bytes(4)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, [head], 0)
            os.fsync(fd)
            fsync_dir(self.directory)  # the file's name is durable too
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return fd

    def append(self, session: bytes, records, cseqs) -> None:
        """Buffer one batch: records (n * 64 stamped bytes, msg_seq next_msg_seq, +1, ...; copied
        once, the caller may reuse them) and their n client sequence numbers. No system call."""
        rec = records.tobytes() if isinstance(records, np.ndarray) else bytes(records)
        n, first = len(rec) // RECORD_SIZE, self._next
        if n == 0 or n * RECORD_SIZE != len(rec) or len(cseqs) != n:
            raise ValueError(f"append: {len(rec)} bytes of records and {len(cseqs)} cseqs: expected n * 64 and n, n > 0")
        if n <= 16:
            ok = _STAMPED[n].unpack(rec) == tuple(range(first, first + n))
        else:
            ok = bool((np.frombuffer(rec, "<i8")[4::8] == np.arange(first, first + n)).all())
        if not ok:
            raise ValueError(f"append: records' msg_seq must be {first}..{first + n - 1} (the journal's next)")
        if isinstance(cseqs, np.ndarray):
            cs = cseqs.astype("<i8", copy=False)
            cbytes, lo, hi = cs.tobytes(), int(cs.min()), int(cs.max())
        else:
            cbytes, lo, hi = struct.pack(f"<{n}q", *cseqs), min(cseqs), max(cseqs)
        padded = self._padded.get(session)
        if padded is None:
            if not isinstance(session, bytes) or len(session) > 0xFFFF:
                raise ValueError(f"append: session name must be bytes of at most 65535, got {session!r:.80}")
            padded = self._padded[session] = session + bytes(-len(session) % 8)
        tail = _BATCH_TAIL.pack(first, n, len(session), 0)
        head = _MAGIC_CRC.pack(BATCH_MAGIC, _crc(cbytes, _crc(rec, _crc(padded, _crc(tail))))) + tail + padded
        self._pending += (head, rec, cbytes)
        self._pending_bytes += len(head) + len(rec) + len(cbytes)
        self._pending_sessions.append((session, lo, hi))
        self._next = first + n

    def commit(self) -> None:
        """Write what was appended since the last commit, then fdatasync per the policy. On any
        OSError the file is cut back, the batches are forgotten (next_msg_seq goes back) and a
        JournalError says so: those records are not journaled and must not be acted on."""
        if not self._pending:
            return
        if self._fd < 0:
            raise JournalError(f"{self._path}: offset {self._offset}: the writer is closed")
        try:
            _write_all(self._fd, self._pending, self._offset)
            if self.policy.kind == "batch":
                os.fdatasync(self._fd)
            elif self.policy.kind == "interval":
                self._dirty = True
                now = self.clock()
                if now - self._synced_ns >= self.policy.interval_ns:
                    self._sync(now)
        except OSError as e:
            self._undo(e)
        self._offset += self._pending_bytes
        self._committed = self._next
        ranges = self._ranges[-1][1]
        for s, lo, hi in self._pending_sessions:
            if hi > self.sessions.get(s, hi - 1):
                self.sessions[s] = hi
            r = ranges.get(s)
            if r is None:
                ranges[s] = [lo, hi]
            else:
                r[0], r[1] = min(r[0], lo), max(r[1], hi)
        self._forget()
        if self._offset >= self.rotate_bytes:
            self._rotate()

    def _forget(self) -> None:
        self._pending, self._pending_sessions, self._pending_bytes = [], [], 0

    def _undo(self, err: OSError):
        lost, at = self._next - self._committed, self._offset
        self._forget()
        self._next = self._committed
        try:
            os.ftruncate(self._fd, at)
        except OSError as e:  # the file's end is unknown: appending on could bury good batches
            os.close(self._fd)
            self._fd = -1
            raise JournalError(f"{self._path}: offset {at}: write failed ({_os_error(err)}) and cannot be cut "
                               f"back ({_os_error(e)}): the writer is closed") from None
        raise JournalError(f"{self._path}: offset {at}: write failed ({_os_error(err)}): "
                           f"{lost} records not journaled") from None

    def _sync(self, now: int) -> None:
        os.fdatasync(self._fd)
        self._dirty, self._synced_ns = False, now

    def tick(self, now_ns: int | None = None) -> None:
        """The interval policy's timer: fdatasync if something is unsynced and the interval passed."""
        if self._dirty:
            now = self.clock() if now_ns is None else now_ns
            if now - self._synced_ns >= self.policy.interval_ns:
                try:
                    self._sync(now)
                except OSError as e:
                    raise JournalError(f"{self._path}: offset {self._offset}: fdatasync failed ({_os_error(e)}): "
                                       "records since the last sync may not be on disk") from None

    def _rotate(self) -> None:
        """Close the full file durably and start the next; if the next cannot be created, write
        on in this one (the commit succeeded) and try again after the next commit."""
        path = self.directory / f"journal-{self._next:016d}.tbj"
        try:
            fd = self._create(path, self._next)
        except OSError as e:
            if not self._rotate_failed:
                self.log(f"{path}: offset 0: cannot start the next file ({_os_error(e)}); writing on in {self._path}")
            self._rotate_failed = True
            return
        self._rotate_failed = False
        old_fd, old_path, dirty = self._fd, self._path, self._dirty
        self._fd, self._path, self._offset, self._dirty = fd, path, HEADER_SIZE, False
        self._ranges.append((path, {}))
        try:
            if dirty:  # (batch: synced by the commit)
                os.fdatasync(old_fd)
        except OSError as e:
            raise JournalError(f"{old_path}: fdatasync failed ({_os_error(e)}): "
                               "records since the last sync may not be on disk") from None
        finally:
            os.close(old_fd)

    def lookup(self, session: bytes, cseq: int, last: int | None = None):
        """The msg_seq of the committed record session sent as cseq (in the newest file that has
        one), or None: how the gateway answers a resend instead of executing it again. With
        last: (msg_seq of cseq, msg_seq of last) found in one pass, or None unless both are."""
        hi = cseq if last is None else last
        if hi > self.sessions.get(session, hi - 1):
            return None
        for path, ranges in reversed(self._ranges):
            r = ranges.get(session)
            if r is None or not r[0] <= cseq <= r[1]:
                continue
            # checked when written or opened: the crcs are not read again (trusted)
            v = _verify_file(path, self.digest, None, last=True, trusted=1 << 62)
            if session in v.names:
                mine = np.repeat(v.sess, v.counts) == v.names.index(session)
                cs = v.cseqs()
                found = [np.flatnonzero(mine & (cs == c)) for c in ((cseq,) if last is None else (cseq, last))]
                if all(len(f) for f in found):
                    at = [v.first + int(f[0]) for f in found]
                    return at[0] if last is None else tuple(at)
        return None

    def close(self) -> None:
        """Sync (unless the policy is none) and close; batches appended and not committed are dropped."""
        if self._fd < 0:
            return
        self._forget()
        self._next = self._committed
        fd, self._fd = self._fd, -1
        try:
            if self._dirty:  # (batch: synced by every commit)
                os.fdatasync(fd)
        except OSError as e:
            raise JournalError(f"{self._path}: fdatasync failed ({_os_error(e)})") from None
        finally:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
