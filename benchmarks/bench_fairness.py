"""Fairness: one flooding client beside one well-behaved one, through one gateway with CURVE keys.

The victim sends one order at a time (a NEW, then its CANCEL) and times each round trip: alone
(quiet), while another key floods the gateway as fast as its process can (flood), and after the
flooders have gone (after). Each flooder sends messages as large as its key allows (half NEWs,
half their CANCELs), keeps 4 in flight and reads its replies: valid work at the full rate its
key allows, so most of its messages get an `in_flight` ERR, which is the point. One flooder
has a key's default grant (max_in_flight), the other a key granted 4 times as much: what a
grant costs the others is the figure. The figures:
the victim's p50 and p99 in each phase and their ratio to quiet, each flooder's accepted
records a second and refusals, and the gateway's peak RSS.

    .venv/bin/python benchmarks/bench_fairness.py      # prints, writes .benchmarks/fairness.json
    pytest benchmarks/bench_fairness.py -s             # a shorter run, writes build/bench/fairness.json

Placement on this 2-core machine: gateway and victim on cpu 0, the flooder on cpu 1 with the
engine (which yields when idle, in every phase): the flooder's own CPU time must not be taken
from the gateway, as it would not be from a venue's gateway by a client on another machine. It
is taken from the engine, though; so a control phase runs a process that only burns cpu 1
(busy): the flood's cost to the victim that is the gateway's is its ratio to that control.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_gateway import GatewayStack, on_cpu, rtt  # noqa: E402
from engine.records import (  # noqa: E402
    ACTION_CANCEL,
    ACTION_NEW,
    ORDER_DTYPE,
    PRICE_SCALE,
    SIDE_BUY,
    TIF_GTC,
    TYPE_LIMIT,
)
from offload.gateway import Client  # noqa: E402
from offload.gateway.keys import DEFAULT_IN_FLIGHT  # noqa: E402
from offload.pinning import machine_load  # noqa: E402
from testkit.gatewaykeys import client_keys, write_keys  # noqa: E402
from testkit.latency import fmt, histogram, save  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, ".benchmarks", "fairness.json")
OUT_SHORT = os.path.join(REPO, "build", "bench", "fairness.json")
VICTIM, FLOODER = 501, 601  # accounts


def new_then_cancel(first_id: int, n: int, account: int, price: float) -> np.ndarray:
    """n NEW buy orders, then a CANCEL of each: the book is left as it was."""
    r = np.zeros(2 * n, ORDER_DTYPE)
    ids = np.arange(first_id, first_id + n, dtype=np.uint64)
    r["order_id"] = np.concatenate([ids, ids])
    r["account"], r["symbol"] = account, 0
    r["action"][:n], r["action"][n:] = ACTION_NEW, ACTION_CANCEL
    r["side"][:n], r["type"][:n], r["tif"][:n] = SIDE_BUY, TYPE_LIMIT, TIF_GTC
    r["qty"][:n] = 10
    r["price"][:n] = round(price * PRICE_SCALE)
    r["msg_seq"] = np.arange(1, 2 * n + 1)
    return r


def victim_orders(n: int) -> np.ndarray:
    """NEW, CANCEL, NEW, CANCEL ...: one at a time, each answered before the next."""
    pairs = new_then_cancel(1, n // 2, VICTIM, 170.0)
    out = np.empty(len(pairs), ORDER_DTYPE)
    out[0::2], out[1::2] = pairs[: n // 2], pairs[n // 2 :]
    return out


def flooder_main(orders: str, keys: str, key: str, per_msg: int) -> None:
    """Flood until SIGTERM with messages of per_msg records, keeping 4 in flight; then print
    what happened as JSON."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    sent = accepted = refused = 0
    codes: dict[str, int] = {}
    oid = 10_000_000
    inflight = []
    with Client(orders, timeout=60, **client_keys(keys, key)) as c:
        t0 = time.monotonic()
        while not stop or inflight:
            if len(inflight) < 4 and not stop:
                inflight.append(c.send(new_then_cancel(oid, per_msg // 2, FLOODER, 171.0)))
                oid += per_msg // 2
                sent += 1
                continue
            r = c.recv(inflight.pop(0))
            if r.error is None:
                accepted += per_msg
            else:
                refused += 1
                code = "in_flight" if "in flight" in r.error else "rate" if "rate" in r.error else "other"
                codes[code] = codes.get(code, 0) + 1
            c.reports()
        took = time.monotonic() - t0
    print(json.dumps({"key": key, "records_a_message": per_msg, "messages": sent, "accepted_records": accepted,
                      "records_per_s": round(accepted / took), "refused_messages": refused, "refusals": codes,
                      "seconds": round(took, 2)}), flush=True)


def gateway_peak_rss_mib(stack: GatewayStack) -> float:
    with open(f"/proc/{stack.gw.pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


# (phase, flooding key, records a message): the default grant, then a key granted 4x as much
FLOODS = (("flood", "flooder", DEFAULT_IN_FLIGHT), ("flood_bulk", "bulk", 4 * DEFAULT_IN_FLIGHT))
BURN = "while True: pass"  # the control: a flooder's CPU use on its core, without a message sent


def main(n=5_000, out=OUT) -> dict:
    os.sched_setaffinity(0, {0})
    res = {"machine": machine_load(), "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    orders = victim_orders((3 + len(FLOODS)) * n + 4000)
    with tempfile.TemporaryDirectory() as tmp:
        keys = write_keys(tmp, {"victim": {"accounts": [VICTIM]}, "flooder": {"accounts": [FLOODER]},
                                "bulk": {"accounts": [FLOODER], "max_in_flight": 4 * DEFAULT_IN_FLIGHT}})
        stack = GatewayStack(keys=keys, engine_spins=False)
        try:
            with Client(stack.orders, timeout=30, **client_keys(tmp, "victim")) as v:
                res["quiet"] = histogram(rtt(v, orders[: n + 2000], 2000))
                at = n + 2000
                burner = subprocess.Popen([sys.executable, "-c", BURN], preexec_fn=on_cpu(1))
                try:
                    time.sleep(1.0)
                    res["busy"] = histogram(rtt(v, orders[at : at + n], 0))
                    at += n
                finally:
                    burner.kill()
                    burner.wait(10)
                for phase, key, per_msg in FLOODS:
                    flooder = subprocess.Popen(
                        [sys.executable, os.path.abspath(__file__), "--flood", stack.orders, tmp, key, str(per_msg)],
                        cwd=REPO, stdout=subprocess.PIPE, text=True, preexec_fn=on_cpu(1))
                    time.sleep(1.0)  # the flood is under way
                    res[phase] = histogram(rtt(v, orders[at : at + n], 0))
                    at += n
                    flooder.terminate()
                    line = flooder.stdout.readline()
                    flooder.wait(60)
                    res[f"{phase}_by"] = json.loads(line) if line.strip() else {"killed": True}
                res["after"] = histogram(rtt(v, orders[at:], 0))
            res["gateway_peak_rss_mib"] = round(gateway_peak_rss_mib(stack), 1)
        finally:
            res["gateway_exit"] = [x for x in stack.close().splitlines() if "exit" in x]
    for phase in ["busy"] + [f[0] for f in FLOODS] + ["after"]:
        for q in ("p50", "p99"):
            res[f"ratio_{phase}_over_quiet_{q}"] = round(res[phase][f"{q}_ns"] / res["quiet"][f"{q}_ns"], 2)
            res[f"ratio_{phase}_over_busy_{q}"] = round(res[phase][f"{q}_ns"] / res["busy"][f"{q}_ns"], 2)
    res["machine_after"] = machine_load()
    report(res)
    save(res, out)
    return res


def report(res: dict) -> None:
    print(f"machine before: {res['machine']}")
    print(fmt("victim alone (quiet)", res["quiet"]))
    print(fmt("victim, cpu 1 busy, no flood (control)", res["busy"]))
    for phase, key, per_msg in FLOODS:
        print(fmt(f"victim while key {key} floods ({per_msg}/message)", res[phase]))
    print(fmt("victim after the flooders left", res["after"]))
    for phase, key, _ in FLOODS:
        print(f"under key {key}'s flood: victim p50 {res[f'ratio_{phase}_over_quiet_p50']}x, "
              f"p99 {res[f'ratio_{phase}_over_quiet_p99']}x quiet; p50 {res[f'ratio_{phase}_over_busy_p50']}x, "
              f"p99 {res[f'ratio_{phase}_over_busy_p99']}x the control; the flooder: {res[f'{phase}_by']}")
    print(f"after: p50 {res['ratio_after_over_quiet_p50']}x, p99 {res['ratio_after_over_quiet_p99']}x quiet")
    print(f"gateway peak RSS {res['gateway_peak_rss_mib']} MiB")
    for line in res["gateway_exit"]:
        print(f"  {line}")
    print(f"machine after: {res['machine_after']}")


def test_fairness():
    res = main(n=1000, out=OUT_SHORT)
    assert res["flood"]["n"] == 1000 and res["flood_by"].get("accepted_records", 0) > 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--flood":
        flooder_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
