"""The pure-Python reference matcher, written straight from the two rulebooks.

/work/shared/RULEBOOK.md (the venue's rules) and docs/rulebook.md (tickbook's decisions).
Deliberately simple: dicts, lists and Python ints. It imports nothing from `engine/`; the
only thing it takes from the engine's directory is the *text* of the built-in venue
(`engine/default_venue.toml`), a data file.

Prices are held as integers of 1e-8 price units while parsing and as integers of ticks in
the book. Every comparison that involves a decimal (notional) is made on integers, exactly.
Section references below ("3", "4.7", "7") are to docs/rulebook.md.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

HEADER_IN = "ts,account,action,symbol,order_id,side,type,tif,price,qty"
HEADER_OUT = "seq,event,symbol,order_id,account,side,price,qty,leaves,contra_id,detail"

U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
MAX_QTY = 2**32 - 1  # the venue's largest order
SCALE = 10**8  # 1e-8 price units
PRICE_LIMIT_UNITS = 2**53  # a price of 2^53 / 10^8 or more is outside the venue's range

DEFAULT_VENUE_PATH = Path(__file__).resolve().parents[2] / "engine" / "default_venue.toml"

# ASCII only: Python's int() would also accept '1_000', ' 5' and non-ASCII digits.
_UINT_RE = re.compile(r"[0-9]+")
_NUM_RE = re.compile(r"([+-]?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))")

ACTIONS = ("NEW", "CANCEL", "REPLACE", "KILL")
SIDES = ("BUY", "SELL")
TYPES = ("LIMIT", "MARKET")
TIFS = ("GTC", "IOC", "FOK", "POST")

ACCOUNT_KEYS = {
    "max_order_qty": 0,
    "max_notional": "0",
    "max_position": 0,
    "max_open_orders": 0,
    "max_msgs_per_sec": 0,
    "enabled": True,
}
SYMBOL_KEYS = ("tick", "ref_price", "band_bps")
ENGINE_DEFAULTS = {"max_orders": 1048576, "max_levels": 4096, "max_accounts": 4096}


# --------------------------------------------------------------------------- numbers


def parse_uint(text: str, maximum: int) -> int | None:
    """An unsigned integer: ASCII digits only, within 0..maximum; None otherwise."""
    if _UINT_RE.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= maximum else None


def parse_number(text: str) -> tuple[int, int] | None:
    """A number `[+-]?(digits[.digits*] | .digits)` as the exact (numerator, denominator) of its
    value, the denominator a power of ten. None when the text is not a number."""
    m = _NUM_RE.fullmatch(text)
    if m is None:
        return None
    sign, ipart, fpart, only_frac = m.groups()
    if only_frac is not None:
        ipart, fpart = "0", only_frac
    fpart = fpart or ""
    num = int(ipart + fpart) if (ipart + fpart) else 0
    if sign == "-":
        num = -num
    return num, 10 ** len(fpart)


def number_to_units(num: int, den: int) -> int | None:
    """Exact value num/den in 1e-8 units, or None when it has a non-zero digit past the 8th decimal."""
    scaled = num * SCALE
    if scaled % den:
        return None
    return scaled // den


def config_decimal(text, what: str) -> tuple[int, int]:
    """A configuration decimal: a TOML *string* (rulebook: "decimal string"), as (num, den)."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected a decimal string, got {text!r}")
    parsed = parse_number(text)
    if parsed is None:
        raise ValueError(f"{what}: not a decimal: {text!r}")
    return parsed


def decimal_units(text, what: str) -> int:
    """A configuration decimal in 1e-8 units; ValueError if not exact to 8 decimals."""
    units = number_to_units(*config_decimal(text, what))
    if units is None:
        raise ValueError(f"{what}: more than 8 decimals: {text!r}")
    return units


def decimals_as_written(text: str) -> int:
    """Decimals of a tick as written, without trailing zeros ('0.25' -> 2, '0.50' -> 1, '1.0' -> 0)."""
    if "." not in text:
        return 0
    return len(text.split(".", 1)[1].rstrip("0"))


