"""The account table (engine/accounts.py): the gate KILL shares with NEW and REPLACE, and the
bookkeeping the matcher leaves to it, checked against the book it describes.

The gate's one difference for KILL (a disabled account may be killed) is pinned on both
matchers with events written by hand from docs/rulebook.md. The bookkeeping is checked on the
engine's state after generated flows: every counter must equal what a walk of the book counts.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.accounts import A_TRACKED, find_account
from engine.api import Venue
from engine.config import load_venue
from engine.gen import generate
from engine.records import ACTION_KILL, EV_ACK, EV_CANCELED, R_KILL, SIDE_BUY, SIDE_SELL
from engine.state import C_RESTING
from reference.harness import MATCHERS, get_replay

FLOW_HEADER = "ts,account,action,symbol,order_id,side,type,tif,price,qty"
EVENT_HEADER = "seq,event,symbol,order_id,account,side,price,qty,leaves,contra_id,detail"

DISABLED_DEFAULT = """
[symbols.AAPL]
tick = "0.01"
ref_price = "100.00"
[accounts.default]
enabled = false
[accounts.5]
enabled = true
[engine]
max_accounts = 2
"""


@pytest.mark.parametrize("matcher", MATCHERS)
def test_a_kill_under_a_disabled_default_is_accepted_and_tracks_the_account(matcher):
    replay = get_replay(matcher)
    rows = [
        "1,9,KILL,,,,,,,",  # unlisted, default disabled: killing a disabled account is accepted
        "2,9,NEW,AAPL,1,BUY,LIMIT,GTC,99.00,1",
        "3,10,NEW,AAPL,2,BUY,LIMIT,GTC,99.00,1",  # disabled before it would need a slot
        "4,10,KILL,,,,,,,",  # 5 and 9 are tracked: no slot is left for 10
        "5,5,NEW,AAPL,3,BUY,LIMIT,GTC,99.00,1",
    ]
    expected = [
        "KILLED,,,9,,,,,,",
        "REJECT,AAPL,1,9,,,,,,ACCOUNT_DISABLED",
        "REJECT,AAPL,2,10,,,,,,ACCOUNT_DISABLED",
        "REJECT,,,10,,,,,,CAPACITY",
        "ACK,AAPL,3,5,BUY,99.00,1,1,,",
    ]
    out = replay("\n".join([FLOW_HEADER, *rows]) + "\n", DISABLED_DEFAULT)
    want = "\n".join([EVENT_HEADER] + [f"{i},{x}" for i, x in enumerate(expected, 1)]) + "\n"
    assert out.split("\n") == want.split("\n")


def _resting_by_walking_the_book(st) -> list[int]:
    """Every resting order slot, found through the ladders and level queues only."""
    found = []
    for book in range(len(st.ladder_n)):
        for k in range(int(st.ladder_n[book])):
            o = int(st.l_head[st.ladder[book, k]])
            while o >= 0:
                found.append(o)
                o = int(st.o_next[o])
    return found


def _check_accounts(st, accepted_at: dict[int, int]) -> int:
    """Assert every account counter against the book; return how many orders rest."""
    resting = _resting_by_walking_the_book(st)
    assert len(resting) == st.ctr[C_RESTING]
    n_acct = int(st.a_ctr[A_TRACKED])
    assert int((st.a_key != 0).sum()) == n_acct
    for slot in range(n_acct):
        assert find_account(st, st.a_id[slot]) == slot
    n_sym = st.pos.shape[1]
    open_qty = np.zeros((n_acct, n_sym, 3), np.int64)
    mine: dict[int, set[int]] = {slot: set() for slot in range(n_acct)}
    for o in resting:
        slot = int(st.o_acct[o])
        mine[slot].add(o)
        open_qty[slot, st.o_sym[o], st.o_side[o]] += st.o_leaves[o]
    assert np.array_equal(st.open_buy[:n_acct], open_qty[:, :, SIDE_BUY])
    assert np.array_equal(st.open_sell[:n_acct], open_qty[:, :, SIDE_SELL])
    # every fill moves two positions by the same quantity in opposite directions
    assert not st.pos.sum(axis=0).any()
    for slot in range(n_acct):
        assert st.a_open[slot] == len(mine[slot])
        walk, prev, o = [], -1, int(st.a_head[slot])
        while o >= 0:
            assert st.o_aprev[o] == prev
            walk.append(o)
            prev, o = o, int(st.o_anext[o])
        assert st.a_tail[slot] == prev
        assert set(walk) == mine[slot] and len(walk) == len(mine[slot])
        # acceptance order (KILL cancels in it): a REPLACE keeps an order's place
        seqs = [accepted_at[int(st.o_id[o])] for o in walk]
        assert seqs == sorted(seqs)
    return len(resting)


VENUES = {
    "built-in": load_venue(None),
    "tight": load_venue(None).with_capacity(max_orders=256, max_levels=8, max_accounts=12),
}


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize(("seed", "n_accounts"), [(11, 48), (12, 4)])
def test_account_counters_equal_what_the_book_holds(venue, seed, n_accounts):
    v = Venue(VENUES[venue])
    orders = generate(v.config, 30_000, seed=seed, n_accounts=n_accounts)
    # The generator's kills are rare; a few more, of whoever sends that message, mid-flow.
    orders["action"][2_999::5_000] = ACTION_KILL
    accepted_at: dict[int, int] = {}
    peak = killed = 0
    for start in range(0, len(orders), 3_000):
        ev = v.submit(orders[start:start + 3_000])
        acks = ev[ev["kind"] == EV_ACK]
        accepted_at.update(zip(acks["order_id"].tolist(), acks["seq"].tolist()))
        killed += int(((ev["kind"] == EV_CANCELED) & (ev["reason"] == R_KILL)).sum())
        peak = max(peak, _check_accounts(v.state, accepted_at))
    # the checks ran on a book with orders in it, and after kills that cancelled some
    assert peak > 0 and killed > 0
