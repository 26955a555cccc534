"""The libzmq 4.3.5 abort that ZMTP heartbeats expose, and the gateway that avoids it.

libzmq issue #3937 (also #4364, #4767; fix PR #4830 unmerged, in no release): a ROUTER with
ZMQ_HEARTBEAT_IVL whose connection has its input stopped (the application reads slower than the
peer sends: back-pressure) and is then closed by the peer aborts the whole process in the
heartbeat timer: `Assertion failed: !_io_error (src/stream_engine_base.cpp:310)`. The shape that
found it: a DEALER that floods 65-byte frames (the gateway refuses each with an ERR, which the
DEALER never reads) for a few seconds, then closes.

- a bare ROUTER with HEARTBEAT_IVL 2000 / TIMEOUT 6000 (what the gateway had) and such a flood:
  the process dies with SIGABRT and that assertion (on the first 4 s flood in every run here);
- the real gateway (TCP keepalive instead of heartbeats, offload/gateway/server.py) survives six
  such floods from fresh DEALERs and then serves a normal client.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import zmq

from engine.diagnostics import EXIT_OK
from engine.records import EV_ACK
from testkit.gatewayproc import GatewayProcess, order

STEP = 60.0
FLOOD_S = 4.0  # a flood closed ~4 s after it connected: 7 of 7 bare-ROUTER runs aborted on the first

# the gateway's ROUTER as it was (offload/gateway/server.py before the fix), without the rest:
# it answers every message with an ERR, sent without blocking, as the gateway does
BARE_ROUTER = r"""
import sys, zmq
ctx = zmq.Context()
r = ctx.socket(zmq.ROUTER)
r.setsockopt(zmq.ROUTER_MANDATORY, 1)
r.setsockopt(zmq.SNDHWM, 100_000)
r.setsockopt(zmq.RCVHWM, 100_000)
r.setsockopt(zmq.HEARTBEAT_IVL, 2000)
r.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
r.bind("tcp://127.0.0.1:*")
print(r.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
err = b"message of 65 bytes is not a whole number of 64-byte order records: refused"
while True:
    if not r.poll(20):
        continue
    for _ in range(64):
        try:
            f = r.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            break
        try:
            r.send_multipart([f[0], b"ERR", b"", err, b"", b""], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
"""


def flood(endpoint: str, seconds: float) -> int:
    """A fresh DEALER sends 65-byte frames as fast as it may for `seconds`, never reads its
    replies, then closes (LINGER 0). Returns the frames sent."""
    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(endpoint)
    msg = bytes(65)
    n = 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            try:
                d.send(msg, zmq.NOBLOCK)
                n += 1
            except zmq.Again:  # its queue is full: the peer stopped reading
                time.sleep(0.0005)
    finally:
        d.close()
        ctx.term()
    return n


@pytest.mark.skipif(zmq.zmq_version_info()[:3] != (4, 3, 5), reason="the abort is shown on libzmq 4.3.5")
def test_a_bare_router_with_zmtp_heartbeats_aborts_on_flood_then_close():
    p = subprocess.Popen([sys.executable, "-c", BARE_ROUTER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        endpoint = p.stdout.readline().strip()
        assert endpoint.startswith("tcp://"), p.stderr.read()
        for _ in range(3):  # one flood is enough in every run seen; three bound a slow machine
            flood(endpoint, FLOOD_S)
            t0 = time.monotonic()
            while p.poll() is None and time.monotonic() - t0 < 3.0:
                time.sleep(0.02)
            if p.poll() is not None:
                break
        if p.poll() is None:
            pytest.xfail("the bare ROUTER survived three floods this time (a timing race in libzmq)")
        err = p.stderr.read()
        assert p.returncode == -signal.SIGABRT, (p.returncode, err)
        assert "Assertion failed: !_io_error (src/stream_engine_base.cpp:310)" in err, err
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(10)
        p.stdout.close()
        p.stderr.close()


def test_the_gateway_survives_flood_then_close_clients(tmp_path):
    g = GatewayProcess(tmp_path, step=STEP, tag="zmqfault")
    try:
        for k, seconds in enumerate((4.0, 4.0, 3.5, 4.5, 4.0, 4.0)):
            sent = flood(g.orders, seconds)
            time.sleep(0.2)
            assert g.proc.poll() is None, f"the gateway died after flood {k + 1} ({sent} frames):\n{g.logs()}"
        time.sleep(2.5)  # past the next heartbeat tick the old ROUTER would have had
        assert g.proc.poll() is None, f"the gateway died after the floods:\n{g.logs()}"
        assert "Assertion failed" not in g.logs()
        with g.client() as c:
            assert list(c.submit(order(1, 800, price=180.0, qty=1, msg_seq=1))["kind"]) == [EV_ACK]
        g.proc.send_signal(signal.SIGTERM)
        assert g.proc.wait(STEP) == EXIT_OK, g.logs()
    finally:
        g.close()
