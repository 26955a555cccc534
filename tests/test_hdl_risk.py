"""The host's side of the risk stage (hdl/rtl/tickbook_risk.v): the bucket arithmetic it relies on,
the configuration words that load a venue's accounts, and the one-line refusals of what it cannot
hold exactly. Its events are checked against the engine in hdl/tb/test_tickbook_risk.py (cocotb,
directed) and tests/test_hdl_diff.py (RISK_CASES, random flows)."""

import random
import re

import numpy as np
import pytest

from engine.config import parse_venue
from engine.records import ACTION_KILL, ORDER_DTYPE
from hdl.sim import driver as sim
from hdl.sim.scope import Unrepresentable, check_venue, refusals
from testkit.flows import DIFF_VENUE_TOML, risk_venue

RISK_RTL = sim.RTL_DIR / "tickbook_risk.v"
SYMBOLS = DIFF_VENUE_TOML.replace("[accounts.default]\n", "")


def venue(accounts: str, engine: str = ""):
    return parse_venue(SYMBOLS + accounts + engine, "<risk test venue>")


def sec_m() -> int:
    m = re.search(r"localparam \[55:0\] SEC_M = 56'd(\d+);", RISK_RTL.read_text())
    assert m, "SEC_M not found in tickbook_risk.v"
    return int(m.group(1))


