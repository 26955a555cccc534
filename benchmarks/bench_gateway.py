"""Order round trip through the gateway: client -> (tcp) gateway -> ring -> engine -> ring ->
gateway -> (tcp) client, one order in flight, p50/p99/p99.9/max from an HDR histogram; in the
same run, the bare pyzmq round trip with the same client code and framing against an echo
ROUTER (once on the gateway's core, once on a core of its own), and a pipelined throughput.

    .venv/bin/python benchmarks/bench_gateway.py       # prints, writes .benchmarks/gateway.json
    pytest benchmarks/bench_gateway.py -s              # a shorter run, writes build/bench/gateway.json

Placement on this 2-core machine: the engine pinned to cpu 1, busy-polling (never yields);
gateway and client share cpu 0 (the client sleeps in zmq_poll while the gateway works, the
gateway sleeps in zmq_poll between orders and spins only while an order is in the engine).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.api import as_venue  # noqa: E402
from engine.gen import generate  # noqa: E402
from offload.gateway import K_EV, Client, ready_path  # noqa: E402
from testkit.gatewaykeys import client_keys, write_keys  # noqa: E402
from testkit.latency import fmt, histogram, save  # noqa: E402
from offload.pinning import machine_load  # noqa: E402
from offload.ring import reap_stale  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, ".benchmarks", "gateway.json")  # the full run (this file as a script)
OUT_SHORT = os.path.join(REPO, "build", "bench", "gateway.json")  # the shorter pytest run (make bench)
NEVER = str(1 << 62)


def on_cpu(cpu):
    return lambda: os.sched_setaffinity(0, {cpu}) if cpu is not None else None


def echo_main(endpoint: str, spin: bool = False, secret: str | None = None) -> None:
    """ROUTER that answers every request [kind, token, payload] with [EV, token, payload, b'']
    (the gateway's reply framing, no work); `spin`: busy-polls instead of sleeping in recv;
    `secret`: a CURVE server with that key file (any client key: no ZAP handler)."""
    import zmq
    import zmq.auth

    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    if secret:
        s.curve_publickey, s.curve_secretkey = zmq.auth.load_certificate(secret)
        s.curve_server = True
    s.bind(endpoint)
    print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    while True:
        if spin:
            try:
                f = s.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                continue
        else:
            f = s.recv_multipart(copy=False)
        if len(f) == 2:  # [ident, b"stop"]
            break
        s.send_multipart([f[0], K_EV, f[2], f[3], b""], copy=False)


def rtt(client: Client, orders: np.ndarray, warm: int) -> np.ndarray:
    pc = time.perf_counter_ns
    for i in range(warm):
        client.submit(orders[i : i + 1])
    n = len(orders) - warm
    lat = np.empty(n, np.int64)
    for k in range(n):
        i = warm + k
        t0 = pc()
        client.submit(orders[i : i + 1])
        lat[k] = pc() - t0
    return lat


def bare_zmq(orders, cpu, spin=False, keys=None) -> dict:
    """keys: the key folder of bench_keys(): a CURVE echo and a CURVE client."""
    args = ["--echo-spin" if spin else "--echo", "tcp://127.0.0.1:*"]
    if keys:
        args.append(os.path.join(keys, "server.key_secret"))
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], cwd=REPO,
                         stdout=subprocess.PIPE, text=True, preexec_fn=on_cpu(cpu))
    try:
        endpoint = p.stdout.readline().strip()
        with Client(endpoint, timeout=30, **(client_keys(keys, "bench") if keys else {})) as c:
            lat = rtt(c, orders, 2000)
            c.sock.send(b"stop")
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    return histogram(lat)


def bench_keys(folder: str, accounts, extra_clients=None) -> str:
    """A key file in folder: client `bench` may trade and kill `accounts` (the generated flows hold
    KILLs), and the others what they say."""
    os.makedirs(folder, exist_ok=True)
    grant = {"accounts": sorted(int(a) for a in accounts), "roles": ["trader", "risk"], "max_in_flight": 1 << 16}
    return write_keys(folder, {"bench": grant, **(extra_clients or {})})


class GatewayStack:
    def __init__(self, gateway_cpu=0, engine_cpu=1, extra=(), keys=None, engine_spins=True):
        """keys: a key file (CURVE, bench_keys()); without it, --insecure-local. engine_spins:
        the engine busy-polls its ring (a core of its own), else it yields when idle."""
        self.name = f"tickbook-bench-gw-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.log = open(f"/tmp/{self.name}.log", "w+")
        who = ["--keys", keys] if keys else ["--insecure-local"]
        self.gw = subprocess.Popen(
            [sys.executable, "-m", "offload.gateway", *who, "--rings", self.name, "--orders", "tcp://127.0.0.1:*",
             "--md", "tcp://127.0.0.1:*", "--spawn-engine", "--engine-cpu", str(engine_cpu),
             *([f"--engine-arg=--yield-after={NEVER}"] if engine_spins else []), "--orders-cap", "1024", *extra],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=on_cpu(gateway_cpu))
        t0 = time.monotonic()
        while not os.path.exists(ready_path(self.name, "gateway")):
            if self.gw.poll() is not None or time.monotonic() - t0 > 400:
                raise RuntimeError(f"gateway not ready:\n{self.output()}")
            time.sleep(0.05)
        m = re.search(r"serving orders on (\S+), market data on (\S+)", self.output())
        self.orders, self.md = m.group(1), m.group(2)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def close(self) -> str:
        if self.gw.poll() is None:
            self.gw.terminate()
            try:
                self.gw.wait(30)
            except subprocess.TimeoutExpired:
                self.gw.kill()
                self.gw.wait(10)
        out = self.output()
        self.log.close()
        os.unlink(self.log.name)
        reap_stale(self.name)
        return out


def pipelined(client: Client, orders: np.ndarray, per_msg=64, window=16) -> dict:
    t0 = time.perf_counter()
    inflight = []
    events = 0
    for i in range(0, len(orders), per_msg):
        inflight.append(client.send(orders[i : i + per_msg]))
        if len(inflight) >= window:
            events += len(client.recv(inflight.pop(0)).events)
    for tok in inflight:
        events += len(client.recv(tok).events)
    dt = time.perf_counter() - t0
    return {"records": len(orders), "records_per_s": round(len(orders) / dt), "events": events,
            "per_message": per_msg, "window": window}


def main(n=20_000, out=OUT) -> dict:
    os.sched_setaffinity(0, {0})
    res = {"machine": machine_load(), "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    v = as_venue(None)
    orders = generate(v, 3 * n + 260_000, seed=1)
    res["zmq_rtt_same_core"] = bare_zmq(orders[:n], 0)
    res["zmq_rtt_other_core"] = bare_zmq(orders[:n], 1)
    res["zmq_rtt_other_core_spinning_echo"] = bare_zmq(orders[:n], 1, spin=True)
    stack = GatewayStack()
    try:
        with Client(stack.orders, timeout=30) as c:
            res["gateway_rtt"] = histogram(rtt(c, orders[n : 3 * n], n))
            res["gateway_pipelined"] = pipelined(c, orders[3 * n :])
            c.reports()
    finally:
        report = stack.close()
    res["processes"] = [line for line in report.splitlines() if "pinned" in line or "exit" in line]
    # --spin: the gateway busy-polls its socket for 5 ms after each message instead of sleeping
    stack = GatewayStack(extra=("--spin", "0.005"))
    try:
        with Client(stack.orders, timeout=30) as c:
            res["gateway_rtt_spin"] = histogram(rtt(c, orders[n : 3 * n], n))
            c.reports()
    finally:
        stack.close()
    # CURVE on: the gateway with a key file beside a bare pyzmq CURVE echo, in the same run
    with tempfile.TemporaryDirectory() as tmp:
        keys = bench_keys(tmp, np.unique(orders["account"]))
        res["zmq_curve_rtt_same_core"] = bare_zmq(orders[:n], 0, keys=tmp)
        stack = GatewayStack(keys=keys)
        try:
            with Client(stack.orders, timeout=30, **client_keys(tmp, "bench")) as c:
                res["gateway_curve_rtt"] = histogram(rtt(c, orders[n : 3 * n], n))
                c.reports()
        finally:
            stack.close()
    res["ratio_gateway_over_zmq_p50"] = round(res["gateway_rtt"]["p50_ns"] / res["zmq_rtt_same_core"]["p50_ns"], 2)
    for q in ("p50", "p99", "p99.9"):
        res[f"ratio_gateway_curve_over_zmq_curve_{q}"] = round(
            res["gateway_curve_rtt"][f"{q}_ns"] / res["zmq_curve_rtt_same_core"][f"{q}_ns"], 2)
    res["machine_after"] = machine_load()
    report_(res)
    save(res, out)
    return res


def report_(res):
    print(f"machine before: {res['machine']}")
    print(fmt("pyzmq DEALER/ROUTER echo, tcp, same core", res["zmq_rtt_same_core"]))
    print(fmt("pyzmq DEALER/ROUTER echo, tcp, other core", res["zmq_rtt_other_core"]))
    print(fmt("pyzmq echo, tcp, other core, echo spinning", res["zmq_rtt_other_core_spinning_echo"]))
    print(fmt("order -> gateway -> engine -> gateway, tcp", res["gateway_rtt"]))
    print(fmt("the same, gateway --spin 0.005", res["gateway_rtt_spin"]))
    print(fmt("pyzmq echo with CURVE, tcp, same core", res["zmq_curve_rtt_same_core"]))
    print(fmt("order -> gateway -> engine, CURVE (--keys)", res["gateway_curve_rtt"]))
    print("gateway with CURVE / bare pyzmq CURVE echo: " + ", ".join(
        f"{q} {res[f'ratio_gateway_curve_over_zmq_curve_{q}']}x" for q in ("p50", "p99", "p99.9")))
    p = res["gateway_pipelined"]
    print(f"pipelined: {p['records_per_s']:,} records/s ({p['per_message']} records a message, {p['window']} in flight)")
    print(f"gateway / bare pyzmq (same core) at p50: {res['ratio_gateway_over_zmq_p50']}x")
    for line in res["processes"]:
        print(f"  {line}")
    print(f"machine after: {res['machine_after']}")


def test_gateway_round_trip():
    res = main(n=3000, out=OUT_SHORT)  # not OUT: a short run must not replace the full run's figures
    assert res["gateway_rtt"]["n"] == 3000


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] in ("--echo", "--echo-spin"):
        echo_main(sys.argv[2], spin=sys.argv[1] == "--echo-spin", secret=sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        main()
