// tickbook: the Verilog order book.
//
// Input: a stream of 64-byte order records (engine/records.py ORDER_DTYPE, little endian,
// byte 0 = bits [7:0]), valid/ready. Output: a stream of 64-byte event records
// (EVENT_DTYPE), valid/ready with back-pressure. Configuration (symbols, ticks, reciprocals,
// reference prices, collars) through a small write port. See docs/hardware.md.
//
// Architecture (small configurations): every resting order lives in a register slot; the id
// lookup is a CAM over the slots, the best bid/ask of the symbol being worked on is a parallel
// reduction over the slots (price, then arrival stamp), level counts are kept per symbol and
// side for the CAPACITY rule. One message is worked on at a time by a small state machine; every
// state emits at most one event per cycle.
`timescale 1ns / 1ps
`default_nettype none

module tickbook_book #(
    parameter integer NSYM = 4,   // symbols
    parameter integer NORD = 16,  // resting orders (all symbols) = [engine] max_orders
    parameter integer NLVL = 8    // price levels per side per symbol = [engine] max_levels
) (
    input  wire                 clk,
    input  wire                 rst,      // synchronous: empties the book, seq back to 1,
                                          // reference prices back to the configured ones
    // configuration port (kept across rst)
    input  wire                 cfg_we,
    input  wire [2:0]           cfg_addr, // 0 tick units, 1 reciprocal, 2 ref ticks, 3 band bps, 4 nsym
    input  wire [15:0]          cfg_sym,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [127:0]         cfg_data,
    /* verilator lint_on UNUSEDSIGNAL */
    // order records in
    input  wire                 in_valid,
    output wire                 in_ready,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [511:0]         in_data,   // ts and reserved bytes are not read
    /* verilator lint_on UNUSEDSIGNAL */
    // event records out
    output reg                  out_valid,
    input  wire                 out_ready,
    output reg  [511:0]         out_data,
    // top of book per symbol (symbol s at bits [64*s +: 64]); price PRICE_NONE when empty
    output wire [NSYM*64-1:0]   tob_bid_px,
    output wire [NSYM*64-1:0]   tob_bid_qty,
    output wire [NSYM*64-1:0]   tob_ask_px,
    output wire [NSYM*64-1:0]   tob_ask_qty,
    output wire                 busy      // a message is being worked on
);
    localparam integer SW = (NSYM > 1) ? $clog2(NSYM) : 1;
    localparam integer IW = (NORD > 1) ? $clog2(NORD) : 1;
    localparam integer CW = $clog2(NORD + 1);
    localparam integer LW = $clog2(NLVL + 1);

    // record enums (engine/records.py)
    localparam [7:0] A_NEW = 8'd1, A_CANCEL = 8'd2, A_REPLACE = 8'd3;
    localparam [7:0] T_LIMIT = 8'd1, T_MARKET = 8'd2;
    localparam [7:0] F_GTC = 8'd1, F_FOK = 8'd3, F_POST = 8'd4;
    localparam [7:0] EV_ACK = 8'd1, EV_REJECT = 8'd2, EV_FILL = 8'd3, EV_CANCELED = 8'd4,
                     EV_REPLACED = 8'd5;
    localparam [7:0] R_UNKNOWN_SYMBOL = 8'd4, R_DUPLICATE = 8'd5, R_BAD_TIF = 8'd6,
                     R_BAD_QTY = 8'd7, R_MAX_QTY = 8'd8, R_BAD_PRICE = 8'd9,
                     R_PRICE_BAND = 8'd10, R_CAPACITY = 8'd14, R_MALFORMED = 8'd15,
                     R_UNKNOWN_ORDER = 8'd16, R_NOT_OWNER = 8'd17, R_SELF_TRADE = 8'd32,
                     R_FOK = 8'd33, R_POST_ONLY = 8'd34, R_IOC = 8'd35, R_USER = 8'd36,
                     R_TAKER = 8'd48, R_MAKER = 8'd49;
    localparam [63:0] PRICE_NONE = 64'h8000_0000_0000_0000;
    // floor(x / 10000) == (x * MAG10K) >> 99 for every x < 2**85 (Granlund-Montgomery)
    localparam [85:0] MAG10K = 86'h346dc5d63886594af4f0d9;

    localparam [2:0] S_IDLE = 3'd0, S_CHECK = 3'd1, S_MATCH = 3'd2, S_FILL2 = 3'd3,
                     S_FOK1 = 3'd4, S_FOK2 = 3'd5;

    // ------------------------------------------------------------------ configuration
    reg [52:0]  c_tick  [0:NSYM-1];   // tick in 1e-8 price units
    reg [106:0] c_recip [0:NSYM-1];   // floor(2**106 / tick) + 1: exact division of 53-bit values
    reg [52:0]  c_ref0  [0:NSYM-1];   // configured reference price, ticks
    reg [31:0]  c_bps   [0:NSYM-1];   // band_bps, 0 = no collar
    reg [15:0]  c_nsym;               // symbols configured (<= NSYM)
    reg [52:0]  r_ref   [0:NSYM-1];   // current reference price, ticks

    // ------------------------------------------------------------------ order slots
    reg [NORD-1:0] o_valid;
    reg [63:0]     o_id    [0:NORD-1];
    reg [31:0]     o_acct  [0:NORD-1];
    reg [SW-1:0]   o_sym   [0:NORD-1];
    reg [NORD-1:0] o_side;            // 0 buy, 1 sell
    reg [NORD-1:0] o_post;            // post-only (matters when it is replaced)
    reg [52:0]     o_pxu   [0:NORD-1];// price, 1e-8 units
    reg [52:0]     o_pxt   [0:NORD-1];// price, ticks
    reg [31:0]     o_lvs   [0:NORD-1];// leaves
    reg [31:0]     o_stamp [0:NORD-1];// arrival at the back of its level (time priority)
    reg [CW-1:0]   rest_cnt;
    reg [LW-1:0]   lvl_cnt [0:(2<<SW)-1]; // index {sym, side}
    reg [31:0]     stamp_ctr;

    // ------------------------------------------------------------------ message being worked on
    reg [2:0]   state;
    reg [63:0]  seq;
    reg [63:0]  m_id, m_px, m_qty, m_mseq;
    reg [31:0]  m_acct;
    reg [15:0]  m_sym;
    reg [7:0]   m_act, m_side, m_type, m_tif;
    reg         m_hit;
    reg [IW-1:0] m_hidx;
    reg [SW-1:0] cur_sym;
    reg         cur_ok;
    // taker
    reg         tk_rep, tk_side, tk_has_lim, tk_rest, tk_post, tk_first;
    reg [63:0]  tk_id, tk_pxu;
    reg [31:0]  tk_acct, tk_lvs;
    reg [73:0]  tk_lim;
    // maker half of a fill
    reg [63:0]  fm_id, fm_px;
    reg [31:0]  fm_acct, fm_qty, fm_lvs;
    reg         fm_side;
    // FOK: first order of the taker's own account fk_in the limit
    reg         sb_f;
    reg [52:0]  sb_pxt;
    reg [31:0]  sb_stamp;
    // top of book
    reg [63:0]  tob_bpx [0:NSYM-1];
    reg [63:0]  tob_bqt [0:NSYM-1];
    reg [63:0]  tob_apx [0:NSYM-1];
    reg [63:0]  tob_aqt [0:NSYM-1];

    integer i;

    assign in_ready = (state == S_IDLE) && !rst;
    assign busy = (state != S_IDLE);
    wire ev_free = !out_valid || out_ready;

    genvar gs;
    generate
        for (gs = 0; gs < NSYM; gs = gs + 1) begin : g_tob
            assign tob_bid_px[64*gs +: 64]  = tob_bpx[gs];
            assign tob_bid_qty[64*gs +: 64] = tob_bqt[gs];
            assign tob_ask_px[64*gs +: 64]  = tob_apx[gs];
            assign tob_ask_qty[64*gs +: 64] = tob_aqt[gs];
        end
    endgenerate

    // ------------------------------------------------------------------ input fields
    wire [63:0] in_id  = in_data[127:64];
    wire [15:0] in_sym = in_data[367:352];
    wire [7:0]  in_act = in_data[375:368];

    // id lookup (CAM) on the record being accepted
    reg          l_hit;
    reg [IW-1:0] l_idx;
    always @* begin
        l_hit = 1'b0;
        l_idx = {IW{1'b0}};
        for (i = 0; i < NORD; i = i + 1)
            if (o_valid[i] && o_id[i] == in_id) begin
                l_hit = 1'b1;
                l_idx = i[IW-1:0];
            end
    end

    // ------------------------------------------------------------------ book reductions for cur_sym
    reg          bb_f, ba_f;          // best bid / ask found
    reg [IW-1:0] bb_i, ba_i;
    reg [52:0]   bb_px, ba_px;
    reg [31:0]   bb_st, ba_st;
    reg [63:0]   bb_sz, ba_sz;        // size at best
    reg [CW-1:0] bb_n, ba_n;          // orders at best
    always @* begin
        bb_f = 1'b0; bb_i = {IW{1'b0}}; bb_px = 53'd0; bb_st = 32'd0;
        ba_f = 1'b0; ba_i = {IW{1'b0}}; ba_px = 53'd0; ba_st = 32'd0;
        for (i = 0; i < NORD; i = i + 1)
            if (o_valid[i] && o_sym[i] == cur_sym) begin
                if (!o_side[i]) begin
                    if (!bb_f || o_pxt[i] > bb_px || (o_pxt[i] == bb_px && o_stamp[i] < bb_st)) begin
                        bb_f = 1'b1; bb_i = i[IW-1:0]; bb_px = o_pxt[i]; bb_st = o_stamp[i];
                    end
                end else begin
                    if (!ba_f || o_pxt[i] < ba_px || (o_pxt[i] == ba_px && o_stamp[i] < ba_st)) begin
                        ba_f = 1'b1; ba_i = i[IW-1:0]; ba_px = o_pxt[i]; ba_st = o_stamp[i];
                    end
                end
            end
        bb_sz = 64'd0; ba_sz = 64'd0; bb_n = {CW{1'b0}}; ba_n = {CW{1'b0}};
        for (i = 0; i < NORD; i = i + 1)
            if (o_valid[i] && o_sym[i] == cur_sym) begin
                if (!o_side[i] && bb_f && o_pxt[i] == bb_px) begin
                    bb_sz = bb_sz + {32'd0, o_lvs[i]}; bb_n = bb_n + 1'b1;
                end
                if (o_side[i] && ba_f && o_pxt[i] == ba_px) begin
                    ba_sz = ba_sz + {32'd0, o_lvs[i]}; ba_n = ba_n + 1'b1;
                end
            end
    end

    // ------------------------------------------------------------------ checks (state S_CHECK)
    wire         is_new = (m_act == A_NEW);
    wire         is_can = (m_act == A_CANCEL);
    wire         is_rep = (m_act == A_REPLACE);
    wire         fields_ok = (m_side == 8'd1 || m_side == 8'd2) &&
                             (m_type == T_LIMIT || m_type == T_MARKET) &&
                             (m_tif >= F_GTC && m_tif <= F_POST);
    wire         sym_known = (m_sym < c_nsym) && ({16'd0, m_sym} < NSYM);
    wire         is_mkt = is_new && (m_type == T_MARKET);
    wire         bad_tif = is_mkt && (m_tif == F_GTC || m_tif == F_POST);
    wire         bad_qty = $signed(m_qty) <= 64'sd0;
    wire         max_qty = (m_qty[63:32] != 32'd0);
    wire         px_rng = (m_px[63:53] == 11'd0) && (m_px != 64'd0);
    wire [52:0]  p53 = m_px[52:0];
    wire [IW-1:0] t = m_hidx;
    wire         t_side = o_side[t];

    wire [52:0]  ref_t = r_ref[cur_sym];
    wire [31:0]  bps = c_bps[cur_sym];
    wire [52:0]  q_t;                                      // floor(price / tick)
    wire         on_tick;
    wire [71:0]  band;                                     // floor(ref * bps / 10000)
`ifndef TICKBOOK_CORE_ONLY
    /* verilator lint_off UNUSEDSIGNAL */
    wire [159:0] prod_q = {{107{1'b0}}, p53} * {{53{1'b0}}, c_recip[cur_sym]};
    /* verilator lint_on UNUSEDSIGNAL */
    assign q_t = prod_q[158:106];
    wire [105:0] back = {{53{1'b0}}, q_t} * {{53{1'b0}}, c_tick[cur_sym]};
    assign on_tick = (back == {{53{1'b0}}, p53});
    wire [84:0]  refbps = {{32{1'b0}}, ref_t} * {{53{1'b0}}, bps};
    /* verilator lint_off UNUSEDSIGNAL */
    wire [170:0] prod_b = {{86{1'b0}}, refbps} * {{85{1'b0}}, MAG10K};
    /* verilator lint_on UNUSEDSIGNAL */
    assign band = prod_b[170:99];
`else
    // Synthesis of the matching core alone (make synth CORE=1): NOT a functional build. The
    // exact price arithmetic (two 53-bit multiplications for the tick, one for the collar) is
    // replaced by tick = 1 unit and a collar of ref/8, to measure what the rest costs.
    assign q_t = p53;
    assign on_tick = 1'b1;
    assign band = {19'd0, 3'd0, ref_t[52:3]};
`endif
    wire [52:0]  pdist = (q_t > ref_t) ? (q_t - ref_t) : (ref_t - q_t);
    wire         out_band = (bps != 32'd0) && ({19'd0, pdist} > band);

    wire         side_sel = is_rep ? t_side : (m_side == 8'd2);
    // does a level at the message price exist on side_sel of cur_sym?
    reg          lvl_exists;
    // another order at the same price as slot t?
    reg          t_others;
    always @* begin
        lvl_exists = 1'b0;
        t_others = 1'b0;
        for (i = 0; i < NORD; i = i + 1)
            if (o_valid[i] && o_sym[i] == cur_sym) begin
                if (o_side[i] == side_sel && o_pxu[i] == p53) lvl_exists = 1'b1;
                if (i[IW-1:0] != t && o_side[i] == o_side[t] && o_pxu[i] == o_pxu[t]) t_others = 1'b1;
            end
    end
    wire [LW-1:0] lvl_here = lvl_cnt[{cur_sym, side_sel}];
    wire          lvl_full = ({{(32-LW){1'b0}}, lvl_here} >= NLVL);
    wire          cap_new = ({{(32-CW){1'b0}}, rest_cnt} >= NORD) || (!lvl_exists && lvl_full);
    wire          cap_rep = (p53 != o_pxu[t]) && !lvl_exists && lvl_full;
    wire          new_rests = (m_tif == F_GTC || m_tif == F_POST);

    // limit of the incoming order, in ticks (MARKET: protection price at acceptance)
    wire         has_lim_c = !is_mkt || (bps != 32'd0);
    wire [73:0]  ref_plus = {21'd0, ref_t} + {2'd0, band};
    wire [73:0]  ref_minus = (band >= {19'd0, ref_t}) ? 74'd1 : ({21'd0, ref_t} - {2'd0, band});
    wire [73:0]  lim_c = !is_mkt ? {21'd0, q_t} : (side_sel ? ref_minus : ref_plus);
    wire         opp_f_c = side_sel ? bb_f : ba_f;
    wire [52:0]  opp_px_c = side_sel ? bb_px : ba_px;
    wire         cross_c = opp_f_c && (!has_lim_c ||
                           (side_sel ? ({21'd0, opp_px_c} >= lim_c) : ({21'd0, opp_px_c} <= lim_c)));

    // ------------------------------------------------------------------ matching (taker registers)
    wire         opp_f = tk_side ? bb_f : ba_f;
    wire [IW-1:0] opp_i = tk_side ? bb_i : ba_i;
    wire [CW-1:0] opp_n = tk_side ? bb_n : ba_n;
    wire [52:0]  opp_px = o_pxt[opp_i];
    wire         cross_m = opp_f && (!tk_has_lim ||
                           (tk_side ? ({21'd0, opp_px} >= tk_lim) : ({21'd0, opp_px} <= tk_lim)));
    wire [31:0]  mk_lvs = o_lvs[opp_i];
    wire [31:0]  fq = (tk_lvs < mk_lvs) ? tk_lvs : mk_lvs;
    wire [31:0]  mk_left = mk_lvs - fq;
    wire [31:0]  tk_left = tk_lvs - fq;
    wire         self_hit = (o_acct[opp_i] == tk_acct);
    wire         opp_key = !tk_side;   // side of the makers

    // FOK: best own-account order fk_in the limit, then what trades fk_before it
    reg          fk_f;
    reg [52:0]   fk_px;
    reg [31:0]   fk_st;
    reg [63:0]   avail;
    reg          fk_in, fk_before;
    always @* begin
        fk_f = 1'b0; fk_px = 53'd0; fk_st = 32'd0; avail = 64'd0;
        fk_in = 1'b0; fk_before = 1'b0;
        for (i = 0; i < NORD; i = i + 1)
            if (o_valid[i] && o_sym[i] == cur_sym && o_side[i] == opp_key) begin
                fk_in = !tk_has_lim || (tk_side ? ({21'd0, o_pxt[i]} >= tk_lim)
                                                 : ({21'd0, o_pxt[i]} <= tk_lim));
                if (fk_in && o_acct[i] == tk_acct) begin
                    if (!fk_f || (opp_key ? (o_pxt[i] < fk_px) : (o_pxt[i] > fk_px)) ||
                        (o_pxt[i] == fk_px && o_stamp[i] < fk_st)) begin
                        fk_f = 1'b1; fk_px = o_pxt[i]; fk_st = o_stamp[i];
                    end
                end
                fk_before = !sb_f || (opp_key ? (o_pxt[i] < sb_pxt) : (o_pxt[i] > sb_pxt)) ||
                         (o_pxt[i] == sb_pxt && o_stamp[i] < sb_stamp);
                if (fk_in && fk_before) avail = avail + {32'd0, o_lvs[i]};
            end
    end

    // free slot
    reg [IW-1:0] free_i;
    always @* begin
        free_i = {IW{1'b0}};
        for (i = NORD - 1; i >= 0; i = i - 1)
            if (!o_valid[i]) free_i = i[IW-1:0];
    end

    // ------------------------------------------------------------------ event record
    function [511:0] mk_ev;
        input [63:0] f_seq, f_mseq, f_oid, f_cid, f_px;
        input [31:0] f_qty, f_lvs, f_acct;
        input [15:0] f_sym;
        input [7:0]  f_kind, f_side, f_reason;
        mk_ev = {56'd0, f_reason, f_side, f_kind, f_sym, f_acct, f_lvs, f_qty, f_px, f_cid,
                 f_oid, f_mseq, f_seq};
    endfunction

    wire [15:0] cur_sym16 = {{(16-SW){1'b0}}, cur_sym};

    task emit;
        input [7:0]  k_kind, k_reason;
        input [63:0] k_oid, k_cid, k_px;
        input [31:0] k_qty, k_lvs, k_acct;
        input        k_sell;
        begin
            out_data <= mk_ev(seq, m_mseq, k_oid, k_cid, k_px, k_qty, k_lvs, k_acct, cur_sym16,
                              k_kind, k_sell ? 8'd2 : 8'd1, k_reason);
            out_valid <= 1'b1;
            seq <= seq + 64'd1;
        end
    endtask

    task reject;
        input [7:0] k_reason;
        begin
            out_data <= mk_ev(seq, m_mseq, m_id, 64'd0, PRICE_NONE, 32'd0, 32'd0, m_acct, m_sym,
                              EV_REJECT, 8'd0, k_reason);
            out_valid <= 1'b1;
            seq <= seq + 64'd1;
        end
    endtask

    // a NEW order rests in a free slot
    task rest_new;
        input [52:0] k_pxt;
        input [31:0] k_lvs;
        begin
            o_valid[free_i] <= 1'b1;
            o_id[free_i] <= m_id;
            o_acct[free_i] <= m_acct;
            o_sym[free_i] <= cur_sym;
            o_side[free_i] <= side_sel;
            o_post[free_i] <= (m_tif == F_POST);
            o_pxu[free_i] <= p53;
            o_pxt[free_i] <= k_pxt;
            o_lvs[free_i] <= k_lvs;
            o_stamp[free_i] <= stamp_ctr;
            stamp_ctr <= stamp_ctr + 32'd1;
            rest_cnt <= rest_cnt + 1'b1;
            if (!lvl_exists) lvl_cnt[{cur_sym, side_sel}] <= lvl_here + 1'b1;
        end
    endtask

    // slot t (the target of CANCEL / REPLACE) leaves the book
    task remove_t;
        begin
            o_valid[t] <= 1'b0;
            rest_cnt <= rest_cnt - 1'b1;
            if (!t_others) lvl_cnt[{cur_sym, t_side}] <= lvl_cnt[{cur_sym, t_side}] - 1'b1;
        end
    endtask

    // ------------------------------------------------------------------ the state machine
    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
            out_valid <= 1'b0;
            seq <= 64'd1;
            o_valid <= {NORD{1'b0}};
            rest_cnt <= {CW{1'b0}};
            stamp_ctr <= 32'd0;
            cur_ok <= 1'b0;
            for (i = 0; i < (2 << SW); i = i + 1) lvl_cnt[i] <= {LW{1'b0}};
            for (i = 0; i < NSYM; i = i + 1) begin
                r_ref[i] <= c_ref0[i];
                tob_bpx[i] <= PRICE_NONE; tob_bqt[i] <= 64'd0;
                tob_apx[i] <= PRICE_NONE; tob_aqt[i] <= 64'd0;
            end
        end else begin
            if (out_valid && out_ready) out_valid <= 1'b0;

            // top of book of the symbol being worked on, one cycle behind the book
            if (cur_ok) begin
                tob_bpx[cur_sym] <= bb_f ? {11'd0, o_pxu[bb_i]} : PRICE_NONE;
                tob_bqt[cur_sym] <= bb_sz;
                tob_apx[cur_sym] <= ba_f ? {11'd0, o_pxu[ba_i]} : PRICE_NONE;
                tob_aqt[cur_sym] <= ba_sz;
            end

            case (state)
            S_IDLE: if (in_valid) begin
                m_id   <= in_id;
                m_px   <= in_data[191:128];
                m_qty  <= in_data[255:192];
                m_mseq <= in_data[319:256];
                m_acct <= in_data[351:320];
                m_sym  <= in_sym;
                m_act  <= in_act;
                m_side <= in_data[383:376];
                m_type <= in_data[391:384];
                m_tif  <= in_data[399:392];
                m_hit  <= l_hit;
                m_hidx <= l_idx;
                if (in_act == A_NEW && in_sym < c_nsym && {16'd0, in_sym} < NSYM) begin
                    cur_sym <= in_sym[SW-1:0];
                    cur_ok <= 1'b1;
                end else if ((in_act == A_CANCEL || in_act == A_REPLACE) && l_hit) begin
                    cur_sym <= o_sym[l_idx];
                    cur_ok <= 1'b1;
                end
                state <= S_CHECK;
            end

            S_CHECK: if (ev_free) begin
                state <= S_IDLE;
                if (is_new && fields_ok) begin
                    if (!sym_known) reject(R_UNKNOWN_SYMBOL);
                    else if (m_hit) reject(R_DUPLICATE);
                    else if (bad_tif) reject(R_BAD_TIF);
                    else if (bad_qty) reject(R_BAD_QTY);
                    else if (max_qty) reject(R_MAX_QTY);
                    else if (is_mkt ? (m_px != PRICE_NONE) : (!px_rng || !on_tick)) reject(R_BAD_PRICE);
                    else if (!is_mkt && out_band) reject(R_PRICE_BAND);
                    else if (!is_mkt && new_rests && cap_new) reject(R_CAPACITY);
                    else begin
                        emit(EV_ACK, 8'd0, m_id, 64'd0, is_mkt ? PRICE_NONE : m_px, m_qty[31:0],
                             m_qty[31:0], m_acct, side_sel);
                        tk_rep <= 1'b0;
                        tk_id <= m_id;
                        tk_acct <= m_acct;
                        tk_side <= side_sel;
                        tk_lvs <= m_qty[31:0];
                        tk_has_lim <= has_lim_c;
                        tk_lim <= lim_c;
                        tk_rest <= !is_mkt && new_rests;
                        tk_post <= (m_tif == F_POST);
                        tk_first <= 1'b1;
                        tk_pxu <= is_mkt ? PRICE_NONE : m_px;
                        if (m_tif == F_FOK) state <= S_FOK1;
                        else if (cross_c) state <= S_MATCH;
                        else if (!is_mkt && new_rests) rest_new(q_t, m_qty[31:0]);
                        else state <= S_MATCH;   // IOC / MARKET without a match: CANCELED IOC
                    end
                end else if (is_can) begin
                    if (!m_hit) reject(R_UNKNOWN_ORDER);
                    else if (o_acct[t] != m_acct) reject(R_NOT_OWNER);
                    else begin
                        emit(EV_CANCELED, R_USER, m_id, 64'd0, {11'd0, o_pxu[t]}, o_lvs[t], 32'd0,
                             o_acct[t], t_side);
                        remove_t;
                    end
                end else if (is_rep) begin
                    if (!m_hit) reject(R_UNKNOWN_ORDER);
                    else if (o_acct[t] != m_acct) reject(R_NOT_OWNER);
                    else if (bad_qty) reject(R_BAD_QTY);
                    else if (max_qty) reject(R_MAX_QTY);
                    else if (!px_rng || !on_tick) reject(R_BAD_PRICE);
                    else if (out_band) reject(R_PRICE_BAND);
                    else if (cap_rep) reject(R_CAPACITY);
                    else begin
                        emit(EV_REPLACED, 8'd0, m_id, 64'd0, m_px, m_qty[31:0], m_qty[31:0],
                             o_acct[t], t_side);
                        o_lvs[t] <= m_qty[31:0];
                        if (!(p53 == o_pxu[t] && m_qty[31:0] <= o_lvs[t])) begin
                            o_pxu[t] <= p53;
                            o_pxt[t] <= q_t;
                            o_stamp[t] <= stamp_ctr;
                            stamp_ctr <= stamp_ctr + 32'd1;
                            if (p53 != o_pxu[t])
                                lvl_cnt[{cur_sym, t_side}] <= lvl_here + {{(LW-1){1'b0}}, !lvl_exists}
                                                                       - {{(LW-1){1'b0}}, !t_others};
                            if (cross_c) begin
                                tk_rep <= 1'b1;
                                tk_id <= m_id;
                                tk_acct <= o_acct[t];
                                tk_side <= t_side;
                                tk_lvs <= m_qty[31:0];
                                tk_has_lim <= 1'b1;
                                tk_lim <= {21'd0, q_t};
                                tk_rest <= 1'b1;
                                tk_post <= o_post[t];
                                tk_first <= 1'b1;
                                tk_pxu <= m_px;
                                state <= S_MATCH;
                            end
                        end
                    end
                end else begin
                    reject(R_MALFORMED);
                end
            end

            S_MATCH: if (ev_free) begin
                tk_first <= 1'b0;
                if (tk_post && tk_first && cross_m) begin
                    emit(EV_CANCELED, R_POST_ONLY, tk_id, 64'd0, tk_pxu, tk_lvs, 32'd0, tk_acct, tk_side);
                    if (tk_rep) remove_t;
                    state <= S_IDLE;
                end else if (!cross_m) begin
                    if (!tk_rest)
                        emit(EV_CANCELED, R_IOC, tk_id, 64'd0, tk_pxu, tk_lvs, 32'd0, tk_acct, tk_side);
                    else if (!tk_rep)
                        rest_new(tk_lim[52:0], tk_lvs);
                    state <= S_IDLE;
                end else if (self_hit) begin
                    emit(EV_CANCELED, R_SELF_TRADE, tk_id, 64'd0, tk_pxu, tk_lvs, 32'd0, tk_acct, tk_side);
                    if (tk_rep) remove_t;
                    state <= S_IDLE;
                end else begin
                    emit(EV_FILL, R_TAKER, tk_id, o_id[opp_i], {11'd0, o_pxu[opp_i]}, fq, tk_left,
                         tk_acct, tk_side);
                    fm_id <= o_id[opp_i];
                    fm_acct <= o_acct[opp_i];
                    fm_side <= o_side[opp_i];
                    fm_px <= {11'd0, o_pxu[opp_i]};
                    fm_qty <= fq;
                    fm_lvs <= mk_left;
                    tk_lvs <= tk_left;
                    r_ref[cur_sym] <= opp_px;
                    o_lvs[opp_i] <= mk_left;
                    if (mk_left == 32'd0) begin
                        o_valid[opp_i] <= 1'b0;
                        if (opp_n == {{(CW-1){1'b0}}, 1'b1})
                            lvl_cnt[{cur_sym, opp_key}] <= lvl_cnt[{cur_sym, opp_key}] - 1'b1;
                    end
                    if (tk_rep) begin
                        o_lvs[t] <= tk_left;
                        if (tk_left == 32'd0) begin
                            o_valid[t] <= 1'b0;
                            if (!t_others) lvl_cnt[{cur_sym, tk_side}] <= lvl_cnt[{cur_sym, tk_side}] - 1'b1;
                        end
                    end
                    rest_cnt <= rest_cnt - {{(CW-1){1'b0}}, mk_left == 32'd0}
                                         - {{(CW-1){1'b0}}, tk_rep && tk_left == 32'd0};
                    state <= S_FILL2;
                end
            end

            S_FILL2: if (ev_free) begin
                emit(EV_FILL, R_MAKER, fm_id, tk_id, fm_px, fm_qty, fm_lvs, fm_acct, fm_side);
                // the book already holds the fill: finish here when nothing else can follow
                if (tk_lvs == 32'd0) state <= S_IDLE;
                else if (!cross_m && tk_rest) begin
                    if (!tk_rep) rest_new(tk_lim[52:0], tk_lvs);
                    state <= S_IDLE;
                end else state <= S_MATCH;
            end

            S_FOK1: begin
                sb_f <= fk_f;
                sb_pxt <= fk_px;
                sb_stamp <= fk_st;
                state <= S_FOK2;
            end

            S_FOK2: if (ev_free) begin
                if (avail < {32'd0, tk_lvs}) begin
                    emit(EV_CANCELED, R_FOK, tk_id, 64'd0, tk_pxu, tk_lvs, 32'd0, tk_acct, tk_side);
                    state <= S_IDLE;
                end else state <= S_MATCH;
            end

            default: state <= S_IDLE;
            endcase

        end
        // configuration writes (the host loads them while the book is idle)
        if (cfg_we) begin
            if (cfg_addr == 3'd4) c_nsym <= cfg_data[15:0];
            else if ({16'd0, cfg_sym} < NSYM) begin
                case (cfg_addr)
                3'd0: c_tick[cfg_sym[SW-1:0]] <= cfg_data[52:0];
                3'd1: c_recip[cfg_sym[SW-1:0]] <= cfg_data[106:0];
                3'd2: begin
                    c_ref0[cfg_sym[SW-1:0]] <= cfg_data[52:0];
                    r_ref[cfg_sym[SW-1:0]] <= cfg_data[52:0];
                end
                3'd3: c_bps[cfg_sym[SW-1:0]] <= cfg_data[31:0];
                default: ;
                endcase
            end
        end
    end
endmodule

`default_nettype wire
