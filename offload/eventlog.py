"""The events the engine produced, kept beside the journal to tell a session the fate of a message.

The journal (offload/journal.py) is the truth; the events are a function of it. The gateway
appends every event it reads from the engine here, without a sync, so that a client resending
a message, or asking after a crash, gets the same events the first answer carried ("answered
from the record"). Recovery cuts the log back to what the snapshot it started from covers and
appends the events it regenerates, so the log always runs without a gap from its first event to
the last journaled message's.

Files `events-<first seq:016d>.tbe` in the journal directory, raw EVENT_DTYPE records (64 B) in
seq order, rotated at ROTATE_BYTES. A record cut short at the end of the last file (a crash in a
write) is dropped at open. msg_seq never decreases along seq, so the events of a message are
found by a binary search on a memory map.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from engine.records import EVENT_DTYPE, RECORD_SIZE

ROTATE_BYTES = 256 << 20
_NAME = re.compile(r"events-(\d{16})\.tbe")


def last_message(directory) -> int | None:
    """The msg_seq of the last message whose events are all in the log (the one before its last
    event's: a message's events may span two writes), read only; None without a log."""
    files = sorted((int(m[1]), f) for f in Path(directory).iterdir() if (m := _NAME.fullmatch(f.name)))
    for _, path in reversed(files):
        size = path.stat().st_size // RECORD_SIZE * RECORD_SIZE
        if size:
            with open(path, "rb") as f:
                f.seek(size - RECORD_SIZE)
                return int(np.frombuffer(f.read(RECORD_SIZE), EVENT_DTYPE)["msg_seq"][0]) - 1
    return None


class EventLog:
    def __init__(self, directory, rotate_bytes: int = ROTATE_BYTES):
        self.directory = Path(directory)
        self.rotate_bytes = rotate_bytes
        self.files = sorted((int(m[1]), f) for f in self.directory.iterdir() if (m := _NAME.fullmatch(f.name)))
        self._fd = -1
        self.last_seq = self.last_msg_seq = 0
        if self.files:
            path = self.files[-1][1]
            size = path.stat().st_size
            if size % RECORD_SIZE:
                os.truncate(path, size - size % RECORD_SIZE)  # a record cut short by a crash
            self._open_last()
            tail = self._map(path)
            if len(tail):
                self.last_seq, self.last_msg_seq = int(tail["seq"][-1]), int(tail["msg_seq"][-1])

    def _open_last(self) -> None:
        self._fd = os.open(self.files[-1][1], os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size

    @staticmethod
    def _map(path: Path) -> np.ndarray:
        if path.stat().st_size < RECORD_SIZE:
            return np.empty(0, EVENT_DTYPE)
        return np.memmap(path, EVENT_DTYPE, "r")

    def append(self, events) -> None:
        """Events in seq order, continuing the log (bytes or an EVENT_DTYPE array)."""
        data = memoryview(events).cast("B")
        if not len(data):
            return
        first = np.frombuffer(data, EVENT_DTYPE, 1)
        if self._fd < 0 or self._size >= self.rotate_bytes:
            self._start(int(first["seq"][0]))
        os.write(self._fd, data)  # (a short write to a regular file is an error: raised as OSError)
        self._size += len(data)
        last = np.frombuffer(data, EVENT_DTYPE, 1, len(data) - RECORD_SIZE)
        self.last_seq, self.last_msg_seq = int(last["seq"][0]), int(last["msg_seq"][0])

    def _start(self, seq: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        path = self.directory / f"events-{seq:016d}.tbe"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        self.files.append((seq, path))

    def cut_after(self, msg_seq: int) -> None:
        """Forget the events of messages after msg_seq (recovery appends them again)."""
        while self.files:
            first, path = self.files[-1]
            ev = self._map(path)
            keep = int(np.searchsorted(ev["msg_seq"], msg_seq, side="right")) if len(ev) else 0
            if keep or len(self.files) == 1:
                del ev
                if self._fd >= 0:
                    os.close(self._fd)
                os.truncate(path, keep * RECORD_SIZE)
                self._open_last()
                break
            del ev
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            path.unlink()
            self.files.pop()
        self.last_seq = self.last_msg_seq = 0
        if self.files:
            ev = self._map(self.files[-1][1])
            if len(ev):
                self.last_seq, self.last_msg_seq = int(ev["seq"][-1]), int(ev["msg_seq"][-1])

    def sync(self) -> None:
        if self._fd >= 0:
            os.fdatasync(self._fd)

    def of_messages(self, lo: int, hi: int) -> np.ndarray | None:
        """The events of messages lo..hi (msg_seq), a copy; None when the log does not reach
        back that far (its first files were removed)."""
        if not self.files:
            return None if lo <= self.last_msg_seq else np.empty(0, EVENT_DTYPE)
        parts = []
        for k in range(len(self.files) - 1, -1, -1):
            ev = self._map(self.files[k][1])
            if not len(ev):
                continue
            ms = ev["msg_seq"]
            a, b = int(np.searchsorted(ms, lo, "left")), int(np.searchsorted(ms, hi, "right"))
            if a < b:
                parts.append(np.array(ev[a:b]))
            if a > 0 or int(ms[0]) < lo:
                break  # this file starts before lo: nothing earlier can belong to lo..hi
        else:
            if lo < self._first_msg_seq():
                return None
        return np.concatenate(parts[::-1]) if parts else np.empty(0, EVENT_DTYPE)

    def _first_msg_seq(self) -> int:
        for _, path in self.files:
            ev = self._map(path)
            if len(ev):
                return int(ev["msg_seq"][0])
        return self.last_msg_seq + 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
