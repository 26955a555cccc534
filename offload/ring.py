"""Single-producer single-consumer rings of 64-byte records in a named shared-memory segment.

Layout (little-endian, every offset a multiple of 64; `docs/offload.md` is the reference a
DMA driver can be written from):

    segment  = header page (4096 B) + ring 0 + ring 1 + ...
    header   = int64 words: MAGIC, RING_LAYOUT_VERSION, record LAYOUT_VERSION, RECORD_SIZE,
               n_rings, total size, owner pid, owner start time, STATE (0 init, 1 ready),
               peer pid, [10] server pid (the process holding the server claim);
               ring descriptors from word 16, 8 words each: offset, capacity, kind, record size
    ring     = control page (4096 B) + capacity x 64-byte slots
    control  = int64 words: [0] capacity [1] mask [2] kind,
               [16] HEAD  (byte 128: records published by the producer, only it writes),
               [32] TAIL  (byte 256: records consumed by the consumer, only it writes),
               [48] STOP  (byte 384: anyone asks spinning loops to return),
               [49] CLOSED (producer: no record will follow HEAD),
               [64] producer pid, [65] consumer pid (byte 512),
               [66] consumer heartbeat (byte 528: a counter the consumer bumps while its loop
                    turns, idle or busy; ring 0's is the server's, `Segment.heartbeat()`)

Cursors are int64 counts that only grow; slot = cursor & mask; the ring is full when
HEAD - TAIL == capacity (back-pressure: the producer waits, nothing is ever dropped).
The producer writes slots, then publishes HEAD with a release store; the consumer reads
HEAD with an acquire load, reads slots, then publishes TAIL with a release store. Each
side caches the other's cursor and re-reads it only when the cache says full / empty.

Lifetime is owned explicitly (no multiprocessing.shared_memory and its resource tracker,
which in Python 3.11 unlinks a segment when any attaching process exits): the creator
(owner) unlinks on close; an attacher never does, except `reap_stale` / an engine that
sees the owner dead. `reap_stale()` removes segments whose owner process is gone.

One server per segment: the process that serves it (engine, bridge) takes `claim_server()`, an
exclusive flock on the segment's file held for its life; the kernel drops it when the process
dies (SIGKILL included), so a second server is refused while the first lives and a restarted
one is accepted after a crash.
"""

from __future__ import annotations

import mmap
import os
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from engine.records import EVENT_DTYPE, LAYOUT_VERSION, ORDER_DTYPE, RECORD_SIZE
from offload.atomics import backoff, load_acquire, store_release

MAGIC = int.from_bytes(b"TICKRING", "little")
RING_LAYOUT_VERSION = 2  # 2: server pid (header word 10), consumer heartbeat (control word 66)
PAGE = 4096
SHM_DIR = "/dev/shm"

