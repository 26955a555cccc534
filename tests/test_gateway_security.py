"""The gateway faces hostile clients (docs/security.md): real sockets on 127.0.0.1, CURVE keys
made by `tickbook keys`, one gateway and engine for the module.

- A key the key file does not list never connects; a client without CURVE never connects.
- A trader's key cannot cancel, replace or kill another account's order, or name a session
  after another key; only a risk key can KILL; a risk key cannot make the engine track accounts
  no key may use, so `max_accounts` cannot be filled from outside.
- A CSV bomb is refused by its line count before a row is parsed, and a frame over the size
  limit closes only its own connection; the gateway's peak RSS stays far below 512 MiB.
- A key over its records in flight or its rate gets an ERR, and another key is not touched.
- Without --keys the gateway needs --insecure-local and then binds loopback addresses only.
"""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from engine.diagnostics import EXIT_USAGE
from engine.records import (
    ACTION_CANCEL,
    ACTION_KILL,
    ACTION_NEW,
    ACTION_REPLACE,
    EV_ACK,
    EV_CANCELED,
    EV_KILLED,
    EV_REJECT,
    R_CAPACITY,
    SIDE_BUY,
)
from offload.gateway import Client, GatewayError
from offload.gateway.keys import KeyFileError, load_keys
from testkit import gatewayproc

REPO = Path(__file__).resolve().parents[1]
STEP = 30.0

VENUE = """
[symbols.AAPL]
tick = "0.01"
ref_price = "185.00"
band_bps = 1000

[accounts.default]
enabled = true

[engine]
max_orders = 65536
max_levels = 256
max_accounts = 8
"""

KEYS = """
[server]
secret_key_file = "server.key_secret"

[clients.alice]
public_key_file = "alice.key"
accounts = [101, 102]

[clients.bob]
public_key_file = "bob.key"
accounts = [201]

[clients.risk]
public_key_file = "risk.key"
roles = ["risk"]

[clients.careful]
public_key_file = "careful.key"
accounts = [401]
cancel_on_disconnect = true

[clients.slow]
public_key_file = "slow.key"
accounts = [301]
max_in_flight = 64
max_rate = 200
"""


def order(oid, acct, side=SIDE_BUY, price=184.0, qty=10, action=ACTION_NEW):
    return gatewayproc.order(oid, acct, side, price, qty, action=action, msg_seq=1)


def cancel(oid, acct):
    return order(oid, acct, action=ACTION_CANCEL)


def kill(acct):
    r = order(0, acct, action=ACTION_KILL)
    r["price"], r["qty"], r["side"] = 0, 0, 0
    return r


def rss_peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


