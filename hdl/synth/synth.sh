#!/usr/bin/env bash
# make synth: yosys (synth_ice40) + nextpnr-ice40 for the iCE40 HX8K (ct256).
# Default: the area build (hdl/rtl/tickbook_book_area.v), NSYM=1 NORD=4 NLVL=2, which fits. The
# builds `include the headers of hdl/rtl/ (-I).
# Writes build/hdl/synth/<config>/{yosys.log,stat.txt,nextpnr.log,report.json,summary.txt}.
# Environment: AREA (1 area build, 0 the fast build), NSYM NORD NLVL, FREQ target MHz (default
# 12), CORE=1 (fast build only: without its price arithmetic, not functional), SEED (nextpnr).
set -uo pipefail
cd "$(dirname "$0")/../.."
missing=""
for t in yosys nextpnr-ice40; do command -v "$t" >/dev/null || missing="$missing $t"; done
if [ -n "$missing" ]; then
    echo "synth: not found:$missing (Debian/Ubuntu: apt-get install yosys nextpnr-ice40 fpga-icestorm)"
    exit 2
fi
AREA=${AREA:-1}; NSYM=${NSYM:-1}; NORD=${NORD:-4}; NLVL=${NLVL:-2}; FREQ=${FREQ:-12}; SEED=${SEED:-1}
CORE=${CORE:-0}; DEF=""; TAG=""
if [ "$CORE" = 1 ]; then AREA=0; fi   # CORE=1 measures the fast build's matching core
if [ "$AREA" = 1 ]; then TAG="_area"; fi
if [ "$CORE" = 1 ]; then DEF="-DTICKBOOK_CORE_ONLY"; TAG="${TAG}_core"; fi
OUT=build/hdl/synth/s${NSYM}_o${NORD}_l${NLVL}${TAG}
mkdir -p "$OUT"
echo "synth: AREA=$AREA NSYM=$NSYM NORD=$NORD NLVL=$NLVL CORE=$CORE -> $OUT"
T0=$(date +%s)
yosys -q -l "$OUT/yosys.log" -p "
  read_verilog -Ihdl/rtl $DEF hdl/rtl/tickbook_book.v hdl/rtl/tickbook_book_area.v hdl/synth/synth_top.v
  chparam -set NSYM $NSYM -set NORD $NORD -set NLVL $NLVL -set AREA $AREA synth_top
  synth_ice40 -top synth_top -json $OUT/synth.json
  tee -o $OUT/stat.txt stat" || { echo "synth: yosys failed, see $OUT/yosys.log"; exit 1; }
T1=$(date +%s)
{
    echo "config: AREA=$AREA NSYM=$NSYM NORD=$NORD NLVL=$NLVL CORE=$CORE (yosys $((T1 - T0)) s)"
    grep -E "Number of cells|SB_LUT4|SB_DFF|SB_CARRY|SB_RAM" "$OUT/stat.txt"
} | tee "$OUT/summary.txt"
nextpnr-ice40 --hx8k --package ct256 --json "$OUT/synth.json" --freq "$FREQ" --seed "$SEED" \
    --asc "$OUT/book.asc" --report "$OUT/report.json" --log "$OUT/nextpnr.log" --quiet
rc=$?
if [ $rc -ne 0 ]; then
    echo "synth: nextpnr-ice40 failed for the HX8K (status $rc):" | tee -a "$OUT/summary.txt"
    grep -iE "error|utili|ICESTORM_LC|unable" "$OUT/nextpnr.log" | tail -8 | tee -a "$OUT/summary.txt"
    exit 1
fi
T2=$(date +%s)
{
    echo "nextpnr-ice40 --hx8k ($((T2 - T1)) s):"
    # device utilisation (the last report, after routing) and the achieved clock
    awk '/Device utilisation/{n=NR; buf=""} n && NR>n && NR<=n+12 {buf=buf $0 "\n"} END{printf "%s", buf}' \
        "$OUT/nextpnr.log" | grep -E "ICESTORM_LC|ICESTORM_RAM|SB_IO|SB_GB"
    grep -E "Max frequency for clock" "$OUT/nextpnr.log" | tail -1
} | tee -a "$OUT/summary.txt"
if command -v icepack >/dev/null; then
    icepack "$OUT/book.asc" "$OUT/book.bin" && echo "bitstream: $OUT/book.bin" | tee -a "$OUT/summary.txt"
fi
