"""The write-ahead journal's cost (offload/journal.py) and recovery time (offload/recovery.py).

1. Round trip through the gateway (bench_gateway's client, one order in flight, HDR
   p50/p99/p99.9) in four configurations, interleaved in one run: no journal, `--journal DIR
   --fsync none`, `--fsync interval:1`, `--fsync batch`. Each round starts a fresh gateway +
   engine per configuration (a fresh, empty journal directory each: no recovery at start) and
   sends the same orders; the configurations' order rotates from round to round so that none
   always runs first or last. Figures: the median over rounds of each percentile, its spread,
   and its ratio to the no-journal round trip. The journal directory is on a real disk (not
   tmpfs: checked, the filesystem is printed), under /var/tmp.
2. Recovery: a journal of N messages (engine.gen.generate on the default venue, stamped
   msg_seq 1..N) written directly with JournalWriter, once as one batch of 1 record per
   message (the worst case) and once as batches of 16; recover(dir, venue) timed (best and
   median of a few runs, after one untimed run that loads the JIT cache), broken down into
   load_journal and advance; one run after dropping the files from the page cache. Then a
   snapshot at msg_seq 0.9 N is saved beside the journal and recover() (snapshot + the last
   0.1 N) timed the same way. Targets for N = 1,000,000: < 2 s for the full replay, < 0.5 s
   for snapshot + 100,000.

    .venv/bin/python benchmarks/bench_journal.py    # ~3 min; prints, writes .benchmarks/journal.json
    pytest benchmarks/bench_journal.py -s           # shorter; writes build/bench/journal.json

Placement (2 cores), as bench_gateway: the engine pinned to cpu 1, busy-polling; gateway and
client share cpu 0; the journal's writes and fdatasyncs happen in the gateway, on cpu 0.
Recovery runs in this process, pinned to cpu 0, with nothing of ours running beside it.
Nothing here asserts a time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_gateway import GatewayStack, rtt  # noqa: E402
from engine.api import as_venue  # noqa: E402
from engine.gen import generate  # noqa: E402
from engine.snapshot import advance, newest_snapshot, save_snapshot  # noqa: E402
from engine.state import C_SEQ, make_state  # noqa: E402
from offload.gateway import Client  # noqa: E402
from offload.journal import JournalWriter, load_journal, scan_journal  # noqa: E402
from offload.pinning import machine_load  # noqa: E402
from offload.recovery import recover  # noqa: E402
from testkit.latency import fmt, histogram, save  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, ".benchmarks", "journal.json")  # the full run (this file as a script)
OUT_SHORT = os.path.join(REPO, "build", "bench", "journal.json")  # the shorter pytest run (make bench)
SCRATCH = "/var/tmp"  # a real disk here; /dev/shm is tmpfs and would hide the cost of writing
CONFIGS = {"no journal": None, "--fsync none": "none", "--fsync interval:1": "interval:1",
           "--fsync batch": "batch"}
SESSIONS = 8  # client identities the built journals' batches rotate through


def filesystem(path: str) -> str:
    """'<fstype> on <device> (<mount point>)' of the mount holding path, from /proc/self/mounts."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            mnt = mnt.replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[0]):
                best = (mnt, dev, fstype)
    return f"{best[2]} on {best[1]} ({best[0]})"


