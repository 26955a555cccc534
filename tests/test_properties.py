"""Hypothesis property tests on the events of both matchers.

The invariants are checked from the events CSV alone (plus the input rows, to know which
message produced which events), so they hold for any matcher:

- the events CSV is well formed: header, 11 fields per line, seq 1, 2, 3, ...;
- every input row is accounted for: the events split into exactly one group per row, each
  group starting as the row's action requires (ACK/REJECT for NEW, ...);
- quantity is conserved: every FILL reduces its order's leaves by the traded quantity, every
  CANCELED removes exactly the leaves, leaves are never negative, qty = filled + cancelled +
  leaves for every order never replaced;
- trades come in pairs (taker then maker: same symbol, price and quantity, opposite sides,
  contra ids crossed), at a price within the taker's limit; positions net to zero per symbol;
- after every message the book is not crossed, and no IOC, FOK or MARKET order rests.

Every run explores new inputs (Hypothesis draws a fresh seed; 150 examples a test keeps the run
time fixed). A failure prints the falsifying flow and venue, and a `@reproduce_failure` blob to
paste above the test; Hypothesis's example database (.hypothesis/, not committed) replays it
first on the next run on that machine. `pytest --hypothesis-seed=N` repeats a whole run.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reference import replay as reference_replay
from reference.harness import MATCHERS, engine_available, get_replay

FLOW_HEADER = "ts,account,action,symbol,order_id,side,type,tif,price,qty"
EVENT_HEADER = "seq,event,symbol,order_id,account,side,price,qty,leaves,contra_id,detail"

VENUES = [
    # tight limits, small capacities
    """
[symbols.A]
tick = "0.25"
ref_price = "10.00"
band_bps = 1000
[symbols.B]
tick = "1"
ref_price = "100"
band_bps = 0
[accounts.default]
[accounts.1]
[accounts.2]
max_position = 8
[accounts.3]
max_open_orders = 2
max_msgs_per_sec = 3
[accounts.13]
enabled = false
[engine]
max_orders = 6
max_levels = 3
max_accounts = 6
""",
    # no limits, no default account
    """
