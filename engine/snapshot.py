"""Snapshots: the matcher's whole state in one file, written atomically and read back exactly.

A snapshot `snapshot-<msg_seq:016d>.tbs` holds the EngineState after every order record with
msg_seq <= msg_seq. Recovery loads the newest valid one and replays the journal's records after
msg_seq through the same matcher (`advance`); the events and the state then equal those of one
uninterrupted run, byte for byte. Not a hot-path module: numpy, the standard library, crc32c.

File format, layout version 1 (little-endian; crc = CRC-32C):

    header, 60 bytes
      0  magic             8s   b"TICKSNAP"
      8  layout version    u32  1
     12  venue digest      16s  VenueConfig.digest() as bytes: the rules and record layout
     28  msg_seq           i64  the last order record the state has applied
     36  event seq         i64  ctr[C_SEQ], the last event seq written (checked against ctr)
     44  created           u64  ns since the epoch
     52  arrays            u32  the number of array entries, one per EngineState field
     56  header crc        u32  of bytes 0..55
    then, for every EngineState field in order, an entry of 92 bytes and its data
      0  name              32s  the field's name, NUL padded
     32  dtype             8s   numpy dtype string ("<i8", "|i1"), NUL padded
     40  ndim              u32  1..4
     44  shape             4 x u64  the full shape, unused dimensions 0
     76  rows              u64  rows stored (along the first axis): the used prefix
     84  data crc          u32  of the data that follows
     88  entry crc         u32  of bytes 0..87 of the entry
     92  data              rows x (the bytes of one row), C order
    and nothing after the last entry.

Rows past `rows` are zeros. Columns of a pool that fills from its start are stored up to
the pool's high-water mark: the order pool (ctr[C_UNUSED], free stack included, whose
entries are slots once used), the level pool (ctr[C_LVL_UNUSED]) and the account slots
(a_ctr[A_TRACKED]). Hashed tables (id_tab, a_key, a_val), which any message may touch
anywhere, and every other column are stored whole. The default venue's empty pools are
~60 MB of the ~96 MB of state; its 32 MB id table is the bulk of a snapshot.

Any problem reading a snapshot raises SnapshotError "<file>: offset <N>: <why>", N the offset
of the part found wrong; a snapshot of another venue or layout version is refused the same way.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
import time
from pathlib import Path
from typing import Callable, NamedTuple

import crc32c
import numpy as np

from engine.accounts import A_TRACKED
from engine.api import Venue, as_venue
from engine.config import VenueConfig, profile_tables
from engine.diagnostics import process_logger
from engine.durable import fsync_dir
from engine.records import ORDER_DTYPE
from engine.state import C_LVL_UNUSED, C_SEQ, C_UNUSED, EngineState, _layout, prefault

MAGIC = b"TICKSNAP"
SNAPSHOT_LAYOUT_VERSION = 1
HEADER = struct.Struct("<8sI16sqqQII")
ENTRY = struct.Struct("<32s8sI4QQII")
MAX_NDIM = 4
# offsets within the header and an entry, for error messages
H_VERSION, H_DIGEST, H_MSG_SEQ, H_EVENT_SEQ, H_ARRAYS, H_CRC = 8, 12, 28, 36, 52, 56
E_DTYPE, E_SHAPE, E_ROWS, E_CRC = 32, 44, 76, 88

SNAPSHOT_RE = re.compile(r"snapshot-(\d{16})\.tbs")
# A file being written: the writer's pid, so that cleaning up never removes a live writer's file.
TEMP_RE = re.compile(r"\.snapshot-\d{16}\.(\d+)\.[0-9a-f]+\.tmp")

# Columns that fill from their start; stored up to the high-water mark of their pool.
ORDER_POOL = ("o_id", "o_price", "o_leaves", "o_acct", "o_sym", "o_side", "o_tif", "o_level",
              "o_prev", "o_next", "o_aprev", "o_anext", "o_free")
LEVEL_POOL = ("l_price", "l_qty", "l_head", "l_tail", "l_free")
ACCOUNT_SLOTS = ("a_id", "a_prof", "a_disabled", "a_bucket", "a_count", "a_open", "a_head", "a_tail",
                 "pos", "open_buy", "open_sell")


class SnapshotError(ValueError):
    """A snapshot that cannot be used: "<file>: offset <N>: <why>"."""

    def __init__(self, path, offset: int, why: str):
        super().__init__(f"{path}: offset {offset}: {why}")
        self.path, self.offset, self.why = Path(path), offset, why

    def __reduce__(self):  # picklable (a worker process may raise it)
        return type(self), (self.path, self.offset, self.why)


class SnapshotHeader(NamedTuple):
    version: int
    digest: bytes
    msg_seq: int
    event_seq: int
    created_ns: int
    n_arrays: int


def snapshot_name(msg_seq: int) -> str:
    return f"snapshot-{msg_seq:016d}.tbs"


def _expected_layout(venue: VenueConfig) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return {name: (tuple(int(d) for d in shape), np.dtype(dt))
            for name, (shape, dt, _) in _layout(venue, profile_tables(venue)).items()}


def _check_state(st: EngineState, venue: VenueConfig) -> None:
    """A state of another venue's shape would write a snapshot no load accepts: refuse it now."""
    for name, (shape, dt) in _expected_layout(venue).items():
        a = getattr(st, name)
        if a.shape != shape or a.dtype != dt or not a.flags.c_contiguous:
            raise ValueError(f"state column {name} is {a.dtype}{list(a.shape)}, the venue's layout "
                             f"has {dt}{list(shape)} (C-contiguous)")


