"""`tickbook journal`: summarise, verify and export a venue journal (format: offload/journal.py).

    tickbook journal PATH [--config venue.toml] [--export FLOW.npy] [--after MSG_SEQ] [--snapshot]

PATH is a journal directory or one of its files. Every batch's crc and the msg_seq continuity
are checked; the summary names the files, batches, records, msg_seq range, records per session
and a torn tail, if any (the writer cuts it when it reopens; it is never exported). --config
refuses a journal written under another venue. --export writes the records after MSG_SEQ as a
.npy of ORDER_DTYPE with their stamped msg_seq, which `tickbook replay FLOW.npy` reads.
--snapshot (a journal directory, the venue of --config or the built-in one) writes the state at
the journal's end as a snapshot beside it: a later recovery replays only what follows.
Errors: one line "tickbook journal: <file>: offset <N>: <why>", exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from engine.config import ConfigError, load_venue
from engine.diagnostics import EXIT_OK, EXIT_USAGE
from engine.snapshot import SnapshotError
from offload.journal import JournalError, JournalSummary, load_journal, scan_journal

PROG = "tickbook journal"


def _shown(name: bytes) -> str:
    """A session name as text when it is printable ASCII, else hex (ZeroMQ identities are binary)."""
    text = name.decode("ascii", "replace")
    return text if name.isascii() and text.isprintable() and text else "0x" + name.hex()


def summary_lines(s: JournalSummary) -> list[str]:
    span = f"msg_seq {s.first_msg_seq:,}..{s.last_msg_seq:,}" if s.records else "no records"
    lines = [f"{s.path}: {len(s.files)} files, {s.batches:,} batches, {s.records:,} records, {span}, "
             "every crc32c verified"]
    for f in s.files:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(f.created_ns / 1e9)) if f.created_ns else "-"
        lines.append(f"  {f.name}  msg_seq {f.first_msg_seq:,}..{f.last_msg_seq:,}  {f.bytes:,} bytes  "
                     f"session id {f.session_id:016x}  created {created} UTC")
    lines.append(f"sessions: {len(s.sessions)}")
    for name, n in sorted(s.sessions.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {_shown(name)}  {n:,} records")
    lines.append(f"torn tail: {s.torn_tail} (not exported; the writer cuts it)" if s.torn_tail else "torn tail: none")
    return lines


def export(path, digest, after: int, out: str) -> int:
    """Write the records after msg_seq `after` to out as one .npy of ORDER_DTYPE; their count."""
    records = load_journal(path, digest, after).records
    try:
        with open(out, "wb") as fh:
            np.save(fh, records)
    except OSError as e:
        raise JournalError(f"{out}: cannot write: {e.strerror}") from None
    return len(records)


def snapshot(directory, config) -> str:
    """The state at the journal's end, written as a snapshot: the newest one plus what follows it
    (up to the last message whose events the gateway has logged, when it logs them)."""
    from offload.recovery import hand_over, recover  # the matcher: only this option needs it

    from offload.eventlog import last_message

    venue = load_venue(config)
    # beside a live gateway: no further than its event log, which must reach what a snapshot covers
    r = recover(directory, venue, log=lambda line: print(line, file=sys.stderr), upto=last_message(directory))
    hand_over(directory, venue, r)
    if r.msg_seq == r.snapshot_seq:
        return f"snapshot at msg_seq {r.msg_seq:,} is already the journal's end"
    return (f"snapshot at msg_seq {r.msg_seq:,} written ({len(r.records):,} records replayed after the one at "
            f"{r.snapshot_seq:,} in {r.seconds:.2f} s)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description="Summarise, verify and export a venue journal.")
    p.add_argument("path", help="the journal directory (or one of its files)")
    p.add_argument("--config", default=None, help="venue.toml: refuse a journal of another venue")
    p.add_argument("--export", default=None, metavar="FLOW.npy", help="write the records as a .npy flow")
    p.add_argument("--after", type=int, default=0, metavar="MSG_SEQ", help="export only records after MSG_SEQ")
    p.add_argument("--snapshot", action="store_true",
                   help="write the snapshot of the journal's end into the directory (docs/journal.md)")
    a = p.parse_args(argv)
    try:
        digest = load_venue(a.config).digest() if a.config else None
        if not a.snapshot or a.export:  # (a snapshot alone: the gateway's periodic one, no summary)
            print("\n".join(summary_lines(scan_journal(a.path, digest))))
        if a.export:
            n = export(a.path, digest, a.after, a.export)
            print(f"exported {n:,} records (msg_seq after {a.after:,}) to {a.export}")
        if a.snapshot:
            print(snapshot(a.path, a.config))
    except (JournalError, ConfigError, SnapshotError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
