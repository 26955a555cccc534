"""The gateway's Prometheus metrics (docs/offload.md#metrics), on a registry of its own.

Every gateway has its own `prometheus_client.CollectorRegistry` (not the library's global one),
so several gateways can run in one process (the tests) and the exposition holds the gateway's
metrics and nothing else. `offload/health.py` serves it as `GET /metrics` beside `/live` and
`/ready` on the `--health` port.

What is counted where (the hooks are one line each):

- a message read off the ROUTER: `arrived` and `settled` around the server's `_accept` (in its
  `_take`): its kind and session are counted before any check, its arrival time is kept until
  its reply (EV, ERR or SNAP) is handed to `Replies.send` (the latency histogram);
- records accepted: the end of `_accept`; ERR replies by code: `Replies.error(code=...)`;
  events delivered and undeliverable: `Replies`; events by kind and reason: one numpy bincount
  per batch read off the event ring (`_drain_main`);
- ring depths, the gateway's state and the engine's liveness: sampled by `_housekeeping`
  (every 20 ms, only gauges are set).

Label cardinality is bounded: a session is labelled by its name (`offload.sessions.shown`) for
named sessions and "anonymous" for ZeroMQ's random identities (they start with a zero byte);
after `max_sessions` distinct names every new one is "other". ERR codes are short snake_case
words chosen by the code that refuses (`Replies.error(..., code="rate_limit")`); a code of
another shape, or one past `MAX_CODES` distinct codes, is counted as "other".
"""

from __future__ import annotations

import bisect
import collections
import math
import re
import time

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from engine.records import EVENT_NAMES, REASON_NAMES
from offload.sessions import is_named, shown