class KeyedGateway(gatewayproc.GatewayProcess):
    """A gateway with the key file above, its keys made by `tickbook keys`."""

    def __init__(self, tmp: Path):
        self.keys = tmp / "keys"
        r = subprocess.run([sys.executable, "-m", "tickbook", "keys", str(self.keys), "server", "alice", "bob",
                            "risk", "slow", "careful", "mallory"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        (self.keys / "gateway.toml").write_text(KEYS)
        (tmp / "venue.toml").write_text(VENUE)
        super().__init__(tmp, "--config", str(tmp / "venue.toml"), "--heartbeat", "0.1",
                         keys=self.keys / "gateway.toml", step=STEP, tag="sectest")

    def text(self) -> str:
        return self.logs()

    def client(self, name, timeout=STEP, **kw) -> Client:
        return super().client(timeout=timeout, key=str(self.keys / f"{name}.key_secret"),
                              server_key=str(self.keys / "server.key"), **kw)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = KeyedGateway(tmp_path_factory.mktemp("keyed"))
    yield g
    g.close()


def refused(c: Client, recs) -> str:
    with pytest.raises(GatewayError) as e:
        c.submit(recs)
    return e.value.reason


def test_keys_are_made_private_and_the_file_is_checked(gw):
    secret = gw.keys / "alice.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    keys = load_keys(str(gw.keys / "gateway.toml"))
    assert sorted(i.name for i in keys.by_key.values()) == ["alice", "bob", "careful", "risk", "slow"]
    r = subprocess.run([sys.executable, "-m", "tickbook", "keys", str(gw.keys), "alice"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_USAGE and "never overwritten" in r.stderr
    bad = gw.keys / "bad.toml"
    for text, says in [
        ('[server]\nsecret_key_file = "server.key"\n[clients.a]\npublic_key_file = "alice.key"\naccounts=[1]\n',
         "no secret key"),
        ('[server]\nsecret_key_file = "server.key_secret"\n[clients.a]\npublic_key = "short"\naccounts=[1]\n',
         "Z85"),
        ('[server]\nsecret_key_file = "server.key_secret"\n[clients.a]\npublic_key_file = "alice.key"\n',
         "needs at least one account"),
        ('[server]\nsecret_key_file = "server.key_secret"\n[clients.a]\npublic_key_file = "alice.key"\n'
         'accounts = [1]\nroles = ["admin"]\n', "roles"),
    ]:
        bad.write_text(text)
        with pytest.raises(KeyFileError, match=says):
            load_keys(str(bad))


def test_an_unknown_key_or_a_plain_client_never_connects(gw):
    with gw.client("mallory", timeout=2.0) as c:
        with pytest.raises(TimeoutError):
            c.submit(order(1, 101))
    plain = Client(gw.orders, timeout=2.0)
    with plain, pytest.raises(TimeoutError):
        plain.submit(order(2, 101))
    with gw.client("alice") as c:  # and the gateway serves the known ones as before
        assert c.submit(order(3, 101))["kind"][0] == EV_ACK


def test_a_trader_acts_only_on_its_own_accounts(gw):
    with gw.client("alice") as a, gw.client("bob") as b:
        assert a.submit(order(1001, 102, price=180.0))["kind"][0] == EV_ACK
        assert "account 102 is not one that key bob may use" in refused(b, cancel(1001, 102))
        assert "account 102 is not one that key bob may use" in refused(
            b, order(1001, 102, price=181.0, action=ACTION_REPLACE))
        assert "KILL needs a risk key" in refused(b, kill(102))
        assert "KILL needs a risk key" in refused(a, kill(102))
        # a message is refused whole: its good first record is not executed either
        msg = np.concatenate([order(2001, 201, price=180.5), cancel(1001, 102)])
        assert "record 1: account 102" in refused(b, msg)
        ev = b.submit(cancel(2001, 201))
        assert ev["kind"][0] == EV_REJECT  # 2001 never reached the engine: UNKNOWN_ORDER
        ev = a.submit(cancel(1001, 102))
        assert ev["kind"][0] == EV_CANCELED


def test_sessions_are_named_after_their_key(gw):
    with gw.client("bob", session="alice") as b:
        assert "does not belong to key bob" in refused(b, order(3001, 201))
    with gw.client("bob", session="bob/desk-1") as b:
        assert b.submit(order(3002, 201, price=180.2))["kind"][0] == EV_ACK


def test_only_a_risk_key_kills_and_max_accounts_cannot_be_filled(gw):
    with gw.client("alice") as a, gw.client("risk") as r, gw.client("bob") as b:
        assert a.submit(order(4001, 101, price=179.0))["kind"][0] == EV_ACK
        # 4,096 KILLs of account numbers no key may use: the lock-out of max_accounts
        flood = np.concatenate([kill(10_000 + i) for i in range(4096)])
        assert "not an account of this venue's keys" in refused(r, flood)
        ev = r.submit(cancel(4001, 101))  # a risk key cancels any known account's order
        assert ev["kind"][0] == EV_CANCELED
        ev = r.submit(kill(201))
        assert EV_KILLED in ev["kind"]
        # accounts the keys may use still get in: none was taken by the flood
        ev = a.submit(order(4002, 102, price=179.1))
        assert ev["kind"][0] == EV_ACK, ev
        assert not ((ev["kind"] == EV_REJECT) & (ev["reason"] == R_CAPACITY)).any()
        assert b.submit(order(4003, 201, price=179.2))["kind"][0] == EV_REJECT  # killed stays disabled


def test_cancel_on_disconnect_is_the_key_s_choice(gw):
    with gw.client("careful") as c, gw.client("alice") as a:
        for i in range(3):
            assert c.submit(order(7001 + i, 401, price=176.0 + 0.01 * i))["kind"][0] == EV_ACK
        assert a.submit(order(7101, 101, price=176.5))["kind"][0] == EV_ACK
    deadline = time.monotonic() + STEP
    while "cancelling its 3 resting orders (cancel_on_disconnect)" not in gw.text():
        assert time.monotonic() < deadline, gw.text()
        time.sleep(0.05)
    with gw.client("risk") as r:  # both connections are gone: only the careful key's orders went with it
        for oid in (7001, 7002, 7003):
            deadline = time.monotonic() + STEP
            while (ev := r.submit(cancel(oid, 401)))["kind"][0] != EV_REJECT:  # the gateway's cancel may be in flight
                assert ev["kind"][0] != EV_CANCELED, f"order {oid} was still resting"
                assert time.monotonic() < deadline
        assert r.submit(cancel(7101, 101))["kind"][0] == EV_CANCELED  # alice's rested on


def test_csv_bomb_and_oversized_frames_are_refused_in_bounded_memory(gw):
    with gw.client("alice") as a:
        t0 = time.monotonic()
        reason = refused(a, "\n" * (5 << 20))  # 5 MiB of newlines: under the frame limit
        took = time.monotonic() - t0
        assert "lines: at most 65536 rows" in reason
        print(f"CSV bomb of 5 MiB refused in {took * 1000:.1f} ms")
        assert "at most" in refused(a, "x" * (7 << 20))  # bytes over the CSV limit, under the frame limit
    big = gw.client("bob", timeout=3.0)
    with big:  # 20 MiB: over MAXMSGSIZE, libzmq drops this connection before reading it whole
        with pytest.raises(TimeoutError):
            big.submit("\n" * (20 << 20))
    with gw.client("alice") as a:  # the others are served as before
        assert a.submit(order(5001, 101, price=178.0))["kind"][0] == EV_ACK
    peak = rss_peak_kib(gw.pid)
    print(f"gateway peak RSS {peak / 1024:.0f} MiB")
    assert peak < 512 * 1024


def test_limits_refuse_the_flooder_and_spare_the_others(gw):
    with gw.client("slow") as s, gw.client("alice") as a:
        assert "may have at most 64 in flight" in refused(s, np.concatenate(
            [order(6000 + i, 301, price=170.0) for i in range(65)]))
        tokens = [s.send(np.concatenate([order(6100 + 10 * k + i, 301, price=170.0) for i in range(10)]))
                  for k in range(40)]  # 400 records at once against 200 a second
        replies = [s.recv(t) for t in tokens]
        over = [r.error for r in replies if r.error]
        assert over and all("over its rate of 200 records a second" in e or "in flight" in e for e in over)
        assert sum(r.error is None for r in replies) <= 25  # the bucket holds one second: 200 records, and refills
        assert a.submit(order(6001, 101, price=177.0))["kind"][0] == EV_ACK


def test_without_keys_only_loopback_and_only_when_asked(tmp_path):
    base = [sys.executable, "-m", "offload.gateway", "--rings", f"tickbook-sec-{uuid.uuid4().hex[:6]}"]
    r = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == EXIT_USAGE and "--keys FILE" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run(base + ["--insecure-local", "--orders", "tcp://*:0"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == EXIT_USAGE and "loopback" in r.stderr, r.stderr