[symbols.A]
tick = "0.25"
ref_price = "10.00"
[symbols.B]
tick = "1"
ref_price = "100"
band_bps = 300
[accounts.1]
[accounts.2]
[accounts.3]
[accounts.4]
""",
]

PRICES = {"A": [f"{10 + 0.25 * k:.2f}" for k in range(-5, 6)], "B": [str(100 + k) for k in range(-4, 5)]}

accounts = st.sampled_from(["1", "2", "1", "2", "3", "4", "9", "13"])
oids = st.integers(1, 6).map(str)
qtys = st.sampled_from([str(q) for q in range(1, 7)] * 4 + ["0", "1.5", "-2", "5.0", "4294967296"])


@st.composite
def new_rows(draw):
    sym = draw(st.sampled_from(["A", "B"]))
    typ = draw(st.sampled_from(["LIMIT"] * 5 + ["MARKET"]))
    tif = draw(st.sampled_from(["GTC", "GTC", "GTC", "IOC", "FOK", "POST"]) if typ == "LIMIT" else
               st.sampled_from(["IOC", "IOC", "FOK", "GTC"]))
    price = "" if typ == "MARKET" else draw(st.sampled_from(PRICES[sym] * 3 + ["10.1", ""]))
    side = draw(st.sampled_from(["BUY", "SELL"]))
    return ["NEW", draw(accounts), sym, draw(oids), side, typ, tif, price, draw(qtys)]


@st.composite
def other_rows(draw):
    """CANCEL and REPLACE name an earlier NEW (index `k` back), usually by its own account."""
    kind = draw(st.sampled_from(["CANCEL", "CANCEL", "REPLACE", "REPLACE", "REPLACE", "KILL", "JUNK"]))
    if kind in ("CANCEL", "REPLACE"):
        return [kind, draw(st.integers(0, 5)), draw(st.sampled_from([True] * 4 + [False])), draw(accounts),
                draw(st.integers(0, 100)), draw(qtys)]
    if kind == "KILL":
        return ["KILL", draw(st.sampled_from(["9", "13", "4"])), "", "", "", "", "", "", ""]
    return [draw(st.sampled_from(["JUNK", "new", "NEW"])), draw(accounts), "A", "x", "BUY", "LIMIT", "GTC", "10", "1"]


@st.composite
def flows(draw):
    venue = draw(st.sampled_from(VENUES))
    rows = draw(st.lists(st.one_of(new_rows(), new_rows(), other_rows()), min_size=30, max_size=120))
    ts = 0
    lines = []
    news = []  # (account, symbol, order_id) of the NEW rows so far
    for r in rows:
        ts += draw(st.sampled_from([0, 0, 100_000_000, 700_000_000]))
        if r[0] in ("CANCEL", "REPLACE"):
            kind, k, own, other, pi, qty = r
            if news:
                acct, sym, oid = news[-1 - k % len(news)]
            else:
                acct, sym, oid = other, "A", "1"
            acct = acct if own else other
            if kind == "CANCEL":
                r = ["CANCEL", acct, "", oid, "", "", "", "", ""]
            else:
                r = ["REPLACE", acct, "", oid, "", "", "", PRICES[sym][pi % len(PRICES[sym])], qty]
        elif r[0] == "NEW":
            news.append((r[1], r[2], r[3]))
        action, acct, rest = r[0], r[1], r[2:]
        lines.append(",".join([str(ts), acct, action] + rest))
    return FLOW_HEADER + "\n" + "\n".join(lines) + "\n", venue


# ------------------------------------------------------------------ the checker


class Violation(AssertionError):
    pass


def check_events(flow: str, out: str) -> dict[str, dict]:
    """Raise Violation unless every invariant holds; return the resting orders at the end."""
    rows = [r.split(",") for r in flow.split("\n")[1:-1]]
    lines = out.split("\n")
    if lines[0] != EVENT_HEADER or lines[-1] != "":
        raise Violation("bad header or missing final newline")
    evs = []
    for i, line in enumerate(lines[1:-1], 1):
        f = line.split(",")
        if len(f) != 11:
            raise Violation(f"line {i} has {len(f)} fields: {line!r}")
        if f[0] != str(i):
            raise Violation(f"line {i} has seq {f[0]}")
        for k in (7, 8):
            if f[k] and int(f[k]) < 0:
                raise Violation(f"negative quantity: {line}")
        evs.append(f)

    live: dict[str, dict] = {}  # order_id -> state of resting (or, within a group, working) orders
    p = 0
    for row in rows:
        if p >= len(evs):
            raise Violation(f"no event for row {','.join(row)}")
        action = row[2] if len(row) == 10 else None
        e = evs[p]
        kind = e[1]
        group = [e]
        p += 1
        if kind == "REJECT":
            if any(e[k] for k in (5, 6, 7, 8, 9)):
                raise Violation(f"REJECT with order fields: {e}")
        elif kind in ("ACK", "REPLACED"):
            if kind == "ACK" and action != "NEW" or kind == "REPLACED" and action != "REPLACE":
                raise Violation(f"{kind} for a {action} row")
            oid = e[3]
            if kind == "ACK":
                if oid in live:
                    raise Violation(f"ACK of an id that is resting: {e}")
                if e[7] != e[8]:
                    raise Violation(f"ACK leaves != qty: {e}")
                live[oid] = {"sym": e[2], "acct": e[4], "side": e[5], "price": e[6], "leaves": int(e[8]),
                             "qty": int(e[7]), "done": 0, "replaced": False}
            else:
                if oid not in live:
                    raise Violation(f"REPLACED of an order that is not resting: {e}")
                o = live[oid]
                if (o["sym"], o["acct"], o["side"]) != (e[2], e[4], e[5]) or e[7] != e[8]:
                    raise Violation(f"REPLACED changes the order: {e}")
                o.update(price=e[6], leaves=int(e[8]), replaced=True)
            taker = live[oid]
            while p < len(evs) and (evs[p][1] == "FILL" or evs[p][1] == "CANCELED" and evs[p][10] in
                                    ("SELF_TRADE", "FOK", "POST_ONLY", "IOC")):
                f = evs[p]
                p += 1
                group.append(f)
                if f[1] == "CANCELED":
                    if f[3] != oid or int(f[7]) != taker["leaves"] or f[8] != "0":
                        raise Violation(f"cancel of the taker does not match its leaves: {f}")
                    taker["done"] += int(f[7])
                    taker["leaves"] = 0
                    continue
                # a pair of fills
                if f[10] != "TAKER" or f[3] != oid or p >= len(evs):
                    raise Violation(f"expected the taker's fill first: {f}")
                m = evs[p]
                p += 1
                group.append(m)
                if m[1] != "FILL" or m[10] != "MAKER" or m[3] != f[9] or m[9] != f[3]:
                    raise Violation(f"fill pair broken: {f} / {m}")
                if (m[2], m[6], m[7]) != (f[2], f[6], f[7]) or m[5] == f[5]:
                    raise Violation(f"fill pair disagrees: {f} / {m}")
                maker = live.get(m[3])
                if maker is None or maker is taker or maker["side"] == taker["side"]:
                    raise Violation(f"maker is not a resting opposite order: {m}")
                if maker["price"] != m[6]:
                    raise Violation(f"trade not at the maker's price: {m}")
                q = int(f[7])
                if q <= 0:
                    raise Violation(f"empty trade: {f}")
                if taker["price"]:
                    lim, px = Decimal(taker["price"]), Decimal(f[6])
                    if (px > lim) if taker["side"] == "BUY" else (px < lim):
                        raise Violation(f"trade outside the taker's limit: {f}")
                for o, ev in ((taker, f), (maker, m)):
                    o["leaves"] -= q
                    o["done"] += q
                    if o["leaves"] != int(ev[8]) or o["leaves"] < 0:
                        raise Violation(f"leaves do not add up: {ev}")
                if maker["leaves"] == 0:
                    check_conserved(maker, m)
                    del live[m[3]]
            if taker["leaves"] == 0:
                check_conserved(taker, e)
                del live[oid]
            elif kind == "ACK" and (row[6] == "MARKET" or row[7] in ("IOC", "FOK")):
                raise Violation(f"an {row[6]} {row[7]} order rests: {e}")
        elif kind == "CANCELED" and e[10] == "USER":
            if action != "CANCEL" or e[3] not in live or int(e[7]) != live[e[3]]["leaves"]:
                raise Violation(f"bad user cancel: {e}")
            live[e[3]]["done"] += int(e[7])
            live[e[3]]["leaves"] = 0
            check_conserved(live.pop(e[3]), e)
        elif kind in ("CANCELED", "KILLED") and action == "KILL":
            while kind == "CANCELED":
                if e[10] != "KILL" or e[3] not in live or e[4] != str(int(row[1])) or \
                        int(e[7]) != live[e[3]]["leaves"]:
                    raise Violation(f"bad kill cancel: {e}")
                live[e[3]]["done"] += int(e[7])
                live[e[3]]["leaves"] = 0
                check_conserved(live.pop(e[3]), e)
                if p >= len(evs):
                    raise Violation("KILL without KILLED")
                e = evs[p]
                kind = e[1]
                p += 1
            if kind != "KILLED" or e[4] != str(int(row[1])) or any(e[k] for k in (2, 3, 5, 6, 7, 8, 9, 10)):
                raise Violation(f"bad KILLED: {e}")
        else:
            raise Violation(f"event {e} cannot start the events of row {','.join(row)}")
        check_book(live)
    if p != len(evs):
        raise Violation(f"{len(evs) - p} events left over after the last row")
    check_positions(evs)
    return live


def check_conserved(o, e):
    if not o["replaced"] and o["qty"] != o["done"] + o["leaves"]:
        raise Violation(f"qty {o['qty']} != filled+cancelled {o['done']} + leaves {o['leaves']}: {e}")


def check_book(live):
    best = {}
    for o in live.values():
        if o["leaves"] <= 0:
            raise Violation(f"a resting order without leaves: {o}")
        px = Decimal(o["price"])
        key = (o["sym"], o["side"])
        if o["side"] == "BUY":
            best[key] = max(best.get(key, px), px)
        else:
            best[key] = min(best.get(key, px), px)
    for (sym, side), px in best.items():
        if side == "BUY" and (sym, "SELL") in best and px >= best[(sym, "SELL")]:
            raise Violation(f"book crossed in {sym}: bid {px} >= ask {best[(sym, 'SELL')]}")


def check_positions(evs):
    pos = defaultdict(int)
    for e in evs:
        if e[1] == "FILL":
            pos[(e[2], e[4])] += int(e[7]) if e[5] == "BUY" else -int(e[7])
    net = defaultdict(int)
    for (sym, _), q in pos.items():
        net[sym] += q
    bad = {s: q for s, q in net.items() if q}
    if bad:
        raise Violation(f"positions do not net to zero: {bad}")


# ------------------------------------------------------------------ tests

PROPS = settings(max_examples=150, derandomize=False, print_blob=True, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# The engine allocates its whole state per replay, so shrinking a failure through it takes
# minutes; its failures are reported unshrunk (test_differential shrinks flows quickly).
PROPS_ENGINE = settings(PROPS, phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.mark.parametrize("matcher", MATCHERS)
def test_invariants(matcher):
    replay = get_replay(matcher)

    @(PROPS if matcher == "reference" else PROPS_ENGINE)
    @given(flows())
    def run(fv):
        flow, venue = fv
        check_events(flow, replay(flow, venue))

    run()


@pytest.mark.skipif(not engine_available(), reason="engine.api does not exist yet")
@PROPS_ENGINE
@given(flows())
def test_engine_equals_reference_on_small_flows(fv):
    flow, venue = fv
    engine = get_replay("engine")
    assert engine(flow, venue).split("\n") == reference_replay(flow, venue).split("\n")


def book_from_events(live) -> dict[tuple[str, str], list[tuple[float, int, int]]]:
    """(symbol, 'bids'/'asks') -> [(price, qty, orders)] best first, from the resting orders."""
    levels = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for o in live.values():
        lv = levels[(o["sym"], "bids" if o["side"] == "BUY" else "asks")][Decimal(o["price"])]
        lv[0] += o["leaves"]
        lv[1] += 1
    return {
        key: [(float(px), q, n) for px, (q, n) in sorted(lv.items(), reverse=key[1] == "bids")]
        for key, lv in levels.items()
    }


@pytest.mark.skipif(not engine_available(), reason="engine.api does not exist yet")
@PROPS_ENGINE
@given(flows())
def test_engine_depth_matches_its_events(fv):
    """The engine's own book (Venue.depth) after a replay is the book its events describe."""
    import io

    from engine.api import Venue
    from engine.codec import parse_flow_bytes
    from engine.config import parse_venue

    flow, venue_text = fv
    config = parse_venue(venue_text)
    v = Venue(config)
    buf = io.BytesIO()
    v.replay(parse_flow_bytes(flow.encode(), config), buf)
    want = book_from_events(check_events(flow, buf.getvalue().decode()))
    for sym in ("A", "B"):
        got = v.depth(sym)
        for side in ("bids", "asks"):
            assert [(float(p), int(q), int(n)) for p, q, n in got[side]] == want.get((sym, side), []), (sym, side)


def test_checker_catches_a_crossed_book():
    """The checker itself: a hand-made event stream with a crossed book must be caught."""
    flow = FLOW_HEADER + "\n1,1,NEW,A,1,BUY,LIMIT,GTC,10.00,1\n2,2,NEW,A,2,SELL,LIMIT,GTC,9.75,1\n"
    out = EVENT_HEADER + "\n1,ACK,A,1,1,BUY,10.00,1,1,,\n2,ACK,A,2,2,SELL,9.75,1,1,,\n"
    with pytest.raises(Violation, match="crossed"):
        check_events(flow, out)


def test_checker_catches_lost_quantity():
    flow = FLOW_HEADER + "\n1,1,NEW,A,1,BUY,LIMIT,GTC,10.00,3\n2,1,CANCEL,,1,,,,,\n"
    out = EVENT_HEADER + "\n1,ACK,A,1,1,BUY,10.00,3,3,,\n2,CANCELED,A,1,1,BUY,10.00,2,0,,USER\n"
    with pytest.raises(Violation, match="user cancel"):
        check_events(flow, out)