PREFIX = "tickbook_gateway_"
MAX_SESSIONS = 1000  # distinct session labels; later named sessions are labelled "other"
MAX_CODES = 32  # distinct ERR codes; later ones are "other"
MAX_IN_FLIGHT = 1 << 20  # arrival times kept for replies to come (every request gets one: a guard only)
KINDS = ("ORD", "CSV", "SNAP", "other")  # the kind label of a request message
STATES = ("waiting", "serving", "draining", "engine-gone")
RINGS = ("orders", "events")
# order in -> reply out: from tens of microseconds (a quiet engine) to seconds (a full ring, a sync)
LATENCY_BUCKETS = (25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
# no `x_created` series beside every counter and histogram: they double the exposition and no
# panel uses them (a process-wide setting of prometheus_client; the gateway's process is its own)
disable_created_metrics()
_KIND_OF = {k.encode(): k for k in KINDS[:-1]}

# (name as exposed, type, labels, help): the one list the docs, the dashboard test and the
# exposition agree on (a counter `x` is exposed as `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`)
METRICS = (
    (PREFIX + "messages_total", "counter", ("kind", "session"),
     "Request messages read off the ROUTER, by kind (ORD, CSV, SNAP, other) and session, refused ones included"),
    (PREFIX + "records_total", "counter", ("session",),
     "Order records accepted into the order ring (journaled first with --journal), by session"),
    (PREFIX + "errors_total", "counter", ("code", "session"),
     "ERR replies, by reason code and session"),
    (PREFIX + "events_total", "counter", ("kind", "reason"),
     "Events read off the engine's event ring, by event kind and reason (engine/records.py names)"),
    (PREFIX + "events_delivered_total", "counter", ("session",),
     "Events handed to a client's socket in EV, ERR and REP replies, by session"),
    (PREFIX + "events_undeliverable_total", "counter", (),
     "Events for a client that was gone or cut off (never silently dropped: counted here)"),
    (PREFIX + "reply_latency_seconds", "histogram", (),
     "From reading a request off the socket to handing its reply (EV, ERR or SNAP) to the socket"),
    (PREFIX + "ring_depth", "gauge", ("ring",),
     "Records in a ring of the main segment (orders: published, not yet taken by the engine; events: not yet read)"),
    (PREFIX + "ring_capacity", "gauge", ("ring",), "Slots of a ring of the main segment"),
    (PREFIX + "state", "gauge", ("state",),
     "1 for the gateway's current state (waiting, serving, draining, engine-gone), 0 for the others"),
    (PREFIX + "engine_alive", "gauge", (),
     "1 while the engine (the bridge in --offload hw) serves the rings, else 0"),
    (PREFIX + "engine_heartbeat_age_seconds", "gauge", (),
     "Seconds since the engine's heartbeat last moved (NaN before there is one); only where the gateway "
     "can tell (Gateway.engine_heartbeat_age)"),
)


def _base(name: str, kind: str) -> str:
    """prometheus_client's name for a metric exposed as `name`."""
    return name[: -len("_total")] if kind == "counter" else name


def exposed_names() -> set[str]:
    """Every sample name the gateway can expose (histograms as their _bucket/_sum/_count)."""
    out = set()
    for name, kind, _, _ in METRICS:
        out |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    return out


class _Session:
    """One session label's counts: plain ints that the order path adds to (a prometheus_client
    child costs a lock and a call an increment); _Counts exposes them at scrape time."""

    __slots__ = ("label", "messages", "records", "delivered", "errors")

    def __init__(self, label: str):
        self.label = label
        self.messages = dict.fromkeys(KINDS, 0)
        self.records = self.delivered = 0
        self.errors: dict[str, int] = {}


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, max_sessions: int = MAX_SESSIONS):
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.max_sessions = max_sessions
        spec = {name: (kind, labels, doc) for name, kind, labels, doc in METRICS}

        def make(cls, name, **kw):
            kind, labels, doc = spec[name]
            return cls(_base(name, kind), doc, labels, registry=r, **kw)

        self.undeliverable = make(Counter, PREFIX + "events_undeliverable_total")
        # reply latency: counts per bucket (the last: +Inf) and the sum, exposed by _Counts
        self._bounds_ns = [round(b * 1e9) for b in LATENCY_BUCKETS]
        self._latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum_ns = 0
        self.ring_depth = make(Gauge, PREFIX + "ring_depth")
        self.ring_capacity = make(Gauge, PREFIX + "ring_capacity")
        self.state = make(Gauge, PREFIX + "state")
        self.engine_alive = make(Gauge, PREFIX + "engine_alive")
        self.heartbeat_age = None  # created on the first sample of a gateway that can tell the age
        self._heartbeat_spec = spec[PREFIX + "engine_heartbeat_age_seconds"]
        self._depth = {ring: self.ring_depth.labels(ring=ring) for ring in RINGS}
        self._states = {s: self.state.labels(state=s) for s in STATES}
        self._state = None
        self._codes: set[str] = set()
        # sessions: named labels handed out so far, and ident -> its children (bounded cache)
        self._names: set[str] = set()
        self._by_ident: dict[bytes, _Session] = {}
        self._by_label: dict[str, _Session] = {}  # every label's counts, kept (bounded by max_sessions + 2)
        self._anonymous = self._label("anonymous")
        self._other = None
        # events: (kind, reason) -> one small index (a 256 x 256 table), counted with np.bincount
        # into an array that a collector of its own reads at scrape time (no .inc() a batch)
        kinds, reasons = sorted(EVENT_NAMES), sorted(REASON_NAMES)
        nk, nr = len(kinds) + 1, len(reasons) + 1  # + "other"
        k_idx = np.full(256, nk - 1, np.intp)
        k_idx[kinds] = np.arange(len(kinds))
        r_idx = np.full(256, nr - 1, np.intp)
        r_idx[reasons] = np.arange(len(reasons))
        self._event_index = k_idx[:, None] * nr + r_idx[None, :]
        self._event_counts = np.zeros(nk * nr, np.int64)
        self._event_index_rows = self._event_index.tolist()  # the same table for a few events, in Python
        self._event_counts_few = [0] * (nk * nr)  # what count_rows adds: merged at scrape time
        knames = [EVENT_NAMES[k] for k in kinds] + ["other"]
        rnames = [REASON_NAMES[x] or "NONE" for x in reasons] + ["other"]
        self._event_labels = [(k, x) for k in knames for x in rnames]
        _, _, doc = spec[PREFIX + "events_total"]
        r.register(_EventCounts(self, doc))
        r.register(_Counts(self, spec))
        # reply latency: the message being accepted now, and the arrival of each one in flight
        self._current = None  # monotonic ns of the message _accept is handling, else None
        self._replied = False  # its reply was sent from inside _accept (a refusal, a resend answered)
        self._in_flight: dict[tuple[bytes, bytes], collections.deque] = {}

    # ---- sessions

    def session(self, ident: bytes) -> _Session:
        if not is_named(ident):
            return self._anonymous
        s = self._by_ident.get(ident)
        if s is not None:
            return s
        label = shown(ident)
        if label in ("anonymous", "other"):  # a session named like a label of ours: its bytes in hex
            label = "0x" + ident.hex()
        if label not in self._names:
            if len(self._names) >= self.max_sessions:
                if self._other is None:
                    self._other = self._label("other")
                s = self._other
            else:
                self._names.add(label)
        if s is None:
            s = self._label(label)
        if len(self._by_ident) >= 4 * self.max_sessions:  # idents past the cap: keep the cache bounded
            self._by_ident.clear()
        self._by_ident[ident] = s
        return s

    def _label(self, label: str) -> _Session:
        s = self._by_label.get(label)
        if s is None:
            s = self._by_label[label] = _Session(label)
        return s

    # ---- requests and replies

    def arrived(self, frames) -> None:
        """A message read off the ROUTER (the server's `_take`, before its checks): counted by kind
        and session, its arrival kept until its reply."""
        n = len(frames)
        kind = "ORD" if n == 2 else _KIND_OF.get(frames[1].bytes, "other") if n == 4 else "other"
        self.session(frames[0].bytes).messages[kind] += 1
        self._current = time.monotonic_ns()
        self._replied = False

    def settled(self, frames) -> None:
        """The server is done with the message: a reply still to come (an EV, or an ERR) is
        awaited under (client, token)."""
        t, self._current = self._current, None
        if t is None or self._replied:
            return
        in_flight = self._in_flight
        if len(in_flight) >= MAX_IN_FLIGHT:  # replies that never matched their request
            in_flight.clear()
        n = len(frames)
        key = (frames[0].bytes, frames[2].bytes if n == 4 else b"")
        q = in_flight.get(key)
        if q is None:
            q = in_flight[key] = collections.deque()
        q.append(t)

    def accepted(self, ident: bytes, n: int) -> None:
        self.session(ident).records += n

    def replied(self, ident: bytes, token: bytes) -> None:
        """An EV or ERR reply to (ident, token) is handed to the socket (or queued for it)."""
        t = time.monotonic_ns()
        if self._current is not None:
            self._replied = True
            t0 = self._current
        else:
            key = (ident, bytes(token))
            q = self._in_flight.get(key)
            if not q:
                return
            t0 = q.popleft()  # a client's replies leave in the order its messages entered the ring
            if not q:
                del self._in_flight[key]
        dt = t - t0
        self._latency_counts[bisect.bisect_left(self._bounds_ns, dt)] += 1  # le: a bound counts its equal
        self._latency_sum_ns += dt

    def error(self, ident: bytes, code: str) -> None:
        if code not in self._codes:
            if _CODE.match(code or "") is None or len(self._codes) >= MAX_CODES:
                code = "other"
            self._codes.add(code)
        errors = self.session(ident).errors
        errors[code] = errors.get(code, 0) + 1

    def delivered_to(self, ident: bytes, n: int) -> None:
        if n:
            self.session(ident).delivered += n

    def lost(self, n: int) -> None:
        if n:
            self.undeliverable.inc(n)

    # ---- events

    def count_events(self, view) -> None:
        """A batch of EVENT_DTYPE records: counted by kind and reason with one bincount (~3 us)."""
        c = self._event_counts
        c += np.bincount(self._event_index[view["kind"], view["reason"]], minlength=len(c))

    def count_rows(self, rows) -> None:
        """A few events as int64 words (engine/records.py): counted in plain Python, cheaper than
        numpy's calls for the one or two events of a single order."""
        idx, c = self._event_index_rows, self._event_counts_few
        for w in rows:
            c[idx[(w[6] >> 48) & 0xFF][w[7] & 0xFF]] += 1

    # ---- gauges, sampled by the housekeeping

    def sample(self, gw) -> None:
        """Ring depths, the state and the engine's liveness of a Gateway (offload/gateway/server.py)."""
        for ring, r in (("orders", gw.r_in), ("events", gw.r_out)):
            if r is not None:
                self._depth[ring].set(r.head() - r.tail())
                self.ring_capacity.labels(ring=ring).set(r.capacity)
        state = gw.state
        if state != self._state:
            if self._state in self._states:
                self._states[self._state].set(0)
            if state not in self._states:
                self._states[state] = self.state.labels(state=state)
            self._states[state].set(1)
            self._state = state
        alive = state == "serving" or (state == "draining" and gw._engine_alive())
        self.engine_alive.set(1 if alive else 0)
        age_of = getattr(gw, "engine_heartbeat_age", None)
        if callable(age_of):
            age = age_of()
            if self.heartbeat_age is None:
                _, labels, doc = self._heartbeat_spec
                self.heartbeat_age = Gauge(PREFIX + "engine_heartbeat_age_seconds", doc, labels,
                                           registry=self.registry)
            self.heartbeat_age.set(math.nan if age is None else float(age))


