"""`tickbook replay FLOW --offload hw|shadow` through the command line: the hardware (the block-RAM
build) is built with the venue's own capacities, the engine's defaults included, and the golden
example comes out byte for byte; a venue it cannot hold is refused in one line with exit status
2; a shadow divergence is reported with exit status 1."""

import subprocess
import sys
from pathlib import Path

import pytest

from hdl.sim.driver import MAX_ORDERS

pytestmark = pytest.mark.hdl
GOLDEN = Path(__file__).resolve().parent / "golden"
REPO = GOLDEN.parent.parent
CAPACITIES = "\n[engine]\nmax_orders = 64\nmax_levels = 16\n"
TOO_MANY = f"\n[engine]\nmax_orders = {2 * MAX_ORDERS['bram']}\n"


def replay(*args):
    return subprocess.run([sys.executable, "-m", "tickbook.cli", "replay", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


def venue_with_capacities(tmp_path, engine=CAPACITIES) -> Path:
    v = tmp_path / "venue.toml"
    v.write_text((GOLDEN / "example_venue.toml").read_text() + engine)
    return v


@pytest.mark.parametrize("mode,capacities", [("hw", "engine defaults"), ("shadow", "64 orders")])
def test_replay_offload_golden(tmp_path, mode, capacities):
    """The example venue says nothing of capacities: the engine's default 1,048,576 orders and
    4,096 levels, which the block-RAM build is built with."""
    out = tmp_path / "events.csv"
    venue = GOLDEN / "example_venue.toml" if capacities == "engine defaults" else venue_with_capacities(tmp_path)
    r = replay(GOLDEN / "example_flow.csv", "--config", venue, "--offload", mode, "--events", out, "-q")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (GOLDEN / "example_events.csv").read_bytes()
    assert "built with" not in r.stderr  # the venue's capacities: no what-if line
    beyond = [ln for ln in r.stderr.splitlines() if "beyond the synthesized device" in ln]
    if capacities == "engine defaults":  # 1,048,576 orders and 4,096 levels: said, and simulated
        assert len(beyond) == 1 and "nord 1,048,576 > 8,192" in beyond[0] and "nlvl 4,096 > 256" in beyond[0], r.stderr
    else:
        assert not beyond, r.stderr


def test_a_venue_beyond_the_simulated_book_exits_2_in_one_line(tmp_path):
    out = tmp_path / "events.csv"
    r = replay(GOLDEN / "example_flow.csv", "--config", venue_with_capacities(tmp_path, TOO_MANY), "--offload", "hw",
               "--events", out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"max_orders = {2 * MAX_ORDERS['bram']:,}" in lines[0], lines
    assert f"at most {MAX_ORDERS['bram']:,}" in lines[0], lines
    assert not out.exists()


def test_shadow_divergence_exits_1_naming_the_message(tmp_path):
    """The what-if of a one-order hardware book: the example's second resting order is CAPACITY
    there, so shadow fails at that message and writes no events file."""
    out = tmp_path / "events.csv"
    r = replay(GOLDEN / "example_flow.csv", "--config", venue_with_capacities(tmp_path), "--offload", "shadow",
               "--hw-max-orders", 1, "--events", out)
    assert r.returncode == 1, r.stderr
    assert "built with max_orders = 1, max_levels = 16 (the venue: 64, 16)" in r.stderr
    assert "tickbook: shadow: sw and hw differ: " in r.stderr and "messages differ" in r.stderr, r.stderr
    assert not out.exists()


def test_what_if_capacities_need_the_hardware(tmp_path):
    r = replay(GOLDEN / "example_flow.csv", "--hw-max-orders", 8)
    assert r.returncode == 2 and "need --offload hw or shadow" in r.stderr, r.stderr


def test_shadow_runs_the_account_rules_in_hardware(tmp_path):
    """A venue with no default account and listed accounts with their own limits: the risk stage
    in front of the book answers UNKNOWN_ACCOUNT, ACCOUNT_DISABLED, RATE_LIMIT and MAX_QTY as the
    engine does, so shadow agrees on every event and the CSV carries each reason."""
    venue = tmp_path / "venue.toml"
    venue.write_text('[symbols.AAPL]\ntick = "0.01"\nref_price = "100.00"\n'
                     "[accounts.1]\nmax_order_qty = 5\nmax_msgs_per_sec = 2\n"
                     "[accounts.2]\n[accounts.3]\nenabled = false\n" + CAPACITIES)
    flow = tmp_path / "flow.csv"
    flow.write_text("ts,account,action,symbol,order_id,side,type,tif,price,qty\n"
                    "1,1,NEW,AAPL,1,SELL,LIMIT,GTC,100.10,5\n"
                    "2,1,NEW,AAPL,2,SELL,LIMIT,GTC,100.10,6\n"
                    "3,1,NEW,AAPL,3,SELL,LIMIT,GTC,100.10,1\n"
                    "1000000000,1,NEW,AAPL,4,SELL,LIMIT,GTC,100.20,1\n"
                    "1000000001,2,NEW,AAPL,5,BUY,LIMIT,GTC,100.20,3\n"
                    "1000000002,3,NEW,AAPL,6,BUY,LIMIT,GTC,100.20,3\n"
                    "1000000003,4,NEW,AAPL,7,BUY,LIMIT,GTC,100.20,3\n")
    out = tmp_path / "events.csv"
    r = replay(flow, "--config", venue, "--offload", "shadow", "--events", out)
    assert r.returncode == 0, r.stderr
    assert "events identical in sw and hw" in r.stderr, r.stderr
    text = out.read_text()
    for reason in ("MAX_QTY", "RATE_LIMIT", "ACCOUNT_DISABLED", "UNKNOWN_ACCOUNT"):
        assert f",{reason}\n" in text, text
    assert text.count(",FILL,") == 2, text
