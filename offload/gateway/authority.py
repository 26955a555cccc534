"""Authentication and authority: ZeroMQ CURVE on every socket, a ZAP handler that admits only the
keys of the key file (keys.py), and the check that each record names only accounts its key may
use (docs/security.md). Identity comes from the key the handshake proved, never from a record."""

from __future__ import annotations

import ipaddress
import logging

import numpy as np
import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from engine.records import ACTION_CANCEL, ACTION_KILL, ORDER_DTYPE, RECORD_SIZE
from offload.gateway.ingress import SMALL
from offload.gateway.keys import LOCAL, Identity, Keys, KeyFileError


class _Authenticator(ThreadAuthenticator):
    """pyzmq's ZAP handler thread: a known key gets in, under its name as the User-Id of every
    message it sends; any other key is refused in the handshake (the peer never connects)."""

    def __init__(self, ctx, keys: Keys):
        super().__init__(ctx, log=logging.getLogger("tickbook.gateway.zap"))
        self.names = {k: ident.name for k, ident in keys.by_key.items()}
        self.refused = 0

    def callback(self, domain, z85_key) -> bool:  # the credentials provider of configure_curve_callback
        ok = z85_key in self.names
        self.refused += not ok
        return ok

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.names[z85.encode(client_public_key)]


def loopback_only(endpoint: str) -> str | None:
    """Why `endpoint` is not local-only (None when it is): --insecure-local binds nothing else."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return None
    if not endpoint.startswith("tcp://"):
        return f"{endpoint}: only tcp://127.0.0.1, ipc:// or inproc:// with --insecure-local"
    host = endpoint[6:].rpartition(":")[0].strip("[]")
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (f"{endpoint}: --insecure-local binds a loopback address only (tcp://127.0.0.1:PORT); "
            f"anything else needs --keys (CURVE)")


class Authority:
    """keys: the key file, or None for --insecure-local (one identity, `local`, that may use any
    account; its limits come from the command line)."""

    def __init__(self, keys: Keys | None, venue, local: Identity | None = None):
        self.keys = keys
        self.local = local or Identity(LOCAL, None, risk=True)
        self.auth = None
        self.by_name = {i.name: i for i in keys.by_key.values()} if keys else {}
        # each key's accounts as an array, for the numpy check of long messages (made once, here)
        self.arrays = {i.name: np.array(sorted(i.accounts), np.uint32) for i in self.by_name.values()}
        if keys is not None:
            known = keys.universe() | set(venue.accounts)
            if len(known) > venue.max_accounts:
                raise KeyFileError(f"{keys.source}: the keys may use {len(known)} accounts (listed in the venue "
                                   f"included), more than the venue's [engine] max_accounts {venue.max_accounts}")
            self.known = np.zeros(0, np.uint32) if not known else np.array(sorted(known), np.uint32)
            self.known_set = frozenset(known)

    @property
    def refused_keys(self) -> int:
        return self.auth.refused if self.auth is not None else 0

    def secure(self, ctx: zmq.Context, sockets) -> None:
        """CURVE server on each socket, and the ZAP handler that admits the key file's keys."""
        if self.keys is None:
            return
        self.auth = _Authenticator(ctx, self.keys)
        self.auth.start()
        self.auth.configure_curve_callback("*", credentials_provider=self.auth)
        for s in sockets:
            s.curve_secretkey = self.keys.server_secret
            s.curve_publickey = self.keys.server_public
            s.curve_server = True

    def check_endpoint(self, endpoint: str) -> str | None:
        return loopback_only(endpoint) if self.keys is None else None

    def identity(self, frame) -> Identity | None:
        """The identity of the connection a message came from (its ZAP User-Id)."""
        if self.keys is None:
            return self.local
        try:
            return self.by_name.get(frame.get("User-Id"))
        except zmq.ZMQError:
            return None

    def session_refusal(self, who: Identity | None, ident: bytes) -> str | None:
        """A session is named after its key (NAME, or NAME/ANYTHING), so that no key can resume,
        or be answered the records of, another key's session (offload/sessions.py)."""
        if who is None:
            return "no identity for this connection"
        if self.keys is None or ident[:1] == b"\x00":  # ZeroMQ's own random identities: anonymous
            return None
        name = who.name.encode()
        if ident == name or ident.startswith(name + b"/"):
            return None
        shown = ident.decode("utf-8", "replace")
        return f"session {shown!r} does not belong to key {who.name}: name it {who.name} or {who.name}/..."

    def refusal(self, who: Identity, data, n: int) -> str | None:
        """Why a message names an account its key may not use (None: it may send it all)."""
        if who.accounts is None:
            return None
        if n <= SMALL:
            for i in range(n):
                o = i * RECORD_SIZE
                why = self._one(who, i, data[o + 46], int.from_bytes(data[o + 40 : o + 44], "little"))
                if why:
                    return why
            return None
        recs = np.frombuffer(data, ORDER_DTYPE)
        acct, act = recs["account"], recs["action"]
        mine = np.isin(acct, self.arrays[who.name])
        if who.risk:  # CANCEL and KILL of any account some key may use
            anyone = (act == ACTION_CANCEL) | (act == ACTION_KILL)
            mine |= anyone & np.isin(acct, self.known)
        else:
            mine &= act != ACTION_KILL
        if mine.all():
            return None
        i = int(np.argmin(mine))
        return self._one(who, i, int(act[i]), int(acct[i]))

    def _one(self, who: Identity, i: int, action: int, account: int) -> str | None:
        if action == ACTION_KILL and not who.risk:
            return f"record {i}: KILL needs a risk key, and key {who.name} is a trader's"
        if account in who.accounts:
            return None
        if who.risk and action in (ACTION_CANCEL, ACTION_KILL):
            if account in self.known_set:
                return None
            return f"record {i}: account {account} is not an account of this venue's keys"
        return f"record {i}: account {account} is not one that key {who.name} may use"

    def close(self) -> None:
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
