"""Named sessions: a client that keeps its name across connections and gateway restarts learns
the fate of every message it sent, and a message it sends again is answered, not executed twice.

A client names its session by setting its ZeroMQ identity (`Client(session="desk-7")`); an
anonymous client gets a random one from ZeroMQ, which starts with a zero byte and is never
reused. For a named session, with a journal, the `msg_seq` a client puts in its records is its
client sequence number and must increase, record by record, over the session's whole life
(as FIX's MsgSeqNum does). The journal keeps, for every record, its session and that number
(offload/journal.py), so the gateway can tell:

- a **new** message: its numbers all above the session's last journaled one;
- a **resend**: its numbers all at or below it, and they are the numbers of one message the
  session sent (consecutive venue messages): answered from the record, with the events the
  engine gave it (offload/eventlog.py), the venue's msg_seq of each record, and nothing
  executed; if the message is still in flight, the answer waits for its events;
- anything else (numbers that go down inside a message, or straddle the last one): an ERR.

The answer to a resend carries the events of the message's records for the accounts the
message used, in the client's numbering: what the first reply carried, except that a fill of
a resting order of another of this session's accounts is not in it (its owner's report was). A
fill's contra_id (the other order's id) is kept only when that order's account is one of the
message's accounts, and zeroed otherwise, as the routing hides a counterparty's order id
(docs/offload.md#gateway).
"""

from __future__ import annotations

import numpy as np

NEW = "new"


def is_named(ident: bytes) -> bool:
    """ZeroMQ's own identities start with a zero byte; a client cannot choose one that does."""
    return ident[:1] != b"\x00"


def shown(ident: bytes) -> str:
    text = ident.decode("utf-8", "replace")
    return text if text.isprintable() else "0x" + ident.hex()


class Sessions:
    def __init__(self, journal, events):
        self.journal, self.events = journal, events
        self.last = dict(journal.sessions)  # session -> its last journaled (or accepted) number
        self.waiting: list[tuple] = []  # resends of messages in flight: (ident, token, lo, hi, cseqs, accts)

    def classify(self, ident: bytes, cseqs: list[int]):
        """NEW, ("resend", lo, hi) with the venue's msg_seq of its first and last record, or the
        reason for an ERR."""
        if any(b <= a for a, b in zip(cseqs, cseqs[1:])):
            return (f"session {shown(ident)}: client sequence numbers (msg_seq) must increase within a "
                    f"message and over the session (docs/journal.md#sessions): message refused")
        last = self.last.get(ident)
        if last is None or cseqs[0] > last:
            return NEW
        if cseqs[-1] > last:
            return (f"session {shown(ident)}: msg_seq {cseqs[0]}..{cseqs[-1]} straddles the session's last "
                    f"journaled number {last}: resend a message as it was sent, or number a new one after "
                    f"{last}: message refused")
        found = self.journal.lookup(ident, cseqs[0], cseqs[-1])
        lo, hi = found if found is not None else (0, -1)
        if found is None or hi - lo != len(cseqs) - 1:
            return (f"session {shown(ident)}: msg_seq {cseqs[0]}..{cseqs[-1]} are not the numbers of one "
                    f"message this session sent (its last journaled number is {last}): message refused")
        return ("resend", lo, hi)

    def accepted(self, ident: bytes, cseqs: list[int]) -> None:
        self.last[ident] = cseqs[-1]

    def forget_unjournaled(self) -> None:
        """A failed journal write refused what was accepted since the last commit."""
        self.last = dict(self.journal.sessions)

    def answer(self, lo: int, hi: int, cseqs: list[int], accts: list[int]):
        """(events bytes in the client's numbering, venue msg_seqs) of a finished message, or the
        reason it cannot be given."""
        ev = self.events.of_messages(lo, hi) if self.events is not None else None
        if ev is None:
            return (f"executed as msg_seq {lo}..{hi}, before the oldest events this gateway keeps: "
                    "their events are in the venue's records only")
        mine = np.unique(accts)
        ev = scrub_contra(ev, mine)
        ev = ev[np.isin(ev["account"], mine)]
        ev["msg_seq"] = np.asarray(cseqs, np.int64)[ev["msg_seq"] - lo]
        return ev.tobytes(), np.arange(lo, hi + 1, dtype=np.int64)

    def due(self, t: int) -> list[tuple]:
        """The waiting resends whose message is finished (msg_seq <= t)."""
        if not self.waiting:
            return []
        ready = [w for w in self.waiting if w[3] <= t]
        self.waiting = [w for w in self.waiting if w[3] > t]
        return ready


def scrub_contra(ev: np.ndarray, accounts) -> np.ndarray:
    """A copy of events (EVENT_DTYPE) with contra_id zeroed where the other order's account is
    not among `accounts`. Both FILLs of a trade are events of the same message: the other
    order's account is that of the fill with (order_id, contra_id) swapped."""
    ev = ev.copy()
    fills = np.flatnonzero(ev["contra_id"] != 0)
    if len(fills) == 0:
        return ev
    oid, cid, acct = (ev[f][fills].tolist() for f in ("order_id", "contra_id", "account"))
    acct_of = dict(zip(zip(oid, cid), acct))
    ok = set(np.asarray(accounts).tolist())
    hide = [i for i, o, c in zip(fills.tolist(), oid, cid) if acct_of.get((c, o)) not in ok]
    ev["contra_id"][hide] = 0
    return ev
