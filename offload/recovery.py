"""Recovery of a venue from its journal directory (docs/journal.md#recovery).

The journal is the venue's truth: the engine's state is a function of the records in it.
Recovery loads the newest valid snapshot, replays the journal's records after it with the
same Numba matcher, and writes the result as the snapshot of the journal's end: the engine
starts from that file, the gateway's market data starts from the same state, and the
venue's numbers (msg_seq, event seq) continue where the journal stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.records import EVENT_DTYPE
from engine.snapshot import advance, newest_snapshot, prune_snapshots, save_snapshot
from engine.state import make_state
from offload.journal import load_journal

KEEP_SNAPSHOTS = 2  # the newest, and one before it in case the newest is damaged


@dataclass
class Recovered:
    state: object  # EngineState after `msg_seq`
    msg_seq: int  # the last journaled message
    snapshot_seq: int  # what the snapshot it started from covered (0: none, an empty book)
    records: np.ndarray  # the journal's records after the snapshot, as replayed
    events: np.ndarray  # their events
    seconds: float


def recover(directory, venue, log=None, upto: int | None = None) -> Recovered:
    """The state after every journaled record (or the records up to msg_seq upto): the newest
    valid snapshot + the journal after it."""
    t0 = time.perf_counter()
    snap = newest_snapshot(directory, venue, log=log)
    if snap is None:
        st, base = make_state(venue, None), 0
    else:
        _, st, base = snap
    records = load_journal(directory, venue.digest(), after_msg_seq=base, covered=True).records
    if upto is not None:
        records = records[: max(0, upto - base)]
    events = advance(st, venue, records) if len(records) else np.empty(0, EVENT_DTYPE)
    last = int(records["msg_seq"][-1]) if len(records) else base
    return Recovered(st, last, base, records, events, time.perf_counter() - t0)


def hand_over(directory, venue, r: Recovered) -> None:
    """Write the recovered state as the snapshot of the journal's end (unless the newest
    snapshot is already that): the file the engine loads when its ring starts there."""
    if r.msg_seq != r.snapshot_seq:
        save_snapshot(directory, r.state, venue, r.msg_seq)
        prune_snapshots(directory, keep=KEEP_SNAPSHOTS)


def resting_orders(st, venue) -> list[tuple[int, int, int, int, int]]:
    """(order_id, symbol, side, price in 1e-8 units, leaves) of every resting order, best
    level first and in time priority within a level: what market data rebuilds its book from."""
    out = []
    for sym in range(len(venue.symbols)):
        tick = int(st.sym_tick[sym])
        for side in (1, 2):
            book = sym * 2 + side - 1  # engine/book.py book_of
            row, n = st.ladder[book], int(st.ladder_n[book])
            for k in range(n - 1, -1, -1):  # best last in the ladder
                lvl = int(row[k])
                price = int(st.l_price[lvl]) * tick
                slot = int(st.l_head[lvl])
                while slot >= 0:
                    out.append((int(st.o_id[slot]), sym, side, price, int(st.o_leaves[slot])))
                    slot = int(st.o_next[slot])
    return out
