"""offload/health.py: /live and /ready answer from the probe, and a hostile peer cannot take the
endpoint away from the kubelet's probes."""

import http.client
import socket
import time

import pytest

from offload.health import HealthServer, parse_address


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.read().decode().strip()


@pytest.fixture
def server():
    state = {"alive": True, "ready": False, "why": "waiting for the engine"}
    srv = HealthServer("127.0.0.1:0", lambda: (state["alive"], state["ready"], state["why"]))
    yield srv, state
    srv.close()


def test_ready_and_live_follow_the_probe(server):
    srv, state = server
    assert get(srv.port, "/ready") == (503, "waiting for the engine")
    assert get(srv.port, "/live") == (200, "alive")
    state["ready"] = True
    assert get(srv.port, "/ready") == (200, "ready")
    state.update(alive=False, ready=False, why="the gateway's loop has not turned for 12.0 s")
    assert get(srv.port, "/live") == (503, "the gateway's loop has not turned for 12.0 s")
    assert get(srv.port, "/metrics")[0] == 404


def test_a_silent_peer_delays_a_probe_by_at_most_the_request_timeout(server):
    srv, state = server
    silent = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
    try:
        t = time.monotonic()
        assert get(srv.port, "/live") == (200, "alive")
        waited = time.monotonic() - t
    finally:
        for s in silent:
            s.close()
    assert waited < 4.5, f"three silent peers held the probe {waited:.1f} s (1 s each at most)"


def test_garbage_and_oversized_requests_get_an_error_not_a_dead_server(server):
    srv, _ = server
    for junk in (b"\x00\xff" * 10 + b"\r\n\r\n", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(junk)
            s.recv(1024)
    assert get(srv.port, "/live") == (200, "alive")


@pytest.mark.parametrize("text, expect", [("8080", ("127.0.0.1", 8080)), ("0.0.0.0:8080", ("0.0.0.0", 8080))])
def test_addresses(text, expect):
    assert parse_address(text) == expect


@pytest.mark.parametrize("text", ["", "http", "1:99999", ":-1"])
def test_bad_addresses_are_refused_in_one_line(text):
    with pytest.raises(ValueError, match="--health"):
        parse_address(text)
