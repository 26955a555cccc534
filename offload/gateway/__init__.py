"""The pyzmq gateway: order entry (ROUTER) and market data (PUB) in front of an engine's rings.
One concept a module: wire (frames, payloads, limits), ingress (a request checked whole),
replies (delivery to clients), routing (events to the clients concerned), l2book and
marketdata (the feed), shadow (--offload shadow), segments (the rings and the ready file),
server (the loop), client (the Python side), cli (`tickbook gateway`). docs/offload.md#gateway.
"""

from offload.gateway.client import Client, GatewayError, MarketData, Reply
from offload.gateway.ingress import shard_of
from offload.gateway.segments import hw_segment, read_status, write_ready
from offload.gateway.server import Gateway
from offload.gateway.wire import K_CSV, K_ERR, K_EV, K_ORD, K_REP
from offload.ring import ready_path, remove_file

__all__ = ["Client", "Gateway", "GatewayError", "MarketData", "Reply", "hw_segment", "read_status", "write_ready",
           "shard_of", "ready_path", "remove_file", "K_CSV", "K_ERR", "K_EV", "K_ORD", "K_REP"]
