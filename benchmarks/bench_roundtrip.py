"""One order through the rings and the pinned engine and back (p50/p99/p99.9/max, HDR
histogram), with a Numba client loop and a plain Python client; side by side in the same
run: the bare ring round trip, streaming and the pyzmq round trip (bench_ring.py).

    .venv/bin/python benchmarks/bench_roundtrip.py      # prints, writes .benchmarks/roundtrip.json
"""

from __future__ import annotations

import os
import sys
import time


# run as a script too: the test kit (testkit/) comes from the checkout, it is not installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_ring  # noqa: E402

from engine.api import as_venue  # noqa: E402
from engine.gen import generate  # noqa: E402
from offload.server import Server  # noqa: E402
from testkit.latency import ghz, histogram, round_trips, rtt_python, save  # noqa: E402
from offload.pinning import machine_load, pin, unpin  # noqa: E402
from offload.ring import as_words  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".benchmarks", "roundtrip.json")


def engine_rtt(n_numba=300_000, n_python=100_000, client_cpu=0, engine_cpu=1) -> dict:
    """Generated orders (built-in venue) one at a time through the engine process."""
    v = as_venue(None)
    orders = generate(v, n_numba + n_python + 40_000, seed=1)
    words = as_words(orders)
    f = ghz()
    res = {}
    srv = Server("offload.engine_process", v, orders_cap=1024, events_cap=1 << 16, cpu=engine_cpu)
    try:
        srv.wait_ready()
        pin(client_cpu)
        seg = srv.seg
        r_in, r_out = seg.ring(0), seg.ring(1)
        k = 20_000
        round_trips(r_in, r_out, words[:k], k, "engine")  # warm-up
        lat = round_trips(r_in, r_out, words[k : k + n_numba], n_numba, "engine")
        res["engine_rtt_numba"] = histogram(lat / f)
        r_in._head, r_out._tail = r_in.head(), r_out.tail()
        base = k + n_numba
        recs = [words[i].tobytes() for i in range(base, base + n_python)]
        res["engine_rtt_python"] = histogram(rtt_python(r_in, r_out, recs, n_python))
        srv.proc.send_signal(15)
        srv.proc.wait(30)
    finally:
        report = srv.close()
        unpin()
    res["engine"] = " | ".join(line.split(": ", 1)[1] for line in report.splitlines() if line.startswith("engine["))
    return res


def main() -> dict:
    res = {"machine": machine_load(), "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    res.update(bench_ring.ring_and_zmq())
    res.update(engine_rtt())
    res["streaming"] = bench_ring.streaming()
    # like for like: pyzmq's client and the engine round trip's client both plain Python
    res["ratio_zmq_over_engine_p50_python_clients"] = bench_ring.ratio_p50(res["zmq_rtt"], res["engine_rtt_python"])
    # not like for like: a Python pyzmq client against the compiled (Numba) ring client
    res["ratio_zmq_python_over_engine_numba_p50_mixed_clients"] = bench_ring.ratio_p50(res["zmq_rtt"],
                                                                                        res["engine_rtt_numba"])
    res["machine_after"] = machine_load()
    bench_ring.report(res)
    save(res, OUT)
    return res


def test_engine_round_trip():
    res = engine_rtt(n_numba=50_000, n_python=20_000)
    bench_ring.report(res)
    assert res["engine_rtt_numba"]["n"] == 50_000


if __name__ == "__main__":
    main()
