// tickbook: the Verilog order book, block-RAM build.
//
// The same ports, record layout and events as tickbook_book.v, with the state in memories that
// map to block RAM instead of registers, so that it grows to thousands of orders: the engine's
// own structures (engine/book.py), one read port a memory, one access a cycle.
//
//   orders    a pool of NORD slots (id, account, leaves, price, level, the level's FIFO links,
//             the id hash chain's links), allocated from a free stack
//   id table  2^(IW+1) hash buckets, each the head of a doubly linked chain through the order
//             slots: a lookup walks a chain, a delete unlinks in O(1)
//   levels    a pool of NORD level handles (price, size, head and tail of its FIFO of orders)
//   ladders   per {symbol, side} a sorted array of NLVL entries (price in ticks, level handle),
//             worst to best with the best last, as the engine keeps them; a new level is found
//             by a walk from the best end and shifts the worse ones up, an empty one shifts
//             them down
//
// One message at a time, a state machine of short steps; every state emits at most one event,
// and a state that emits waits while the previous event is not taken. The top of book of the
// message's symbol is refreshed after each message that changed the book, and is valid when
// `busy` is low. docs/hardware.md, "The block-RAM build".
`timescale 1ns / 1ps
`default_nettype none

module tickbook_book_bram #(
    parameter integer NSYM = 4,   // symbols
    parameter integer NORD = 16,  // resting orders (all symbols) = [engine] max_orders
    parameter integer NLVL = 8    // price levels per side per symbol = [engine] max_levels
) (
`include "tickbook_book_ports.vh"
);
`include "tickbook_book_common.vh"
`include "tickbook_book_message.vh"

    localparam integer PW  = IW + 1;                          // a slot pointer: top bit = none
    localparam [PW-1:0] NIL = {1'b1, {IW{1'b0}}};
    localparam integer HW  = IW + 1;                          // a hash bucket: >= 2 NORD of them
    localparam integer NB  = 1 << HW;
    localparam integer PIW = (NLVL > 1) ? $clog2(NLVL) : 1;   // a position in a ladder
    localparam integer BW  = SW + 1;                          // a book: {symbol, side}
    localparam integer NBK = 1 << BW;
    localparam integer AW  = BW + PIW;                        // a ladder entry: {book, position}
    localparam integer KW  = PIW + 1;                         // a position, or a count of levels
    localparam [KW-1:0] K2 = 2, K3 = 3;
    // levels in use at once: at most one an order, at most NLVL a book
    localparam integer NLP = (NORD < 2 * NSYM * NLVL) ? NORD : 2 * NSYM * NLVL;
    localparam integer LHW = (NLP > 1) ? $clog2(NLP) : 1;      // a level handle
    localparam integer LCW = $clog2(NLP + 1);                  // a count of level handles
    localparam integer QW  = 32 + IW;                          // a level's size: NORD leaves

    localparam [5:0] S_IDLE = 6'd0, S_CLR = 6'd1, S_LOOK0 = 6'd2, S_LOOK1 = 6'd3, S_CHECK = 6'd4,
                     S_CAPN = 6'd5, S_CAPR = 6'd6, S_KEEP0 = 6'd9,
                     S_FK0 = 6'd12, S_FK1 = 6'd13, S_FK2 = 6'd14, S_FK3 = 6'd15, S_FKD = 6'd16,
                     S_M0 = 6'd17, S_M2 = 6'd19, S_M3 = 6'd20, S_M4 = 6'd21,
                     S_END = 6'd22, S_R0 = 6'd23, S_R1B = 6'd25,
                     S_R3 = 6'd27, S_R4 = 6'd28, S_FT0 = 6'd29, S_FT1 = 6'd30,
                     S_U1 = 6'd32, S_RM0 = 6'd33, S_RM1 = 6'd34, S_RM2 = 6'd35,
                     S_F0 = 6'd36, S_F1 = 6'd37, S_I0 = 6'd38, S_I1 = 6'd39, S_I2 = 6'd40,
                     S_BR0 = 6'd41, S_BR1 = 6'd42, S_BR2 = 6'd43;
    localparam [5:0] S_DONE = S_IDLE;       // after a message that did not change the book

    // how a match ended
    // (a taker filled ends in S_M4, no S_END)
    localparam [1:0] E_NOCROSS = 2'd0, E_SELF = 2'd2, E_POST = 2'd3;

    // ------------------------------------------------------------------ memories
    reg [63:0]    o_id    [0:NORD-1];
    reg [31:0]    o_acct  [0:NORD-1];
    reg [31:0]    o_lvs   [0:NORD-1];
    reg [52:0]    o_pxu   [0:NORD-1];     // price, 1e-8 units
    reg [LHW-1:0] o_lvl   [0:NORD-1];     // its level's handle
    reg [PW-1:0]  o_prev  [0:NORD-1];     // the level's FIFO
    reg [PW-1:0]  o_next  [0:NORD-1];
    reg [PW-1:0]  o_hprev [0:NORD-1];     // the id hash chain
    reg [PW-1:0]  o_hnext [0:NORD-1];
    reg [SW-1:0]  o_sym   [0:NORD-1];
    reg           o_side  [0:NORD-1];     // 0 buy, 1 sell
    reg           o_post  [0:NORD-1];     // post-only (matters when it is replaced)
    reg [IW-1:0]  o_free  [0:NORD-1];     // free slots (a stack), beyond o_unused
    reg [52:0]    l_pxu   [0:NLP-1];      // level: price, 1e-8 units
    reg [QW-1:0]  l_qty   [0:NLP-1];      // level: leaves of its orders
    reg [IW-1:0]  l_head  [0:NLP-1];
    reg [IW-1:0]  l_tail  [0:NLP-1];
    reg [LHW-1:0] l_free  [0:NLP-1];      // free level handles (a stack), beyond l_unused
    reg [52:0]    lad_px  [0:(1<<AW)-1];  // ladder entry: price, ticks
    reg [LHW-1:0] lad_h   [0:(1<<AW)-1];  // ladder entry: level handle
    reg [PW-1:0]  h_head  [0:NB-1];       // hash bucket: first slot of its chain

    // read ports: the address is registered (set in one state, the data is there in the next)
    reg [IW-1:0]  o_ra;
    reg [LHW-1:0] l_ra;
    reg [AW-1:0]  lad_ra;
    reg [HW-1:0]  h_ra;
    wire [63:0]   q_oid    = o_id[o_ra];
    wire [31:0]   q_oacct  = o_acct[o_ra];
    wire [31:0]   q_olvs   = o_lvs[o_ra];
    wire [52:0]   q_opxu   = o_pxu[o_ra];
    wire [LHW-1:0] q_olvl  = o_lvl[o_ra];
    wire [PW-1:0] q_oprev  = o_prev[o_ra];
    wire [PW-1:0] q_onext  = o_next[o_ra];
    wire [PW-1:0] q_ohprev = o_hprev[o_ra];
    wire [PW-1:0] q_ohnext = o_hnext[o_ra];
    wire [SW-1:0] q_osym   = o_sym[o_ra];
    wire          q_oside  = o_side[o_ra];
    wire          q_opost  = o_post[o_ra];
    wire [52:0]   q_lpxu   = l_pxu[l_ra];
    wire [QW-1:0] q_lqty   = l_qty[l_ra];
    wire [IW-1:0] q_lhead  = l_head[l_ra];
    wire [IW-1:0] q_ltail  = l_tail[l_ra];
    wire [52:0]   q_ladpx  = lad_px[lad_ra];
    wire [LHW-1:0] q_ladh  = lad_h[lad_ra];
    wire [PW-1:0] q_hhead  = h_head[h_ra];

    // counters and per-book registers
    reg [CW-1:0]  rest_cnt;               // orders resting
    reg [CW-1:0]  o_top, o_unused;        // free stack depth; slots never used start here
    reg [LCW-1:0] l_top, l_unused;
    reg [KW-1:0]  lad_n   [0:NBK-1];      // levels per book
    reg [HW-1:0]  clr_i;                  // the bucket the reset sweep clears next
    reg           h_dirty;                // an id was inserted since the buckets were last empty
    // Power-up (the bitstream's block-RAM contents and flip-flop values): every bucket empty. A
    // reset sweeps the buckets only when an id went in since, one a cycle (2^(IW+1) cycles).
    integer hi;
    initial begin
        h_dirty = 1'b0;
        for (hi = 0; hi < NB; hi = hi + 1) h_head[hi] = NIL;
    end
    // the stacks' top entries, kept as registers beside the depths: a read address that is a
    // register lets the stack be block RAM (a computed one would make it distributed RAM)
    reg [IW-1:0]  o_top_m1;               // o_top - 1
    reg [LHW-1:0] l_top_m1;               // l_top - 1
    wire [IW-1:0] o_alloc = (o_top != {CW{1'b0}}) ? o_free[o_top_m1] : o_unused[IW-1:0];
    wire [LHW-1:0] l_alloc = (l_top != {LCW{1'b0}}) ? l_free[l_top_m1] : l_unused[LHW-1:0];

    // ------------------------------------------------------------------ message being worked on
    reg [5:0]   state, ret;               // ret: where a shared step goes when it is done
    // the resting order the message names (CANCEL, REPLACE; a NEW's duplicate)
    reg           found;
    reg [IW-1:0]  t;
    reg [31:0]    t_acct, t_lvs;
    reg [52:0]    t_pxu;
    reg [LHW-1:0] t_lvl;
    reg [PW-1:0]  t_prev, t_next;
    reg [PW-1:0]  t_hprev, t_hnext;       // its id chain (current for a CANCEL: nothing else moves)
    reg           u_free;                 // S_U1 also frees slot t (a CANCEL)
    reg           t_side, t_post;
    // the taker
    reg         tk_rep, tk_side, tk_has_lim, tk_rest, tk_post, tk_first;
    reg [63:0]  tk_id, tk_pxu;
    reg [31:0]  tk_acct, tk_lvs;
    reg [73:0]  tk_lim;
    reg [52:0]  tk_pxt;                   // the price it rests at, ticks
    reg [1:0]   tk_end;
    // the maker of a fill
    reg [LHW-1:0] mk_h;
    reg [IW-1:0] mk_o;
    reg [52:0]   mk_pxt, mk_lpxu;
    reg [QW-1:0] mk_lqty;
    reg [63:0]   mk_id;
    reg [31:0]   mk_acct, mk_left, fq;
    reg [PW-1:0] mk_next, mk_hprev, mk_hnext;
    // FOK
    reg [63:0]   fk_tot;
    reg [KW-1:0]  fk_k;
    // ladder walks: search (sr_*), insert (at sr_pos), remove (rm_*)
    reg [BW-1:0] sr_b;
    reg [52:0]   sr_px;
    reg [KW-1:0]  sr_k, sr_pos;
    reg          sr_found;
    reg [LHW-1:0] sr_h;
    reg [IW-1:0] rs_o;                    // the slot that rests
    reg [LHW-1:0] rm_h;
    reg [KW-1:0]  rm_k;
    // top of book
    // the best level of each book (valid while its ladder is not empty): the top of book, and
    // what a NEW's cross and a resting order's level are decided with before any read. A
    // message that takes a book's best level away marks it stale until S_BR* reads the new one.
    reg [52:0]    bst_px  [0:NBK-1];      // price, ticks
    reg [52:0]    bst_pxu [0:NBK-1];      // price, 1e-8 units
    reg [QW-1:0]  bst_q   [0:NBK-1];      // size
    reg [LHW-1:0] bst_h   [0:NBK-1];      // level handle
    reg [NBK-1:0] stale;
    reg           br_side;                // the side S_BR* refreshes
    // the end of a message that changed the book: refresh a best level it took away (S_BR*)
    wire [5:0]    after_book = (stale[{cur_sym, 1'b0}] || stale[{cur_sym, 1'b1}]) ? S_BR0 : S_IDLE;

    integer i;

    assign in_ready = (state == S_IDLE) && !rst;
    assign busy = (state != S_IDLE);

    genvar gs;
    generate
        for (gs = 0; gs < NSYM; gs = gs + 1) begin : g_tob
            wire [BW-1:0] b_bid = {gs[SW-1:0], 1'b0};
            wire [BW-1:0] b_ask = {gs[SW-1:0], 1'b1};
            assign tob_bid_px[64*gs +: 64]  = (lad_n[b_bid] == {KW{1'b0}}) ? PRICE_NONE : {11'd0, bst_pxu[b_bid]};
            assign tob_bid_qty[64*gs +: 64] = (lad_n[b_bid] == {KW{1'b0}}) ? 64'd0 : {{(64-QW){1'b0}}, bst_q[b_bid]};
            assign tob_ask_px[64*gs +: 64]  = (lad_n[b_ask] == {KW{1'b0}}) ? PRICE_NONE : {11'd0, bst_pxu[b_ask]};
            assign tob_ask_qty[64*gs +: 64] = (lad_n[b_ask] == {KW{1'b0}}) ? 64'd0 : {{(64-QW){1'b0}}, bst_q[b_ask]};
        end
    endgenerate

    // the id's bucket: the 64 bits folded into HW by XOR (consecutive ids, the common case, land
    // in consecutive buckets)
    function [HW-1:0] bucket;
        input [63:0] k_id;
        integer b;
        begin
            bucket = {HW{1'b0}};
            for (b = 0; b < 64; b = b + 1)
                bucket[b % HW] = bucket[b % HW] ^ k_id[b];
        end
    endfunction

    function [PW-1:0] ptr;               // a slot as a pointer
        input [IW-1:0] k_slot;
        ptr = {1'b0, k_slot};
    endfunction

    function [AW-1:0] lad_at;            // the ladder entry of a book's position
        input [BW-1:0] k_book;
        /* verilator lint_off UNUSEDSIGNAL */
        input [KW-1:0] k_pos;                // < NLVL: its top bit is 0
        /* verilator lint_on UNUSEDSIGNAL */
        lad_at = {k_book, k_pos[PIW-1:0]};
    endfunction

    // ------------------------------------------------------------------ checks (S_CHECK)
    wire         side_sel = m_rep ? t_side : (m_side == SIDE_SELL);
`include "tickbook_book_price.vh"
    wire         m_rests = (m_tif == TIF_GTC || m_tif == TIF_POST);
    wire [BW-1:0] own_b = {cur_sym, side_sel};
    wire [BW-1:0] t_b = {cur_sym, t_side};    // the book of the order a CANCEL / REPLACE names
    wire [KW-1:0] own_n = lad_n[own_b];
    wire         own_full = ({{(32-KW){1'b0}}, own_n} >= NLVL);
    wire         orders_full = ({{(32-CW){1'b0}}, rest_cnt} >= NORD);
    wire [7:0]   new_why = new_reason(sym_known, found, bad_tif, bad_qty, max_qty,
                                      is_mkt ? (m_px != PRICE_NONE) : (!px_rng || !on_tick),
                                      !is_mkt && out_band, !is_mkt && m_rests && orders_full);
    wire         rep_moves = (p53 != t_pxu);
    wire [7:0]   can_why = cancel_reason(found, t_acct == m_acct);
    wire [7:0]   rep_why = replace_reason(found, t_acct == m_acct, bad_qty, max_qty,
                                          !px_rng || !on_tick, out_band, 1'b0);
    // S_CHECK: does the message cross the other side's best level (stale bits are all clear
    // between messages)?
    wire [BW-1:0] opp_c = {cur_sym, !side_sel};
    wire         cross_c = (lad_n[opp_c] != {KW{1'b0}}) &&
                           (!has_lim_c || (side_sel ? ({21'd0, bst_px[opp_c]} >= lim_c)
                                                    : ({21'd0, bst_px[opp_c]} <= lim_c)));
    // does the taker cross a level of the other side: a ladder entry (the level read ahead in
    // S_M4, the FOK's count in S_FK1), or the best level's registers (S_M0)?
    wire [BW-1:0] opp_b = {cur_sym, !tk_side};
    wire [KW-1:0] opp_n = lad_n[opp_b];
    wire         lad_cross = !tk_has_lim || (tk_side ? ({21'd0, q_ladpx} >= tk_lim)
                                                     : ({21'd0, q_ladpx} <= tk_lim));
    wire         bst_cross = !tk_has_lim || (tk_side ? ({21'd0, bst_px[opp_b]} >= tk_lim)
                                                     : ({21'd0, bst_px[opp_b]} <= tk_lim));
    wire         opp_more = (opp_n >= K2);   // a level behind the best on the other side
    // the ladder walk: is this entry better than the price searched for (worse ones come first)?
    wire         sr_better = sr_b[0] ? (q_ladpx < sr_px) : (q_ladpx > sr_px);
    wire [31:0]  fill_q = (tk_lvs < q_olvs) ? tk_lvs : q_olvs;
    wire [63:0]  fk_sum = fk_tot + {32'd0, q_olvs};

    // ------------------------------------------------------------------ steps the states share
    // an order leaves its id chain (its bucket, its chain neighbours) and the pool
    task free_order;
        input [IW-1:0] k_o;
        input [63:0]   k_id;
        input [PW-1:0] k_hprev, k_hnext;
        begin
            if (k_hprev == NIL) h_head[bucket(k_id)] <= k_hnext;
            else o_hnext[k_hprev[IW-1:0]] <= k_hnext;
            if (k_hnext != NIL) o_hprev[k_hnext[IW-1:0]] <= k_hprev;
            o_free[o_top[IW-1:0]] <= k_o;
            o_top <= o_top + 1'b1;
            o_top_m1 <= o_top[IW-1:0];
            rest_cnt <= rest_cnt - 1'b1;
        end
    endtask

    // a level handle back on its stack (the caller takes the level out of its ladder)
    task free_level;
        input [LHW-1:0] k_h;
        begin
            l_free[l_top[LHW-1:0]] <= k_h;
            l_top <= l_top + 1'b1;
            l_top_m1 <= l_top[LHW-1:0];
        end
    endtask

    task cancel_taker;                   // the taker's remainder is cancelled
        input [7:0] k_reason;
        emit(EV_CANCELED, k_reason, tk_id, 64'd0, tk_pxu, tk_lvs, 32'd0, tk_acct, tk_side);
    endtask

    // find sr_px in book sr_b from its best end (S_F0, S_F1), then go to k_ret
    task search;
        input [BW-1:0] k_book;
        input [52:0]   k_px;
        input [5:0]    k_ret;
        begin
            sr_b <= k_book;
            sr_px <= k_px;
            ret <= k_ret;
            state <= S_F0;
        end
    endtask

    // the resting order rs_o's level on its side: the best level, or a new best, decided from
    // the best level's registers without a read; else a walk of the ladder (S_F*, then S_R3)
    wire [BW-1:0] rest_b = {cur_sym, tk_side};
    wire          rest_fresh = !stale[rest_b];
    wire          rest_better = tk_side ? (tk_pxt < bst_px[rest_b]) : (tk_pxt > bst_px[rest_b]);
    task place;
        begin
            sr_b <= rest_b;
            sr_px <= tk_pxt;
            if (rest_fresh && (lad_n[rest_b] == {KW{1'b0}} || rest_better)) begin
                sr_pos <= lad_n[rest_b];              // a new best: nothing to shift
                ret <= after_book;
                state <= S_I2;
            end else if (rest_fresh && tk_pxt == bst_px[rest_b]) begin
                l_ra <= bst_h[rest_b];
                state <= S_R4;
            end else search(rest_b, tk_pxt, S_R3);
        end
    endtask

    // S_CHECK (S_CAPN), a NEW that passed: ACK; the taker; on to FOK or matching
    task accept_new;
        begin
            emit(EV_ACK, R_NONE, m_id, 64'd0, is_mkt ? PRICE_NONE : m_px, m_qty[31:0],
                 m_qty[31:0], m_acct, side_sel);
            tk_rep <= 1'b0;
            tk_id <= m_id;
            tk_acct <= m_acct;
            tk_side <= side_sel;
            tk_has_lim <= has_lim_c;
            tk_lim <= lim_c;
            tk_pxt <= q_t;
            tk_pxu <= is_mkt ? PRICE_NONE : m_px;
            tk_lvs <= m_qty[31:0];
            tk_rest <= !is_mkt && m_rests;
            tk_post <= (m_tif == TIF_POST);
            tk_first <= 1'b1;
            tk_end <= (m_tif == TIF_POST && cross_c) ? E_POST : E_NOCROSS;
            if (m_tif == TIF_FOK) state <= S_FK0;
            else if (cross_c && m_tif == TIF_POST) state <= S_END;
            else if (cross_c) begin         // the other side's best level is the first maker's
                l_ra <= bst_h[opp_c];
                mk_h <= bst_h[opp_c];
                mk_pxt <= bst_px[opp_c];
                state <= S_M2;
            end
            else state <= (!is_mkt && m_rests) ? S_R0 : S_END;
        end
    endtask

    // S_CHECK, a CANCEL that passed: CANCELED USER, out of its level, out of the id table
    task accept_cancel;
        begin
            emit(EV_CANCELED, R_USER, m_id, 64'd0, {11'd0, t_pxu}, t_lvs, 32'd0, t_acct, t_side);
            l_ra <= t_lvl;
            u_free <= 1'b1;
            state <= S_U1;
        end
    endtask

    // S_CHECK, a REPLACE that passed: REPLACED; it keeps its place (same price, no more
    // quantity), or leaves its level and trades as a taker from its own slot
    task accept_replace;
        begin
            emit(EV_REPLACED, R_NONE, m_id, 64'd0, m_px, m_qty[31:0], m_qty[31:0], t_acct, t_side);
            if (!rep_moves && m_qty[31:0] <= t_lvs) begin
                l_ra <= t_lvl;
                state <= S_KEEP0;
            end else begin
                tk_rep <= 1'b1;
                tk_id <= m_id;
                tk_acct <= t_acct;
                tk_side <= t_side;
                tk_has_lim <= 1'b1;
                tk_lim <= {21'd0, q_t};
                tk_pxt <= q_t;
                tk_pxu <= m_px;
                tk_lvs <= m_qty[31:0];
                tk_rest <= 1'b1;
                tk_post <= t_post;
                tk_first <= 1'b1;
                // the other side's best is what it was: the cross is known now (S_M0 again
                // decides POST_ONLY at the first cross)
                l_ra <= t_lvl;
                u_free <= 1'b0;
                ret <= cross_c ? S_M0 : S_R0;
                state <= S_U1;
            end
        end
    endtask

    // ------------------------------------------------------------------ the state machine
    always @(posedge clk) begin
        if (rst) begin
            state <= h_dirty ? S_CLR : S_IDLE;
            clr_i <= {HW{1'b0}};
            out_valid <= 1'b0;
            seq <= 64'd1;
            rest_cnt <= {CW{1'b0}};
            o_top <= {CW{1'b0}};
            o_unused <= {CW{1'b0}};
            l_top <= {LCW{1'b0}};
            o_top_m1 <= {IW{1'b1}};
            l_top_m1 <= {LHW{1'b1}};
            l_unused <= {LCW{1'b0}};
            for (i = 0; i < NBK; i = i + 1) lad_n[i] <= {KW{1'b0}};
            stale <= {NBK{1'b0}};
            for (i = 0; i < NSYM; i = i + 1) r_ref[i] <= c_ref0[i];
        end else begin
            if (out_valid && out_ready) out_valid <= 1'b0;

            case (state)
            // after a reset that follows traffic: every hash bucket empty, one a cycle
            S_CLR: begin
                h_head[clr_i] <= NIL;
                clr_i <= clr_i + 1'b1;
                if (clr_i == {HW{1'b1}}) begin
                    h_dirty <= 1'b0;
                    state <= S_IDLE;
                end
            end

            S_IDLE: if (in_valid) begin
                m_id   <= in_id;
                m_mseq <= in_mseq;
                m_acct <= in_acct;
                m_sym  <= in_sym;
                m_px   <= in_px;
                m_qty  <= in_qty;
                m_act  <= in_act;
                m_side <= in_side;
                m_type <= in_type;
                m_tif  <= in_tif;
                if (in_act == ACTION_NEW && in_sym_ok) cur_sym <= in_sym[SW-1:0];
                found <= 1'b0;
                h_ra <= bucket(in_id);
                state <= S_LOOK0;
            end

            // ---- the id: walk its bucket's chain
            S_LOOK0: begin
                if (q_hhead == NIL) state <= S_CHECK;
                else begin
                    o_ra <= q_hhead[IW-1:0];
                    state <= S_LOOK1;
                end
            end

            S_LOOK1: begin
                if (q_oid == m_id) begin
                    found <= 1'b1;
                    t <= o_ra;
                    t_acct <= q_oacct;
                    t_lvs <= q_olvs;
                    t_pxu <= q_opxu;
                    t_lvl <= q_olvl;
                    t_prev <= q_oprev;
                    t_hprev <= q_ohprev;
                    t_hnext <= q_ohnext;
                    t_next <= q_onext;
                    t_side <= q_oside;
                    t_post <= q_opost;
                    if (m_act == ACTION_CANCEL || m_act == ACTION_REPLACE) cur_sym <= q_osym;
                    state <= S_CHECK;
                end else if (q_ohnext == NIL) state <= S_CHECK;
                else o_ra <= q_ohnext[IW-1:0];
            end

            // ---- every rule in the rulebook's order; CAPACITY of a level needs a walk
            S_CHECK: if (ev_free) begin
                state <= S_DONE;   // a REJECT ends the message; what accepts goes on
                if (m_new && fields_ok) begin
                    if (new_why != R_NONE) reject(new_why);
                    else if (!is_mkt && m_rests && own_full) search(own_b, q_t, S_CAPN);
                    else accept_new;
                end else if (m_can) begin
                    if (can_why != R_NONE) reject(can_why);
                    else accept_cancel;
                end else if (m_rep) begin
                    if (rep_why != R_NONE) reject(rep_why);
                    else if (rep_moves && own_full) search(own_b, q_t, S_CAPR);
                    else accept_replace;
                end else reject(R_MALFORMED);
            end

            S_CAPN: if (ev_free) begin
                state <= S_DONE;   // a REJECT ends the message; what accepts goes on
                if (!sr_found) reject(R_CAPACITY);
                else accept_new;
            end

            S_CAPR: if (ev_free) begin
                state <= S_DONE;   // a REJECT ends the message; what accepts goes on
                if (!sr_found) reject(R_CAPACITY);
                else accept_replace;
            end

            S_KEEP0: begin                // l_ra = t_lvl
                o_lvs[t] <= m_qty[31:0];
                l_qty[t_lvl] <= q_lqty - {{IW{1'b0}}, t_lvs - m_qty[31:0]};
                if (t_lvl == bst_h[t_b]) bst_q[t_b] <= q_lqty - {{IW{1'b0}}, t_lvs - m_qty[31:0]};
                state <= after_book;
            end

            // ---- FOK: what trades within the limit before the taker's own first order
            S_FK0: begin
                fk_tot <= 64'd0;
                if (opp_n == {KW{1'b0}}) state <= S_FKD;
                else begin
                    fk_k <= opp_n - 1'b1;
                    lad_ra <= lad_at(opp_b, opp_n - 1'b1);
                    state <= S_FK1;
                end
            end

            S_FK1: begin
                if (!lad_cross) state <= S_FKD;
                else begin
                    l_ra <= q_ladh;
                    state <= S_FK2;
                end
            end

            S_FK2: begin
                o_ra <= q_lhead;
                state <= S_FK3;
            end

            S_FK3: begin
                if (q_oacct == tk_acct) state <= S_FKD;
                else begin
                    fk_tot <= fk_sum;
                    if (fk_sum >= {32'd0, tk_lvs}) state <= S_FKD;
                    else if (q_onext != NIL) o_ra <= q_onext[IW-1:0];
                    else if (fk_k == {KW{1'b0}}) state <= S_FKD;
                    else begin
                        fk_k <= fk_k - 1'b1;
                        lad_ra <= lad_at(opp_b, fk_k - 1'b1);
                        state <= S_FK1;
                    end
                end
            end

            S_FKD: if (ev_free) begin
                if (fk_tot < {32'd0, tk_lvs}) begin
                    cancel_taker(R_FOK);
                    state <= S_DONE;
                end else state <= S_M0;
            end

            // ---- matching: the taker against the best order of the other side. The other
            // side's best-level registers are current here (stale bits are clear between
            // messages, and what a REPLACE or a FOK did before matching touched only its own
            // side), so its first level needs no ladder read; the next level is read ahead
            // (S_M2: its ladder entry, S_M3: the level) while the fills of this one go out.
            S_M0: begin                   // a REPLACE that moves, a FOK that can fill
                if (opp_n == {KW{1'b0}} || !bst_cross) begin
                    tk_end <= E_NOCROSS;
                    state <= tk_rest ? S_R0 : S_END;
                end else if (tk_post && tk_first) begin
                    tk_end <= E_POST;
                    state <= S_END;
                end else begin
                    l_ra <= bst_h[opp_b];
                    mk_h <= bst_h[opp_b];
                    mk_pxt <= bst_px[opp_b];
                    state <= S_M2;
                end
            end

            S_M2: begin                   // l_ra = mk_h: the maker's level, the best
                o_ra <= q_lhead;
                mk_lpxu <= q_lpxu;
                mk_lqty <= q_lqty;
                lad_ra <= lad_at(opp_b, opp_n - K2);   // the next level's entry (if opp_more)
                state <= S_M3;
            end

            S_M3: if (ev_free) begin     // the taker's half of a fill
                tk_first <= 1'b0;
                l_ra <= q_ladh;           // the next level, read ahead
                if (q_oacct == tk_acct) begin
                    tk_end <= E_SELF;
                    state <= S_END;
                end else begin
                    emit(EV_FILL, R_TAKER, tk_id, q_oid, {11'd0, mk_lpxu}, fill_q, tk_lvs - fill_q,
                         tk_acct, tk_side);
                    o_lvs[o_ra] <= q_olvs - fill_q;
                    l_qty[mk_h] <= mk_lqty - {{IW{1'b0}}, fill_q};
                    mk_lqty <= mk_lqty - {{IW{1'b0}}, fill_q};
                    bst_q[opp_b] <= mk_lqty - {{IW{1'b0}}, fill_q};
                    r_ref[cur_sym] <= mk_pxt;
                    tk_lvs <= tk_lvs - fill_q;
                    fq <= fill_q;
                    mk_o <= o_ra;
                    mk_id <= q_oid;
                    mk_acct <= q_oacct;
                    mk_left <= q_olvs - fill_q;
                    mk_next <= q_onext;
                    mk_hprev <= q_ohprev;
                    mk_hnext <= q_ohnext;
                    state <= S_M4;
                end
            end

            S_M4: if (ev_free) begin     // the maker's half; a maker filled leaves the book
                emit(EV_FILL, R_MAKER, mk_id, tk_id, {11'd0, mk_lpxu}, fq, mk_left, mk_acct, !tk_side);
                if (mk_left == 32'd0) begin
                    if (mk_next == NIL) begin          // its level empties: the best, at the top
                        lad_n[opp_b] <= opp_n - 1'b1;
                        free_level(mk_h);
                        // the next level, read ahead, is the new best: the top of book stays
                        // current without a refresh (S_BR*)
                        if (opp_more) begin
                            bst_px[opp_b] <= q_ladpx;
                            bst_h[opp_b] <= q_ladh;
                            bst_pxu[opp_b] <= q_lpxu;
                            bst_q[opp_b] <= q_lqty;
                        end
                    end else begin
                        l_head[mk_h] <= mk_next[IW-1:0];
                        o_prev[mk_next[IW-1:0]] <= NIL;
                    end
                    free_order(mk_o, mk_id, mk_hprev, mk_hnext);
                end
                // the taker has quantity left only when this maker is filled
                if (tk_lvs == 32'd0) state <= tk_rep ? S_FT0 : after_book;
                else if (mk_next != NIL) begin
                    o_ra <= mk_next[IW-1:0];   // the next order of the same level: 2 cycles a fill
                    state <= S_M3;
                end else if (!opp_more || !lad_cross) begin
                    tk_end <= E_NOCROSS;
                    state <= tk_rest ? S_R0 : S_END;
                end else begin            // the next level (read ahead): 2 cycles a fill too
                    o_ra <= q_lhead;
                    mk_h <= q_ladh;
                    mk_pxt <= q_ladpx;
                    mk_lpxu <= q_lpxu;
                    mk_lqty <= q_lqty;
                    lad_ra <= lad_at(opp_b, opp_n - K3);
                    state <= S_M3;
                end
            end

            // ---- the end of a match: cancel the rest, or rest it; a REPLACE that does not rest
            // frees its slot
            S_END: if (ev_free) begin
                case (tk_end)
                E_SELF: begin
                    cancel_taker(R_SELF_TRADE);
                    state <= tk_rep ? S_FT0 : after_book;
                end
                E_POST: begin
                    cancel_taker(R_POST_ONLY);
                    state <= tk_rep ? S_FT0 : after_book;
                end
                default: begin            // no cross left: a taker that rests went to S_R0
                    cancel_taker(R_IOC);
                    state <= after_book;
                end
                endcase
            end

            // ---- rest: a NEW takes a free slot and joins the id table; then its level's back
            S_R0: begin
                if (!tk_rep) begin
                    rs_o <= o_alloc;
                    if (o_top != {CW{1'b0}}) begin
                        o_top <= o_top - 1'b1;
                        o_top_m1 <= o_top_m1 - 1'b1;
                    end
                    else o_unused <= o_unused + 1'b1;
                    rest_cnt <= rest_cnt + 1'b1;
                    o_id[o_alloc] <= m_id;
                    o_acct[o_alloc] <= m_acct;
                    o_sym[o_alloc] <= cur_sym;
                    o_side[o_alloc] <= tk_side;
                    o_post[o_alloc] <= tk_post;
                    o_lvs[o_alloc] <= tk_lvs;
                    o_pxu[o_alloc] <= tk_pxu[52:0];
                    o_next[o_alloc] <= NIL;
                    // first in its id's chain: h_ra still holds the id's bucket from S_IDLE
                    o_hnext[o_alloc] <= q_hhead;
                    o_hprev[o_alloc] <= NIL;
                    h_head[h_ra] <= ptr(o_alloc);
                    h_dirty <= 1'b1;
                    if (q_hhead != NIL) begin
                        o_ra <= q_hhead[IW-1:0];
                        state <= S_R1B;
                    end else place;
                end else begin
                    rs_o <= t;
                    o_lvs[t] <= tk_lvs;
                    o_pxu[t] <= tk_pxu[52:0];
                    o_next[t] <= NIL;
                    place;
                end
            end

            S_R1B: begin                  // the chain's old first slot points back at the new one
                o_hprev[o_ra] <= ptr(rs_o);
                place;
            end

            S_R3: begin
                if (sr_found) begin
                    l_ra <= sr_h;
                    state <= S_R4;
                end else begin
                    ret <= after_book;
                    state <= S_I0;
                end
            end

            S_R4: begin                   // l_ra = its level: at the back of the FIFO
                o_next[q_ltail] <= ptr(rs_o);
                o_prev[rs_o] <= ptr(q_ltail);
                o_lvl[rs_o] <= l_ra;
                l_tail[l_ra] <= rs_o;
                l_qty[l_ra] <= q_lqty + {{IW{1'b0}}, tk_lvs};
                if (l_ra == bst_h[{cur_sym, tk_side}]) bst_q[{cur_sym, tk_side}] <= q_lqty + {{IW{1'b0}}, tk_lvs};
                state <= after_book;
            end

            // ---- slot t leaves the id table and is freed (its chain links read again: fills
            // of this message may have unlinked its neighbours)
            S_FT0: begin
                o_ra <= t;
                state <= S_FT1;
            end

            S_FT1: begin
                free_order(t, m_id, q_ohprev, q_ohnext);
                state <= after_book;
            end

            // ---- slot t leaves its level (l_ra = its level; the level leaves its ladder when it
            // empties); a CANCEL's slot also leaves the id table and the pool, and the message
            // ends; a REPLACE's goes on to ret
            S_U1: begin
                if (t_prev == NIL) l_head[t_lvl] <= t_next[IW-1:0];
                else o_next[t_prev[IW-1:0]] <= t_next;
                if (t_next == NIL) l_tail[t_lvl] <= t_prev[IW-1:0];
                else o_prev[t_next[IW-1:0]] <= t_prev;
                l_qty[t_lvl] <= q_lqty - {{IW{1'b0}}, t_lvs};
                if (t_lvl == bst_h[t_b]) bst_q[t_b] <= q_lqty - {{IW{1'b0}}, t_lvs};
                if (u_free) begin          // a CANCEL: out of the id table, the slot freed
                    free_order(t, m_id, t_hprev, t_hnext);
                end
                if (t_prev == NIL && t_next == NIL && t_lvl == bst_h[t_b] && !stale[t_b]) begin
                    // its level empties and was the best, the ladder's last entry: pop it
                    lad_n[t_b] <= lad_n[t_b] - 1'b1;
                    stale[t_b] <= 1'b1;
                    free_level(t_lvl);
                    state <= u_free ? S_BR0 : ret;
                end else if (t_prev == NIL && t_next == NIL) begin
                    sr_b <= t_b;
                    rm_h <= t_lvl;
                    state <= S_RM0;
                end else state <= u_free ? after_book : ret;
            end

            // remove level rm_h from ladder sr_b: find it from the best end, shift the better
            // ones down, free the handle
            S_RM0: begin
                rm_k <= lad_n[sr_b] - 1'b1;
                lad_ra <= lad_at(sr_b, lad_n[sr_b] - 1'b1);
                state <= S_RM1;
            end

            S_RM1: begin
                if (q_ladh == rm_h) begin
                    if (rm_k + 1'b1 == lad_n[sr_b]) begin   // the best level goes
                        lad_n[sr_b] <= lad_n[sr_b] - 1'b1;
                        stale[sr_b] <= 1'b1;
                        free_level(rm_h);
                        state <= u_free ? S_BR0 : ret;
                    end else begin
                        lad_ra <= lad_at(sr_b, rm_k + 1'b1);
                        state <= S_RM2;
                    end
                end else begin
                    rm_k <= rm_k - 1'b1;
                    lad_ra <= lad_at(sr_b, rm_k - 1'b1);
                end
            end

            S_RM2: begin                  // lad_ra = rm_k + 1: move it down to rm_k
                lad_px[lad_at(sr_b, rm_k)] <= q_ladpx;
                lad_h[lad_at(sr_b, rm_k)] <= q_ladh;
                if (rm_k + K2 == lad_n[sr_b]) begin
                    lad_n[sr_b] <= lad_n[sr_b] - 1'b1;
                    free_level(rm_h);
                    state <= u_free ? after_book : ret;
                end else begin
                    rm_k <= rm_k + 1'b1;
                    lad_ra <= lad_at(sr_b, rm_k + K2);
                end
            end

            // search sr_px in ladder sr_b from the best end: sr_found and sr_h, else sr_pos,
            // where a level at sr_px would go; -> ret
            S_F0: begin
                sr_found <= 1'b0;
                if (lad_n[sr_b] == {KW{1'b0}}) begin
                    sr_pos <= {KW{1'b0}};
                    state <= ret;
                end else begin
                    sr_k <= lad_n[sr_b] - 1'b1;
                    lad_ra <= lad_at(sr_b, lad_n[sr_b] - 1'b1);
                    state <= S_F1;
                end
            end

            S_F1: begin
                if (sr_better) begin
                    if (sr_k == {KW{1'b0}}) begin
                        sr_pos <= {KW{1'b0}};
                        state <= ret;
                    end else begin
                        sr_k <= sr_k - 1'b1;
                        lad_ra <= lad_at(sr_b, sr_k - 1'b1);
                    end
                end else if (q_ladpx == sr_px) begin
                    sr_found <= 1'b1;
                    sr_h <= q_ladh;
                    state <= ret;
                end else begin
                    sr_pos <= sr_k + 1'b1;
                    state <= ret;
                end
            end

            // insert a level for rs_o at sr_pos of ladder sr_b: the better ones move up; -> ret
            S_I0: begin
                if (sr_pos == lad_n[sr_b]) state <= S_I2;
                else begin
                    sr_k <= lad_n[sr_b] - 1'b1;
                    lad_ra <= lad_at(sr_b, lad_n[sr_b] - 1'b1);
                    state <= S_I1;
                end
            end

            S_I1: begin                   // lad_ra = sr_k: move it up to sr_k + 1
                lad_px[lad_at(sr_b, sr_k + 1'b1)] <= q_ladpx;
                lad_h[lad_at(sr_b, sr_k + 1'b1)] <= q_ladh;
                if (sr_k == sr_pos) state <= S_I2;
                else begin
                    sr_k <= sr_k - 1'b1;
                    lad_ra <= lad_at(sr_b, sr_k - 1'b1);
                end
            end

            S_I2: begin
                lad_px[lad_at(sr_b, sr_pos)] <= sr_px;
                lad_h[lad_at(sr_b, sr_pos)] <= l_alloc;
                lad_n[sr_b] <= lad_n[sr_b] + 1'b1;
                if (l_top != {LCW{1'b0}}) begin
                    l_top <= l_top - 1'b1;
                    l_top_m1 <= l_top_m1 - 1'b1;
                end
                else l_unused <= l_unused + 1'b1;
                l_pxu[l_alloc] <= tk_pxu[52:0];
                l_qty[l_alloc] <= {{IW{1'b0}}, tk_lvs};
                l_head[l_alloc] <= rs_o;
                l_tail[l_alloc] <= rs_o;
                o_lvl[rs_o] <= l_alloc;
                o_prev[rs_o] <= NIL;
                if (sr_pos == lad_n[sr_b]) begin         // the new best level
                    bst_px[sr_b] <= sr_px;
                    bst_h[sr_b] <= l_alloc;
                    bst_pxu[sr_b] <= tk_pxu[52:0];
                    bst_q[sr_b] <= {{IW{1'b0}}, tk_lvs};
                    stale[sr_b] <= 1'b0;
                end
                state <= ret;
            end

            // ---- a best level taken away by this message: read the new one (its ladder's last
            // entry, then the level); the top of book is these registers
            S_BR0: begin
                br_side <= !stale[{cur_sym, 1'b0}];
                if (lad_n[{cur_sym, !stale[{cur_sym, 1'b0}]}] == {KW{1'b0}}) begin
                    stale[{cur_sym, !stale[{cur_sym, 1'b0}]}] <= 1'b0;
                    state <= (stale[{cur_sym, 1'b0}] && stale[{cur_sym, 1'b1}]) ? S_BR0 : S_IDLE;
                end else begin
                    lad_ra <= lad_at({cur_sym, !stale[{cur_sym, 1'b0}]},
                                     lad_n[{cur_sym, !stale[{cur_sym, 1'b0}]}] - 1'b1);
                    state <= S_BR1;
                end
            end

            S_BR1: begin
                l_ra <= q_ladh;
                bst_px[{cur_sym, br_side}] <= q_ladpx;
                bst_h[{cur_sym, br_side}] <= q_ladh;
                state <= S_BR2;
            end

            S_BR2: begin
                bst_pxu[{cur_sym, br_side}] <= q_lpxu;
                bst_q[{cur_sym, br_side}] <= q_lqty;
                stale[{cur_sym, br_side}] <= 1'b0;
                state <= stale[{cur_sym, !br_side}] ? S_BR0 : S_IDLE;
            end

            default: state <= S_IDLE;
            endcase
        end
        // the price configuration words, last: a write of the reference price wins over a trade's
        take_price_config;
    end
endmodule

`default_nettype wire
