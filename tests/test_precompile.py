"""`tickbook compile` (tickbook/precompile.py): what make's set-up runs so that no later start
compiles."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "tickbook", "compile", *args], cwd=REPO, capture_output=True, text=True, timeout=900)


def test_compiles_the_named_callers_and_reports_each():
    r = _run("matcher", "codec")
    assert r.returncode == 0, r.stderr
    assert "matcher compiled or loaded" in r.stderr and "codec   compiled or loaded" in r.stderr
    assert "engine" not in r.stderr.split("\n", 1)[1]


def test_a_failing_target_is_reported_with_its_last_line_and_exit_status_1(monkeypatch, capsys):
    from tickbook import precompile

    monkeypatch.setitem(precompile.TARGETS, "matcher", "raise SystemExit('no compiler here')")
    assert precompile.main(["matcher", "engine"]) == 1  # engine waits for matcher, then runs
    err = capsys.readouterr().err
    assert "matcher FAILED" in err and "no compiler here" in err and "engine  compiled or loaded" in err


def test_an_unknown_target_is_one_usage_error():
    r = _run("bogus")
    assert r.returncode == 2
    assert "unknown target bogus" in r.stderr and "Traceback" not in r.stderr
