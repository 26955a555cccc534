// A check that hop.v (hdl/synth/budget/) is the loop it claims to be: a level of four makers,
// slots 7 -> 3 -> 9 -> 5, with leaves 10, 20, 30, 40 and accounts 1-4, preloaded into the
// memories' models; a taker from slot 7 fills a maker every 2 cycles and stops where the rules
// say: filled (TK = 45: 10, 20, 15), at the level's end (TK = 200: all four), or at its own
// account (ACCT = 3: 10, 20, then nothing). tests/test_synth_budget.py runs it; prints PASS.
`timescale 1ns/1ps
`ifndef TK
`define TK 45
`endif
`ifndef ACCT
`define ACCT 99
`endif
module tb;
    reg clk = 0, si = 0, we = 0;
    wire so;
    budget_top dut(.clk(clk), .si(si), .we(we), .so(so));
    always #5 clk = !clk;
    integer i, nfill, last, bad;
    reg [31:0] want_q [0:3];
    reg [63:0] want_id [0:3];
    integer nwant;
    initial begin
        #1;                              // after the memory models' own initial blocks
        for (i = 0; i < 8192; i = i + 1) begin
            dut.nxt.mem[i] = 14'h2000;
            dut.lv.mem[i] = 0;
            dut.ia.mem[i] = 0;
        end
        dut.nxt.mem[7] = 3; dut.nxt.mem[3] = 9; dut.nxt.mem[9] = 5; dut.nxt.mem[5] = 14'h2000;
        dut.lv.mem[7] = 10; dut.lv.mem[3] = 20; dut.lv.mem[9] = 30; dut.lv.mem[5] = 40;
        dut.ia.mem[7] = {32'd1, 64'd107}; dut.ia.mem[3] = {32'd2, 64'd103};
        dut.ia.mem[9] = {32'd3, 64'd109}; dut.ia.mem[5] = {32'd4, 64'd105};
        dut.run = 0; dut.first = 0; dut.ph = 0; dut.stop_r = 0;
        dut.v1 = 0; dut.v2 = 0; dut.v3 = 0;
`ifdef FIELDS_REG
        dut.v4 = 0;
`endif
        // what the rules say
        want_id[0] = 107; want_id[1] = 103; want_id[2] = 109; want_id[3] = 105;
        if (`ACCT == 3) begin
            nwant = 2; want_q[0] = 10; want_q[1] = 20;
        end else if (`TK >= 100) begin
            nwant = 4; want_q[0] = 10; want_q[1] = 20; want_q[2] = 30; want_q[3] = 40;
        end else begin
            nwant = 3; want_q[0] = 10; want_q[1] = 20; want_q[2] = `TK - 30;
        end
        repeat (3) @(posedge clk);
        force dut.start_p = 14'd7;
        force dut.tk0 = `TK;
        force dut.tk_acct = `ACCT;
        @(negedge clk) force dut.go = 1'b1;
        @(negedge clk) force dut.go = 1'b0;
        nfill = 0; last = -1; bad = 0;
        for (i = 0; i < 40; i = i + 1) begin
            @(posedge clk); #1;
            if (dut.l_we) begin          // a fill this cycle (its maker's leaves written back)
                $display("cycle %0d: fill of %0d, %0d; the maker keeps %0d, the taker %0d",
                         $time / 10, dut.ev_id, dut.ev_q, dut.ev_left, dut.ev_tleft);
                if (last >= 0 && $time / 10 - last != 2) begin
                    $display("FAIL: fills %0d cycles apart", $time / 10 - last);
                    bad = 1;
                end
                if (nfill >= nwant || dut.ev_id != want_id[nfill] || dut.ev_q != want_q[nfill]) begin
                    $display("FAIL: fill %0d is not %0d of %0d", nfill, want_q[nfill], want_id[nfill]);
                    bad = 1;
                end
                last = $time / 10;
                nfill = nfill + 1;
            end
        end
        if (dut.run) begin
            $display("FAIL: the loop still runs");
            bad = 1;
        end
        if (nfill != nwant) begin
            $display("FAIL: %0d fills, want %0d", nfill, nwant);
            bad = 1;
        end
        if (!bad) $display("PASS");
        $finish;
    end
endmodule
