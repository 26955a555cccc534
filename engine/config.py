"""Venue configuration: `venue.toml` loaded, validated and turned into integer arrays.

Decimal strings exist only here and in the codec; everything handed to the matcher is
integers (ticks, 1e-8 price units, quantities). Errors name the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from engine.records import EVENT_DTYPE, MAX_PRICE_UNITS, MAX_QTY, ORDER_DTYPE, PRICE_DECIMALS, PRICE_SCALE

DEFAULT_VENUE_PATH = Path(__file__).with_name("default_venue.toml")

SYMBOL_KEYS = {"tick", "ref_price", "band_bps"}
ACCOUNT_KEYS = {"max_order_qty", "max_notional", "max_position", "max_open_orders", "max_msgs_per_sec", "enabled"}
ENGINE_KEYS = {"max_orders", "max_levels", "max_accounts"}
DEFAULT_BAND_BPS = 1000
DEFAULT_CAPACITY = {"max_orders": 1 << 20, "max_levels": 4096, "max_accounts": 4096}
MAX_SYMBOLS = 0xFFFE  # 0xFFFF is SYMBOL_UNKNOWN in the record


class ConfigError(ValueError):
    """A venue file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Symbol:
    name: str
    tick: Decimal
    tick_units: int  # tick in 1e-8 price units
    decimals: int  # decimals printed for prices (the tick's, without trailing zeros)
    ref_ticks: int
    band_bps: int


@dataclass(frozen=True)
class AccountLimits:
    max_order_qty: int = 0
    max_notional: Decimal = Decimal(0)
    max_position: int = 0
    max_open_orders: int = 0
    max_msgs_per_sec: int = 0
    enabled: bool = True


@dataclass(frozen=True)
class VenueConfig:
    symbols: tuple[Symbol, ...]
    default_account: AccountLimits | None
    accounts: dict[int, AccountLimits] = field(default_factory=dict)
    max_orders: int = DEFAULT_CAPACITY["max_orders"]
    max_levels: int = DEFAULT_CAPACITY["max_levels"]
    max_accounts: int = DEFAULT_CAPACITY["max_accounts"]
    source: str = "<built-in>"

    @property
    def symbol_index(self) -> dict[str, int]:
        return {s.name: i for i, s in enumerate(self.symbols)}

    def digest(self) -> str:
        """A fingerprint of everything that decides the events (symbols, limits, capacities,
        the record layout), not where the venue was read from: a journal or a snapshot written
        under one venue is refused under another."""
        rules = (repr(self.symbols), repr(self.default_account), repr(sorted(self.accounts.items())),
                 self.max_orders, self.max_levels, self.max_accounts, ORDER_DTYPE.descr, EVENT_DTYPE.descr)
        return hashlib.sha256(repr(rules).encode()).hexdigest()[:32]

    def with_capacity(self, **caps: int) -> "VenueConfig":
        """The same venue with other capacities (e.g. the Verilog book's parameters)."""
        unknown = set(caps) - ENGINE_KEYS
        if unknown:
            raise ConfigError(f"{self.source}: unknown capacity {sorted(unknown)}")
        values = {k: getattr(self, k) for k in ENGINE_KEYS} | caps
        _check_capacity(values, self.source, len(self.accounts))
        return VenueConfig(self.symbols, self.default_account, self.accounts, source=self.source, **values)


def _decimal(value, where: str) -> Decimal:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a decimal string such as \"0.01\", got {value!r}")
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"{where}: {value!r} is not a decimal number") from None
    if not d.is_finite():
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    return d


