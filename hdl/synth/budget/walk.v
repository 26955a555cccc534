// The cycle budget at the device's size (hdl/synth/budget.py): a walk of a price ladder, one
// entry a cycle, as the pipelined book would run it.
//
// The ladders of 8 symbols x 2 sides x 256 levels are one memory, 4,096 x 66 (an entry's price
// in ticks, 53 bits, and its level's handle, 12, and a spare bit), behind the blocks' output
// registers and a register of the fabric (tickbook_ram and one more stage: the word three cycles
// after its address). The walk sends the next entry's address every cycle from a counter, and
// compares each word that comes back with the price searched for (is this entry better?); the
// first that is not ends the walk, three entries late: the reads sent meanwhile change nothing,
// and the entry found is the one the compare saw, with its position travelling beside it.
//
// The inputs come from one pin through shift registers and the output is one registered bit,
// so no path starts or ends at a pin and nothing is optimized away.
`default_nettype none
module budget_top (input wire clk, input wire si, input wire we, output reg so);
    localparam integer D = 4096, AW = 12, W = 66;
    reg [52:0]    sr_px0;
    reg [AW-1:0]  start_a, wa;
    reg [W-1:0]   wd;
    reg           go, side0;
    always @(posedge clk) begin
        sr_px0 <= {sr_px0[51:0], si};
        start_a <= {start_a[AW-2:0], sr_px0[52]};
        wa <= {wa[AW-2:0], start_a[AW-1]};
        wd <= {wd[W-2:0], wa[AW-1]};
        side0 <= wd[W-1];
        go <= side0 ^ si;
    end

    reg           run, side, done;
    reg [52:0]    sr_px;
    reg [AW-1:0]  ra;
    reg [AW-1:0]  a1, a2, a3;             // each read's address beside it
    reg           v1, v2, v3;
    wire [W-1:0]  q0;
    reg  [W-1:0]  q;
    tickbook_ram #(.W(W), .D(D)) lad (.clk(clk), .we(we && !run), .wa(wa), .wd(wd), .ra(ra), .rd(q0));
    // the word's entry: better than the price searched for (buys: higher; sells: lower)
    wire          better = side ? (q[52:0] < sr_px) : (q[52:0] > sr_px);
    reg [AW-1:0]  found_pos;
    reg [11:0]    found_h;
    reg           found_eq;
    always @(posedge clk) begin
        q <= q0;
        a1 <= ra;
        a2 <= a1;
        a3 <= a2;
        v1 <= run;
        v2 <= v1;
        v3 <= v2;
        done <= 1'b0;
        if (!run) begin
            if (go) begin
                run <= 1'b1;
                ra <= start_a;
                sr_px <= sr_px0;
                side <= side0;
            end
        end else begin
            ra <= ra - 1'b1;              // toward the worst end, one entry a cycle
            if (v3 && !better) begin      // the first entry not better: the walk ends
                run <= 1'b0;
                done <= 1'b1;
                found_pos <= a3;
                found_h <= q[64:53];
                found_eq <= (q[52:0] == sr_px);
            end
        end
        so <= ^{done, found_pos, found_h, found_eq};
    end
endmodule
`default_nettype wire
