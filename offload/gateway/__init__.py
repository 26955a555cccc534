"""The pyzmq gateway: order entry (ROUTER) and market data (PUB) in front of an engine's rings.
One concept a module: wire (frames, payloads, limits), keys (the key file, `tickbook keys`),
authority (CURVE and which accounts a key may name), limits (per key in flight and rate),
ingress (a request checked whole), replies (delivery to clients), routing (events to the
clients concerned), disconnect (cancel on disconnect), l2book, marketdata and depth (the feed,
snapshots, a client's local book), metrics (Prometheus), shadow (--offload shadow), segments
(the rings and the ready file), server (the loop), client (the Python side), cli (`tickbook
gateway`). docs/offload.md#gateway, docs/security.md.
"""

from offload.gateway.client import Client, GatewayError, MarketData, Reply
from offload.gateway.depth import DepthBook
from offload.gateway.ingress import shard_of
from offload.gateway.segments import hw_segment, read_status, write_ready
from offload.gateway.server import Gateway
from offload.gateway.wire import K_CSV, K_ERR, K_EV, K_ORD, K_REP
from offload.ring import ready_path, remove_file

__all__ = ["Client", "DepthBook", "Gateway", "GatewayError", "MarketData", "Reply", "hw_segment", "read_status", "write_ready",
           "shard_of", "ready_path", "remove_file", "K_CSV", "K_ERR", "K_EV", "K_ORD", "K_REP"]
