"""`tickbook gateway`: the pyzmq gateway, order entry (ROUTER) and market data (PUB) in front of an engine's rings.

    tickbook gateway --rings NAME [--orders tcp://*:5555] [--md tcp://*:5556] [--config venue.toml]
                     [--offload sw|hw|shadow] [--hw-rings NAME-hw]
                     [--spawn-engine [--engine-cpu N]] [--attach] [--journal DIR]
                     [--health [HOST:]PORT] ...

The gateway binds its sockets, creates (owns) the engine's ring segment NAME (`--attach`: uses
an existing one), and waits for an engine to attach and warm up (`tickbook engine --rings
NAME`, started beside it as in the Kubernetes pod, or by the gateway with `--spawn-engine`).
It then creates `/dev/shm/NAME.gateway.ready` and serves:

- ROUTER: each request is one message of 64-byte order records (`ORDER_DTYPE`) or CSV rows;
  the gateway checks it whole (a refused message gets an `ERR` reply naming the reason, none
  of its records enter the ring), stamps every record (`msg_seq` := the venue-wide message
  number, `ts` := the gateway's clock) and writes them into ring 0. A full ring stops the
  gateway reading its socket (back-pressure through ZeroMQ's queues), nothing is dropped.
- Events from ring 1 are routed: the sender of a message gets its events in one `EV` reply,
  with its own `msg_seq` restored, once the engine has processed all its records; events of
  a client's resting orders caused by someone else's message (maker fills, kill-switch
  cancels) go to the order's owner as unsolicited `REP` messages.
- PUB: trades and top-of-book changes per symbol (topic = symbol name), a heartbeat.

Offload (docs/offload.md#gateway): `sw` (default) as above; `hw`: the gateway creates the
hardware segment NAME-hw instead (same two-ring layout) and waits for `tickbook bridge
--rings NAME-hw` (its pid in the header), which takes the engine's place; `shadow`: both
segments, every stamped record into both order rings (only what fits in both: the slower side
sets the pace), clients get the engine's events, and the hardware's are compared with them
record by record; the first divergence is logged with its message, divergent records are
counted in the ready file's status lines and the exit report.

Frames, formats and error replies: docs/offload.md#gateway. SIGTERM/SIGINT: the gateway
finishes the requests in flight, refuses new ones, sends the engine its SHUTDOWN record
(owned segment; `--attach` leaves the engine running), removes the segment and exits 0.
Engine death: every request in flight and every new one for `--grace` seconds gets an
`ERR` reply, then the gateway exits with status 3 (a supervisor restarts both).

`Client` (offload/gateway/client.py) is the Python side (notebooks, tests, benchmarks).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import zmq

from engine.diagnostics import EXIT_USAGE
from offload.gateway.server import LOG as _log, OFFLOAD_MODES, Gateway
from offload.gateway.keys import LOCAL, Identity, load_keys
from offload.gateway.wire import DEFAULT_MD, DEFAULT_ORDERS, LOCAL_MD, LOCAL_ORDERS
from offload.journal import JournalError
from offload.ring import RingError


def _shard_from_env(a):
    idx = a.shard_index if a.shard_index is not None else os.environ.get("TICKBOOK_SHARD_INDEX")
    cnt = a.shard_count if a.shard_count is not None else os.environ.get("TICKBOOK_SHARD_COUNT")
    if idx in (None, "") and cnt in (None, ""):
        return None
    try:
        k, n = int(idx), int(cnt)
    except (TypeError, ValueError):
        raise ValueError(f"shard index {idx!r} and count {cnt!r} must both be integers "
                         "(TICKBOOK_SHARD_INDEX / TICKBOOK_SHARD_COUNT or --shard-index / --shard-count)") from None
    if not 0 <= k < n:
        raise ValueError(f"shard index {k} is not in 0..{n - 1}")
    return k, n


def _authority_of(a):
    """(keys, local identity) from --keys or --insecure-local, exactly one of them."""
    if (a.keys is None) == (not a.insecure_local):
        raise ValueError("say who may connect: --keys FILE (CURVE, docs/security.md), or --insecure-local "
                         "(plain TCP on 127.0.0.1, for one trusted local client)")
    a.orders = a.orders or (DEFAULT_ORDERS if a.keys else LOCAL_ORDERS)
    a.md = a.md or (DEFAULT_MD if a.keys else LOCAL_MD)
    if a.keys:
        return load_keys(a.keys), None
    if not 1 <= a.max_in_flight <= 1 << 20 or a.max_rate < 0:
        raise ValueError("--max-in-flight must be in 1..1048576 and --max-rate at least 0")
    return None, Identity(LOCAL, None, risk=True, max_in_flight=a.max_in_flight, max_rate=a.max_rate)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tickbook gateway", description=__doc__.split("\n\n")[0])
    p.add_argument("--rings", required=True, help="segment name of the engine (created here unless --attach)")
    p.add_argument("--keys", default=None, metavar="FILE",
                   help="the key file: CURVE on both sockets, each client's accounts, roles and limits "
                        "(docs/security.md; `tickbook keys` makes key pairs)")
    p.add_argument("--insecure-local", action="store_true",
                   help="no keys: plain TCP, loopback endpoints only, one client identity that may use any account")
    p.add_argument("--max-in-flight", type=int, default=1 << 16, metavar="N",
                   help="--insecure-local: records in flight at most (default 65536)")
    p.add_argument("--max-rate", type=int, default=0, metavar="N",
                   help="--insecure-local: records a second at most (default 0: no limit)")
    p.add_argument("--orders", default=None,
                   help=f"ROUTER endpoint (default {DEFAULT_ORDERS}; {LOCAL_ORDERS} with --insecure-local)")
    p.add_argument("--md", default=None, help=f"PUB endpoint (default {DEFAULT_MD}; {LOCAL_MD} with --insecure-local)")
    p.add_argument("--config", default=None, help="venue.toml: the engine's (default: the built-in venue)")
    p.add_argument("--attach", action="store_true", help="use an existing segment; leave its engine running at exit")
    p.add_argument("--spawn-engine", action="store_true", help="start `tickbook engine` on the segment")
    p.add_argument("--engine-cpu", type=int, default=None, help="--cpu for the spawned engine")
    p.add_argument("--engine-arg", action="append", default=[], help="extra argument for the spawned engine")
    p.add_argument("--orders-cap", type=int, default=1 << 14, help="order ring slots (power of two)")
    p.add_argument("--events-cap", type=int, default=1 << 16, help="event ring slots (power of two)")
    p.add_argument("--journal", default=None, metavar="DIR",
                   help="journal every stamped record in DIR before the engine sees it, and recover from it at "
                        "start (docs/journal.md)")
    p.add_argument("--snapshot-every", type=int, default=500_000, metavar="N",
                   help="with --journal: a snapshot every N journaled records, in a child process (0: none)")
    p.add_argument("--fsync", default="batch", metavar="POLICY",
                   help="batch (a sync per group commit: nothing acknowledged is lost), interval:MS (a sync every "
                        "MS ms: a machine crash can lose the last MS ms) or none (default batch)")
    p.add_argument("--shard-index", type=int, default=None, help="default $TICKBOOK_SHARD_INDEX")
    p.add_argument("--shard-count", type=int, default=None, help="default $TICKBOOK_SHARD_COUNT")
    p.add_argument("--grace", type=float, default=1.0, help="s of ERR replies after the engine dies")
    p.add_argument("--engine-timeout", type=float, default=0.0, help="s to wait for the engine (0: forever)")
    p.add_argument("--heartbeat", type=float, default=1.0, help="s between market data heartbeats (0: none)")
    p.add_argument("--offload", choices=OFFLOAD_MODES, default="sw",
                   help="sw: the engine on NAME; hw: the hardware bridge on the hardware segment; "
                        "shadow: both, every event compared, clients get the engine's (default sw)")
    p.add_argument("--hw-rings", default=None, help="hardware segment for hw/shadow (default NAME-hw)")
    p.add_argument("--health", default=None, metavar="[HOST:]PORT",
                   help="serve GET /live and /ready (Kubernetes probes) and /metrics (Prometheus) over HTTP; "
                        "host default 127.0.0.1")
    p.add_argument("--spin", type=float, default=0.0,
                   help="s to busy-poll the socket after the last message before sleeping (0: sleep at once; "
                        "for a gateway with a core of its own)")
    a = p.parse_args(argv)

    log = _log
    from engine.config import ConfigError, load_venue

    try:
        venue = load_venue(a.config)
        shard = _shard_from_env(a)
        a.identities, a.local = _authority_of(a)
    except (ConfigError, ValueError) as e:
        log(str(e))
        return EXIT_USAGE
    health, started = None, []
    if a.health:
        from offload.health import HealthServer

        def probe():  # before the Gateway exists it is recovering, binding or creating segments
            return started[0].health() if started else (True, False, "starting")

        class GatewayRegistry:  # the Gateway's own registry once it exists (no samples before)
            def collect(self):
                return started[0].metrics.registry.collect() if started else iter(())

        try:
            health = HealthServer(a.health, probe, GatewayRegistry())
        except (ValueError, OSError) as e:
            log(f"cannot serve --health {a.health}: {e}")
            return EXIT_USAGE
        log(f"health: GET /live, /ready and /metrics on port {health.port}")
    try:
        return _serve(a, venue, shard, log, started)
    finally:
        if health is not None:
            health.close()


def _serve(a, venue, shard, log, started: list) -> int:
    """Start the Gateway (appended to `started` for the health probe) and run it to its end."""
    cmd = None
    if a.spawn_engine and a.offload == "hw":
        log("--spawn-engine with --offload hw: no engine runs in hw mode (start `tickbook bridge` instead)")
        return EXIT_USAGE
    if a.spawn_engine:
        cmd = [sys.executable, "-m", "offload.engine_process", "--rings", a.rings, *a.engine_arg]
        if a.config:
            cmd += ["--config", a.config]
        if a.engine_cpu is not None:
            cmd += ["--cpu", str(a.engine_cpu)]
        if a.journal:
            cmd += ["--journal", a.journal]
    try:
        gw = Gateway(a.rings, venue, a.orders, a.md, attach=a.attach, orders_cap=a.orders_cap,
                     events_cap=a.events_cap, journal=a.journal, shard=shard, grace=a.grace,
                     engine_timeout=a.engine_timeout, heartbeat=a.heartbeat, engine_cmd=cmd, log=log,
                     spin=a.spin, offload=a.offload, hw_rings=a.hw_rings, fsync=a.fsync,
                     snapshot_every=a.snapshot_every, keys=a.identities, local=a.local)
    except (JournalError, ValueError) as e:  # a foreign or corrupt journal, a bad --fsync: one line
        log(str(e))
        return EXIT_USAGE
    except (zmq.ZMQError, RingError, OSError) as e:
        log(f"cannot start on {a.rings} ({a.orders}, {a.md}): {e}")
        return EXIT_USAGE
    started.append(gw)
    segs = {"sw": f"segment {gw.main_rings}", "hw": f"hardware segment {gw.hw_rings}",
            "shadow": f"segments {gw.main_rings} and {gw.hw_rings}"}[a.offload]
    wait = {"sw": "the engine", "hw": "the bridge", "shadow": "the engine and the bridge"}[a.offload]
    log(f"listening: orders {gw.orders_endpoint}, market data {gw.md_endpoint}; {segs} "
        f"({'attached' if a.attach else 'created'}), --offload {a.offload}; waiting for {wait}"
        + (f"; shard {shard[0]} of {shard[1]}" if shard else ""))

    def on_signal(signum, _frame):
        gw.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a journal past its file size limit: EFBIG and ERRs, not death
    try:
        return gw.run()
    finally:
        gw.close()

