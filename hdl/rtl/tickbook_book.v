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
//
// What the area build (tickbook_book_area.v) does the same way is in tickbook_book_shared.vh
// and tickbook_book_steps.vh; the record layout is tickbook_records.vh, generated from
// engine/records.py.
`timescale 1ns / 1ps
`default_nettype none

module tickbook_book #(
    parameter integer NSYM = 4,   // symbols
    parameter integer NORD = 16,  // resting orders (all symbols) = [engine] max_orders
    parameter integer NLVL = 8    // price levels per side per symbol = [engine] max_levels
) (
`include "tickbook_book_ports.vh"
);
`include "tickbook_book_shared.vh"
`include "tickbook_book_message.vh"


    localparam [2:0] S_IDLE = 3'd0, S_CHECK = 3'd1, S_MATCH = 3'd2, S_FILL2 = 3'd3,
                     S_FOK1 = 3'd4, S_FOK2 = 3'd5;
    localparam [2:0] S_DONE = S_IDLE;  // after a message's last event

    // ------------------------------------------------------------------ configuration

    // ------------------------------------------------------------------ order slots
    reg [52:0]     o_pxt   [0:NORD-1];// price, ticks
    reg [31:0]     o_stamp [0:NORD-1];// arrival at the back of its level (time priority)
    reg [31:0]     stamp_ctr;

    // ------------------------------------------------------------------ message being worked on
    reg [2:0]   state;
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

    genvar gs;
    generate
        for (gs = 0; gs < NSYM; gs = gs + 1) begin : g_tob
            assign tob_bid_px[64*gs +: 64]  = tob_bpx[gs];
            assign tob_bid_qty[64*gs +: 64] = tob_bqt[gs];
            assign tob_ask_px[64*gs +: 64]  = tob_apx[gs];
            assign tob_ask_qty[64*gs +: 64] = tob_aqt[gs];
        end
    endgenerate

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
    wire         side_sel = m_rep ? t_side : (m_side == SIDE_SELL);
`include "tickbook_book_price.vh"
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
    wire          m_rests = (m_tif == TIF_GTC || m_tif == TIF_POST);
    wire          m_post = (m_tif == TIF_POST);
    wire          m_fok = (m_tif == TIF_FOK);

    wire         opp_f_c = side_sel ? bb_f : ba_f;
    wire [52:0]  opp_px_c = side_sel ? bb_px : ba_px;
    wire         cross_c = opp_f_c && (!has_lim_c ||
                           (side_sel ? ({21'd0, opp_px_c} >= lim_c) : ({21'd0, opp_px_c} <= lim_c)));

    // ------------------------------------------------------------------ matching (taker registers)
    wire         opp_f = tk_side ? bb_f : ba_f;
    wire [IW-1:0] opp_i = tk_side ? bb_i : ba_i;
    wire [CW-1:0] opp_n = tk_side ? bb_n : ba_n;
    wire         maker_alone = (opp_n == {{(CW-1){1'b0}}, 1'b1});
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

`include "tickbook_book_steps.vh"

    wire          cap_rep = (p53 != o_pxu[t]) && !lvl_exists && lvl_full;
    wire [7:0]    new_why = new_reason(sym_known, m_hit, bad_tif, bad_qty, max_qty,
                                       is_mkt ? (m_px != PRICE_NONE) : (!px_rng || !on_tick),
                                       !is_mkt && out_band, 1'b0, 1'b0, 1'b0, !is_mkt && m_rests && cap_new);
    wire [7:0]    can_why = cancel_reason(m_hit, o_acct[t] == m_acct);
    wire [7:0]    rep_why = replace_reason(m_hit, o_acct[t] == m_acct, bad_qty, max_qty,
                                           !px_rng || !on_tick, out_band, 1'b0, 1'b0, cap_rep);

    // ------------------------------------------------------------------ steps the states share
    // a NEW order rests in a free slot
    task rest_new;
        input [52:0] k_pxt;
        input [31:0] k_lvs;
        begin
            rest_slot(m_post, k_lvs);
            o_pxt[free_i] <= k_pxt;
            o_stamp[free_i] <= stamp_ctr;
            stamp_ctr <= stamp_ctr + 32'd1;
        end
    endtask

    // slot t leaves the book
    task remove_t;
        input k_side;
        free_t(k_side);
    endtask

    // the taker's events and what the shared steps leave to the build
    task cancel_taker;
        input [7:0] k_reason;
        emit(EV_CANCELED, k_reason, tk_id, 64'd0, tk_pxu, tk_lvs, 32'd0, tk_acct, tk_side);
    endtask

    task rest_taker;
        rest_new(tk_lim[52:0], tk_lvs);
    endtask

    task rest_message;
        rest_new(q_t, m_qty[31:0]);
    endtask

    wire         cross_new = cross_c;

    task fill_taker;
        begin
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
        end
    endtask

    // S_CHECK, a NEW that passed every rule: ACK, and on to match, rest or FOK
    task accept_new;
        begin
            emit(EV_ACK, R_NONE, m_id, 64'd0, is_mkt ? PRICE_NONE : m_px, m_qty[31:0],
                 m_qty[31:0], m_acct, side_sel);
            tk_id <= m_id;
            tk_acct <= m_acct;
            tk_side <= side_sel;
            tk_has_lim <= has_lim_c;
            tk_lim <= lim_c;
            tk_pxu <= is_mkt ? PRICE_NONE : m_px;
            new_taker;
        end
    endtask

    // S_CHECK, a CANCEL that passed: CANCELED USER, and slot t leaves
    task accept_cancel;
        begin
            emit(EV_CANCELED, R_USER, m_id, 64'd0, {11'd0, o_pxu[t]}, o_lvs[t], 32'd0,
                 o_acct[t], t_side);
            remove_t(t_side);
        end
    endtask

    // S_CHECK, a REPLACE that passed: REPLACED; it keeps its place when its price stays and its
    // quantity does not grow, and trades as a taker when it crosses
    task accept_replace;
        begin
            emit(EV_REPLACED, R_NONE, m_id, 64'd0, m_px, m_qty[31:0], m_qty[31:0],
                 o_acct[t], t_side);
            o_lvs[t] <= m_qty[31:0];
            if (!(p53 == o_pxu[t] && m_qty[31:0] <= o_lvs[t])) begin
                o_pxu[t] <= p53;
                o_pxt[t] <= q_t;
                o_stamp[t] <= stamp_ctr;
                stamp_ctr <= stamp_ctr + 32'd1;
                if (p53 != o_pxu[t])
                    move_t_level;
                if (cross_c) begin
                    tk_id <= m_id;
                    tk_acct <= o_acct[t];
                    tk_side <= t_side;
                    tk_has_lim <= 1'b1;
                    tk_lim <= {21'd0, q_t};
                    tk_pxu <= m_px;
                    replace_taker;
                end
            end
        end
    endtask

    // ------------------------------------------------------------------ the state machine
    always @(posedge clk) begin
        if (rst) begin
            seq <= 64'd1;         // this build's own: the event counter, the stamps, the top of book
            reset_book;
            stamp_ctr <= 32'd0;
            for (i = 0; i < NSYM; i = i + 1) begin
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
                take_message;
                m_px   <= in_px;
                m_qty  <= in_qty;
                m_act  <= in_act;
                m_side <= in_side;
                m_type <= in_type;
                m_tif  <= in_tif;
                state <= S_CHECK;
            end

            S_CHECK: if (ev_free) check_step;

            S_MATCH: if (ev_free) match_step;

            S_FILL2: if (ev_free) begin
                emit(EV_FILL, R_MAKER, fm_id, tk_id, fm_px, fm_qty, fm_lvs, fm_acct, fm_side);
                fill_next;
            end

            S_FOK1: begin
                sb_f <= fk_f;
                sb_pxt <= fk_px;
                sb_stamp <= fk_st;
                state <= S_FOK2;
            end

            S_FOK2: if (ev_free) begin
                if (avail < {32'd0, tk_lvs}) begin
                    cancel_taker(R_FOK);
                    state <= S_DONE;
                end else state <= S_MATCH;
            end

            default: state <= S_IDLE;
            endcase

        end
        // the price configuration words, last: a write of the reference price wins over a trade's
        take_price_config;
    end
endmodule

`default_nettype wire
