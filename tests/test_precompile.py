"""`tickbook compile` (tickbook/precompile.py): what make's set-up runs so that no later start
compiles."""

import os
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


def _replay(tmp_path, env_extra):
    flow = tmp_path / "flow.csv"
    flow.write_text("ts,account,action,symbol,order_id,side,type,tif,price,qty\n1,1,NEW,AAPL,1,BUY,LIMIT,GTC,185.00,5\n"
                    "2,2,NEW,AAPL,2,SELL,LIMIT,GTC,185.00,2\n3,1,CANCEL,,9,,,,,\n")
    events = tmp_path / "events.csv"
    env = {**os.environ, **env_extra}
    r = subprocess.run([sys.executable, "-m", "tickbook", "replay", str(flow), "--events", str(events)],
                       cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr
    return r.stderr, events.read_bytes()


def test_a_cold_replay_compiles_the_codec_in_a_second_process(tmp_path):
    """A first replay that bypassed make's set-up: the codec compiles beside the matcher, and the
    events are those of a replay that loaded everything from the cache."""
    cold_err, cold_events = _replay(tmp_path, {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")})
    assert "in a second process" in cold_err
    warm_err, warm_events = _replay(tmp_path, {})
    assert "in a second process" not in warm_err
    assert cold_events == warm_events and cold_events.count(b"\n") == 6  # header, 2 ACK, 2 FILL, REJECT


def test_cached_reads_numbas_own_index():
    code = "from engine.codec import format_events; from tickbook.precompile import cached; print(cached(format_events))"
    env = {**os.environ}
    warm = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env)
    cold = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**env, "NUMBA_CACHE_DIR": "/nonexistent-tickbook-cache"})
    assert (warm.stdout.strip(), cold.stdout.strip()) == ("True", "False"), (warm.stderr, cold.stderr)
