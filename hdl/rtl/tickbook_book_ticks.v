// tickbook: the price of each order record in ticks, worked out in a pipeline in front of the
// block-RAM book (tickbook_book_bram.v), so that no message's checks wait on a wide product.
//
// For the record's price p (its low 53 bits) and the tick d of its symbol:
//   q       = floor(p / d)    = (p * R) >> 106, R = floor(2**106 / d) + 1 (CFG_RECIP)
//   on_tick = (p mod d == 0)  = ((p * R) mod 2**106) < R
// both exact for p, d < 2**53 (the second is Lemire, Kaser and Kurz's divisibility test: the
// low half of the product is below R exactly when d divides p), so one 53 x 107-bit product
// gives both, without the quotient times the tick. docs/hardware.md, "The tick unit".
//
// Which symbol: a NEW's record names it. A REPLACE trades in its order's symbol, whatever its
// record says (the rulebook ignores the field; a CSV leaves it empty), and the order is found
// only later, in the book. So the symbol of a REPLACE (or any record but a NEW) is predicted:
// each NEW that may rest (a LIMIT, GTC or post-only, of a symbol of the build) leaves its
// symbol in a table under its id's hash bucket (the book's bucket, in_key) as it passes, and
// any other record reads its own bucket's. The prediction is right unless such a NEW of
// another symbol with an id of the same bucket came since (the book puts the resting order's
// symbol back, fix_*, when such a NEW was a duplicate of its id); the book checks every
// prediction (out_qsym) and divides again when it is wrong. The table is written here, in order, so a
// REPLACE right behind its order's NEW sees it (a table the book wrote when the order rested
// would be read too early by the records already in the pipeline).
//
// The stages, none deeper than one 18 x 18 multiplier or one 54-bit carry chain:
//   0  the record; its bucket addresses the prediction table (a block RAM read)
//   1  the symbol: the record's (a NEW) or the prediction
//   2  R of that symbol (a table written on the configuration port); p in three 18-bit limbs
//   3  the 18 partial products a_i * b_j (R in six 18-bit limbs): MULT18X18D
//   4  the products of one weight i + j summed (at most three, 38 bits)
//   5  the eight sums as three vectors (sums three apart do not overlap) compressed to two
//      (one LUT a bit); their low 54 bits added
//   6  the middle 54 bits added; the low 54 bits compared with R's
// and the outputs, from stage 6: the high bits added (the quotient) and the comparison
// finished. The tag is the book's, carried along unread.
//
// Flow: a stage hands its record on when the next stage is empty, and the last one when the
// book takes it (out_take), so every valid and ready is a register: one record a cycle when
// nothing waits, seven held when the book is busy. A record that needs no ticks (neither a NEW
// nor a REPLACE: a CANCEL, a malformed one) with nothing between it and the last stage goes
// there from stage 0 in one step, waiting at stage 0 while the last stage is full: a burst of
// CANCELs behind a busy book does not wait on the multiplier's depth.
`timescale 1ns / 1ps
`default_nettype none