def scratch_dir(tag: str) -> str:
    d = os.path.join(SCRATCH, f"tickbook-bench-journal-{os.getpid()}-{tag}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    fs = filesystem(d)
    if fs.startswith(("tmpfs", "ramfs")):
        raise RuntimeError(f"{d} is on {fs}: the journal must be measured on a disk")
    return d


# --- 1. the journal on the round trip ----------------------------------------------------


def one_config(fsync: str | None, orders: np.ndarray, warm: int, base: str, tag: str) -> tuple[np.ndarray, int]:
    """Round-trip latencies (ns) of orders[warm:] through a fresh gateway + engine; and the
    records the journal holds afterwards (-1 without one), which must be every order sent."""
    extra, d = (), None
    if fsync is not None:
        d = os.path.join(base, tag)
        extra = ("--journal", d, "--fsync", fsync)
    stack = GatewayStack(extra=extra)
    try:
        with Client(stack.orders, timeout=30) as c:
            lat = rtt(c, orders, warm)
            c.reports()
    finally:
        stack.close()
    journaled = -1
    if d is not None:
        journaled = scan_journal(d).records
        shutil.rmtree(d)
    return lat, journaled


def journal_rtt(orders: np.ndarray, warm: int, rounds: int) -> dict:
    base = scratch_dir("rtt")
    names = list(CONFIGS)
    per_round = {name: [] for name in names}
    pooled = {name: [] for name in names}
    journaled = {}
    try:
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:  # rotated each round
                lat, journaled[name] = one_config(CONFIGS[name], orders, warm, base, f"r{r}-{name.split()[-1]}")
                per_round[name].append(histogram(lat))
                pooled[name].append(lat)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    res = {"journal_filesystem": filesystem(SCRATCH), "rounds": rounds, "orders_per_round": len(orders) - warm,
           "warm_up_orders": warm, "configs": {}}
    keys = ("p50_ns", "p99_ns", "p99.9_ns")
    for name in names:
        rs = per_round[name]
        res["configs"][name] = {
            "median_over_rounds": {k: statistics.median(h[k] for h in rs) for k in keys},
            "min_over_rounds": {k: min(h[k] for h in rs) for k in keys},
            "max_over_rounds": {k: max(h[k] for h in rs) for k in keys},
            "pooled": histogram(np.concatenate(pooled[name])),
            "rounds": rs,
            "records_journaled": journaled[name],  # the last round's; -1: no journal
        }
    bare = res["configs"]["no journal"]["median_over_rounds"]
    for name in names:
        med = res["configs"][name]["median_over_rounds"]
        res["configs"][name]["ratio_to_no_journal"] = {k: round(med[k] / bare[k], 2) for k in keys}
    return res


# --- 2. recovery --------------------------------------------------------------------------


def stamped_orders(venue, n: int) -> np.ndarray:
    """n records as the gateway would have journaled them: msg_seq 1..n, ts non-decreasing."""
    recs = generate(venue, n, seed=1)
    recs["msg_seq"] = np.arange(1, n + 1)
    recs["ts"] = np.maximum.accumulate(recs["ts"])
    return recs


def build_journal(directory: str, venue, recs: np.ndarray, per_batch: int) -> dict:
    """recs as batches of per_batch records (sessions in turn, each numbering its own records
    1, 2, ...), appended with JournalWriter, committed 1024 batches at a time without fsync
    (the file is the same whatever the commits: a batch is what one append wrote)."""
    n = len(recs)
    batch_of = np.arange(n) // per_batch
    session_of = batch_of % SESSIONS
    cseqs = np.empty(n, np.int64)
    for s in range(SESSIONS):
        mine = session_of == s
        cseqs[mine] = np.arange(1, int(mine.sum()) + 1)
    names = [b"bench-client-%d" % s for s in range(SESSIONS)]
    raw = memoryview(recs.tobytes())  # memoryview and list slices: cheaper per append than numpy slices
    cs = cseqs.tolist()
    t0 = time.perf_counter()
    w = JournalWriter(directory, venue.digest(), fsync="none")
    for b, i in enumerate(range(0, n, per_batch)):
        j = min(i + per_batch, n)
        w.append(names[b % SESSIONS], raw[i * 64 : j * 64], cs[i:j])
        if b % 1024 == 1023:
            w.commit()
    w.commit()
    w.close()
    dt = time.perf_counter() - t0
    files = [os.path.join(directory, f) for f in sorted(os.listdir(directory)) if f.endswith(".tbj")]
    return {"records": n, "records_per_batch": per_batch, "batches": -(-n // per_batch),
            "files": len(files), "bytes": sum(os.path.getsize(f) for f in files), "write_s": round(dt, 3)}


def drop_cache(directory: str) -> None:
    """Drop the journal's (clean, synced) pages from the page cache: a cold read. Only these
    files; the VM's host may still cache the blocks."""
    for f in os.listdir(directory):
        fd = os.open(os.path.join(directory, f), os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def breakdown(directory: str, venue) -> dict:
    """recover()'s steps timed one by one: the snapshot (or the empty book), the journal after
    it read and verified, the matcher over it; and what a restarting gateway pays before that,
    the journal writer's open (every file walked for the sessions' numbers, the torn tail cut;
    crcs checked after the newest snapshot)."""
    t0 = time.perf_counter()
    snap = newest_snapshot(directory, venue)
    st, base = (make_state(venue, None), 0) if snap is None else snap[1:]
    t1 = time.perf_counter()
    records = load_journal(directory, venue.digest(), after_msg_seq=base, covered=True).records
    t2 = time.perf_counter()
    advance(st, venue, records)
    t3 = time.perf_counter()
    JournalWriter(directory, venue.digest(), fsync="none", trusted=base).close()
    t4 = time.perf_counter()
    return {"state_s": t1 - t0, "load_journal_s": t2 - t1, "advance_s": t3 - t2, "writer_open_s": t4 - t3}


def time_recover(directory: str, venue, runs: int, expect_seq: int, expect_snapshot: int) -> dict:
    first = recover(directory, venue)  # untimed: the matcher's JIT cache loads on first use
    assert first.msg_seq == expect_seq and first.snapshot_seq == expect_snapshot, (first.msg_seq, first.snapshot_seq)
    out = {"first_run_s": round(first.seconds, 3), "replayed": len(first.records), "events": len(first.events),
           "event_seq": int(first.state.ctr[C_SEQ])}
    del first
    totals, parts = [], []
    for _ in range(runs):  # alternated: recover() itself, then its steps one by one
        totals.append(recover(directory, venue).seconds)
        parts.append(breakdown(directory, venue))
    out["recover_best_s"] = round(min(totals), 3)
    out["recover_median_s"] = round(statistics.median(totals), 3)
    out["recover_runs_s"] = [round(t, 3) for t in totals]
    for k in parts[0]:
        out[f"{k[:-2]}_median_s"] = round(statistics.median(p[k] for p in parts), 3)
    drop_cache(directory)
    out["recover_cold_cache_s"] = round(recover(directory, venue).seconds, 3)
    return out


def recovery(venue, n: int, runs: int) -> dict:
    recs = stamped_orders(venue, n)
    at = n - n // 10  # the snapshot: the last 10 % replayed after it
    snap_state = make_state(venue, 0)
    advance(snap_state, venue, recs[:at])
    res = {"messages": n, "snapshot_msg_seq": at}
    for per_batch in (1, 16):
        d = scratch_dir(f"rec{per_batch}")
        try:
            r = {"journal": build_journal(d, venue, recs, per_batch)}
            r["full_replay"] = time_recover(d, venue, runs, n, 0)
            t0 = time.perf_counter()
            path = save_snapshot(d, snap_state, venue, at)
            r["snapshot_save_s"] = round(time.perf_counter() - t0, 3)
            r["snapshot_bytes"] = os.path.getsize(path)
            r["snapshot_plus_tail"] = time_recover(d, venue, runs, n, at)
            # the same end state either way, or the timings compare different work
            assert r["snapshot_plus_tail"]["event_seq"] == r["full_replay"]["event_seq"]
            res[f"batches_of_{per_batch}"] = r
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return res


# --- the run --------------------------------------------------------------------------------


def main(rtt_orders=10_000, warm=1000, rounds=5, n_recover=1_000_000, runs=5, out=OUT) -> dict:
    os.sched_setaffinity(0, {0})
    t0 = time.perf_counter()
    res = {"machine": machine_load(), "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    v = as_venue(None)
    res["round_trip"] = journal_rtt(generate(v, warm + rtt_orders, seed=1), warm, rounds)
    res["machine_between"] = machine_load()
    res["recovery"] = recovery(v, n_recover, runs)
    res["machine_after"] = machine_load()
    res["seconds"] = round(time.perf_counter() - t0, 1)
    report_(res)
    save(res, out)
    return res


def report_(res):
    rt = res["round_trip"]
    print(f"machine before: {res['machine']}")
    print(f"journal directory on {rt['journal_filesystem']}; {rt['rounds']} rounds x {rt['orders_per_round']:,} "
          f"orders per configuration, fresh gateway + engine each")
    print("round trip, one order in flight: median over rounds (pooled histogram's max in the last column)")
    for name, c in rt["configs"].items():
        m, ratio = c["median_over_rounds"], c["ratio_to_no_journal"]
        print(fmt(f"  {name}", {**c["pooled"], **m, "n": c["pooled"]["n"]})
              + f"   x{ratio['p50_ns']:.2f} p50, x{ratio['p99_ns']:.2f} p99")
    for name, c in rt["configs"].items():
        lo, hi = c["min_over_rounds"], c["max_over_rounds"]
        print(f"  spread over rounds, {name:<20} p50 {lo['p50_ns'] / 1e3:.1f}..{hi['p50_ns'] / 1e3:.1f} us, "
              f"p99 {lo['p99_ns'] / 1e3:.1f}..{hi['p99_ns'] / 1e3:.1f} us"
              + (f"; journaled {c['records_journaled']:,} records" if c["records_journaled"] >= 0 else ""))
    print(f"machine between: {res['machine_between']}")
    rec = res["recovery"]
    n, at = rec["messages"], rec["snapshot_msg_seq"]
    for per_batch in (1, 16):
        r = rec[f"batches_of_{per_batch}"]
        j = r["journal"]
        print(f"recovery, {n:,} messages in batches of {per_batch}: journal {j['bytes'] / 1e6:.1f} MB in "
              f"{j['files']} file(s), written (fsync none) in {j['write_s']:.2f} s")
        for label, t in ((f"replay of all {n:,}", r["full_replay"]),
                         (f"snapshot at {at:,} + {n - at:,}", r["snapshot_plus_tail"])):
            print(f"  {label:<28} recover() best {t['recover_best_s']:.3f} s, median {t['recover_median_s']:.3f} s "
                  f"(first {t['first_run_s']:.3f} s, page cache dropped {t['recover_cold_cache_s']:.3f} s); "
                  f"steps (medians): state {t['state_median_s']:.3f} + load_journal {t['load_journal_median_s']:.3f}"
                  f" + advance {t['advance_median_s']:.3f} s; {t['replayed']:,} replayed, {t['events']:,} events; "
                  f"a restarting gateway also opens its journal writer first: {t['writer_open_median_s']:.3f} s")
        print(f"  snapshot file {r['snapshot_bytes'] / 1e6:.1f} MB ({r['snapshot_bytes']:,} bytes), "
              f"saved in {r['snapshot_save_s']:.3f} s")
    print(f"machine after: {res['machine_after']}")
    print(f"benchmark took {res['seconds']:.0f} s")


def test_journal_cost_and_recovery():
    # not OUT: a short run must not replace the full run's figures
    res = main(rtt_orders=1500, warm=300, rounds=2, n_recover=200_000, runs=3, out=OUT_SHORT)
    for c in res["round_trip"]["configs"].values():
        assert c["pooled"]["n"] == 2 * 1500
        assert c["records_journaled"] in (-1, 1800)
    assert res["recovery"]["batches_of_1"]["snapshot_plus_tail"]["replayed"] == 20_000


if __name__ == "__main__":
    main()
