#!/usr/bin/env bash
# Build the peers' own venv (default build/peers-venv): numpy and the four PyPI order books that
# benchmarks/peers/adapters.py replays the shared stream through. Never the project's .venv:
# tickbook is not installed here and the peers are not installed there.
#
#   benchmarks/peers/setup.sh [VENV_DIR]        PY=python3.11 to choose the interpreter
#
# Each peer is installed on its own, so one that fails does not stop the others; its pip output
# goes to VENV_DIR/install-<name>.log and adapters.py reports it as unavailable with that reason.
# The venv counts as built once VENV_DIR/.peers-installed exists (run.py looks for it), even when a
# peer failed to install; remove VENV_DIR to try again.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${1:-$repo/build/peers-venv}"
py="${PY:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3

# the versions measured in docs (liquibook 2.0.1 ships a cp311 wheel only: Python 3.11)
PEERS="lightmatchingengine==2019.1.4 pyorderbook==0.4.9 fastlob==0.0.24 liquibook==2.0.1"

rm -f "$venv/.peers-installed"
"$py" -m venv "$venv" || exit 1
"$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/python" -m pip install --quiet numpy || { echo "setup.sh: numpy did not install" >&2; exit 1; }
for spec in $PEERS; do
  name="${spec%%==*}"
  if "$venv/bin/python" -m pip install "$spec" >"$venv/install-$name.log" 2>&1; then
    echo "setup.sh: $spec installed"
  else
    echo "setup.sh: $spec FAILED (see $venv/install-$name.log)" >&2
  fi
done
touch "$venv/.peers-installed"
