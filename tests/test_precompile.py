"""`tickbook compile` (tickbook/precompile.py): what make's set-up runs so that no later start
compiles."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "tickbook", "compile", *args], cwd=REPO, capture_output=True, text=True, timeout=900)


def test_compiles_the_named_caller_and_reports_it():
    r = _run("replay")
    assert r.returncode == 0, r.stderr
    assert "replay  compiled or loaded" in r.stderr and "engine" not in r.stderr.split("\n", 1)[1]


def test_an_unknown_target_is_one_usage_error():
    r = _run("bogus")
    assert r.returncode == 2
    assert "unknown target bogus" in r.stderr and "Traceback" not in r.stderr