# --------------------------------------------------------------------------- configuration


class Symbol:
    def __init__(self, name: str, tick_units: int, decimals: int, ref_ticks: int, band_bps: int):
        self.name = name
        self.tick_units = tick_units
        self.decimals = decimals
        self.ref = ref_ticks  # the reference price, ticks; moves with every trade
        self.band_bps = band_bps
        # the book: side -> {price ticks: {order_id: Order}} (dicts keep insertion = time order)
        self.levels = {"BUY": {}, "SELL": {}}

    def band_ticks(self) -> int:
        return self.ref * self.band_bps // 10000

    def fmt(self, ticks: int) -> str:
        units = ticks * self.tick_units
        whole, frac = divmod(units, SCALE)
        if self.decimals == 0:
            assert frac == 0
            return str(whole)
        digits = f"{frac:08d}"
        assert digits[self.decimals :].strip("0") == ""
        return f"{whole}.{digits[: self.decimals]}"

    def best(self, side: str):
        """Best price on `side`: highest bid, lowest ask; None when empty."""
        lv = self.levels[side]
        if not lv:
            return None
        return max(lv) if side == "BUY" else min(lv)


class Limits:
    def __init__(self, d: dict, what: str):
        for k, v in d.items():
            if k not in ACCOUNT_KEYS:
                raise ValueError(f"{what}: unknown key {k!r}")
        merged = dict(ACCOUNT_KEYS)
        merged.update(d)
        for k in ("max_order_qty", "max_position", "max_open_orders", "max_msgs_per_sec"):
            v = merged[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{what}.{k}: expected a non-negative integer, got {v!r}")
        if merged["max_order_qty"] > MAX_QTY:
            raise ValueError(f"{what}.max_order_qty: above the venue maximum 2^32-1")
        if not isinstance(merged["enabled"], bool):
            raise ValueError(f"{what}.enabled: expected a boolean")
        self.max_order_qty = merged["max_order_qty"]
        # exact, any number of decimals: notional > num/den  <=>  units * den > num * 1e8
        self.max_notional = config_decimal(merged["max_notional"], f"{what}.max_notional")
        if self.max_notional[0] < 0:
            raise ValueError(f"{what}.max_notional: negative")
        self.max_position = merged["max_position"]
        self.max_open_orders = merged["max_open_orders"]
        self.max_msgs_per_sec = merged["max_msgs_per_sec"]
        self.enabled = merged["enabled"]
        self.raw = d


class Venue:
    def __init__(self, toml_text: str):
        cfg = tomllib.loads(toml_text)
        for k in cfg:
            if k not in ("symbols", "accounts", "engine"):
                raise ValueError(f"venue: unknown table {k!r}")
        self.symbols: dict[str, Symbol] = {}
        for name, s in cfg.get("symbols", {}).items():
            what = f"symbols.{name}"
            if not isinstance(s, dict):
                raise ValueError(f"{what}: not a table")
            for k in s:
                if k not in SYMBOL_KEYS:
                    raise ValueError(f"{what}: unknown key {k!r}")
            if "tick" not in s or "ref_price" not in s:
                raise ValueError(f"{what}: tick and ref_price are required")
            tick_units = decimal_units(s["tick"], f"{what}.tick")
            ref_units = decimal_units(s["ref_price"], f"{what}.ref_price")
            if tick_units <= 0 or ref_units <= 0:
                raise ValueError(f"{what}: tick and ref_price must be > 0")
            if ref_units % tick_units:
                raise ValueError(f"{what}.ref_price: off tick")
            band = s.get("band_bps", 1000)
            if isinstance(band, bool) or not isinstance(band, int) or band < 0:
                raise ValueError(f"{what}.band_bps: expected a non-negative integer")
            self.symbols[name] = Symbol(
                name, tick_units, decimals_as_written(s["tick"]), ref_units // tick_units, band
            )
        accounts = cfg.get("accounts", {})
        self.default: Limits | None = None
        base: dict = {}
        if "default" in accounts:
            base = accounts["default"]
            self.default = Limits(base, "accounts.default")
        self.listed: dict[int, Limits] = {}
        for key, d in accounts.items():
            if key == "default":
                continue
            acct = parse_uint(key, U32_MAX)
            if acct is None:
                raise ValueError(f"accounts.{key}: not an account id")
            merged = dict(base)
            merged.update(d)
            self.listed[acct] = Limits(merged, f"accounts.{key}")
        eng = cfg.get("engine", {})
        self.caps = dict(ENGINE_DEFAULTS)
        for k, v in eng.items():
            if k not in ENGINE_DEFAULTS:
                raise ValueError(f"engine: unknown key {k!r}")
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"engine.{k}: expected a positive integer")
            self.caps[k] = v
        if len(self.listed) > self.caps["max_accounts"]:
            raise ValueError("engine.max_accounts: fewer than the listed accounts")

    def limits(self, account: int) -> Limits | None:
        lim = self.listed.get(account)
        return lim if lim is not None else self.default


