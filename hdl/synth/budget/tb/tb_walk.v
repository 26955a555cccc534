// A check that walk.v (hdl/synth/budget/) is the walk it claims to be: a buy ladder of ten
// entries (prices 100, 110, ... 190 at positions 0-9, level handles 500 + position) preloaded into
// the memory's model, walked from its best end for PX; the walk ends at the first entry not
// better than PX, one entry a cycle. tests/test_synth_budget.py runs it; prints PASS.
`timescale 1ns/1ps
`ifndef PX
`define PX 145
`endif
module tb;
    reg clk = 0, si = 0, we = 0;
    wire so;
    budget_top dut(.clk(clk), .si(si), .we(we), .so(so));
    always #5 clk = !clk;
    integer i, t0, want_pos, bad;
    initial begin
        #1;
        for (i = 0; i < 4096; i = i + 1) dut.lad.mem[i] = 66'd0;
        for (i = 0; i < 10; i = i + 1) dut.lad.mem[i] = {1'b0, i[11:0] + 12'd500, 53'd100 + 53'd10 * i};
        dut.run = 0; dut.v1 = 0; dut.v2 = 0; dut.v3 = 0;
        want_pos = (`PX - 100) / 10;      // the first entry from the top at or below PX
        repeat (3) @(posedge clk);
        force dut.start_a = 12'd9;
        force dut.sr_px0 = `PX;
        force dut.side0 = 1'b0;
        @(negedge clk) force dut.go = 1'b1;
        t0 = $time / 10;
        @(negedge clk) force dut.go = 1'b0;
        bad = 1;
        for (i = 0; i < 30; i = i + 1) begin
            @(posedge clk); #1;
            if (dut.done) begin
                $display("cycle %0d: ends at position %0d, handle %0d, equal %0d", $time / 10 - t0,
                         dut.found_pos, dut.found_h, dut.found_eq);
                bad = (dut.found_pos != want_pos || dut.found_h != 500 + want_pos ||
                       dut.found_eq != ((`PX % 10) == 0) || $time / 10 - t0 != 9 - want_pos + 4);   // the entry, then the read's three cycles
            end
        end
        if (dut.run) bad = 1;
        if (bad) $display("FAIL");
        else $display("PASS");
        $finish;
    end
endmodule