def _used_rows(st: EngineState) -> dict[str, int]:
    """Rows of each column worth storing: up to its pool's high-water mark, else all of it.
    Should a column ever hold something past its mark, it is stored whole: a snapshot is
    exact whatever the pools do, the marks only keep it small."""
    marks = {**dict.fromkeys(ORDER_POOL, int(st.ctr[C_UNUSED])),
             **dict.fromkeys(LEVEL_POOL, int(st.ctr[C_LVL_UNUSED])),
             **dict.fromkeys(ACCOUNT_SLOTS, int(st.a_ctr[A_TRACKED]))}
    rows = {}
    for name, a in zip(EngineState._fields, st):
        n = len(a)
        mark = marks.get(name, n)
        rows[name] = mark if 0 <= mark < n and not a[mark:].any() else n
    return rows


def _bytes_of(a: np.ndarray) -> memoryview:
    return memoryview(a).cast("B")


# --- writing ----------------------------------------------------------------------------


def save_snapshot(directory: str | Path, st: EngineState, venue: VenueConfig | str | Path | None,
                  msg_seq: int) -> Path:
    """Write st, the state after msg_seq, as directory/snapshot-<msg_seq>.tbs; returns its path.

    Written to a temporary file beside it, flushed and fsynced, renamed over the final name
    (os.replace) and the directory fsynced: a crash leaves the old file set or the new one,
    never a partial file under a snapshot's name. The matcher must not run on st meanwhile:
    a snapshot is one moment of the state (a live engine saves between messages, or a copy)."""
    venue = as_venue(venue)
    if msg_seq < 0:
        raise ValueError(f"msg_seq must be >= 0, got {msg_seq}")
    _check_state(st, venue)
    directory = Path(directory)
    final = directory / snapshot_name(msg_seq)
    tmp = directory / f".snapshot-{msg_seq:016d}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with open(fd, "wb") as f:
            _write(f, st, venue, msg_seq)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final


def _write(f, st: EngineState, venue: VenueConfig, msg_seq: int) -> None:
    head = HEADER.pack(MAGIC, SNAPSHOT_LAYOUT_VERSION, bytes.fromhex(venue.digest()), msg_seq,
                       int(st.ctr[C_SEQ]), time.time_ns(), len(st), 0)
    f.write(head[:H_CRC] + struct.pack("<I", crc32c.crc32c(head[:H_CRC])))
    rows = _used_rows(st)
    for name, a in zip(EngineState._fields, st):
        data = _bytes_of(a[: rows[name]])
        shape = list(a.shape) + [0] * (MAX_NDIM - a.ndim)
        entry = ENTRY.pack(name.encode(), a.dtype.str.encode(), a.ndim, *shape, rows[name],
                           crc32c.crc32c(data), 0)
        f.write(entry[:E_CRC] + struct.pack("<I", crc32c.crc32c(entry[:E_CRC])))
        f.write(data)  # a buffered writer writes large buffers straight through, no copy


# --- reading ----------------------------------------------------------------------------


