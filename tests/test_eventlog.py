"""The event log (offload/eventlog.py): the events of a message found again, across files, after
a torn write and after recovery cut it back."""

from __future__ import annotations

import numpy as np

from engine.api import as_venue, replay_records
from engine.gen import generate
from offload.eventlog import EventLog, last_message


def words(a):
    return np.ascontiguousarray(a).view(np.int64).reshape(len(a), 8)


def _events(n=2000, seed=4):
    venue = as_venue(None)
    return replay_records(generate(venue, n, seed=seed), venue)


def test_events_of_messages_across_rotated_files_and_a_torn_record(tmp_path):
    ev = _events()
    log = EventLog(tmp_path, rotate_bytes=64 * 300)  # a new file every 300 events
    for i in range(0, len(ev), 97):
        log.append(ev[i : i + 97])
    log.close()
    files = sorted(tmp_path.glob("events-*.tbe"))
    assert len(files) > 3
    with open(files[-1], "ab") as f:
        f.write(b"\x01" * 40)  # a record cut short by a crash
    log = EventLog(tmp_path, rotate_bytes=64 * 300)
    assert files[-1].stat().st_size % 64 == 0
    assert (log.last_seq, log.last_msg_seq) == (int(ev["seq"][-1]), int(ev["msg_seq"][-1]))
    last = int(ev["msg_seq"][-1])
    for lo, hi in ((1, 1), (5, 40), (250, 700), (1, last), (last, last)):
        want = ev[(ev["msg_seq"] >= lo) & (ev["msg_seq"] <= hi)]
        assert np.array_equal(words(log.of_messages(lo, hi)), words(want)), (lo, hi)
    assert last_message(tmp_path) == last - 1


def test_cut_after_then_append_again_as_recovery_does(tmp_path):
    ev = _events()
    log = EventLog(tmp_path, rotate_bytes=64 * 300)
    log.append(ev)
    cut = 900
    log.cut_after(cut)
    assert log.last_msg_seq == cut and int(log.of_messages(1, cut)["msg_seq"][-1]) == cut
    log.append(ev[ev["msg_seq"] > cut])  # what recovery regenerates
    log.close()
    log = EventLog(tmp_path)
    assert np.array_equal(words(log.of_messages(1, int(ev["msg_seq"][-1]))), words(ev))
    log.cut_after(0)
    assert log.of_messages(1, 10) is None or len(log.of_messages(1, 10)) == 0


def test_a_log_that_starts_later_does_not_pretend_to_know_earlier_messages(tmp_path):
    ev = _events()
    log = EventLog(tmp_path)
    log.append(ev[ev["msg_seq"] > 500])
    assert log.of_messages(10, 20) is None
    assert len(log.of_messages(600, 601)) > 0
