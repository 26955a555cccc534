"""Keys: who may connect to the gateway and what each client may do (docs/security.md).

A key file (TOML) names the gateway's own secret key and one table per client key:

    [server]
    secret_key_file = "server.key_secret"   # relative to this file; made by `tickbook keys`

    [clients.desk-7]
    public_key_file = "desk-7.key"          # or public_key = "<40 characters of Z85>"
    accounts = [7, 8]                       # the accounts its records may name
    roles = ["trader"]                      # "trader", and/or "risk": KILL and CANCEL any account
    max_in_flight = 64                      # records sent and not yet processed (the default)
    max_rate = 50000                        # records a second (0: no limit)
    cancel_on_disconnect = false            # the resting orders a connection placed are cancelled when it drops

    tickbook keys DIR NAME [NAME ...]       # key pairs DIR/NAME.key and DIR/NAME.key_secret (0600)

The client's identity is its key, proven by the CURVE handshake; nothing in a record can
change it. A key not in the file gets no connection.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from dataclasses import dataclass

import zmq
import zmq.auth

from engine.diagnostics import EXIT_OK, EXIT_USAGE

ROLES = ("trader", "risk")
DEFAULT_IN_FLIGHT = 64  # a key's records ahead of another key's message: what it can cost that message
DEFAULT_RATE = 0
MAX_ACCOUNT = 2**32 - 1
LOCAL = "local"  # the one identity of --insecure-local


class KeyFileError(ValueError):
    """A key file that cannot be used, said in one line."""


@dataclass(frozen=True)
class Identity:
    name: str
    accounts: frozenset  # the accounts its records may name (None: any, --insecure-local)
    risk: bool = False  # may KILL, and CANCEL orders of any account the venue knows
    max_in_flight: int = DEFAULT_IN_FLIGHT
    max_rate: int = DEFAULT_RATE
    cancel_on_disconnect: bool = False
    public_key: bytes = b""

    def may_trade(self, account: int) -> bool:
        return self.accounts is None or account in self.accounts


@dataclass
class Keys:
    server_public: bytes
    server_secret: bytes
    by_key: dict  # Z85 public key (bytes) -> Identity
    source: str

    def universe(self) -> frozenset:
        """Every account some key may trade: the accounts a risk key may cancel or kill."""
        out = set()
        for ident in self.by_key.values():
            out |= ident.accounts
        return frozenset(out)


def _int(v, what, lo, hi) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise KeyFileError(f"{what}: expected an integer in {lo}..{hi}, got {v!r}")
    return v


def _key_file(base: str, rel: str, what: str, secret: bool) -> tuple[bytes, bytes | None]:
    path = rel if os.path.isabs(rel) else os.path.join(base, rel)
    try:
        pub, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise KeyFileError(f"{what}: cannot read key file {path}: {e}") from None
    if secret and sec is None:
        raise KeyFileError(f"{what}: {path} holds no secret key (the .key_secret file of `tickbook keys`)")
    return pub, sec


def load_keys(path: str) -> Keys:
    """The key file, checked whole: a clear one-line KeyFileError for anything wrong in it."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise KeyFileError(f"{path}: not TOML: {e}") from None
    base = os.path.dirname(os.path.abspath(path))
    server = doc.get("server")
    if not isinstance(server, dict) or "secret_key_file" not in server:
        raise KeyFileError(f"{path}: [server] secret_key_file is required (the gateway's own key: `tickbook keys DIR server`)")
    spub, ssec = _key_file(base, server["secret_key_file"], f"{path}: [server]", secret=True)
    clients = doc.get("clients", {})
    if not isinstance(clients, dict) or not clients:
        raise KeyFileError(f"{path}: no [clients.NAME] table: no client could connect")
    by_key: dict[bytes, Identity] = {}
    for name, c in clients.items():
        what = f"{path}: [clients.{name}]"
        if not isinstance(c, dict):
            raise KeyFileError(f"{what}: expected a table")
        unknown = set(c) - {"public_key", "public_key_file", "accounts", "roles", "max_in_flight", "max_rate",
                            "cancel_on_disconnect"}
        if unknown:
            raise KeyFileError(f"{what}: unknown keys {sorted(unknown)}")
        if ("public_key" in c) == ("public_key_file" in c):
            raise KeyFileError(f"{what}: exactly one of public_key (Z85) or public_key_file")
        if "public_key" in c:
            pub = str(c["public_key"]).encode()
            try:
                if len(pub) != 40 or len(zmq.utils.z85.decode(pub)) != 32:
                    raise ValueError
            except (ValueError, KeyError):
                raise KeyFileError(f"{what}: public_key is not 40 characters of Z85 (a CURVE public key)") from None
        else:
            pub, _ = _key_file(base, c["public_key_file"], what, secret=False)
        if pub in by_key:
            raise KeyFileError(f"{what}: the same public key as [clients.{by_key[pub].name}]")
        roles = c.get("roles", ["trader"])
        if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
            raise KeyFileError(f"{what}: roles must be a non-empty list of {', '.join(map(repr, ROLES))}")
        accounts = c.get("accounts", [])
        if not isinstance(accounts, list):
            raise KeyFileError(f"{what}: accounts must be a list of account numbers")
        accts = frozenset(_int(a, f"{what}: accounts", 0, MAX_ACCOUNT) for a in accounts)
        if not accts and "risk" not in roles:
            raise KeyFileError(f"{what}: a trader key needs at least one account")
        cod = c.get("cancel_on_disconnect", False)
        if not isinstance(cod, bool):
            raise KeyFileError(f"{what}: cancel_on_disconnect must be true or false")
        by_key[pub] = Identity(
            name=name, accounts=accts, risk="risk" in roles,
            max_in_flight=_int(c.get("max_in_flight", DEFAULT_IN_FLIGHT), f"{what}: max_in_flight", 1, 1 << 20),
            max_rate=_int(c.get("max_rate", DEFAULT_RATE), f"{what}: max_rate", 0, 1 << 30),
            cancel_on_disconnect=cod, public_key=pub)
    return Keys(spub, ssec, by_key, path)


def make_keypair(folder: str, name: str) -> tuple[str, str]:
    """DIR/NAME.key (public) and DIR/NAME.key_secret (readable by its owner only)."""
    if not name or "/" in name or name.startswith("."):
        raise KeyFileError(f"key name {name!r}: a plain file name")
    os.makedirs(folder, exist_ok=True)
    secret = os.path.join(folder, f"{name}.key_secret")
    if os.path.exists(secret):
        raise KeyFileError(f"{secret} exists: a key is never overwritten (remove it first)")
    old = os.umask(0o077)  # the secret is never readable by others, not even for a moment
    try:
        pub, sec = zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(old)
    os.chmod(pub, 0o644)
    return pub, sec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tickbook keys", description="Make CURVE key pairs for the gateway and its clients.")
    p.add_argument("folder", help="where the key files go")
    p.add_argument("names", nargs="+", help="one key pair each: `server` for the gateway, a client's name otherwise")
    a = p.parse_args(argv)
    for name in a.names:
        try:
            pub, _ = make_keypair(a.folder, name)
        except (KeyFileError, OSError) as e:
            print(f"tickbook keys: {e}", file=sys.stderr)
            return EXIT_USAGE
        key = zmq.auth.load_certificate(pub)[0].decode()
        if name == "server":
            print(f"# {pub}: the gateway's key; in the key file: [server] secret_key_file = \"{name}.key_secret\"")
        else:
            print(f"[clients.{name}]\npublic_key = \"{key}\"\naccounts = []\nroles = [\"trader\"]\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