def _int(value, where: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {value} is outside {lo}..{hi}")
    return value


def _shown(key: str) -> str:
    """A TOML key as an error message shows it: bare, or quoted as TOML would, escapes included
    (a raw "A\\nB" would break the message's one line)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    return json.dumps(key, ensure_ascii=not key.isprintable())


def _keys(table, allowed: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _symbol(name: str, table: dict, src: str) -> Symbol:
    where = f"{src}: [symbols.{name}]"
    _keys(table, SYMBOL_KEYS, where)
    for key in ("tick", "ref_price"):
        if key not in table:
            raise ConfigError(f"{where}: missing key {key!r}")
    tick = _decimal(table["tick"], f"{where} tick")
    if tick <= 0:
        raise ConfigError(f"{where} tick: must be > 0, got {table['tick']!r}")
    tick_units = tick * PRICE_SCALE
    if tick_units != tick_units.to_integral_value():
        raise ConfigError(f"{where} tick: at most {PRICE_DECIMALS} decimals, got {table['tick']!r}")
    ref = _decimal(table["ref_price"], f"{where} ref_price")
    if ref <= 0:
        raise ConfigError(f"{where} ref_price: must be > 0, got {table['ref_price']!r}")
    ref_ticks = ref / tick
    if ref_ticks != ref_ticks.to_integral_value():
        raise ConfigError(f"{where} ref_price: {table['ref_price']!r} is not a multiple of tick {table['tick']!r}")
    if ref * PRICE_SCALE > MAX_PRICE_UNITS:
        raise ConfigError(f"{where} ref_price: above the venue's price range")
    band = _int(table.get("band_bps", DEFAULT_BAND_BPS), f"{where} band_bps", 0, 1_000_000)
    decimals = max(0, -tick.normalize().as_tuple().exponent)
    return Symbol(name, tick, int(tick_units), decimals, int(ref_ticks), band)


def _limits(table: dict, base: AccountLimits, where: str) -> AccountLimits:
    _keys(table, ACCOUNT_KEYS, where)
    values = {}
    for key in ("max_order_qty", "max_position", "max_open_orders", "max_msgs_per_sec"):
        if key in table:
            values[key] = _int(table[key], f"{where} {key}", 0, MAX_QTY if key == "max_order_qty" else 2**62)
    if "max_notional" in table:
        d = _decimal(table["max_notional"], f"{where} max_notional")
        if d < 0:
            raise ConfigError(f"{where} max_notional: must be >= 0")
        values["max_notional"] = d
    if "enabled" in table:
        if not isinstance(table["enabled"], bool):
            raise ConfigError(f"{where} enabled: expected true or false, got {table['enabled']!r}")
        values["enabled"] = table["enabled"]
    return AccountLimits(**{**base.__dict__, **values})


def _check_capacity(caps: dict, src: str, n_listed: int) -> None:
    _int(caps["max_orders"], f"{src}: [engine] max_orders", 1, 1 << 26)
    _int(caps["max_levels"], f"{src}: [engine] max_levels", 1, 1 << 20)
    _int(caps["max_accounts"], f"{src}: [engine] max_accounts", 1, 1 << 24)
    if caps["max_accounts"] < n_listed:
        raise ConfigError(f"{src}: [engine] max_accounts {caps['max_accounts']} is below the {n_listed} listed accounts")


def parse_venue(text: str, source: str = "<string>") -> VenueConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    _keys(doc, {"symbols", "accounts", "engine"}, source)
    symbols_t = doc.get("symbols", {})
    if not isinstance(symbols_t, dict) or not symbols_t:
        raise ConfigError(f"{source}: [symbols] needs at least one symbol")
    if len(symbols_t) > MAX_SYMBOLS:
        raise ConfigError(f"{source}: at most {MAX_SYMBOLS} symbols")
    symbols = []
    for name, table in symbols_t.items():
        if not name or "," in name or not name.isprintable():
            raise ConfigError(f"{source}: [symbols.{_shown(name)}]: a symbol name must be printable, without commas")
        symbols.append(_symbol(name, table, source))

    accounts_t = doc.get("accounts", {})
    if not isinstance(accounts_t, dict):
        raise ConfigError(f"{source}: [accounts] must be a table")
    default = None
    if "default" in accounts_t:
        default = _limits(accounts_t["default"], AccountLimits(), f"{source}: [accounts.default]")
    accounts = {}
    for key, table in accounts_t.items():
        if key == "default":
            continue
        where = f"{source}: [accounts.{_shown(key)}]"
        # ASCII digits only, as an account field of the flow (rulebook section 3): str.isdigit()
        # also takes "²" (which int() refuses) and "٣" (which int() reads as 3)
        digits = key.lstrip("0")
        if not (key.isascii() and key.isdigit()) or len(digits) > 10 or int(digits or "0") > 2**32 - 1:
            raise ConfigError(f"{where}: an account id is ASCII digits 0-9, at most 2^32 - 1")
        acct = int(digits or "0")  # not int(key): 5,000 leading zeros are over int()'s digit limit
        if acct in accounts:  # "7" and "007": one account listed twice, one table would be lost
            raise ConfigError(f"{where}: account {acct} is listed twice")
        accounts[acct] = _limits(table, default or AccountLimits(), where)

    engine_t = doc.get("engine", {})
    _keys(engine_t, ENGINE_KEYS, f"{source}: [engine]")
    caps = DEFAULT_CAPACITY | engine_t
    _check_capacity(caps, source, len(accounts))
    return VenueConfig(tuple(symbols), default, accounts, source=source, **caps)


def load_venue(path: str | Path | None = None) -> VenueConfig:
    """Load a venue file, or the built-in venue when path is None."""
    p = Path(path) if path is not None else DEFAULT_VENUE_PATH
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    try:
        text = data.decode("utf-8")  # TOML is UTF-8, whatever the locale says
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    return parse_venue(text, source=str(p))


# --- integer tables for the matcher -----------------------------------------------------

NO_LIMIT = -1


def notional_limit_ticks(limits: AccountLimits, sym: Symbol) -> int:
    """floor(max_notional / tick): price_ticks * qty > this  <=>  price * qty > max_notional."""
    if limits.max_notional == 0:
        return NO_LIMIT
    return min(int(limits.max_notional // sym.tick), 2**62)  # beyond any reachable price x qty


def profile_tables(venue: VenueConfig) -> dict[str, np.ndarray]:
    """Account limit profiles as arrays: index 0 is the default profile (when there is one),
    then one per listed account in the order of `listed_ids`."""
    profiles = [venue.default_account or AccountLimits(enabled=False)] + list(venue.accounts.values())
    n_sym = len(venue.symbols)
    return {
        "prof_max_qty": np.array([p.max_order_qty for p in profiles], np.int64),
        "prof_max_pos": np.array([p.max_position for p in profiles], np.int64),
        "prof_max_open": np.array([p.max_open_orders for p in profiles], np.int64),
        "prof_max_rate": np.array([p.max_msgs_per_sec for p in profiles], np.int64),
        "prof_enabled": np.array([p.enabled for p in profiles], np.int64),
        "prof_notional": np.array(
            [[notional_limit_ticks(p, s) for s in venue.symbols] for p in profiles], np.int64
        ).reshape(len(profiles), n_sym),
        "listed_ids": np.array(list(venue.accounts.keys()), np.int64),
    }
