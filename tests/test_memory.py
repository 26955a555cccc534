"""Memory follows use (engine/state.py): the book's columns are allocated zeroed and mapped
by the kernel on first use, and capacities beyond the machine's memory are refused."""

import subprocess
import sys
from pathlib import Path

from engine.config import parse_venue
from engine.state import C_MAX_ORDERS, EngineState, make_state, state_bytes

REPO = Path(__file__).resolve().parents[1]

FLOW = "ts,account,action,symbol,order_id,side,type,tif,price,qty\n1,7,NEW,S5,1,BUY,LIMIT,GTC,10.00,5\n2,8,NEW,S5,2,SELL,LIMIT,GTC,10.00,5\n"


def _venue_text(n_sym, max_orders, max_levels, max_accounts):
    syms = "".join(f'[symbols.S{i}]\ntick = "0.01"\nref_price = "10.00"\nband_bps = 0\n\n' for i in range(n_sym))
    return (
        f"{syms}[accounts.default]\n\n[engine]\nmax_orders = {max_orders}\n"
        f"max_levels = {max_levels}\nmax_accounts = {max_accounts}\n"
    )


def _rss_bytes():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_large_venue_costs_only_what_is_touched():
    venue = parse_venue(_venue_text(200, 4_000_000, 100_000, 100_000), "<big>")
    reserved = sum(state_bytes(venue).values())
    assert reserved > 1 << 30  # the capacities reserve more than a GiB of state ...
    before = _rss_bytes()
    st = make_state(venue)
    grown = _rss_bytes() - before
    # ... it touches a few pages: at most one a column, which with transparent huge pages
    # (numpy asks for them on large arrays) is 2 MiB
    most = len(EngineState._fields) * (2 << 20)
    assert grown < most, f"an empty book of {reserved >> 20} MiB touched {grown >> 20} MiB"
    assert st.ctr[C_MAX_ORDERS] == 4_000_000


def _touched_by_make_state(n_messages) -> int:
    """RSS grown by make_state in a fresh process (the allocator reuses freed memory)."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); from test_memory import _rss_bytes, _venue_text\n"
        "from engine.config import parse_venue; from engine.state import make_state\n"
        "v = parse_venue(_venue_text(4, 1 << 20, 4096, 4096), '<v>'); b = _rss_bytes()\n"
        f"st = make_state(v, {n_messages}); print(_rss_bytes() - b)\n"
    )
    return int(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout)


def test_a_replay_touches_what_its_flow_can_reach():
    reserved = sum(state_bytes(parse_venue(_venue_text(4, 1 << 20, 4096, 4096), "<v>")).values())
    full = _touched_by_make_state(None)  # the live engine: every page now
    small = _touched_by_make_state(1000)
    assert full > reserved * 0.9
    assert small < full / 4
    # a flow long enough to reach the whole id table (hashed) touches it now, and leaves the
    # order pool, which fills from its start, to the orders that come to rest
    long = _touched_by_make_state(1_000_000)
    id_table = (2 << 20) * 16
    assert id_table * 0.9 < long < id_table + full / 4


def _replay(tmp_path, venue_text):
    (tmp_path / "venue.toml").write_text(venue_text)
    (tmp_path / "flow.csv").write_text(FLOW)
    return subprocess.run(
        [sys.executable, "-m", "tickbook", "replay", str(tmp_path / "flow.csv"), "--config", str(tmp_path / "venue.toml")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )


def test_capacities_beyond_the_machine_are_one_line(tmp_path):
    r = _replay(tmp_path, _venue_text(200, 1 << 26, 1 << 20, 1 << 24))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "[engine] max_accounts = 16,777,216" in lines[0] and "GiB of memory" in lines[0]


def test_a_few_rows_on_a_venue_of_millions_of_orders(tmp_path):
    r = _replay(tmp_path, _venue_text(200, 4_000_000, 100_000, 100_000))
    assert r.returncode == 0, r.stderr
    assert "FILL" in r.stderr or "FILL" in r.stdout
