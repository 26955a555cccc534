"""A gateway process for tests: `python -m offload.gateway --spawn-engine` on ports the OS
chooses on 127.0.0.1 (read back from its log), with --keys or --insecure-local, stopped with
SIGTERM and its segment reaped at close. And `order()`, one order record."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from engine.records import ACTION_NEW, ORDER_DTYPE, PRICE_SCALE, SIDE_BUY, TIF_GTC, TYPE_LIMIT
from offload.gateway import Client, ready_path, remove_file
from offload.ring import reap_stale

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 400.0  # a cold Numba compile of the live loop


def order(oid, acct, side=SIDE_BUY, price=184.0, qty=10, sym=0, action=ACTION_NEW, tif=TIF_GTC, typ=TYPE_LIMIT,
          msg_seq=0) -> np.ndarray:
    """One order record (price in currency units; None: no price, a MARKET order's)."""
    r = np.zeros(1, ORDER_DTYPE)
    r["order_id"], r["account"], r["side"], r["qty"], r["symbol"] = oid, acct, side, qty, sym
    r["price"] = np.iinfo(np.int64).min if price is None else round(price * PRICE_SCALE)
    r["action"], r["tif"], r["type"], r["msg_seq"] = action, tif, typ, msg_seq
    return r


class GatewayProcess:
    """keys: a key file (--keys), else --insecure-local; args: more of the gateway's options."""

    def __init__(self, tmp: Path, *args, keys=None, step: float = 60.0, tag: str = "test"):
        self.tmp, self.step = Path(tmp), step
        self.name = f"tickbook-{tag}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.log = open(self.tmp / f"{self.name}.log", "w+")
        who = ["--keys", str(keys)] if keys else ["--insecure-local"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "offload.gateway", *who, "--rings", self.name, "--orders", "tcp://127.0.0.1:*",
             "--md", "tcp://127.0.0.1:*", "--spawn-engine", "--engine-arg=--no-pin", "--engine-arg=--yield-after=4096",
             *args], cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        m = self.wait(lambda: re.search(r"serving orders on (tcp://\S+), market data on (tcp://\S+) ", self.logs()),
                      "the gateway to serve", READY_TIMEOUT)
        self.orders, self.md = m.group(1), m.group(2)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait(self, cond, what: str, timeout: float):
        """cond()'s first true value, polled; fails with the log if the gateway exits or time runs out."""
        t0 = time.monotonic()
        while True:
            got = cond()
            if got:
                return got
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited ({self.proc.returncode}) waiting for {what}:\n{self.logs()}")
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"timed out ({timeout} s) waiting for {what}:\n{self.logs()}")
            time.sleep(0.02)

    def client(self, **kw) -> Client:
        return Client(self.orders, **{"timeout": self.step, **kw})

    def close(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.step)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        reap_stale(self.name)
        for who in ("engine", "gateway"):
            remove_file(ready_path(self.name, who))
        return self.proc.returncode
