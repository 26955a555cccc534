"""`tickbook replay FLOW --offload hw` runs the flow through the RTL and writes the rulebook's
events CSV: the golden example comes out byte for byte."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.hdl
GOLDEN = Path(__file__).resolve().parent / "golden"


def test_replay_offload_hw_golden(tmp_path):
    out = tmp_path / "events.csv"
    r = subprocess.run(
        [sys.executable, "-m", "tickbook.cli", "replay", str(GOLDEN / "example_flow.csv"), "--config",
         str(GOLDEN / "example_venue.toml"), "--offload", "hw", "--events", str(out), "-q"],
        capture_output=True, text=True, cwd=GOLDEN.parent.parent,
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (GOLDEN / "example_events.csv").read_bytes()
