"""Key files for tests and benchmarks of the gateway: key pairs made as `tickbook keys` makes them,
and a key file granting each client what the caller says."""

from __future__ import annotations

import json
import os

from offload.gateway.keys import make_keypair


def write_keys(folder: str, clients: dict[str, dict]) -> str:
    """folder/gateway.toml for clients {name: {"accounts": [...], "roles": [...], ...}}, with a
    key pair each and the server's; returns the key file's path."""
    make_keypair(folder, "server")
    lines = ['[server]', 'secret_key_file = "server.key_secret"', '']
    for name, grant in clients.items():
        make_keypair(folder, name)
        lines += [f"[clients.{name}]", f'public_key_file = "{name}.key"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in grant.items()]
        lines.append("")
    path = os.path.join(folder, "gateway.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def client_keys(folder: str, name: str) -> dict:
    """Client(...) keyword arguments for client `name` of write_keys(folder, ...)."""
    return {"key": os.path.join(folder, f"{name}.key_secret"), "server_key": os.path.join(folder, "server.key")}
