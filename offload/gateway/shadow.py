"""--offload shadow: the hardware fed the engine's records, and every event compared."""

from __future__ import annotations

import numpy as np

from engine.compare import first_divergence
from engine.records import EVENT_DTYPE, ORDER_DTYPE, RECORD_SIZE
from offload.ring import HEAD, TAIL, Segment, pid_alive

SHADOW_FINISH = 10.0  # s the stopping gateway waits for the hardware to catch up


class Shadow:
    """--offload shadow: the hardware segment. It gets every stamped record the engine gets (the
    gateway writes only what fits in both order rings), its events are read as they come and
    kept, with the engine's and the records, until both sides have finished a record; then
    they are compared (`engine.compare.first_divergence`) and forgotten."""

    def __init__(self, seg: Segment):
        self.seg = seg
        self.r_in, self.r_out = seg.ring(0), seg.ring(1)
        self.head = self.r_in.head()
        self.tail_cache = self.r_in.tail()
        self.pid = 0
        self.sw: list[np.ndarray] = []  # engine events not compared yet (copies)
        self.hw: list[np.ndarray] = []  # hardware events not compared yet
        self.recs: list[np.ndarray] = []  # stamped records not compared yet
        self.compared = self.divergent = 0
        self.first = None  # the first divergence, described
        self.first_seq = 0

    def start(self, venue_head: int) -> None:
        self.off = self.head - venue_head  # hardware ring position - venue position (0 unless --attach)
        self.start_seq = self.done_to = self.compared_to = venue_head

    def free(self, want: int) -> int:
        cap = self.r_in.capacity
        free = cap - (self.head - self.tail_cache)
        if free < want:
            self.tail_cache = int(self.r_in.ctrl[TAIL])
            free = cap - (self.head - self.tail_cache)
        return free

    def put(self, data, keep: bool = True) -> None:
        """Copy stamped records (bytes, free slots checked) into the order ring; HEAD not yet.
        keep: also remember them until their events are compared (not the SHUTDOWN record)."""
        if keep:
            self.recs.append(np.frombuffer(bytes(data), ORDER_DTYPE))
        self.r_in.write_at(self.head, data)
        self.head += len(data) // RECORD_SIZE

    def publish(self) -> None:
        self.r_in.ctrl[HEAD] = self.head

    def drain(self) -> bool:
        """Read the hardware's events; records before `done_to` (venue msg_seq) are finished."""
        t = int(self.r_in.ctrl[TAIL])  # before ring 1, as for the engine
        r = self.r_out
        n = r.available()
        done = 0
        while done < n:
            view = r.peek(n - done)
            self.hw.append(view.copy())
            r.advance(len(view))
            done += len(view)
        self.tail_cache = max(self.tail_cache, t)
        t_venue = t - self.off
        moved = bool(n) or t_venue != self.done_to
        self.done_to = t_venue
        return moved

    def ended(self) -> bool:
        return self.r_out.closed() or (self.pid != 0 and not pid_alive(self.pid))

    @staticmethod
    def _cat(parts, dtype):
        return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, dtype)

    def compare(self, upto: int, log) -> None:
        """Compare the events of the records with msg_seq <= upto (finished on both sides)."""
        if upto <= self.compared_to:
            return
        sw, hw = self._cat(self.sw, EVENT_DTYPE), self._cat(self.hw, EVENT_DTYPE)
        recs = self._cat(self.recs, ORDER_DTYPE)
        i = int(np.searchsorted(sw["msg_seq"], upto, "right"))
        j = int(np.searchsorted(hw["msg_seq"], upto, "right"))
        k = int(np.searchsorted(recs["msg_seq"], upto, "right"))
        a, b, rr = sw[:i], hw[:j], recs[:k]
        if first_divergence(a, b, rr) is not None:  # find the records that differ, one by one
            ms = rr["msg_seq"]
            alo, ahi = np.searchsorted(a["msg_seq"], ms, "left"), np.searchsorted(a["msg_seq"], ms, "right")
            blo, bhi = np.searchsorted(b["msg_seq"], ms, "left"), np.searchsorted(b["msg_seq"], ms, "right")
            for q in range(len(rr)):
                d = first_divergence(a[alo[q] : ahi[q]], b[blo[q] : bhi[q]], rr[q : q + 1])
                if d is None:
                    continue
                self.divergent += 1
                if self.first is None:
                    self.first_seq = int(ms[q])
                    self.first = f"shadow: engine (sw) and hardware (hw) differ on message msg_seq={int(ms[q])}: {d}"
                    log(self.first)
        self.compared += len(rr)
        self.compared_to = upto
        self.sw = [sw[i:]] if i < len(sw) else []
        self.hw = [hw[j:]] if j < len(hw) else []
        self.recs = [recs[k:]] if k < len(recs) else []