# --------------------------------------------------------------------------- state


class Order:
    __slots__ = ("oid", "account", "sym", "side", "price", "leaves", "tif", "accepted")

    def __init__(self, oid, account, sym, side, price, leaves, tif, accepted):
        self.oid = oid
        self.account = account
        self.sym = sym  # Symbol
        self.side = side  # "BUY" / "SELL"
        self.price = price  # ticks (resting orders are always LIMIT)
        self.leaves = leaves
        self.tif = tif
        self.accepted = accepted  # acceptance number, for KILL


class Account:
    __slots__ = ("limits", "killed", "bucket", "count", "orders", "position")

    def __init__(self, limits: Limits):
        self.limits = limits
        self.killed = False
        self.bucket = None  # the one rate-limit counter and the bucket it counts
        self.count = 0
        self.orders: dict[int, Order] = {}  # resting orders, all symbols
        self.position: dict[str, int] = {}  # symbol -> net filled qty, buys positive


class Matcher:
    def __init__(self, venue: Venue):
        self.v = venue
        self.syms = venue.symbols
        self.accounts: dict[int, Account] = {a: Account(l) for a, l in venue.listed.items()}
        self.resting: dict[int, Order] = {}  # order_id -> Order, every symbol and account
        self.accepted = 0
        self.out: list[str] = [HEADER_OUT]
        self.seq = 0

    # ---------------------------------------------------------------- events

    def emit(self, event, symbol="", oid="", account="", side="", price="", qty="", leaves="", contra="", detail=""):
        self.seq += 1
        self.out.append(f"{self.seq},{event},{symbol},{oid},{account},{side},{price},{qty},{leaves},{contra},{detail}")

    def reject(self, f: list[str], reason: str):
        def raw(i):
            return f[i] if i < len(f) else ""

        self.emit("REJECT", raw(3), raw(4), raw(1), detail=reason)

    def ev_order(self, event, o: Order, price_ticks, qty, leaves, contra="", detail=""):
        price = "" if price_ticks is None else o.sym.fmt(price_ticks)
        self.emit(event, o.sym.name, o.oid, o.account, o.side, price, qty, leaves, contra, detail)

    # ---------------------------------------------------------------- book helpers

    def add_resting(self, o: Order):
        assert o.oid not in self.resting and o.leaves > 0
        level = o.sym.levels[o.side].setdefault(o.price, {})
        level[o.oid] = o
        self.resting[o.oid] = o
        self.accounts[o.account].orders[o.oid] = o

    def remove_resting(self, o: Order):
        levels = o.sym.levels[o.side]
        level = levels[o.price]
        del level[o.oid]
        if not level:
            del levels[o.price]
        del self.resting[o.oid]
        del self.accounts[o.account].orders[o.oid]

    def open_qty(self, acct: Account, sym: Symbol, side: str, exclude: Order | None = None) -> int:
        return sum(o.leaves for o in acct.orders.values() if o.sym is sym and o.side == side and o is not exclude)

    # ---------------------------------------------------------------- checks shared by NEW / REPLACE

    def account_gate(self, f, account: int, rate_limited: bool) -> Account | None:
        """Check 1, the account-capacity rule (section 7) and, for NEW/REPLACE, RATE_LIMIT.
        Returns the tracked Account, or None after emitting the reject."""
        lim = self.v.limits(account)
        if lim is None:
            self.reject(f, "UNKNOWN_ACCOUNT")
            return None
        acct = self.accounts.get(account)
        if rate_limited:  # NEW / REPLACE: disabled accounts stop at check 1
            if not lim.enabled or (acct is not None and acct.killed):
                self.reject(f, "ACCOUNT_DISABLED")
                return None
        if acct is None:
            if len(self.accounts) >= self.v.caps["max_accounts"]:
                self.reject(f, "CAPACITY")
                return None
            acct = self.accounts[account] = Account(lim)
        if rate_limited:
            ts = int(f[0])
            bucket = ts // 1_000_000_000
            if acct.bucket != bucket:
                acct.bucket = bucket
                acct.count = 0
            acct.count += 1
            if lim.max_msgs_per_sec and acct.count > lim.max_msgs_per_sec:
                self.reject(f, "RATE_LIMIT")
                return None
        return acct

    @staticmethod
    def qty_reason(qty_num: tuple[int, int], lim: Limits) -> tuple[str | None, int]:
        num, den = qty_num
        if num % den or num <= 0:
            return "BAD_QTY", 0
        q = num // den
        if q > MAX_QTY or (lim.max_order_qty and q > lim.max_order_qty):
            return "MAX_QTY", q
        return None, q

    @staticmethod
    def price_ticks(price_text: str, sym: Symbol) -> int | None:
        """A limit price in ticks, or None for BAD_PRICE (empty, <= 0, > 8 decimals, out of range, off tick)."""
        if price_text == "":
            return None
        units = number_to_units(*parse_number(price_text))
        if units is None or units <= 0 or units >= PRICE_LIMIT_UNITS or units % sym.tick_units:
            return None
        return units // sym.tick_units

    @staticmethod
    def over_notional(lim: Limits, sym: Symbol, ticks: int, qty: int) -> bool:
        num, den = lim.max_notional
        return num != 0 and ticks * sym.tick_units * qty * den > num * SCALE

    # ---------------------------------------------------------------- messages

    def on_row(self, line: str):
        f = line.split(",")
        if len(f) != 10:
            return self.reject(f, "MALFORMED")
        ts_t, acct_t, action, sym_t, oid_t, side, otype, tif, price_t, qty_t = f
        if action not in ACTIONS:
            return self.reject(f, "MALFORMED")
        if parse_uint(ts_t, U64_MAX) is None:
            return self.reject(f, "MALFORMED")
        account = parse_uint(acct_t, U32_MAX)
        if account is None:
            return self.reject(f, "MALFORMED")
        if action == "KILL":
            return self.on_kill(f, account)
        oid = parse_uint(oid_t, U64_MAX)
        if oid is None:
            return self.reject(f, "MALFORMED")
        if action == "CANCEL":
            return self.on_cancel(f, account, oid)
        if action == "NEW" and (side not in SIDES or otype not in TYPES or tif not in TIFS):
            return self.reject(f, "MALFORMED")
        qty_num = parse_number(qty_t)  # empty -> None too
        if qty_num is None:
            return self.reject(f, "MALFORMED")
        if price_t != "" and parse_number(price_t) is None:
            return self.reject(f, "MALFORMED")
        if action == "NEW":
            return self.on_new(f, account, oid, qty_num)
        return self.on_replace(f, account, oid, qty_num)

    def on_new(self, f, account: int, oid: int, qty_num):
        _, _, _, sym_t, _, side, otype, tif, price_t, _ = f
        acct = self.account_gate(f, account, rate_limited=True)
        if acct is None:
            return
        lim = acct.limits
        sym = self.syms.get(sym_t)
        if sym is None:
            return self.reject(f, "UNKNOWN_SYMBOL")
        if oid in self.resting:
            return self.reject(f, "DUPLICATE_ORDER_ID")
        market = otype == "MARKET"
        if market and tif in ("GTC", "POST"):
            return self.reject(f, "BAD_TIF")
        reason, qty = self.qty_reason(qty_num, lim)
        if reason:
            return self.reject(f, reason)
        band = sym.band_ticks()
        if market:
            if price_t != "":
                return self.reject(f, "BAD_PRICE")
            price = None
            if sym.band_bps:
                limit = sym.ref + band if side == "BUY" else max(1, sym.ref - band)
            else:
                limit = None
            value_ticks = limit if limit is not None else sym.ref
        else:
            price = self.price_ticks(price_t, sym)
            if price is None:
                return self.reject(f, "BAD_PRICE")
            if sym.band_bps and abs(price - sym.ref) > band:
                return self.reject(f, "PRICE_BAND")
            limit = value_ticks = price
        if self.over_notional(lim, sym, value_ticks, qty):
            return self.reject(f, "MAX_NOTIONAL")
        if lim.max_position:
            pos = acct.position.get(sym.name, 0)
            if side == "BUY":
                worst = pos + self.open_qty(acct, sym, "BUY") + qty
            else:
                worst = self.open_qty(acct, sym, "SELL") + qty - pos
            if worst > lim.max_position:
                return self.reject(f, "MAX_POSITION")
        if lim.max_open_orders and len(acct.orders) >= lim.max_open_orders:
            return self.reject(f, "MAX_OPEN_ORDERS")
        if tif in ("GTC", "POST"):  # could rest: capacity of the book as it is now
            if len(self.resting) >= self.v.caps["max_orders"]:
                return self.reject(f, "CAPACITY")
            own = sym.levels[side]
            if price not in own and len(own) >= self.v.caps["max_levels"]:
                return self.reject(f, "CAPACITY")
        # accepted
        self.accepted += 1
        o = Order(oid, account, sym, side, price, qty, tif, self.accepted)
        self.ev_order("ACK", o, price, qty, qty)
        self.match(o, limit, market)

    def on_cancel(self, f, account: int, oid: int):
        o = self.resting.get(oid)
        if o is None:
            return self.reject(f, "UNKNOWN_ORDER")
        if o.account != account:
            return self.reject(f, "NOT_OWNER")
        leaves = o.leaves
        self.remove_resting(o)
        self.ev_order("CANCELED", o, o.price, leaves, 0, detail="USER")

    def on_replace(self, f, account: int, oid: int, qty_num):
        price_t = f[8]
        acct = self.account_gate(f, account, rate_limited=True)
        if acct is None:
            return
        lim = acct.limits
        o = self.resting.get(oid)
        if o is None:
            return self.reject(f, "UNKNOWN_ORDER")
        if o.account != account:
            return self.reject(f, "NOT_OWNER")
        sym = o.sym
        reason, qty = self.qty_reason(qty_num, lim)
        if reason:
            return self.reject(f, reason)
        price = self.price_ticks(price_t, sym)
        if price is None:
            return self.reject(f, "BAD_PRICE")
        if sym.band_bps and abs(price - sym.ref) > sym.band_ticks():
            return self.reject(f, "PRICE_BAND")
        if self.over_notional(lim, sym, price, qty):
            return self.reject(f, "MAX_NOTIONAL")
        if lim.max_position:
            pos = acct.position.get(sym.name, 0)
            if o.side == "BUY":
                worst = pos + self.open_qty(acct, sym, "BUY", exclude=o) + qty
            else:
                worst = self.open_qty(acct, sym, "SELL", exclude=o) + qty - pos
            if worst > lim.max_position:
                return self.reject(f, "MAX_POSITION")
        own = sym.levels[o.side]
        if price != o.price and price not in own and len(own) >= self.v.caps["max_levels"]:
            return self.reject(f, "CAPACITY")
        # accepted
        self.ev_order("REPLACED", o, price, qty, qty)
        if price == o.price and qty <= o.leaves:
            o.leaves = qty  # keeps its place in the queue
            return
        self.remove_resting(o)
        o.price = price
        o.leaves = qty
        self.match(o, price, market=False)

    def on_kill(self, f, account: int):
        acct = self.account_gate(f, account, rate_limited=False)
        if acct is None:
            return
        for o in sorted(acct.orders.values(), key=lambda o: o.accepted):
            leaves = o.leaves
            self.remove_resting(o)
            self.ev_order("CANCELED", o, o.price, leaves, 0, detail="KILL")
        acct.killed = True
        self.emit("KILLED", account=account)

    # ---------------------------------------------------------------- matching

    @staticmethod
    def within(limit, price: int, side: str) -> bool:
        if limit is None:
            return True
        return price <= limit if side == "BUY" else price >= limit

    def match(self, o: Order, limit, market: bool):
        """Match an accepted (not yet resting) order `o` as taker, then rest or cancel what is left."""
        sym = o.sym
        opp = "SELL" if o.side == "BUY" else "BUY"
        book = sym.levels[opp]

        def queue():
            """Resting opposite orders within the limit, in priority order."""
            prices = sorted(book, reverse=(opp == "BUY"))
            for p in prices:
                if not self.within(limit, p, o.side):
                    return
                yield from list(book[p].values())

        if o.tif == "FOK":
            avail = 0
            for r in queue():
                if r.account == o.account:
                    break
                avail += r.leaves
                if avail >= o.leaves:
                    break
            if avail < o.leaves:
                return self.ev_order("CANCELED", o, o.price, o.leaves, 0, detail="FOK")
        if o.tif == "POST":
            best = sym.best(opp)
            if best is not None and self.within(limit, best, o.side):
                return self.ev_order("CANCELED", o, o.price, o.leaves, 0, detail="POST_ONLY")
        while o.leaves > 0:
            best = sym.best(opp)
            if best is None or not self.within(limit, best, o.side):
                break
            r = next(iter(book[best].values()))
            if r.account == o.account:
                left = o.leaves
                o.leaves = 0
                return self.ev_order("CANCELED", o, o.price, left, 0, detail="SELF_TRADE")
            q = min(o.leaves, r.leaves)
            o.leaves -= q
            r.leaves -= q
            sym.ref = best
            taker, maker = self.accounts[o.account], self.accounts[r.account]
            sgn = 1 if o.side == "BUY" else -1
            taker.position[sym.name] = taker.position.get(sym.name, 0) + sgn * q
            maker.position[sym.name] = maker.position.get(sym.name, 0) - sgn * q
            self.ev_order("FILL", o, best, q, o.leaves, r.oid, "TAKER")
            self.ev_order("FILL", r, best, q, r.leaves, o.oid, "MAKER")
            if r.leaves == 0:
                self.remove_resting(r)
        if o.leaves == 0:
            return
        if not market and o.tif in ("GTC", "POST"):
            self.add_resting(o)
        else:
            left = o.leaves
            o.leaves = 0
            self.ev_order("CANCELED", o, o.price, left, 0, detail="IOC")


# --------------------------------------------------------------------------- entry point


def default_venue_text() -> str:
    return DEFAULT_VENUE_PATH.read_text()


def split_lines(text: str) -> list[str]:
    """Lines end with '\\n' (the last may lack it); one '\\r' before the end is removed."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the text ended with '\n': no row after it
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def replay(flow_csv_text: str, venue_toml_text: str | None = None) -> str:
    """Replay an order flow (CSV text) on a venue (TOML text; None = the built-in venue) and
    return the events CSV text, header included. A missing or wrong header raises ValueError."""
    if venue_toml_text is None:
        venue_toml_text = default_venue_text()
    m = Matcher(Venue(venue_toml_text))
    lines = split_lines(flow_csv_text)
    if not lines or lines[0] != HEADER_IN:
        raise ValueError(f"flow header must be exactly {HEADER_IN!r}")
    on_row = m.on_row
    for line in lines[1:]:
        on_row(line)
    return "\n".join(m.out) + "\n"
