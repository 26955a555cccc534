"""A flow file read block by block into buffers reused from one block to the next, so that a
replay holds one block of the file's text and records at a time, whatever the file's size
(docs/performance.md#memory). CSV and .npy flows; Parquet and Arrow are read whole
(engine.columnar).

    reader = FlowReader("flow.csv", venue)
    for block in reader:             # a codec.Flow: records, and for CSV the rows' text
        ...                          # valid until the next block is read

A block's records are numbered on from the last block's (msg_seq), and a REJECT of a CSV
row echoes its text from the block (codec.EventWriter.bind). Errors that concern the whole
file (unreadable, wrong header, not a .npy of order records, cut short) are raised by the
constructor, before any record is handed out: nothing is half replayed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.codec import Flow, FlowError, check_header, parse_region, read_npy_header, symbol_table
from engine.config import VenueConfig
from engine.records import ORDER_DTYPE

BLOCK_BYTES = 8 << 20  # text (CSV) or records (.npy) per block: ~170k CSV rows, 131k records
SHORTEST_ROW = 16  # "1,1,KILL,,,,,,,\n": the most rows a CSV of n bytes can hold is n / 16


class FlowReader:
    """The blocks of a CSV or .npy flow file, in order (iterate once)."""

    def __init__(self, path: str | Path, venue: VenueConfig, block_bytes: int = BLOCK_BYTES):
        self.path = Path(path)
        self.source = str(path)
        self.venue = venue
        self.block_bytes = block_bytes
        self.messages = 0  # records handed out so far
        try:
            self._fh = open(self.path, "rb")
            try:
                # a pipe (`<(zcat flow.csv.gz)`) has no size: nothing to bound or check up front
                size = None
                if self._fh.seekable():
                    size = self._fh.seek(0, 2)
                    self._fh.seek(0)
                if self.path.suffix == ".npy":
                    self._open_npy(size)
                else:
                    self._open_csv(size)
            except BaseException:
                self._fh.close()
                raise
        except OSError as e:
            raise FlowError(f"{self.path}: cannot read: {e.strerror}") from None

    # -- .npy: the header checked now, records read into one reused array ---------------

    def _open_npy(self, size: int | None) -> None:
        self._count = read_npy_header(self._fh, self.path)
        announced = self._count * ORDER_DTYPE.itemsize
        body = announced if size is None else size - self._fh.tell()
        if body < announced:
            raise FlowError(
                f"{self.path}: not a readable .npy file: {self._count:,} records announced, "
                f"{body // ORDER_DTYPE.itemsize:,} present (cut short)"
            )
        self.messages_bound = self._count
        self._records = np.empty(max(1, min(self._count, self.block_bytes // ORDER_DTYPE.itemsize)), ORDER_DTYPE)
        self._blocks = self._npy_blocks

    def _npy_blocks(self):
        left = self._count
        while left:
            k = min(left, len(self._records))
            view = self._records[:k]
            if self._fh.readinto(view.view(np.uint8)) != view.nbytes:
                raise FlowError(f"{self.path}: not a readable .npy file: it ended while being read")
            left -= k
            yield Flow(view, source=self.source, seq0=self.messages + 1)
            self.messages += k

    # -- CSV: the header checked now, rows parsed a block of text at a time ------------------

    def _open_csv(self, size: int | None) -> None:
        self.messages_bound = 0 if size is None else size // SHORTEST_ROW + 1
        self._text = np.empty(max(self.block_bytes, 1 << 16), np.uint8)
        self._filled = 0
        self._eof = self._fill()
        head = bytes(self._text[: min(self._filled, 4096)])  # the header is 56 bytes
        nl = head.find(b"\n")
        check_header(head if nl < 0 else head[:nl], self.source)
        self._start = nl + 1 if nl >= 0 else self._filled
        self._tables = symbol_table(self.venue)
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._blocks = self._csv_blocks

    def _rows(self, n: int):
        """The reused records and row bounds, grown (never shrunk) to hold n rows."""
        if self._arrays is None or len(self._arrays[0]) < n:
            n = max(n, self.block_bytes // 32)
            self._arrays = (np.zeros(n, ORDER_DTYPE), np.zeros(n, np.int64), np.zeros(n, np.int64))
        return self._arrays

    def _csv_blocks(self):
        text, eof = self._text, self._eof
        start = self._start  # rows begin here; bytes before it are done
        while True:
            if not eof:
                # whole rows only: up to the last newline, the rest waits for the next read
                cut = start + _last_newline(text, start, self._filled) + 1
                if cut == start:  # a row longer than the buffer: a larger one
                    text = self._grow(start)
                    start = 0
                    eof = self._fill()
                    continue
            else:
                cut = self._filled
            if cut > start:
                orders, row_start, row_end = parse_region(
                    text, start, cut, self.messages + 1, *self._tables, self._rows
                )
                n = len(orders)
                yield Flow(orders, text, row_start, row_end, self.source, seq0=self.messages + 1)
                self.messages += n
            if eof:
                return
            # the unfinished row moves to the front, and the buffer fills up behind it
            rest = self._filled - cut
            text[:rest] = text[cut : self._filled]
            self._filled, start = rest, 0
            eof = self._fill()

    def _fill(self) -> bool:
        """Read behind what the buffer holds until it is full (a pipe hands out less a read);
        True when the file has ended."""
        view = memoryview(self._text)
        while self._filled < len(self._text):
            k = self._fh.readinto(view[self._filled :])
            if not k:
                return True
            self._filled += k
        return False

    def _grow(self, start: int) -> np.ndarray:
        """A buffer twice as large holding the unfinished row that starts at `start`."""
        bigger = np.empty(2 * len(self._text), np.uint8)
        rest = self._filled - start
        bigger[:rest] = self._text[start : self._filled]
        self._text, self._filled = bigger, rest
        return bigger

    # -- both ------------------------------------------------------------------------------

    def __iter__(self):
        try:
            yield from self._blocks()
        except OSError as e:
            raise FlowError(f"{self.path}: cannot read: {e.strerror}") from None
        finally:
            self._fh.close()


def _last_newline(text: np.ndarray, start: int, end: int) -> int:
    """Offset from `start` of the last newline in text[start:end], or -1: looked for in
    windows from the end (rows are short, the first window nearly always has one)."""
    window = 1 << 12
    hi = end
    while hi > start:
        lo = max(start, hi - window)
        hits = np.flatnonzero(text[lo:hi] == 10)
        if len(hits):
            return lo + int(hits[-1]) - start
        hi, window = lo, 2 * window
    return -1
