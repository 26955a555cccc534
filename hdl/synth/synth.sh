#!/usr/bin/env bash
# make synth: yosys (synth_ice40) + nextpnr-ice40 for the iCE40 HX8K (ct256), smallest build.
# Writes build/hdl/synth/{yosys.log,stat.txt,nextpnr.log,report.json,summary.txt}.
# Parameters: NSYM NORD NLVL (environment), FREQ target MHz (default 12).
set -uo pipefail
cd "$(dirname "$0")/../.."
for t in yosys nextpnr-ice40; do
    command -v "$t" >/dev/null || { echo "synth: $t not found (apt-get install yosys nextpnr-ice40 fpga-icestorm)"; exit 2; }
done
NSYM=${NSYM:-1}; NORD=${NORD:-4}; NLVL=${NLVL:-2}; FREQ=${FREQ:-12}
# CORE=1: the matching core without the exact price arithmetic (not functional; see the RTL)
CORE=${CORE:-0}; DEF=""; TAG=""
if [ "$CORE" = 1 ]; then DEF="-DTICKBOOK_CORE_ONLY"; TAG="_core"; fi
OUT=build/hdl/synth/s${NSYM}_o${NORD}_l${NLVL}${TAG}
mkdir -p "$OUT"
echo "synth: NSYM=$NSYM NORD=$NORD NLVL=$NLVL CORE=$CORE -> $OUT"
yosys -q -l "$OUT/yosys.log" -p "
  read_verilog $DEF hdl/rtl/tickbook_book.v hdl/synth/synth_top.v
  chparam -set NSYM $NSYM -set NORD $NORD -set NLVL $NLVL synth_top
  synth_ice40 -top synth_top -json $OUT/synth.json
  tee -o $OUT/stat.txt stat" || { echo "synth: yosys failed, see $OUT/yosys.log"; exit 1; }
grep -E "Number of cells|SB_LUT4|SB_DFF|SB_CARRY|SB_RAM" "$OUT/stat.txt" | tee "$OUT/summary.txt"
nextpnr-ice40 --hx8k --package ct256 --json "$OUT/synth.json" --freq "$FREQ" \
    --report "$OUT/report.json" --log "$OUT/nextpnr.log" --quiet
rc=$?
if [ $rc -ne 0 ]; then
    echo "synth: nextpnr-ice40 failed for the HX8K (status $rc):" | tee -a "$OUT/summary.txt"
    grep -iE "error|utili|LC|unable" "$OUT/nextpnr.log" | tail -8 | tee -a "$OUT/summary.txt"
    exit 1
fi
grep -E "ICESTORM_LC|Max frequency" "$OUT/nextpnr.log" | tail -4 | tee -a "$OUT/summary.txt"
