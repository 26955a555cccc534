"""Liveness and readiness over HTTP, answered by the process itself.

    GET /live     200 "alive" while the process's loop turns (or it is still starting), else 503
    GET /ready    200 "ready" while it serves, else 503 and the reason in one line
    GET /metrics  the Prometheus text exposition of `registry` (only when one is given; the
                  gateway's: offload/gateway/metrics.py), else 404

Kubernetes probes these with `httpGet`: a connect and a request from the kubelet, no process
forked into the pod (an exec probe would fork onto the container's exclusive cores every
period). The server is one daemon thread: a probe costs the serving loop a few microseconds of
the GIL. It is bounded against slow or hostile peers: a request must arrive within a second,
its line and headers are capped, and only these paths answer (docs/deploy.md). A scrape of
/metrics holds the GIL while it renders (about a millisecond for a few hundred series): a
Prometheus scrape every 15 s costs the serving loop that, once.
"""

from __future__ import annotations

import http.server
import threading
from typing import Callable

# (alive, ready, why): why explains a 503 in one line
Probe = Callable[[], tuple[bool, bool, str]]


def parse_address(text: str) -> tuple[str, int]:
    """`[HOST:]PORT` -> (host, port); the host defaults to 127.0.0.1 (a pod passes 0.0.0.0)."""
    host, _, port = text.rpartition(":")
    try:
        n = int(port)
    except ValueError:
        raise ValueError(f"--health {text!r}: expected [HOST:]PORT") from None
    if not 0 <= n <= 65535:
        raise ValueError(f"--health {text!r}: port out of range")
    return host or "127.0.0.1", n


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 1.0  # a peer that sends nothing is dropped, and the next probe is served
    server_version = "tickbook-health"
    sys_version = ""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        registry = self.server.registry
        if path == "/metrics" and registry is not None:
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            return
        alive, ready, why = self.server.probe()
        if path == "/live":
            self._reply(200 if alive else 503, "alive" if alive else why)
        elif path == "/ready":
            self._reply(200 if ready else 503, "ready" if ready else why)
        else:
            self._reply(404, "not found: GET /live, /ready or /metrics" if registry is not None else
                        "not found: GET /live or /ready")

    def _reply(self, status: int, text: str | bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        body = text if isinstance(text, bytes) else (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # probes every few seconds: not worth a log line each
        pass


class _Server(http.server.HTTPServer):
    request_queue_size = 16  # connections the kernel queues while one is served

    def handle_error(self, request, client_address):  # a peer that hangs up mid-request: nothing to report
        pass


class HealthServer:
    """Serves /live and /ready from `probe`, and /metrics from `registry` (a
    prometheus_client CollectorRegistry) when given, on a daemon thread until close()."""

    def __init__(self, address: str, probe: Probe, registry=None):
        self._srv = _Server(parse_address(address), _Handler)
        self._srv.probe = probe
        self._srv.registry = registry
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, args=(0.5,), name="health", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()
