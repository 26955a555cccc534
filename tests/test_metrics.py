"""The gateway's Prometheus metrics (offload/gateway/metrics.py, docs/offload.md#metrics).

- End to end: a gateway with its spawned engine and `--health`; orders sent (accepted ones, a
  CSV message, refused ones, an unknown kind from a raw socket) by an anonymous client and a
  named session; `/metrics` fetched over HTTP and parsed with prometheus_client's own parser.
  Messages by kind and session, records by session, ERRs by code, events by kind and reason
  (against the in-process replay of the accepted records), events delivered, the latency
  histogram's count (one observation a reply), the ring depths, the state and the engine's
  liveness are what was sent.
- The pieces alone: bounded session and code labels, Replies.error(code=...), the HTTP
  endpoint with and without a registry, and the Grafana dashboard (k8s/monitoring/), whose
  every PromQL metric name must be one the gateway exports.
"""

from __future__ import annotations

import collections
import io
import json
import re
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import zmq
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from engine.api import as_venue, replay_records
from engine.codec import parse_flow_bytes, write_flow_csv
from engine.records import (
    EVENT_DTYPE,
    EVENT_NAMES,
    REASON_NAMES,
    SIDE_BUY,
    SIDE_SELL,
)
from offload.gateway import Client
from offload.gateway.ingress import Refused
from offload.gateway.metrics import METRICS, PREFIX, GatewayMetrics, exposed_names
from offload.gateway.replies import Replies
from offload.health import HealthServer
from testkit.gatewayproc import GatewayProcess, order

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "k8s" / "monitoring" / "tickbook-gateway.json"
STEP = 30.0


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """GET /metrics -> {sample name: {sorted label items: value}}, through prometheus_client's parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = r.read().decode()
    out: dict[str, dict[tuple, float]] = collections.defaultdict(dict)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


def value(m, name, **labels) -> float:
    return m.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


# ------------------------------------------------------------------ end to end


class Gateway(GatewayProcess):
    """A gateway with --health on a port the OS chooses (read from its log)."""

    def __init__(self, tmp: Path):
        super().__init__(tmp, "--heartbeat", "0.1", "--health", "127.0.0.1:0", step=STEP, tag="mtest")
        self.port = int(re.search(r"on port (\d+)", self.logs()).group(1))

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


@pytest.fixture
def gateway(tmp_path):
    g = Gateway(tmp_path)
    try:
        g.wait(g.ready, "GET /ready 200 (the engine warmed up)", 300)
        yield g
    finally:
        g.close()


def test_metrics_count_what_was_sent(gateway):
    t0 = time.monotonic()
    m0 = scrape(gateway.port)
    assert value(m0, PREFIX + "state", state="serving") == 1.0
    accepted = []  # the records the engine got, in ring order (one message in flight at a time)
    replies = errors = 0
    received = collections.Counter()  # (kind, reason) of every event a client got
    delivered = collections.Counter()  # events by session label

    def events_of(evs, label):
        delivered[label] += len(evs)
        received.update((EVENT_NAMES.get(int(k), "other"), REASON_NAMES.get(int(r)) or "NONE")
                        for k, r in zip(evs["kind"], evs["reason"]))

    with Client(gateway.orders, timeout=STEP) as anon, Client(gateway.orders, timeout=STEP, session="desk-7") as desk:
        # anonymous: 5 resting bids in one message and one by one, a CSV message, a refused message
        bids = np.concatenate([order(100 + i, 1, SIDE_BUY, 184.00 + 0.01 * i, 10) for i in range(5)])
        for msg in (bids[:3], bids[3:4], bids[4:5]):
            r = anon.recv(anon.send(msg))
            assert r.error is None, r.error
            accepted.append(msg)
            events_of(r.events, "anonymous")
            replies += 1
        buf = io.BytesIO()
        write_flow_csv(buf, order(200, 1, SIDE_BUY, 183.50, 7), as_venue(None))
        csv = buf.getvalue().decode()
        r = anon.recv(anon.send(csv))
        assert r.error is None, r.error
        accepted.append(parse_flow_bytes(csv.encode(), as_venue(None)).orders)
        replies += 1
        events_of(r.events, "anonymous")
        bad = order(300, 1, SIDE_BUY, 184.00, 10, action=9)
        r = anon.recv(anon.send(bad))
        assert r.error and "action 9" in r.error
        replies, errors = replies + 1, errors + 1
        # the named session: resting asks, an order of a disabled account (a REJECT), a taker
        # that fills two of the anonymous bids (their makers' FILLs reach the anonymous client as REP)
        for msg in (order(400, 2, SIDE_SELL, 186.00, 10), order(401, 13, SIDE_SELL, 186.00, 10),
                    order(402, 2, SIDE_SELL, 184.03, 15)):
            r = desk.recv(desk.send(msg))
            assert r.error is None, r.error
            accepted.append(msg)
            events_of(r.events, "desk-7")
            replies += 1
        r = desk.recv(desk.send(order(500, 2, SIDE_SELL, 186.00, 1, action=77)))
        assert r.error
        replies, errors = replies + 1, errors + 1
        # a raw socket: a message of an unknown kind, and one of three frames too many
        raw = zmq.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(gateway.orders)
        try:
            raw.send_multipart([b"XYZ", b"t1", b"payload"])
            raw.send_multipart([b"a", b"b", b"c", b"d", b"e"])
            for _ in range(2):
                assert raw.poll(STEP * 1000), "no ERR for the raw socket's message"
                assert raw.recv_multipart()[0] == b"ERR"
        finally:
            raw.close()
        replies, errors = replies + 2, errors + 2
        # the anonymous client's REP reports of the fills
        want = len(replay_records(np.concatenate(accepted)))
        got_reports = []
        deadline = time.monotonic() + STEP
        while sum(delivered.values()) + sum(map(len, got_reports)) < want and time.monotonic() < deadline:
            got_reports.append(anon.reports(0.1))
        for rep in got_reports:
            events_of(rep, "anonymous")

    m = scrape(gateway.port)
    # messages by kind and session (refused ones included)
    assert value(m, PREFIX + "messages_total", kind="ORD", session="anonymous") == 4
    assert value(m, PREFIX + "messages_total", kind="CSV", session="anonymous") == 1
    assert value(m, PREFIX + "messages_total", kind="ORD", session="desk-7") == 4
    assert value(m, PREFIX + "messages_total", kind="other", session="anonymous") == 2
    assert sum(m[PREFIX + "messages_total"].values()) == 11
    # records accepted by session
    assert value(m, PREFIX + "records_total", session="anonymous") == 5 + 1
    assert value(m, PREFIX + "records_total", session="desk-7") == 3
    # ERRs by code: all four are refusals of the message's form (ingress.Refused's code)
    code = Refused(b"", "").code
    assert value(m, PREFIX + "errors_total", code=code, session="anonymous") == 3
    assert value(m, PREFIX + "errors_total", code=code, session="desk-7") == 1
    assert sum(m[PREFIX + "errors_total"].values()) == errors
    # events by kind and reason: what the engine emitted for the accepted records, and what the clients got
    ref = replay_records(np.concatenate(accepted))
    want = collections.Counter((EVENT_NAMES[int(k)], REASON_NAMES[int(r)] or "NONE")
                               for k, r in zip(ref["kind"], ref["reason"]))
    got = {dict(k)["kind"] + "/" + dict(k)["reason"]: v for k, v in m[PREFIX + "events_total"].items()}
    assert got == {f"{k}/{r}": n for (k, r), n in want.items()}
    assert received == want, "every event reached exactly one client"
    assert want[("FILL", "TAKER")] == 2 and want[("FILL", "MAKER")] == 2 and want[("REJECT", "ACCOUNT_DISABLED")] == 1
    # events delivered per session, none undeliverable
    assert value(m, PREFIX + "events_delivered_total", session="anonymous") == delivered["anonymous"]
    assert value(m, PREFIX + "events_delivered_total", session="desk-7") == delivered["desk-7"]
    assert value(m, PREFIX + "events_undeliverable_total") == 0
    # one latency observation a reply, each inside the test's own wall time
    assert value(m, PREFIX + "reply_latency_seconds_count") == replies
    assert 0 < value(m, PREFIX + "reply_latency_seconds_sum") < time.monotonic() - t0
    assert value(m, PREFIX + "reply_latency_seconds_bucket", le="+Inf") == replies
    # gauges: ring depths and capacities, the state, the engine alive with a recent heartbeat
    for ring in ("orders", "events"):
        assert (("ring", ring),) in m[PREFIX + "ring_depth"]
        assert value(m, PREFIX + "ring_capacity", ring=ring) > 0
    assert value(m, PREFIX + "state", state="serving") == 1.0
    assert value(m, PREFIX + "state", state="waiting") == 0.0
    assert value(m, PREFIX + "engine_alive") == 1.0
    if PREFIX + "engine_heartbeat_age_seconds" in m:
        assert 0 <= value(m, PREFIX + "engine_heartbeat_age_seconds") < 10
    assert set(m) <= exposed_names()
    # /live and /ready still answer on the same port
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/live", timeout=5) as r:
        assert r.status == 200


# ------------------------------------------------------------------ the pieces


def test_session_labels_are_bounded():
    m = GatewayMetrics(max_sessions=2)
    assert m.session(b"\x00\x8b\x45\x67\x01").label == "anonymous"
    assert m.session(b"desk-7").label == "desk-7"
    assert m.session(b"\x01\x02").label == "0x0102"  # offload.sessions.shown
    assert m.session(b"desk-8").label == "other"  # past the cap
    assert m.session(b"anonymous").label == "other"
    assert GatewayMetrics().session(b"other").label == "0x" + b"other".hex()  # never mistaken for ours
    assert m.session(b"desk-7").label == "desk-7"  # the ones before it keep their names
    for i in range(20):
        m.session(f"s{i}".encode())
    assert len(m._by_ident) <= 8


def test_error_codes_are_counted_and_bounded():
    m = GatewayMetrics()
    m.error(b"\x00ab", "rate_limit")
    m.error(b"\x00ab", "rate_limit")
    m.error(b"\x00ab", "Not A Code!")
    for i in range(40):
        m.error(b"\x00ab", f"code_{i}")
    codes = {k: v for k, v in _samples(m, PREFIX + "errors_total").items()}
    assert codes[(("code", "rate_limit"), ("session", "anonymous"))] == 2
    assert codes[(("code", "other"), ("session", "anonymous"))] == 1 + 40 - (32 - 2)
    assert len(codes) <= 32 + 1


def _samples(m: GatewayMetrics, name):
    from prometheus_client import generate_latest

    out = {}
    for fam in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


class _Router:
    def __init__(self):
        self.sent = []

    def send_multipart(self, frames, flags=0, copy=True):
        self.sent.append(frames)


def test_replies_error_counts_by_code_and_observes_latency():
    m = GatewayMetrics()
    rep = Replies(_Router(), lambda *_: None, collections.Counter())
    rep.metrics = m

    class F:
        def __init__(self, b):
            self.bytes = b

    frames = [F(b"desk-1"), F(b"ORD"), F(b"t"), F(b"x" * 64)]
    m.arrived(frames)  # as the server's _take does around its _accept
    rep.error(b"desk-1", b"t", "no", code="too_large")
    m.settled(frames)
    rep.error(b"desk-1", b"t", "free text, default code")  # positional arguments as before
    ev = np.zeros(2, EVENT_DTYPE).tobytes()
    rep.send(b"desk-1", [b"REP", ev], 2)
    assert _samples(m, PREFIX + "errors_total") == {
        (("code", "too_large"), ("session", "desk-1")): 1, (("code", "refused"), ("session", "desk-1")): 1}
    assert _samples(m, PREFIX + "reply_latency_seconds_count") == {(): 1}  # the one sent while the message was taken
    assert _samples(m, PREFIX + "events_delivered_total")[(("session", "desk-1"),)] == 2
    assert not m._in_flight


def test_health_serves_metrics_only_with_a_registry():
    m = GatewayMetrics()
    m.accepted(b"desk-9", 3)
    probe = lambda: (True, True, "")  # noqa: E731
    with_reg, without = HealthServer("127.0.0.1:0", probe, m.registry), HealthServer("127.0.0.1:0", probe)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{with_reg.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert f'{PREFIX}records_total{{session="desk-9"}} 3.0' in text
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{without.port}/metrics", timeout=5)
        assert e.value.code == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{with_reg.port}/ready", timeout=5) as r:
            assert r.read() == b"ready\n"
    finally:
        with_reg.close()
        without.close()


def test_every_metric_is_documented():
    doc = (REPO / "docs" / "offload.md").read_text()
    section = doc[doc.index("## Metrics"):]
    for name, kind, labels, _ in METRICS:
        assert f"`{name}`" in section, name
        for label in labels:
            assert f"`{label}`" in section, (name, label)


# ------------------------------------------------------------------ the dashboard

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, keywords,
    label names in braces or grouping clauses, template variables or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values)
    e = re.sub(r"\$\{?\w+\}?", "1", e)  # Grafana variables ($__rate_interval, ${pod})
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word, rest = m.group(0), e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_promql_name_extraction():
    expr = ('histogram_quantile(0.99, sum by (le, pod) (rate(tickbook_gateway_reply_latency_seconds_bucket'
            '{pod=~"$pod", le!="x"}[$__rate_interval]))) / on (pod) group_left tickbook_gateway_x')
    assert promql_metric_names(expr) == {"tickbook_gateway_reply_latency_seconds_bucket", "tickbook_gateway_x"}


def _panels(dash):
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])  # rows


def test_dashboard_is_a_grafana_dashboard_of_exported_metrics():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    assert {"list"} <= dash["templating"].keys()
    ids, exprs = set(), []
    for p in _panels(dash):
        assert isinstance(p["id"], int) and p["id"] not in ids, p.get("title")
        ids.add(p["id"])
        assert {"h", "w", "x", "y"} <= p["gridPos"].keys(), p["title"]
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["refId"] and t["expr"], p["title"]
            exprs.append(t["expr"])
    for var in dash["templating"]["list"]:  # label_values(METRIC, label) of the variables' queries
        exprs += re.findall(r"label_values\(([^,)]+)", var.get("definition", ""))
    used = set().union(*map(promql_metric_names, exprs))
    assert used and used <= exposed_names(), sorted(used - exposed_names())
    text = "\n".join(exprs)
    for quantile in ("0.5", "0.99"):
        assert f"histogram_quantile({quantile}," in text
    for name in ("messages_total", "errors_total", "events_total", "ring_depth",
                 "engine_heartbeat_age_seconds", "events_undeliverable_total", "reply_latency_seconds_bucket"):
        assert PREFIX + name in used, name


# ------------------------------------------------------------------ Kubernetes


def test_the_pod_is_scraped_on_the_gateways_health_port():
    """The scrape annotations name the port the gateway serves --health (and /metrics) on, and
    the NetworkPolicy lets a scraper's namespace reach it (docs/deploy.md#monitoring)."""
    yaml = pytest.importorskip("yaml")
    base = REPO / "k8s" / "base"
    sts = yaml.safe_load((base / "statefulset.yaml").read_text())
    tpl = sts["spec"]["template"]
    gw = next(c for c in tpl["spec"]["containers"] if c["name"] == "gateway")
    port = int(gw["args"][gw["args"].index("--health") + 1].rpartition(":")[2])
    ann = tpl["metadata"]["annotations"]
    assert ann == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}
    assert {"name": "health", "containerPort": port, "protocol": "TCP"} in gw["ports"]
    np_ = yaml.safe_load((base / "networkpolicy.yaml").read_text())
    rules = [r for r in np_["spec"]["ingress"] if {"port": "health", "protocol": "TCP"} in r["ports"]]
    assert [r["from"] for r in rules] == [[{"namespaceSelector": {"matchLabels": {"tickbook.io/metrics": "scraper"}}}]]