class _Reader:
    """Reads a snapshot front to back, knowing where it is, for error messages."""

    def __init__(self, path: Path, f):
        self.path, self.f, self.pos = path, f, 0
        self.size = os.fstat(f.fileno()).st_size

    def error(self, offset: int, why: str) -> SnapshotError:
        return SnapshotError(self.path, offset, why)

    def into(self, buf: memoryview, what: str) -> None:
        """Fill buf from the file, or raise naming what was cut short."""
        start, got = self.pos, 0
        while got < len(buf):
            n = self.f.readinto(buf[got:])
            if not n:
                raise self.error(start, f"truncated: {what} needs {len(buf)} bytes, the file ends "
                                        f"{self.size - start} bytes later")
            got += n
        self.pos += got

    def take(self, n: int, what: str) -> bytes:
        buf = bytearray(n)
        self.into(memoryview(buf), what)
        return bytes(buf)


def read_header(path: str | Path) -> SnapshotHeader:
    """The header of a snapshot, checked (magic, version, crc), without reading its arrays."""
    path = Path(path)
    try:
        with open(path, "rb", buffering=0) as f:
            return _header(_Reader(path, f))
    except OSError as e:
        raise SnapshotError(path, 0, f"cannot read: {e.strerror or e}") from None


def _header(r: _Reader) -> SnapshotHeader:
    raw = r.take(HEADER.size, "the header")
    magic, version, digest, msg_seq, event_seq, created, n_arrays, crc = HEADER.unpack(raw)
    if magic != MAGIC:
        raise r.error(0, f"not a tickbook snapshot (magic {magic!r}, expected {MAGIC!r})")
    if version != SNAPSHOT_LAYOUT_VERSION:
        raise r.error(H_VERSION, f"snapshot layout version {version}, this engine reads {SNAPSHOT_LAYOUT_VERSION}")
    if crc != crc32c.crc32c(raw[:H_CRC]):
        raise r.error(H_CRC, "header crc mismatch")
    return SnapshotHeader(version, digest, msg_seq, event_seq, created, n_arrays)


def load_snapshot(path: str | Path, venue: VenueConfig | str | Path | None, *,
                  n_messages: int | None = 0) -> tuple[EngineState, int]:
    """The state a snapshot holds and the msg_seq it covers, checked against the venue: its
    digest, every crc, every column's name, dtype and shape. Raises SnapshotError.

    n_messages: as for make_state, the pages a flow of that many messages would fault on at
    random are touched after loading (None: every page, for the live engine)."""
    path = Path(path)
    venue = as_venue(venue)
    layout = _layout(venue, profile_tables(venue))
    r = None
    try:
        with open(path, "rb", buffering=0) as f:
            r = _Reader(path, f)
            head, arrays = _read(r, venue, layout)
    except OSError as e:
        raise SnapshotError(path, r.pos if r else 0, f"cannot read: {e.strerror or e}") from None
    st = EngineState(**arrays)
    if int(st.ctr[C_SEQ]) != head.event_seq:
        raise SnapshotError(path, H_EVENT_SEQ, f"event seq {head.event_seq}, the state's counter says {st.ctr[C_SEQ]}")
    if n_messages != 0:
        prefault(st, layout, n_messages)
    return st, head.msg_seq


def _read(r: _Reader, venue: VenueConfig, layout) -> tuple[SnapshotHeader, dict[str, np.ndarray]]:
    """The header checked against the venue, then every column, in the state's order."""
    head = _header(r)
    if head.digest.hex() != venue.digest():
        raise r.error(H_DIGEST, f"written for another venue (digest {head.digest.hex()}, "
                                f"{venue.source} has {venue.digest()})")
    if head.msg_seq < 0:
        raise r.error(H_MSG_SEQ, f"msg_seq {head.msg_seq} is negative")
    named = SNAPSHOT_RE.fullmatch(r.path.name)
    if named and int(named.group(1)) != head.msg_seq:
        raise r.error(H_MSG_SEQ, f"holds msg_seq {head.msg_seq}, its name says {int(named.group(1))}")
    if head.n_arrays != len(layout):
        raise r.error(H_ARRAYS, f"{head.n_arrays} arrays, the engine's state has {len(layout)}")
    arrays = {name: _entry(r, name, shape, np.dtype(dt)) for name, (shape, dt, _) in layout.items()}
    if r.pos != r.size:
        raise r.error(r.pos, f"{r.size - r.pos} unexpected bytes after the last array")
    return head, arrays