def test_the_second_of_ts_is_exact_for_every_64_bit_ts():
    """floor(ts / 1e9) = ((ts >> 9) x SEC_M) >> 76: the Granlund-Montgomery bound for 55-bit
    dividends and the divisor 5**9 holds, and the edges of every kind agree."""
    m, d = sec_m(), 5**9
    assert m == -(-(1 << 76) // d)
    assert 0 <= m * d - (1 << 76) <= 1 << 21  # the condition that makes it exact for n < 2**55
    rng = random.Random(1)
    edges = [0, 1, 10**9 - 1, 10**9, 10**9 + 1, 2**64 - 1, 2**64 - 10**9, (2**64 - 1) // 10**9 * 10**9]
    edges += [k * 10**9 + e for k in (rng.getrandbits(35) for _ in range(20_000)) for e in (-1, 0, 1)
              if 0 <= k * 10**9 + e < 2**64]
    for ts in edges + [rng.getrandbits(64) for _ in range(50_000)]:
        assert ((ts >> 9) * m) >> 76 == ts // 10**9, ts


def word(words, addr: int, w: int) -> list[int]:
    """The data of the configuration words at addr that are word w (cfg_data[103:100])."""
    return [d for a, _, d in words if a == addr and d >> 100 & 0xF == w]


def test_account_words_load_listed_and_default():
    v = venue("""
[accounts.default]
max_order_qty = 9
max_msgs_per_sec = 25
max_notional = "1234.567890129"

[accounts.7]
max_order_qty = 5
max_notional = "0"
enabled = false

[accounts.4294967295]
max_msgs_per_sec = 4294967294
max_open_orders = 16777215

[engine]
max_accounts = 10
""")
    words = sim.account_words(v, nacct=16)
    acct = word(words, sim.CFG_ACCT, 0)
    (top,) = word(words, sim.CFG_ACCTS, 0)
    u32 = (1 << 32) - 1
    # [31:0] id, [63:32] max_order_qty, [95:64] max_msgs_per_sec, [96] enabled, [127:104] index
    assert [(d & u32, d >> 32 & u32, d >> 64 & u32, d >> 96 & 1, d >> 104) for d in acct] == [
        (7, 5, 25, 0, 0), (4294967295, 9, 4294967294, 1, 1)]
    # [31:0], [63:32] the default's limits, [87:64] max_accounts, [111:88] listed, [112] default, [113] enabled
    assert (top & u32, top >> 32 & u32, top >> 64 & 0xFFFFFF, top >> 88 & 0xFFFFFF, top >> 112 & 1, top >> 113 & 1) == \
        (9, 25, 10, 2, 1, 1)
    # word 1, the limits the book checks: [62] a notional limit, [61:0] floor(max_notional x 1e8)
    # (0 is none); [87:64] max_open_orders
    (dflt,) = word(words, sim.CFG_ACCTS, 1)
    assert (dflt >> 62 & 1, dflt & ((1 << 62) - 1), dflt >> 64 & 0xFFFFFF) == (1, 123456789012, 0)
    assert [(d & ((1 << 63) - 1), d >> 64 & 0xFFFFFF, d >> 104) for d in word(words, sim.CFG_ACCT, 1)] == [
        (0, 0, 0), (1 << 62 | 123456789012, 16777215, 1)]
    # the table smaller than max_accounts: the stage tracks what it holds (engine_venue agrees)
    (top,) = word(sim.account_words(v, nacct=4), sim.CFG_ACCTS, 0)
    assert top >> 64 & 0xFFFFFF == 4 == sim.engine_venue(v, 8, 2, nacct=4).max_accounts


def test_a_max_order_qty_beyond_32_bits_is_no_limit():
    """The book rejects any quantity above 2**32 - 1 MAX_QTY itself, so a limit of 2**32 - 1 (the
    largest a venue takes) changes nothing and is loaded as 0, none."""
    v = venue("[accounts.default]\nmax_order_qty = 4294967295\n")
    (top,) = word(sim.account_words(v), sim.CFG_ACCTS, 0)
    assert top & ((1 << 32) - 1) == 0
    v = venue("[accounts.default]\nmax_order_qty = 4294967294\n")
    (top,) = word(sim.account_words(v), sim.CFG_ACCTS, 0)
    assert top & ((1 << 32) - 1) == 2**32 - 2


def refused(v, match: str) -> None:
    """The stage's configuration refuses v (SimError), and check_venue says so in one line."""
    with pytest.raises(sim.SimError, match=match):
        sim.account_words(v)
    with pytest.raises(Unrepresentable) as e:
        check_venue(v)
    assert "\n" not in str(e.value)


def test_what_the_stage_cannot_hold_is_refused_in_one_line():
    refused(venue("[accounts.default]\n[accounts.5]\nmax_msgs_per_sec = 4294967295\n"),
            r"\[accounts.5\]: max_msgs_per_sec 4294967295 is beyond")
    # max_notional: the largest limit the stage holds is 2**62 - 1 units of 1e-8
    edge = venue('[accounts.default]\nmax_notional = "46116860184.27387903"\n')
    (d,) = word(sim.account_words(edge), sim.CFG_ACCTS, 1)
    assert d & ((1 << 63) - 1) == 1 << 62 | (1 << 62) - 1
    assert check_venue(edge)
    refused(venue('[accounts.default]\n[accounts.6]\nmax_notional = "46116860184.27387904"\n'),
            r"\[accounts.6\]: max_notional 46116860184.27387904 is beyond")
    many = venue("[accounts.default]\n" + "".join(f"[accounts.{i}]\nmax_order_qty = 3\n" for i in range(5)))
    with pytest.raises(sim.SimError, match="5 listed accounts, the risk stage's table holds 4"):
        sim.account_words(many, nacct=4)


def test_the_rules_a_build_does_not_check_are_named():
    """The block-RAM build behind the risk stage checks every account rule and KILL; the register
    builds refuse, in one line each, the limits only the block-RAM book checks and KILL records."""
    assert sim.unsupported(risk_venue("limits")) == []
    v = venue("""
[accounts.default]
max_position = 100

[accounts.3]
max_notional = "1000"

[accounts.4]
max_open_orders = 2
""")
    assert sim.unsupported(v) == []
    assert check_venue(v)
    for book in ("fast", "area"):   # the register builds do not
        why = sim.unsupported(v, book=book)
        assert any(f"max_notional in [accounts.3] (the {book} build has no max_notional check)" in w for w in why)
        assert any(f"max_position in [accounts.default] and 2 more (the {book} build has no max_position check)" in w
                   for w in why), why   # 3 and 4 inherit it
        assert any(f"max_open_orders in [accounts.4] (the {book} build has no max_open_orders check)" in w for w in why)
        assert sim.unsupported(risk_venue("limits", book_limits=False), book=book) == []
        with pytest.raises(Unrepresentable, match="max_notional"):
            check_venue(risk_venue("limits"), book=book)
    kill = np.zeros(1, ORDER_DTYPE)
    kill["action"] = ACTION_KILL
    assert sim.unsupported(risk_venue("none"), kill) == []   # the block-RAM build kills
    for book in ("fast", "area"):
        assert f"KILL records (the {book} build answers them REJECT MALFORMED)" in sim.unsupported(
            risk_venue("none", book_limits=False), kill, book=book)


def test_max_position_words():
    """Word 2 of each account holds its max_position in [62:0] (0 none), up to 2**62 as the
    engine takes it."""
    v = venue("[accounts.default]\nmax_position = 4611686018427387904\n[accounts.9]\nmax_position = 7\n"
              "[accounts.10]\nmax_position = 0\n")
    words = sim.account_words(v)
    (d,) = word(words, sim.CFG_ACCTS, 2)
    assert d & ((1 << 100) - 1) == 1 << 62
    assert [(d & ((1 << 63) - 1), d >> 104) for d in word(words, sim.CFG_ACCT, 2)] == [(7, 0), (0, 1)]  # accounts 9, 10


def test_more_accounts_than_a_simulation_holds_are_refused_in_one_line():
    """The engine tracks up to 2**24 accounts; the risk stage's simulation at most MAX_ACCOUNTS
    (its table would take gigabytes in Icarus): refused before any build, the limit itself runs."""
    over = venue("[accounts.default]\n", f"[engine]\nmax_accounts = {sim.MAX_ACCOUNTS + 1}\n")
    with pytest.raises(Unrepresentable) as e:
        check_venue(over)
    assert "\n" not in str(e.value) and f"max_accounts = {sim.MAX_ACCOUNTS + 1:,}: the risk stage" in str(e.value)
    with pytest.raises(sim.SimError, match=f"at most {sim.MAX_ACCOUNTS:,} accounts"):
        sim.simulate(np.zeros(1, ORDER_DTYPE), over)
    # the book keeps a position word per account index and symbol (MAX_POSITIONS): the most
    # accounts in the test venue's four symbols run, with a fifth they are refused in one line
    four = venue("[accounts.default]\n", f"[engine]\nmax_accounts = {sim.MAX_ACCOUNTS}\n")
    assert len(four.symbols) == 4 and check_venue(four)["nacct"] == sim.MAX_ACCOUNTS
    five = parse_venue(SYMBOLS + '[symbols.FIFTH]\ntick = "1"\nref_price = "100"\n'
                       + f"[accounts.default]\n[engine]\nmax_accounts = {sim.MAX_ACCOUNTS}\n", "<five>")
    assert len(five.symbols) == 5
    with pytest.raises(Unrepresentable) as e:
        check_venue(five)
    assert "\n" not in str(e.value) and f"take {8 * sim.MAX_ACCOUNTS:,} position words" in str(e.value)
    with pytest.raises(sim.SimError, match=f"at most {sim.MAX_POSITIONS:,}"):
        sim.simulate(np.zeros(1, ORDER_DTYPE), five)
    assert not any("position words" in w for w in refusals(five, book="fast"))   # the register builds keep none


def test_a_max_open_orders_beyond_24_bits_is_no_limit():
    """An account never holds more resting orders than a simulation holds (MAX_ORDERS, 2**21):
    a max_open_orders of 2**24 or more can never fire, and is loaded as 0 (none); 2**24 - 1 is
    loaded as it is."""
    assert max(sim.MAX_ORDERS.values()) < (1 << 24) - 1
    for limit, loaded in ((1 << 24, 0), (2**62, 0), ((1 << 24) - 1, (1 << 24) - 1), (1, 1)):
        (d,) = word(sim.account_words(venue(f"[accounts.default]\nmax_open_orders = {limit}\n")), sim.CFG_ACCTS, 1)
        assert d >> 64 & 0xFFFFFF == loaded, limit
