// The cycle budget at the device's size (hdl/synth/budget.py): the fill loop of a book of 8,192
// orders, a maker every 2 cycles, as the pipelined book would run it.
//
// The level's FIFO link (`next`, 14 bits: a slot and its "none" bit) is a memory of its own,
// 8,192 x 14 behind the blocks' output registers (tickbook_ram: 7 DP16KD of 8K x 2, the word two
// cycles after its address). The hop is the loop: in the cycle a maker's link arrives, it goes
// straight to the blocks' address pins, so that the next maker's link arrives two cycles later.
// The maker's other fields follow a cycle behind, from memories addressed by a register (its
// id and account, 96 bits, 48 blocks; its leaves, 32 bits, 16 blocks): the fill (the taker's
// leaves against the maker's, the smaller traded), the self-trade compare, the maker's new
// leaves written back and the fill's event fields loaded. Whether the match stops (the taker
// filled, its own account met, the level's end) is a register the loop reads a cycle late: the
// hop it has sent meanwhile is a read and changes nothing.
//
// The inputs come from one pin through shift registers and the output is one registered bit,
// so no path starts or ends at a pin and nothing is optimized away.
`default_nettype none
module budget_top (input wire clk, input wire si, input wire we, output reg so);
    localparam integer D = 8192, AW = 13, PW = AW + 1;
    // ---- inputs: a start slot, the taker, the memories' write ports (loading the book)
    reg [PW-1:0]  start_p, wnx;
    reg [AW-1:0]  wa;
    reg [31:0]    tk0, tk_acct, wl;
    reg [95:0]    wia;
    reg           go;
    always @(posedge clk) begin
        start_p <= {start_p[PW-2:0], si};
        tk0 <= {tk0[30:0], start_p[PW-1]};
        tk_acct <= {tk_acct[30:0], tk0[31]};
        wnx <= {wnx[PW-2:0], tk_acct[31]};
        wa <= {wa[AW-2:0], wnx[PW-1]};
        wl <= {wl[30:0], wa[AW-1]};
        wia <= {wia[94:0], wl[31]};
        go <= wia[95];
    end

    // ---- the hop: the link memory, its word sent back to its own address pins. The first maker's
    // address goes out in the run's first cycle and again in its second; from its link's arrival
    // (ph, the third cycle), every other cycle sends the link that has just come in.
    wire [PW-1:0] q_next;
    reg           run, first, ph, stop_r;
    reg [AW-1:0]  a_hold;
    wire [AW-1:0] hop_a = ph ? q_next[AW-1:0] : a_hold;
    wire          sent = run && (first || (ph && !q_next[AW]));   // a maker's address goes out
    tickbook_ram #(.W(PW), .D(D)) nxt (.clk(clk), .we(we && !run), .wa(wa), .wd(wnx), .ra(hop_a),
                                       .rd(q_next));
    always @(posedge clk) begin
        first <= 1'b0;
        ph <= 1'b0;
        if (!run) begin
            if (go) begin
                run <= 1'b1;
                first <= 1'b1;
                a_hold <= start_p[AW-1:0];
            end
        end else begin
            ph <= !ph && !first;
            if (ph) begin
                a_hold <= q_next[AW-1:0];
                if (q_next[AW] || stop_r) run <= 1'b0;
            end
        end
    end

    // ---- the maker's fields, a cycle behind: address registered, data two cycles later
    reg [AW-1:0]  f_a, f_a1, f_a2;
    reg           v1, v2, v3;             // a hop's fields are in at v3
    wire [95:0]   q_ia0;                  // id 64, account 32
    wire [31:0]   q_lvs0;
`ifdef FIELDS_REG
    // the fields through a register of the fabric too: the blocks' words travel to it alone
    reg  [95:0]   q_ia;
    reg  [31:0]   q_lvs;
    reg  [AW-1:0] f_a3;
    reg           v4;
    always @(posedge clk) begin
        q_ia <= q_ia0;
        q_lvs <= q_lvs0;
        f_a3 <= f_a2;
        v4 <= v3;
    end
    wire          vf = v4;
    wire [AW-1:0] f_w = f_a3;
`else
    wire [95:0]   q_ia = q_ia0;
    wire [31:0]   q_lvs = q_lvs0;
    wire          vf = v3;
    wire [AW-1:0] f_w = f_a2;
`endif
    reg           l_we;
    reg [AW-1:0]  l_wa;
    reg [31:0]    l_wd;
    tickbook_ram #(.W(96), .D(D)) ia (.clk(clk), .we(we && !run), .wa(wa), .wd(wia), .ra(f_a),
                                      .rd(q_ia0));
    tickbook_ram #(.W(32), .D(D)) lv (.clk(clk), .we(l_we || (we && !run)), .wa(l_we ? l_wa : wa),
                                      .wd(l_we ? l_wd : wl), .ra(f_a), .rd(q_lvs0));

    // ---- the fill
    reg [31:0]    tk_lvs;
    reg [63:0]    ev_id;
    reg [31:0]    ev_q, ev_left, ev_tleft;
    reg           ev_self;
    // one carry chain decides the fill: the taker's leaves less the maker's, whose borrow says
    // which is smaller (a min, then a subtract, would be two chains in a row); the maker's leaves
    // after it, the other difference, runs beside it
    wire [32:0]   dif = {1'b0, tk_lvs} - {1'b0, q_lvs};
    wire [32:0]   mk_dif = {1'b0, q_lvs} - {1'b0, tk_lvs};
    wire          tk_less = dif[32];
    wire [31:0]   fill = tk_less ? tk_lvs : q_lvs;
    wire [31:0]   tk_after = tk_less ? 32'd0 : dif[31:0];
    wire [31:0]   mk_after = tk_less ? mk_dif[31:0] : 32'd0;
    wire          own = (q_ia[95:64] == tk_acct);   // the maker is the taker's own account
    always @(posedge clk) begin
        f_a <= hop_a;
        f_a1 <= f_a;
        f_a2 <= f_a1;
        v1 <= sent;
        v2 <= v1;
        v3 <= v2;
        l_we <= 1'b0;
        if (go && !run) begin
            tk_lvs <= tk0;
            stop_r <= 1'b0;
        end else if (vf && !stop_r) begin
            ev_self <= own;
            if (own) stop_r <= 1'b1;      // its own account: no fill
            else begin
                ev_id <= q_ia[63:0];
                ev_q <= fill;
                ev_left <= mk_after;
                ev_tleft <= tk_after;
                tk_lvs <= tk_after;
                l_we <= 1'b1;
                l_wa <= f_w;
                l_wd <= mk_after;
                stop_r <= (tk_after == 32'd0);
            end
        end
        so <= ^{ev_id, ev_q, ev_left, ev_tleft, ev_self};
    end
endmodule
`default_nettype wire
