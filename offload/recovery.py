"""Recovery of a venue from its journal directory (docs/journal.md#recovery).

The journal is the venue's truth: the engine's state is a function of the records in it.
Recovery loads the newest valid snapshot, replays the journal's records after it with the
same Numba matcher, and writes the result as the snapshot of the journal's end: the engine
starts from that file, the gateway's market data starts from the same state, and the
venue's numbers (msg_seq, event seq) continue where the journal stopped.

Beside each snapshot it writes the owners of the resting orders (`owners-<msg_seq>.npz`: which
named session placed each), so that a maker's fill or a kill's cancel after a restart still
reaches the session that placed the order. They are the previous owners file's, updated by the
ACKs of the records replayed, each record's session read from the journal.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.durable import replace_durably
from engine.records import EV_ACK, EVENT_DTYPE
from engine.snapshot import advance, newest_snapshot, prune_snapshots, save_snapshot, snapshots_in
from engine.state import make_state
from offload.journal import load_journal
from offload.sessions import is_named

KEEP_SNAPSHOTS = 2  # the newest, and one before it in case the newest is damaged
OWNERS_RE = re.compile(r"owners-(\d{16})\.npz")  # beside snapshot-<the same msg_seq>.tbs


@dataclass
class Recovered:
    state: object  # EngineState after `msg_seq`
    msg_seq: int  # the last journaled message
    snapshot_seq: int  # what the snapshot it started from covered (0: none, an empty book)
    records: np.ndarray  # the journal's records after the snapshot, as replayed
    events: np.ndarray  # their events
    seconds: float
    owners: dict[int, bytes] = field(default_factory=dict)  # resting order id -> the named session that placed it


def recover(directory, venue, log=None, upto: int | None = None) -> Recovered:
    """The state after every journaled record (or the records up to msg_seq upto): the newest
    valid snapshot + the journal after it."""
    t0 = time.perf_counter()
    snap = newest_snapshot(directory, venue, log=log)
    if snap is None:
        st, base = make_state(venue, None), 0
    else:
        _, st, base = snap
    j = load_journal(directory, venue.digest(), after_msg_seq=base, covered=True)
    records = j.records if upto is None else j.records[: max(0, upto - base)]
    events = advance(st, venue, records) if len(records) else np.empty(0, EVENT_DTYPE)
    last = int(records["msg_seq"][-1]) if len(records) else base
    owners = _load_owners(directory, base)
    ack = events[events["kind"] == EV_ACK]
    for oid, k in zip(ack["order_id"].tolist(), j.session[ack["msg_seq"] - base - 1].tolist()):
        owners[oid] = j.names[k]
    live = st.id_tab[:, 1] != 0  # (id, slot + 1) of every resting order (engine/book.py)
    resting = set(st.id_tab[live, 0].view(np.uint64).tolist())
    owners = {oid: name for oid, name in owners.items() if oid in resting and is_named(name)}
    return Recovered(st, last, base, records, events, time.perf_counter() - t0, owners)


def hand_over(directory, venue, r: Recovered) -> None:
    """Write the recovered state as the snapshot of the journal's end (unless the newest
    snapshot is already that): the file the engine loads when its ring starts there."""
    if r.msg_seq != r.snapshot_seq:
        _save_owners(directory, r.msg_seq, r.owners)  # first: a snapshot never lacks its owners
        save_snapshot(directory, r.state, venue, r.msg_seq)
        prune_snapshots(directory, keep=KEEP_SNAPSHOTS)
        kept = {seq for seq, _ in snapshots_in(directory)}
        for p in Path(directory).glob("owners-*.npz"):
            m = OWNERS_RE.fullmatch(p.name)
            if m and int(m[1]) not in kept:
                p.unlink(missing_ok=True)


def _owners_path(directory, msg_seq: int) -> Path:
    return Path(directory) / f"owners-{msg_seq:016d}.npz"


def _save_owners(directory, msg_seq: int, owners: dict[int, bytes]) -> None:
    names = sorted(set(owners.values()))
    index = {n: i for i, n in enumerate(names)}
    path = _owners_path(directory, msg_seq)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, order_id=np.array(list(owners), np.uint64), session=np.array([index[n] for n in owners.values()],
                 np.int32), names=np.frombuffer(b"".join(names), np.uint8), name_len=np.array([len(n) for n in names],
                 np.int32))
        f.flush()
        os.fsync(f.fileno())
    replace_durably(tmp, path)


def _load_owners(directory, msg_seq: int) -> dict[int, bytes]:
    """The owners written with the snapshot of msg_seq; none (an empty map) when there is no
    such file or it is damaged: reports of those orders then go to no one, nothing else changes."""
    path = _owners_path(directory, msg_seq)
    if not msg_seq or not path.exists():
        return {}
    try:
        with np.load(path) as z:  # a zip: its members' CRC-32 are checked as they are read
            ends = np.cumsum(z["name_len"]).tolist()
            blob = z["names"].tobytes()
            names = [blob[a:b] for a, b in zip([0] + ends[:-1], ends)]
            return {oid: names[k] for oid, k in zip(z["order_id"].tolist(), z["session"].tolist())}
    except (OSError, ValueError, KeyError, IndexError):
        return {}


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