# header words
H_MAGIC, H_VERSION, H_REC_VERSION, H_REC_SIZE, H_NRINGS, H_SIZE = 0, 1, 2, 3, 4, 5
H_OWNER_PID, H_OWNER_START, H_STATE, H_PEER_PID, H_SERVER_PID = 6, 7, 8, 9, 10
H_DESC, DESC_WORDS = 16, 8
MAX_RINGS = (PAGE // 8 - H_DESC) // DESC_WORDS
STATE_INIT, STATE_READY = 0, 1

# control words
C_CAP, C_MASK, C_KIND = 0, 1, 2
HEAD, TAIL, STOP, CLOSED = 16, 32, 48, 49
C_PRODUCER_PID, C_CONSUMER_PID, C_BEAT = 64, 65, 66

KIND_ORDERS, KIND_EVENTS, KIND_RAW = 1, 2, 3
KIND_DTYPES = {KIND_ORDERS: ORDER_DTYPE, KIND_EVENTS: EVENT_DTYPE, KIND_RAW: np.dtype((np.int64, 8))}
KIND_NAMES = {"orders": KIND_ORDERS, "events": KIND_EVENTS, "raw": KIND_RAW}

# njit status codes
OK, EMPTY, FULL, STOPPED = 0, -1, -2, -3


class RingError(RuntimeError):
    """A ring segment that cannot be used as asked."""


class RingLayoutError(RingError):
    """The segment speaks another layout (magic, version, record size): refused."""


class SegmentBusy(RingError):
    """Another live process already serves the segment (holds its server claim)."""


class RingTimeout(RingError):
    """A bounded wait ran out (peer too slow, stalled or gone)."""


class PeerGone(RingError):
    """The other side of the ring exited."""


class RingStopped(RingError):
    """Somebody set the ring's STOP word."""


# --- process identity (pid + start time, so a reused pid is not taken for the owner)


def proc_start_time(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return -1
    # field 22 (starttime), counted after the ")" that ends the command name
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def pid_alive(pid: int, start: int | None = None) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is not None and start > 0:
        st = proc_start_time(pid)
        if st != start:
            return False
    # a zombie counts as gone
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
        return s[s.rindex(b")") + 2 : s.rindex(b")") + 3] != b"Z"
    except OSError:
        return False


def _path(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise RingError(f"bad segment name {name!r}: a plain file name such as 'tickbook-eng0'")
    return os.path.join(SHM_DIR, name)


def ready_path(rings: str, who: str = "engine") -> str:
    """The readiness file beside segment NAME: `NAME.ready` (the engine, warmed up and
    serving) or `NAME.WHO.ready` (e.g. the gateway's); the pod's probe looks for them."""
    return os.path.join(SHM_DIR, f"{rings}.ready" if who == "engine" else f"{rings}.{who}.ready")


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_own_file(path: str) -> None:
    """Remove a ready file only if it is this process's (pid on its first line): a process
    that outlived its peer must not remove the file of the one that replaced it."""
    try:
        with open(path) as f:
            if f.readline().strip() != str(os.getpid()):
                return
    except OSError:
        return
    remove_file(path)


def ring_bytes(capacity: int) -> int:
    """Control page + slots, rounded up to a page so every ring starts page-aligned."""
    return PAGE + -(-capacity * RECORD_SIZE // PAGE) * PAGE


@dataclass
class RingSpec:
    kind: int
    capacity: int


class Ring:
    """One SPSC ring: numpy views on the segment plus Python-side cached cursors.

    A process uses a Ring either as its producer or as its consumer. `ctrl` (int64 words of
    the control page), `words` (capacity x 8 int64) and `recs` (structured records) are the
    zero-copy views that njit loops take. The batch methods re-read their own cursor from
    the segment (njit code may have moved it); the single-record `try_*` fast paths trust
    the Python-side cache, so do not mix them with njit loops on the same side.
    """

    def __init__(self, seg: "Segment", index: int, offset: int, capacity: int, kind: int):
        if capacity <= 0 or capacity & (capacity - 1):
            raise RingLayoutError(f"ring {index}: capacity {capacity} is not a power of two")
        self.seg, self.index, self.offset = seg, index, offset
        self.capacity, self.mask, self.kind = capacity, capacity - 1, kind
        buf = seg._mm
        self.ctrl = np.frombuffer(buf, np.int64, PAGE // 8, offset)
        self.words = np.frombuffer(buf, np.int64, capacity * 8, offset + PAGE).reshape(capacity, 8)
        self.recs = np.frombuffer(buf, KIND_DTYPES.get(kind, KIND_DTYPES[KIND_RAW]), capacity, offset + PAGE)
        for a in (self.ctrl, self.words):
            if a.ctypes.data % 64:
                raise RingError("ring views are not 64-byte aligned")
        self._q = memoryview(buf)[offset : offset + PAGE].cast("q")
        self._b = memoryview(buf)[offset + PAGE : offset + PAGE + capacity * RECORD_SIZE]
        # cached cursors (Python side)
        self._head = int(self._q[HEAD])
        self._tail = int(self._q[TAIL])

    def _drop(self):
        for k in ("ctrl", "words", "recs"):
            setattr(self, k, None)
        for k in ("_q", "_b"):
            mv = getattr(self, k, None)
            if mv is not None:
                mv.release()
            setattr(self, k, None)

    # --- status
    def head(self) -> int:
        return int(self._q[HEAD])

    def tail(self) -> int:
        return int(self._q[TAIL])

    def stop_requested(self) -> bool:
        return self._q[STOP] != 0

    def request_stop(self, value: int = 1) -> None:
        self._q[STOP] = value

    def closed(self) -> bool:
        return self._q[CLOSED] != 0

    def register(self, role: str) -> None:
        self._q[C_PRODUCER_PID if role == "producer" else C_CONSUMER_PID] = os.getpid()
        self._head, self._tail = int(self._q[HEAD]), int(self._q[TAIL])

    # --- producer side
    def free(self) -> int:
        self._tail = int(self._q[TAIL])
        return self.capacity - (self._head - self._tail)

    def try_push_bytes(self, rec: bytes) -> bool:
        """One 64-byte record, published at once; False when the ring is full."""
        h = self._head
        if h - self._tail >= self.capacity:
            self._tail = self._q[TAIL]
            if h - self._tail >= self.capacity:
                return False
        off = (h & self.mask) * RECORD_SIZE
        self._b[off : off + RECORD_SIZE] = rec
        self._head = h + 1
        self._q[HEAD] = h + 1  # x86 TSO: this store is seen after the slot's
        return True

    def push(self, arr: np.ndarray, timeout: float | None = 10.0, alive=None) -> int:
        """Copy records (structured 64-byte or int64 (n, 8)) in, waiting for room
        (back-pressure). Publishes HEAD once per contiguous chunk. Returns len(arr)."""
        src = as_words(arr)
        n = len(src)
        done = 0
        self._head = int(self._q[HEAD])  # njit code in this process may have moved it
        w = Waiter(timeout, alive, self)
        while done < n:
            self._head, self._tail, k = nb_push_words(self.ctrl, self.words, src, done, n, self._head, self._tail)
            if k == 0:
                w.wait("ring full: the consumer does not drain")
            else:
                done += k
                w.reset()
        return n

    def write_at(self, pos: int, data) -> None:
        """Copy whole records (bytes-like, room already checked) into the slots from ring
        position pos on, wrapping around the slot array's end; HEAD is the caller's to move
        (a producer that stamps or journals the records first publishes them later)."""
        n = len(data) // RECORD_SIZE
        done = 0
        while done < n:
            slot = (pos + done) & self.mask
            m = min(n - done, self.capacity - slot)
            self._b[slot * RECORD_SIZE : (slot + m) * RECORD_SIZE] = data[done * RECORD_SIZE : (done + m) * RECORD_SIZE]
            done += m

    def slots(self, pos: int, n: int) -> list:
        """The records at ring positions pos .. pos + n - 1 as memoryviews of the slots: one,
        or two when they wrap around the slot array's end."""
        s = pos & self.mask
        first = min(n, self.capacity - s)
        pieces = [self._b[s * RECORD_SIZE : (s + first) * RECORD_SIZE]]
        if first < n:
            pieces.append(self._b[: (n - first) * RECORD_SIZE])
        return pieces

    def close_writer(self) -> None:
        """No record will follow the current HEAD."""
        self._q[CLOSED] = 1

    # --- consumer side
    def available(self) -> int:
        self._head = int(self._q[HEAD])
        return self._head - self._tail

    def try_pop_bytes(self) -> bytes | None:
        t = self._tail
        if t == self._head:
            self._head = self._q[HEAD]
            if t == self._head:
                return None
        off = (t & self.mask) * RECORD_SIZE
        rec = bytes(self._b[off : off + RECORD_SIZE])
        self._tail = t + 1
        self._q[TAIL] = t + 1
        return rec

    def peek(self, max_n: int | None = None) -> np.ndarray:
        """Zero-copy view of the next readable records (one contiguous run, up to the end
        of the slot array); call `advance(len(view))` when done with it, and not before."""
        n = self.available()
        start = self._tail & self.mask
        n = min(n, self.capacity - start)
        if max_n is not None:
            n = min(n, max_n)
        return self.recs[start : start + n]

    def advance(self, n: int) -> None:
        self._tail += n
        self._q[TAIL] = self._tail

    def pop(self, max_n: int | None = None) -> np.ndarray:
        """Copy out what is readable now (possibly nothing), at most max_n."""
        self._tail = int(self._q[TAIL])  # njit code in this process may have moved it
        n = self.available()
        if max_n is not None:
            n = min(n, max_n)
        out = np.empty(n, self.recs.dtype)
        if n:
            self._head, self._tail, k = nb_pop_words(
                self.ctrl, self.words, as_words(out), 0, n, self._head, self._tail
            )
            assert k == n
        return out

    def pop_exactly(self, n: int, timeout: float | None = 10.0, alive=None) -> np.ndarray:
        out = np.empty(n, self.recs.dtype)
        dst = as_words(out)
        done = 0
        self._tail = int(self._q[TAIL])
        w = Waiter(timeout, alive, self)
        while done < n:
            self._head, self._tail, k = nb_pop_words(self.ctrl, self.words, dst, done, n, self._head, self._tail)
            if k == 0:
                if self.closed() and self.available() == 0:
                    raise RingError(f"producer closed the ring after {done} of {n} records")
                w.wait("ring empty: the producer does not publish")
            else:
                done += k
                w.reset()
        return out

    def drain_until_closed(self, timeout: float | None = 10.0, alive=None) -> np.ndarray:
        """Every record until the producer closes the ring (CLOSED set and all read)."""
        parts = []
        w = Waiter(timeout, alive, self)
        while True:
            closed = self.closed()  # read CLOSED before HEAD: a HEAD read after it is final
            got = self.pop()
            if len(got):
                parts.append(got)
                w.reset()
            elif closed:
                break
            else:
                w.wait("waiting for the producer to close the ring")
        return np.concatenate(parts) if parts else np.empty(0, self.recs.dtype)


def as_words(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.int64 and arr.ndim == 2 and arr.shape[1] == 8:
        return arr
    if arr.dtype.itemsize != RECORD_SIZE or not arr.flags.c_contiguous:
        raise RingError("records must be a contiguous array of 64-byte records")
    return arr.view(np.int64).reshape(len(arr), 8)


class Waiter:
    """Bounded waiting from Python: spin, then yield, then sleep; raise at the deadline,
    when the peer is gone (alive() is False) or when the ring's STOP word is set."""

    def __init__(self, timeout, alive, ring):
        self.timeout, self.alive, self.ring = timeout, alive, ring
        self.reset()

    def reset(self):
        self.n = 0
        self.t0 = None

    def wait(self, what: str):
        self.n += 1
        if self.n < 200:
            return
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
            self.last_check = now
        if now - self.last_check > 0.02:
            self.last_check = now
            if self.ring is not None and self.ring.stop_requested():
                raise RingStopped(f"{what}: STOP word set")
            if self.alive is not None and not self.alive():
                raise PeerGone(f"{what}: the peer process is gone")
        if self.timeout is not None and now - self.t0 > self.timeout:
            raise RingTimeout(f"{what} (waited {self.timeout} s)")
        if self.n < 2000:
            os.sched_yield()
        else:
            time.sleep(0.0002)


# --- njit primitives (take the views and explicit cursors; return the new cursors)


@njit(cache=True, nogil=True)
def nb_push_words(ctrl, words, src, start, stop, head, tail_cache):
    """Copy src[start:stop] (int64 (n, 8)) into free slots without waiting; one release
    store of HEAD. Returns (head, tail_cache, copied)."""
    cap = words.shape[0]
    mask = cap - 1
    want = stop - start
    free = cap - (head - tail_cache)
    if free < want:
        tail_cache = load_acquire(ctrl, TAIL)
        free = cap - (head - tail_cache)
    n = min(free, want)
    for k in range(n):
        s = (head + k) & mask
        for j in range(8):
            words[s, j] = src[start + k, j]
    if n > 0:
        head += n
        store_release(ctrl, HEAD, head)
    return head, tail_cache, n


@njit(cache=True, nogil=True)
def nb_pop_words(ctrl, words, dst, start, stop, head_cache, tail):
    """Copy up to stop-start readable records into dst[start:]; one release store of TAIL.
    Returns (head_cache, tail, copied)."""
    cap = words.shape[0]
    mask = cap - 1
    want = stop - start
    avail = head_cache - tail
    if avail < want:
        head_cache = load_acquire(ctrl, HEAD)
        avail = head_cache - tail
    n = min(avail, want)
    for k in range(n):
        s = (tail + k) & mask
        for j in range(8):
            dst[start + k, j] = words[s, j]
    if n > 0:
        tail += n
        store_release(ctrl, TAIL, tail)
    return head_cache, tail, n


@njit(cache=True, nogil=True)
def nb_push_blocking(ctrl, words, src, start, stop, head, tail_cache, spin_limit, yield_after):
    """Push src[start:stop], spinning while full (back-pressure; sched_yield past
    `yield_after` idle polls). Returns
    (head, tail_cache, pushed, status): status OK, or STOPPED (STOP word set) / FULL
    (spin_limit polls without progress) with the records pushed so far."""
    done = start
    spins = 0
    while done < stop:
        head, tail_cache, n = nb_push_words(ctrl, words, src, done, stop, head, tail_cache)
        if n > 0:
            done += n
            spins = 0
            continue
        backoff(spins, yield_after)
        spins += 1
        if (spins & 255) == 0:
            if load_acquire(ctrl, STOP) != 0:
                return head, tail_cache, done - start, STOPPED
            if spins >= spin_limit:
                return head, tail_cache, done - start, FULL
    return head, tail_cache, done - start, OK


@njit(cache=True, nogil=True)
def nb_wait_readable(ctrl, head_cache, tail, spin_limit, yield_after):
    """Spin until a record is readable. Returns (head_cache, status)."""
    spins = 0
    while head_cache == tail:
        head_cache = load_acquire(ctrl, HEAD)
        if head_cache != tail:
            break
        backoff(spins, yield_after)
        spins += 1
        if (spins & 255) == 0:
            if load_acquire(ctrl, STOP) != 0:
                return head_cache, STOPPED
            if spins >= spin_limit:
                return head_cache, EMPTY
    return head_cache, OK


# --- segments


class Segment:
    """A named shared-memory segment holding one or more rings.

    `Segment.create(name, [("orders", 4096), ("events", 65536)])` (the owner: unlinks on
    close), `Segment.attach(name)` (checks the layout, never unlinks). Use as a context
    manager; close() drops every view this object made before unmapping.
    """

    def __init__(self, name, mm, owner: bool):
        self.name, self._mm, self.owner = name, mm, owner
        self.hdr = np.frombuffer(mm, np.int64, PAGE // 8, 0)
        self.rings: list[Ring] = []
        self._closed = False
        self._ino = None  # the file's inode when mapped (attach): the claim must lock that file
        self._claim_fd = None

    @classmethod
    def create(cls, name: str, rings, exist_ok: bool = False, starts=()) -> "Segment":
        """starts: each ring's first cursor value (default 0), set before the segment is
        ready: a recovered venue's order ring starts at the journal's last message number."""
        specs = [RingSpec(KIND_NAMES[k] if isinstance(k, str) else int(k), int(c)) for k, c in rings]
        if not 0 < len(specs) <= MAX_RINGS:
            raise RingError(f"1..{MAX_RINGS} rings per segment")
        for s in specs:
            if s.capacity < 2 or s.capacity & (s.capacity - 1):
                raise RingError(f"ring capacity {s.capacity} is not a power of two >= 2")
        size = PAGE + sum(ring_bytes(s.capacity) for s in specs)
        path = _path(name)
        _reap_one(name)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            if not exist_ok:
                raise RingError(f"segment {name} exists (owned by a live process?); pick another name") from None
            os.unlink(path)
            fd = os.open(path, flags, 0o600)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        seg = cls(name, mm, owner=True)
        h = seg.hdr
        h[H_MAGIC] = MAGIC
        h[H_VERSION] = RING_LAYOUT_VERSION
        h[H_REC_VERSION] = LAYOUT_VERSION
        h[H_REC_SIZE] = RECORD_SIZE
        h[H_NRINGS] = len(specs)
        h[H_SIZE] = size
        h[H_OWNER_PID] = os.getpid()
        h[H_OWNER_START] = proc_start_time(os.getpid())
        off = PAGE
        for i, s in enumerate(specs):
            d = H_DESC + DESC_WORDS * i
            h[d : d + 4] = (off, s.capacity, s.kind, RECORD_SIZE)
            ctrl = np.frombuffer(mm, np.int64, PAGE // 8, off)
            ctrl[C_CAP], ctrl[C_MASK], ctrl[C_KIND] = s.capacity, s.capacity - 1, s.kind
            if i < len(starts):
                ctrl[HEAD] = ctrl[TAIL] = int(starts[i])
            del ctrl
            off += ring_bytes(s.capacity)
        seg._make_rings()
        h[H_STATE] = STATE_READY  # last: an attacher that sees READY sees the rest
        return seg

    @classmethod
    def attach(cls, name: str, timeout: float = 5.0, expect_rings: int | None = None) -> "Segment":
        """Attach to an existing segment, waiting up to `timeout` for it to appear and be
        ready (a consumer may start before its producer). Refuses other layouts."""
        path = _path(name)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(path, os.O_RDWR)
                size = os.fstat(fd).st_size
                if size >= PAGE:
                    break
                os.close(fd)
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise RingTimeout(f"segment {name} did not appear in {SHM_DIR} within {timeout} s")
            time.sleep(0.005)
        try:
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            ino = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        seg = cls(name, mm, owner=False)
        seg._ino = ino
        try:
            h = seg.hdr
            while h[H_STATE] != STATE_READY:
                if h[H_MAGIC] not in (0, MAGIC):
                    break
                if time.monotonic() > deadline:
                    raise RingTimeout(f"segment {name} never became ready")
                time.sleep(0.002)
            seg._check(size)
            if expect_rings is not None and h[H_NRINGS] != expect_rings:
                raise RingLayoutError(f"segment {name} has {h[H_NRINGS]} rings, expected {expect_rings}")
            seg._make_rings()
        except BaseException:
            seg.close()
            raise
        return seg

    def _check(self, size: int) -> None:
        h = self.hdr
        if int(h[H_MAGIC]) != MAGIC:
            raise RingLayoutError(f"segment {self.name} is not a tickbook ring segment (magic {int(h[H_MAGIC]):#x})")
        if h[H_VERSION] != RING_LAYOUT_VERSION:
            raise RingLayoutError(
                f"segment {self.name} uses ring layout version {int(h[H_VERSION])}; "
                f"this build speaks version {RING_LAYOUT_VERSION}: refused"
            )
        if h[H_REC_VERSION] != LAYOUT_VERSION or h[H_REC_SIZE] != RECORD_SIZE:
            raise RingLayoutError(
                f"segment {self.name} carries record layout version {int(h[H_REC_VERSION])} of "
                f"{int(h[H_REC_SIZE])} bytes; this build speaks version {LAYOUT_VERSION} of {RECORD_SIZE}: refused"
            )
        if h[H_SIZE] != size or not 0 < h[H_NRINGS] <= MAX_RINGS:
            raise RingLayoutError(f"segment {self.name}: header says {int(h[H_SIZE])} bytes, file has {size}")

    def _make_rings(self) -> None:
        h = self.hdr
        self.rings = []
        for i in range(int(h[H_NRINGS])):
            d = H_DESC + DESC_WORDS * i
            off, cap, kind, rsz = (int(x) for x in h[d : d + 4])
            if rsz != RECORD_SIZE or off % PAGE or off + ring_bytes(cap) > h[H_SIZE]:
                raise RingLayoutError(f"segment {self.name}: ring {i} descriptor is inconsistent")
            self.rings.append(Ring(self, i, off, cap, kind))

    def ring(self, i: int) -> Ring:
        return self.rings[i]

    @property
    def owner_pid(self) -> int:
        return int(self.hdr[H_OWNER_PID])

    def owner_alive(self) -> bool:
        return pid_alive(int(self.hdr[H_OWNER_PID]), int(self.hdr[H_OWNER_START]))

    def set_peer(self, pid: int | None = None) -> None:
        self.hdr[H_PEER_PID] = os.getpid() if pid is None else pid

    @property
    def peer_pid(self) -> int:
        return int(self.hdr[H_PEER_PID])

    def request_stop(self) -> None:
        for r in self.rings:
            r.request_stop()

    def claim_server(self) -> None:
        """Become the segment's one server, for this process's life, before touching anything
        (cursors, pids, ready file). An exclusive, non-blocking flock on the segment's file,
        held by an fd kept open until close(): the kernel releases it when the process dies,
        SIGKILL included, so a crashed server's successor is accepted, while a second server
        beside a live one gets SegmentBusy (rings are single-consumer: two servers would both
        consume ring 0). The claimer's pid goes to header word 10, for the refusal's message."""
        import fcntl

        try:
            fd = os.open(_path(self.name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RingError(f"segment {self.name} was removed before it could be claimed") from None
        try:
            if self._ino is not None and os.fstat(fd).st_ino != self._ino:
                raise RingError(f"segment {self.name} was replaced by another before it could be claimed")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = int(self.hdr[H_SERVER_PID])
                who = f"pid {pid}" if pid_alive(pid) else "a live process"
                raise SegmentBusy(f"segment {self.name} is already served by {who}: one server per segment, "
                                  "refused (stop that server first)") from None
        except BaseException:
            os.close(fd)
            raise
        self._claim_fd = fd
        self.hdr[H_SERVER_PID] = os.getpid()

    def heartbeat(self) -> int:
        """The server's heartbeat (ring 0's consumer heartbeat word): a counter its loop bumps
        every few ms while it turns, idle or busy. Only its moving means anything."""
        return int(self.rings[0]._q[C_BEAT])

    def unlink(self) -> None:
        """Remove the name, unless it names another segment by now: a successor's, created
        after this one's owner died (an orphaned engine must not remove its replacement's)."""
        if self.hdr is not None:
            info = read_owner(self.name)
            if info is not None and info[1:] != (int(self.hdr[H_OWNER_PID]), int(self.hdr[H_OWNER_START])):
                return
        try:
            os.unlink(_path(self.name))
        except FileNotFoundError:
            pass

    def close(self, unlink: bool | None = None) -> None:
        """Drop this object's views, unmap, and (owner by default) unlink. Views the caller
        still holds keep the mapping alive until they die (never a dangling pointer)."""
        if self._closed:
            return
        self._closed = True
        if unlink if unlink is not None else self.owner:
            self.unlink()
        if self._claim_fd is not None:  # the server claim ends with this object (or the process)
            os.close(self._claim_fd)
            self._claim_fd = None
        for r in self.rings:
            r._drop()
        self.rings = []
        self.hdr = None
        mm, self._mm = self._mm, None
        try:
            mm.close()
        except BufferError:
            pass  # caller-held numpy views: munmap happens when the last one is collected

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def segment_exists(name: str) -> bool:
    return os.path.exists(_path(name))


def read_owner(name: str) -> tuple[int, int, int] | None:
    """(magic, owner pid, owner start) of a segment file, without mapping it."""
    try:
        with open(_path(name), "rb") as f:
            raw = f.read(64)
    except OSError:
        return None
    if len(raw) < 64:
        return None
    w = np.frombuffer(raw, np.int64)
    return int(w[H_MAGIC]), int(w[H_OWNER_PID]), int(w[H_OWNER_START])


def _reap_one(name: str) -> bool:
    info = read_owner(name)
    if info is None:
        return False
    magic, pid, start = info
    if magic == MAGIC and not pid_alive(pid, start):
        try:
            os.unlink(_path(name))
            return True
        except FileNotFoundError:
            pass
    return False


def reap_stale(name_prefix: str = "tickbook") -> list[str]:
    """Unlink ring segments (our magic) whose owner process is dead. Returns their names."""
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return []
    return [n for n in names if n.startswith(name_prefix) and _reap_one(n)]
