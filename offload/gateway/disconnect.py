"""Cancel on disconnect, as venues offer it: when a key says `cancel_on_disconnect = true`, the
resting orders a connection of that key placed are cancelled when that connection drops.

libzmq's ROUTER says nothing when a peer goes (ROUTER_NOTIFY is a draft API, not in pyzmq's
build), so the gateway watches its socket's monitor: every message carries the file descriptor
of the connection it came from (ZMQ_SRCFD), and the monitor reports each descriptor that is
disconnected. A disconnected descriptor that was the last one seen for a connection names it.
The server reads the monitor before each read of the socket: a descriptor closed earlier and
reused by a new connection is then forgotten before that connection's first message is seen.
"""

from __future__ import annotations

import zmq
from zmq.utils.monitor import recv_monitor_message


class Disconnects:
    def __init__(self, router: zmq.Socket):
        self.monitor = router.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.fd_of: dict[bytes, int] = {}  # connection (routing id) -> its descriptor
        self.ident_of: dict[int, bytes] = {}

    def seen(self, ident: bytes, frame) -> None:
        """A message of `ident` arrived on frame's connection."""
        try:
            fd = frame.get(zmq.SRCFD)
        except zmq.ZMQError:
            return
        old = self.fd_of.get(ident)
        if old != fd:
            if old is not None and self.ident_of.get(old) == ident:
                del self.ident_of[old]
            self.fd_of[ident] = fd
            self.ident_of[fd] = ident

    def pending(self) -> bool:
        return bool(self.monitor.get(zmq.EVENTS) & zmq.POLLIN)

    def gone(self) -> list[bytes]:
        """The connections that dropped since the last call."""
        out = []
        while True:
            try:
                ev = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return out
            fd = ev.get("value")
            ident = self.ident_of.pop(fd, None)
            if ident is not None and self.fd_of.get(ident) == fd:
                del self.fd_of[ident]
                out.append(ident)

    def close(self, router: zmq.Socket) -> None:
        router.disable_monitor()
        self.monitor.close(0)