def _entry(r: _Reader, name: str, shape: tuple[int, ...], dt: np.dtype) -> np.ndarray:
    """One column read into a zeroed array of its full shape (the rows not stored stay zero)."""
    at = r.pos
    raw = r.take(ENTRY.size, f"the entry of {name}")
    f_name, f_dtype, ndim, *rest = ENTRY.unpack(raw)
    f_shape, rows, data_crc, entry_crc = rest[:MAX_NDIM], rest[MAX_NDIM], rest[MAX_NDIM + 1], rest[MAX_NDIM + 2]
    if entry_crc != crc32c.crc32c(raw[:E_CRC]):
        raise r.error(at + E_CRC, f"entry crc mismatch (expected the entry of {name})")
    f_name = f_name.rstrip(b"\0").decode("ascii", "replace")
    if f_name != name:
        raise r.error(at, f"array {f_name!r} where the engine's state has {name!r}")
    f_dtype = f_dtype.rstrip(b"\0").decode("ascii", "replace")
    if f_dtype != dt.str:
        raise r.error(at + E_DTYPE, f"{name}: dtype {f_dtype}, the engine's state has {dt.str}")
    if not 1 <= ndim <= MAX_NDIM or tuple(f_shape[:ndim]) != shape or any(f_shape[ndim:]):
        got = list(f_shape[: min(ndim, MAX_NDIM)])
        raise r.error(at + E_SHAPE, f"{name}: shape {got}, the venue's layout has {list(shape)}")
    if rows > shape[0]:
        raise r.error(at + E_ROWS, f"{name}: {rows} rows stored, more than its {shape[0]}")
    a = np.zeros(shape, dt)
    data = _bytes_of(a[:rows])
    data_at = r.pos
    r.into(data, f"the data of {name}")
    if crc32c.crc32c(data) != data_crc:
        raise r.error(data_at, f"{name}: data crc mismatch")
    return a


# --- the directory ----------------------------------------------------------------------


def snapshots_in(directory: str | Path) -> list[tuple[int, Path]]:
    """(msg_seq, path) of every file named as a snapshot, newest first (none: no directory)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = SNAPSHOT_RE.fullmatch(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except (OverflowError, ValueError):
        return False
    return True


def remove_leftovers(directory: str | Path) -> list[Path]:
    """Remove the temporary files of saves that died (their writer's pid is gone)."""
    removed = []
    for p in Path(directory).iterdir():
        m = TEMP_RE.fullmatch(p.name)
        if m and not _alive(int(m.group(1))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def newest_snapshot(directory: str | Path, venue: VenueConfig | str | Path | None,
                    log: Callable[[str], None] | None = None, *, n_messages: int | None = 0,
                    ) -> tuple[Path, EngineState, int] | None:
    """The newest snapshot that loads: (path, state, msg_seq), or None when none does.

    A newer file that fails to load is skipped with one log line naming it and why; recovery
    then starts from an older snapshot and replays more of the journal. Temporary files left by
    a crashed save are removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    log = log or process_logger("snapshot")
    venue = as_venue(venue)
    remove_leftovers(directory)
    for _, path in snapshots_in(directory):
        try:
            st, msg_seq = load_snapshot(path, venue, n_messages=n_messages)
        except SnapshotError as e:
            log(f"skipping snapshot {e}")
            continue
        return path, st, msg_seq
    return None


def prune_snapshots(directory: str | Path, keep: int = 2) -> list[Path]:
    """Remove all but the newest `keep` snapshots (by msg_seq); returns the removed paths."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}: recovery needs a snapshot")
    directory = Path(directory)
    removed = [p for _, p in snapshots_in(directory)[keep:]]
    for p in removed:
        p.unlink(missing_ok=True)
    if removed:
        fsync_dir(directory)
    return removed


# --- building one snapshot from another -------------------------------------------------


def advance(st: EngineState, venue: VenueConfig | str | Path | None, orders: np.ndarray) -> np.ndarray:
    """Apply ORDER_DTYPE records to st in place with the matcher; returns their events.
    snapshot(n) = advance(load(snapshot(m)), the journal's records m+1..n)."""
    venue = as_venue(venue)
    if orders.dtype != ORDER_DTYPE:
        raise TypeError(f"orders must have ORDER_DTYPE, got {orders.dtype}")
    _check_state(st, venue)
    runner = Venue(venue)  # its own state is zeros mapped lazily: costs next to nothing
    runner.state = st
    return runner.submit(orders)