class _EventCounts:
    """events_total from GatewayMetrics' bincount array, read at scrape time (only the (kind,
    reason) pairs seen so far: a handful of the 189 possible)."""

    def __init__(self, m: GatewayMetrics, doc: str):
        self.m, self.doc = m, doc

    def describe(self):
        return [CounterMetricFamily(PREFIX + "events", self.doc, labels=("kind", "reason"))]

    def collect(self):
        fam = CounterMetricFamily(PREFIX + "events", self.doc, labels=("kind", "reason"))
        # the loop adds to them meanwhile: each count only grows
        counts = self.m._event_counts + np.asarray(self.m._event_counts_few, np.int64)
        labels = self.m._event_labels
        for i in np.flatnonzero(counts).tolist():
            fam.add_metric(labels[i], int(counts[i]))
        yield fam


class _Counts:
    """The per-session counters and the reply latency histogram, from GatewayMetrics' plain ints,
    read at scrape time (the loop adds to them meanwhile: each count only grows)."""

    def __init__(self, m: GatewayMetrics, spec: dict):
        self.m = m
        self.doc = {name: doc for name, (_, _, doc) in spec.items()}

    def _families(self):
        d = self.doc
        return (CounterMetricFamily(PREFIX + "messages", d[PREFIX + "messages_total"], labels=("kind", "session")),
                CounterMetricFamily(PREFIX + "records", d[PREFIX + "records_total"], labels=("session",)),
                CounterMetricFamily(PREFIX + "errors", d[PREFIX + "errors_total"], labels=("code", "session")),
                CounterMetricFamily(PREFIX + "events_delivered", d[PREFIX + "events_delivered_total"],
                                    labels=("session",)),
                HistogramMetricFamily(PREFIX + "reply_latency_seconds", d[PREFIX + "reply_latency_seconds"]))

    def describe(self):
        return list(self._families())

    def collect(self):
        messages, records, errors, delivered, latency = self._families()
        for s in list(self.m._by_label.values()):
            if any(s.messages.values()) or s.records or s.delivered or s.errors:
                for kind, n in s.messages.items():
                    messages.add_metric((kind, s.label), n)
                records.add_metric((s.label,), s.records)
                delivered.add_metric((s.label,), s.delivered)
            for code, n in list(s.errors.items()):
                errors.add_metric((code, s.label), n)
        counts, total = list(self.m._latency_counts), 0
        buckets = []
        for le, n in zip([*map(str, LATENCY_BUCKETS), "+Inf"], counts):
            total += n
            buckets.append((le, total))
        latency.add_metric((), buckets, self.m._latency_sum_ns * 1e-9)
        yield from (messages, records, errors, delivered, latency)