module tickbook_book_ticks #(
    parameter integer NSYM = 4,
    parameter integer KW = 1,             // an id's hash bucket (the prediction table's address)
    parameter integer TW = 1              // the book's tag
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          cfg_we,
    input  wire [2:0]    cfg_addr,
    input  wire [15:0]   cfg_sym,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [127:0]  cfg_data,        // a reciprocal is 107 bits
    input  wire [511:0]  in_data,         // the price, the symbol and the action are read
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire          in_valid,
    output wire          in_ready,
    input  wire [KW-1:0] in_key,
    input  wire [TW-1:0] in_tag,
    // the symbol of a resting order, back under its bucket (a NEW with its id wrote another)
    input  wire          fix_we,
    input  wire [KW-1:0] fix_key,
    input  wire [SW-1:0] fix_sym,
    // the record in the last stage
    output wire          out_valid,
    input  wire          out_take,
    output wire [511:0]  out_data,
    output wire [KW-1:0] out_key,
    output wire [TW-1:0] out_tag,
    output wire [52:0]   out_qt,          // floor(p / d)
    output wire          out_on_tick,     // p mod d == 0
    output wire [SW-1:0] out_qsym,        // the symbol whose tick d is
    output wire          busy
);
`include "tickbook_records.vh"
`include "tickbook_book_cfg.vh"
    localparam integer SW = (NSYM > 1) ? $clog2(NSYM) : 1;
    localparam integer NS = 7;            // stages

    reg [106:0] c_recip [0:NSYM-1];       // floor(2**106 / tick) + 1 of each symbol
    always @(posedge clk)
        if (cfg_we && cfg_addr == CFG_RECIP && {16'd0, cfg_sym} < NSYM)
            c_recip[cfg_sym[SW-1:0]] <= cfg_data[106:0];

    // the prediction table: block RAM, addressed by stage 0's bucket (a registered address),
    // read by a record that is not a NEW and written by one that is; all symbol 0 at power-up
    // (a fix waits in fix_* for a cycle without such a write; a newer one replaces it)
    reg [SW-1:0] pred [0:(1<<KW)-1];
    integer pi;
    initial for (pi = 0; pi < (1 << KW); pi = pi + 1) pred[pi] = {SW{1'b0}};
    reg          fx_v;
    reg [KW-1:0] fx_k;
    reg [SW-1:0] fx_s;

    // stage valid bits: a stage moves (mv) into the next when that one is empty, the last one
    // when the book takes it; a stage loads (ld) what the one before it moves
    reg  [NS-1:0] v;
    // (stage 0 jumps to the last stage, or holds for it, with a record that needs no ticks and
    // nothing in the stages between)
    reg           nt0;                    // stage 0's record needs no ticks
    wire          clear0 = (v[NS-2:1] == {(NS-2){1'b0}}) && nt0;
    wire          jump0 = v[0] && clear0 && !v[NS-1];
    wire          hold0 = clear0 && v[NS-1];
    wire [NS-1:0] mv = {v[NS-1] && out_take, v[NS-2:1] & ~v[NS-1:2], v[0] && ((!v[1] && !hold0) || jump0)};
    wire [NS-1:0] ld = {mv[NS-2] || jump0, mv[NS-3:0] & ~{{(NS-3){1'b0}}, jump0}, in_valid && in_ready};
    assign in_ready = !rst && (!v[0] || (!v[1] && !hold0) || clear0 && !v[NS-1]);

    // the record, its bucket and its tag, stage by stage (what the book does not read is pruned)
    reg [511:0]  d [0:NS-1];
    reg [KW-1:0] k [0:NS-1];
    reg [TW-1:0] g [0:NS-1];
    reg [SW-1:0] s [1:NS-1];              // the symbol whose tick is used
    reg          is_new0;                 // stage 0: the record names its symbol
    reg          may_rest0;               // stage 0: a LIMIT NEW, GTC or post-only, of a symbol
    reg [106:0]  r2, r3, r4, r5;          // R
    reg [52:0]   r6;                      // R's bits 54..106
    reg [53:0]   p2;                      // p (54 bits: three limbs)
    reg [35:0]   pp [0:17];               // stage 3: a_i * b_j at 6 i + j
    reg [37:0]   sw [0:7];                // stage 4: the sums of weight w = i + j
    reg [53:0]   lo5;                     // stage 5: bits 0..53 of the product, and their carry
    reg          c5;
    reg [107:0]  sv5, cv5;                // bits 54..161 of the two vectors
    reg [53:0]   mi6;                     // stage 6: bits 54..107, and their carry
    reg          c6, lt6;                 // bits 0..53 below R's
    reg [53:0]   sv6, cv6;                // bits 108..161 of the two vectors

    // stage 4's sums (pp[6 i + j] has weight i + j), and stage 5's three vectors, each the sums
    // of weights three apart side by side (a sum of weight w sits at bit 18 w; weight 7 is one
    // 17 x 17-bit product, 34 bits), and their 3:2 compression. Written out rather than as
    // loops of shifts: Icarus evaluates these every cycle.
    wire [107:0] rl2 = {1'b0, r2};        // R in six limbs
    wire [37:0]  sw_n [0:7];
    assign sw_n[0] = {2'd0, pp[0]};
    assign sw_n[1] = {2'd0, pp[1]} + {2'd0, pp[6]};
    assign sw_n[2] = {2'd0, pp[2]} + {2'd0, pp[7]} + {2'd0, pp[12]};
    assign sw_n[3] = {2'd0, pp[3]} + {2'd0, pp[8]} + {2'd0, pp[13]};
    assign sw_n[4] = {2'd0, pp[4]} + {2'd0, pp[9]} + {2'd0, pp[14]};
    assign sw_n[5] = {2'd0, pp[5]} + {2'd0, pp[10]} + {2'd0, pp[15]};
    assign sw_n[6] = {2'd0, pp[11]} + {2'd0, pp[16]};
    assign sw_n[7] = {2'd0, pp[17]};
    wire [161:0] vec [0:2];
    assign vec[0] = {16'd0, sw[6], 16'd0, sw[3], 16'd0, sw[0]};
    assign vec[1] = {sw[7][35:0], 16'd0, sw[4], 16'd0, sw[1], 18'd0};
    assign vec[2] = {34'd0, sw[5], 16'd0, sw[2], 36'd0};
    wire [161:0] csa_s = vec[0] ^ vec[1] ^ vec[2];
    /* verilator lint_off UNUSEDSIGNAL */
    wire [161:0] csa_k = (vec[0] & vec[1]) | (vec[0] & vec[2]) | (vec[1] & vec[2]);
    wire [53:0]  hi_sum = sv6 + cv6 + {53'd0, c6};     // bits 108..161: the quotient is 106..158
    /* verilator lint_on UNUSEDSIGNAL */
    wire [161:0] csa_c = {csa_k[160:0], 1'b0};
    wire [54:0]  lo_sum = {1'b0, csa_s[53:0]} + {1'b0, csa_c[53:0]};
    wire [54:0]  mi_sum = {1'b0, sv5[53:0]} + {1'b0, cv5[53:0]} + {54'd0, c5};

    integer i, j;
    always @(posedge clk) begin
        if (rst) v <= {NS{1'b0}};
        else v <= ld | (v & ~mv);
        for (i = 1; i < NS - 1; i = i + 1)
            if (ld[i]) begin
                d[i] <= d[i - 1];
                k[i] <= k[i - 1];
                g[i] <= g[i - 1];
            end
        if (ld[NS-1]) begin
            d[NS-1] <= jump0 ? d[0] : d[NS-2];
            k[NS-1] <= jump0 ? k[0] : k[NS-2];
            g[NS-1] <= jump0 ? g[0] : g[NS-2];
        end
        for (i = 2; i < NS; i = i + 1)
            if (ld[i]) s[i] <= s[i - 1];
        if (ld[0]) begin
            d[0] <= in_data;
            k[0] <= in_key;
            g[0] <= in_tag;
            is_new0 <= in_data[ORDER_ACTION_LSB +: ORDER_ACTION_W] == ACTION_NEW;
            nt0 <= in_data[ORDER_ACTION_LSB +: ORDER_ACTION_W] != ACTION_NEW &&
                   in_data[ORDER_ACTION_LSB +: ORDER_ACTION_W] != ACTION_REPLACE;
            may_rest0 <= in_data[ORDER_ACTION_LSB +: ORDER_ACTION_W] == ACTION_NEW &&
                         in_data[ORDER_TYPE_LSB +: ORDER_TYPE_W] == TYPE_LIMIT &&
                         (in_data[ORDER_TIF_LSB +: ORDER_TIF_W] == TIF_GTC ||
                          in_data[ORDER_TIF_LSB +: ORDER_TIF_W] == TIF_POST) &&
                         {16'd0, in_data[ORDER_SYMBOL_LSB +: ORDER_SYMBOL_W]} < NSYM;
        end
        if (ld[1]) s[1] <= is_new0 ? d[0][ORDER_SYMBOL_LSB +: SW] : pred[k[0]];
        if (ld[1] && may_rest0) pred[k[0]] <= d[0][ORDER_SYMBOL_LSB +: SW];
        else if (fx_v) pred[fx_k] <= fx_s;
        if (rst) fx_v <= 1'b0;
        else if (fix_we) begin
            fx_v <= 1'b1;
            fx_k <= fix_key;
            fx_s <= fix_sym;
        end else if (!(ld[1] && may_rest0)) fx_v <= 1'b0;
        if (ld[2]) begin
            r2 <= c_recip[s[1]];
            p2 <= {1'b0, d[1][ORDER_PRICE_LSB +: 53]};
        end
        if (ld[3]) begin
            r3 <= r2;
            for (i = 0; i < 3; i = i + 1)
                for (j = 0; j < 6; j = j + 1)
                    pp[6 * i + j] <= p2[18 * i +: 18] * rl2[18 * j +: 18];
        end
        if (ld[4]) begin
            r4 <= r3;
            for (i = 0; i < 8; i = i + 1) sw[i] <= sw_n[i];
        end
        if (ld[5]) begin
            r5 <= r4;
            lo5 <= lo_sum[53:0];
            c5 <= lo_sum[54];
            sv5 <= csa_s[161:54];
            cv5 <= csa_c[161:54];
        end
        if (ld[6]) begin
            r6 <= r5[106:54];
            mi6 <= mi_sum[53:0];
            c6 <= mi_sum[54];
            lt6 <= lo5 < r5[53:0];
            sv6 <= sv5[107:54];
            cv6 <= cv5[107:54];
        end
    end

    assign out_valid = v[NS-1];
    assign out_data = d[NS-1];
    assign out_key = k[NS-1];
    assign out_tag = g[NS-1];
    assign out_qsym = s[NS-1];
    assign out_qt = {hi_sum[50:0], mi6[53:52]};
    // bits 0..105 of the product, {mi6[51:0], lo5}, below R (R's bit 106 is set only for a
    // tick of 1, which divides everything)
    assign out_on_tick = r6[52] || (mi6[51:0] < r6[51:0]) || (mi6[51:0] == r6[51:0] && lt6);
    assign busy = |v;
endmodule

`default_nettype wire
