"""LOBSTER import and replay: the 148k-message GOOG 10-level sample, stage by stage.

    .venv/bin/python benchmarks/bench_lobster.py      # prints figures, writes .benchmarks/lobster.json
    pytest benchmarks/bench_lobster.py -s --benchmark-enable

Stages, one module of engine/lobster/ each: read (engine.lobster.read: zip -> validated int64
arrays), convert (engine.lobster.converter: -> order records), replay (engine.lobster.replayer:
the engine's process_one on every record plus a 10-level comparison with the orderbook row after
every message). The njit code is compiled (or loaded from the cache) before timing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from engine.lobster.cli import run
from engine.lobster.converter import convert
from engine.lobster.read import read_lobster
from engine.lobster.replayer import replay

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "lobster"
GOOG10 = DATA / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip"
OUT = ROOT / ".benchmarks" / "lobster.json"


def stages(path=GOOG10, mode="book", repeat=3) -> dict:
    run(str(path), mode=mode, out=None)  # compile / load the caches
    best = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = read_lobster(str(path))
        t1 = time.perf_counter()
        conv = convert(data, mode)
        t2 = time.perf_counter()
        rep = replay(data, conv)
        t3 = time.perf_counter()
        assert rep.identical == rep.compared and rep.rejects == 0
        for k, v in (("read", t1 - t0), ("convert", t2 - t1), ("replay", t3 - t2), ("total", t3 - t0)):
            best[k] = min(best.get(k, v), v)
    n = len(data.messages)
    return {"file": path.name, "mode": mode, "messages": n, "records": int(len(conv.orders)),
            **{f"{k}_s": round(v, 4) for k, v in best.items()},
            "messages_per_s": round(n / best["total"]), "replay_messages_per_s": round(n / best["replay"])}


def test_lobster_goog10(benchmark):
    data = read_lobster(str(GOOG10))
    conv = convert(data, "book")
    replay(data, conv)
    rep = benchmark.pedantic(replay, args=(data, conv), rounds=3, iterations=1)
    assert rep.identical == rep.compared


if __name__ == "__main__":
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    res = [stages(mode=m) for m in ("book", "match")]
    for r in res:
        print(f"{r['file']} {r['mode']:5s}: {r['messages']:,} messages, read {r['read_s']:.2f} s, convert "
              f"{r['convert_s']:.2f} s, replay+compare {r['replay_s']:.2f} s, total {r['total_s']:.2f} s "
              f"({r['messages_per_s']:,} msg/s; replay {r['replay_messages_per_s']:,} msg/s)")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1) + "\n")
