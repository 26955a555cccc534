// tickbook: the Verilog order book, area build (fits an iCE40 HX8K in small configurations).
//
// Same ports, same events, same rulebook as tickbook_book.v (the fast build); what differs is
// how the book gets there (docs/hardware.md, "The area build"):
//   - prices are kept and compared in 1e-8 units only (no tick prices in the slots): orders of
//     one symbol compare the same in units as in ticks, and the collar and the MARKET protection
//     price are exact in units (see below);
//   - the tick check is a serial restoring division (p mod tick), DB bits a cycle, for priced
//     messages only (NEW LIMIT, REPLACE);
//   - the collar of each symbol is held as two bounds lo/hi around the reference price and
//     recomputed serially (shift-add multiply ref * band_bps, division by 10000 KB bits a cycle,
//     the bounds in a cycle of their own)
//     after reset, a configuration write, or a message whose fills moved the reference;
//   - time priority is an age matrix (which slot joined its level first) instead of 32-bit stamps
//     (exact, no wrap-around); the price order between slots is a registered matrix too, set
//     when a slot takes a price, from one comparator per slot (slot price against the message's
//     price or the taker's limit), which also gives the level test and the taker's limit test;
//   - the sums of leaves (FOK availability, size at the best bid/ask) are serial, one slot a
//     cycle: FOK2 scans the slots, and every message ends with a scan (S_TOB) that refreshes
//     the top of book of its symbol; the top of book is valid whenever busy is low;
//   - only the record fields the book uses are registered (flags where a check is all that is
//     needed), the event is held as its fields, and the slot reads of a state go through one
//     shared read port.
//
// What the fast build does the same way is in tickbook_book_shared.vh and tickbook_book_steps.vh;
// the record layout is tickbook_records.vh, generated from engine/records.py.
//
// Exactness of the collar in units: with p = q * tick and ref_u = ref_t * tick (tick > 0), for
// an integer d, d > floor(X / 10000) <=> 10000 * d > X; hence |q - ref_t| > floor(ref_t * bps /
// 10000) <=> |p - ref_u| > floor(ref_u * bps / 10000), and the same for the MARKET protection
// price (q <= ref_t + band_t <=> p <= ref_u + band_u; q >= ref_t - band_t <=> p >= ref_u - band_u).
`timescale 1ns / 1ps
`default_nettype none

module tickbook_book_area #(
    // the fast build's parameters; the defaults are the configuration `make synth` fits on an
    // iCE40 HX8K
    parameter integer NSYM = 1,
    parameter integer NORD = 4,
    parameter integer NLVL = 2
) (
`include "tickbook_book_ports.vh"
);
`include "tickbook_book_shared.vh"

    localparam integer QW = 32 + CW;               // sums of leaves
    localparam integer NN = NORD * NORD;
    // serial tick check: DB bits a cycle over RW = DB * DSTEPS >= 53 bits of the price
    localparam integer DB = 1;
    localparam integer DSTEPS = (53 + DB - 1) / DB;
    localparam integer RW = DB * DSTEPS;
    // collar: 32 multiply steps, then a division by 10000 over PW bits, KB bits a cycle
    localparam integer KB = 4;
    localparam integer KSTEPS = (86 + KB - 1) / KB;
    localparam integer PW = KB * KSTEPS;

    localparam [13:0] TENK = 14'd10000;

    localparam [3:0] S_IDLE = 4'd0, S_CHECK = 4'd1, S_MATCH = 4'd2, S_FILL2 = 4'd3,
                     S_FOK1 = 4'd4, S_FOK2 = 4'd5, S_PREP = 4'd6, S_BAND = 4'd7, S_TOB = 4'd8;
    localparam [3:0] S_DONE = S_TOB;   // after a message's last event: refresh its top of book
    localparam integer SCL = NORD - 1;
    localparam [IW-1:0] SC_LAST = SCL[IW-1:0];

    // ------------------------------------------------------------------ configuration
    reg [52:0]  c_ref0  [0:NSYM-1];   // configured reference price, units
    reg [52:0]  r_ref   [0:NSYM-1];   // current reference price, units
    // collar of the current reference, band = floor(ref * bps / 10000): hi = min(ref + band,
    // 2**53 - 1), lo = max(ref - band, 1); p is outside iff p < lo or p > hi (p >= 1), and they
    // are the MARKET protection prices (SELL lo, BUY hi). Recomputed when ref or bps changes.
    reg [52:0]  r_lo    [0:NSYM-1];
    reg [52:0]  r_hi    [0:NSYM-1];

    // ------------------------------------------------------------------ order slots
    reg [NN-1:0]   age;               // age[i*NORD+j]: slot i joined its level before slot j
    // price order between slots, set when a slot takes a price (i < j used): slot i's price
    // >, == slot j's
    /* verilator lint_off UNUSEDSIGNAL */
    reg [NN-1:0]   m_gt, m_eq;
    /* verilator lint_on UNUSEDSIGNAL */

    // ------------------------------------------------------------------ message being worked on
    reg [3:0]   state;
    reg [RW-1:0] m_px;                // rotates through the divider, back in place at CHECK
    reg [31:0]  m_qty;
    reg         m_new, m_can, m_rep, m_fok_ok, m_mkt, m_sell, m_fok, m_post, m_rests;
    reg         m_pnone, m_prng, m_qbad, m_qmax, m_div, m_ontick;
    reg [7:0]   malformed_why;        // no NEW, CANCEL, REPLACE: MALFORMED or the risk stage's
    reg [52:0]  d_rem;                // p mod tick, being computed
    reg [5:0]   d_cnt;
    // taker (id and account are the message's: a REPLACE passed NOT_OWNER)
    reg         tk_rep, tk_side, tk_has_lim, tk_rest, tk_post, tk_first, tk_mkt;
    reg [31:0]  tk_lvs;
    reg [52:0]  tk_lim;               // units; MARKET: protection price at acceptance
    reg [IW-1:0] fm_i;                // maker of the fill being reported
    reg         sb_f;                 // FOK: own-account order found, and its slot
    reg [IW-1:0] sb_i;
    // collar recomputation, one symbol at a time (b_cur)
    reg [NSYM-1:0] b_dirty;
    reg [SW-1:0] b_cur;
    // serial scans (FOK2 availability, top of book at the end of a message)
    reg [IW-1:0] sc;
    reg         chg;                  // the message changed the book (else S_TOB is skipped)
    reg [QW-1:0] f_acc;
    reg         f_done;               // FOK2: all slots summed into f_acc
    reg         b_div;
    reg         b_fin;                // the quotient is in b_p: the bounds, then idle
    reg [6:0]   b_cnt;
    reg [PW-1:0] b_p;
    reg [13:0]  b_rem;
    // event being presented
    reg [63:0]  ev_seq, ev_mseq, ev_oid, ev_cid;
    reg         ev_pnone;
    reg [52:0]  ev_px;
    reg [31:0]  ev_qty, ev_lvs, ev_acct;
    reg [15:0]  ev_sym;
    reg [EV_BITS-1:0]   ev_kind;     // the enums in as few bits as hold their values
    reg [SIDE_BITS-1:0] ev_side;
    reg [R_BITS-1:0]    ev_reason;
    // top of book
    reg         tob_bf [0:NSYM-1];
    reg         tob_af [0:NSYM-1];
    reg [52:0]  tob_bpx [0:NSYM-1];
    reg [52:0]  tob_apx [0:NSYM-1];
    reg [QW-1:0] tob_bqt [0:NSYM-1];
    reg [QW-1:0] tob_aqt [0:NSYM-1];

    integer r1, p0, p1, q0, q1, e0, e1, n0, l0, f0, f1, x0, j, k, ai, aj, bi;

    wire   b_any = |b_dirty;
    assign in_ready = (state == S_IDLE) && !b_any && !rst;
    assign busy = (state != S_IDLE) || b_any;

    assign out_data = event_record(ev_seq, ev_mseq, ev_oid, ev_cid, {ev_pnone, 10'd0, ev_px}, ev_qty,
                                   ev_lvs, ev_acct, ev_sym, {{(8-EV_BITS){1'b0}}, ev_kind},
                                   {{(8-SIDE_BITS){1'b0}}, ev_side}, {{(8-R_BITS){1'b0}}, ev_reason});

    genvar gs;
    generate
        for (gs = 0; gs < NSYM; gs = gs + 1) begin : g_tob
            assign tob_bid_px[64*gs +: 64]  = tob_bf[gs] ? {11'd0, tob_bpx[gs]} : PRICE_NONE;
            assign tob_bid_qty[64*gs +: 64] = {{(64-QW){1'b0}}, tob_bqt[gs]};
            assign tob_ask_px[64*gs +: 64]  = tob_af[gs] ? {11'd0, tob_apx[gs]} : PRICE_NONE;
            assign tob_ask_qty[64*gs +: 64] = {{(64-QW){1'b0}}, tob_aqt[gs]};
        end
    endgenerate

    // ------------------------------------------------------------------ pairwise price matrix
    reg [NN-1:0] pgt, peq;            // [i*NORD+j]: price of slot i >, == price of slot j
    always @* begin
        pgt = {NN{1'b0}};
        peq = {NN{1'b0}};
        for (p0 = 0; p0 < NORD; p0 = p0 + 1) begin
            peq[p0*NORD+p0] = 1'b1;
            for (p1 = p0 + 1; p1 < NORD; p1 = p1 + 1) begin
                pgt[p0*NORD+p1] = m_gt[p0*NORD+p1];
                peq[p0*NORD+p1] = m_eq[p0*NORD+p1];
            end
        end
        for (p0 = 0; p0 < NORD; p0 = p0 + 1)
            for (p1 = 0; p1 < p0; p1 = p1 + 1) begin
                peq[p0*NORD+p1] = peq[p1*NORD+p0];
                pgt[p0*NORD+p1] = !pgt[p1*NORD+p0] && !peq[p1*NORD+p0];
            end
    end
    // priority (a before b) among bids and among asks; ties on price by age
    reg [NN-1:0] bid_bt, ask_bt;
    always @* begin
        for (q0 = 0; q0 < NORD; q0 = q0 + 1)
            for (q1 = 0; q1 < NORD; q1 = q1 + 1) begin
                bid_bt[q0*NORD+q1] = (q0 != q1) && (pgt[q0*NORD+q1] || (peq[q0*NORD+q1] && age[q0*NORD+q1]));
                ask_bt[q0*NORD+q1] = (q0 != q1) && (pgt[q1*NORD+q0] || (peq[q0*NORD+q1] && age[q0*NORD+q1]));
            end
    end

    // ------------------------------------------------------------------ book of cur_sym
    reg [NORD-1:0] elig_b, elig_a, best_b, best_a, at_b, at_a;
    always @* begin
        for (e0 = 0; e0 < NORD; e0 = e0 + 1) begin
            elig_b[e0] = o_valid[e0] && o_sym[e0] == cur_sym && !o_side[e0];
            elig_a[e0] = o_valid[e0] && o_sym[e0] == cur_sym && o_side[e0];
        end
        for (e0 = 0; e0 < NORD; e0 = e0 + 1) begin
            best_b[e0] = elig_b[e0];
            best_a[e0] = elig_a[e0];
            for (e1 = 0; e1 < NORD; e1 = e1 + 1)
                if (e1 != e0) begin
                    if (elig_b[e1] && !bid_bt[e0*NORD+e1]) best_b[e0] = 1'b0;
                    if (elig_a[e1] && !ask_bt[e0*NORD+e1]) best_a[e0] = 1'b0;
                end
        end
        for (e0 = 0; e0 < NORD; e0 = e0 + 1) begin
            at_b[e0] = 1'b0;
            at_a[e0] = 1'b0;
            for (e1 = 0; e1 < NORD; e1 = e1 + 1) begin
                if (best_b[e1] && peq[e0*NORD+e1]) at_b[e0] = elig_b[e0];
                if (best_a[e1] && peq[e0*NORD+e1]) at_a[e0] = elig_a[e0];
            end
        end
    end
    wire bb_f = |elig_b;
    wire ba_f = |elig_a;
    reg [IW-1:0] bb_i, ba_i;
    always @* begin
        bb_i = {IW{1'b0}};
        ba_i = {IW{1'b0}};
        for (n0 = 0; n0 < NORD; n0 = n0 + 1) begin
            if (best_b[n0]) bb_i = bb_i | n0[IW-1:0];
            if (best_a[n0]) ba_i = ba_i | n0[IW-1:0];
        end
    end

    // ------------------------------------------------------------------ taker side tests
    wire [31:0]  t32 = {{(32-IW){1'b0}}, t};
    wire [31:0]  sb_i32 = {{(32-IW){1'b0}}, sb_i};
    wire         opp_f = tk_side ? bb_f : ba_f;
    wire [IW-1:0] opp_i = tk_side ? bb_i : ba_i;
    wire [NORD-1:0] best_o = tk_side ? best_b : best_a;
    wire [NORD-1:0] at_o = tk_side ? at_b : at_a;
    wire [NORD-1:0] elig_o = tk_side ? elig_b : elig_a;
    wire [NN-1:0]  opp_bt = tk_side ? bid_bt : ask_bt;
    wire         maker_alone = ((at_o & ~best_o) == {NORD{1'b0}});

    // every slot's price against tk_lim (the message's price for a LIMIT NEW or a REPLACE, from
    // S_PREP on): the taker's limit, the level test, the price order of a slot taking the price.
    // Registered (c_lt, c_eq: one cycle behind the slots and tk_lim): PREP lasts two cycles or
    // more, and no state reads the result for a slot whose price was written the cycle before
    // (a REPLACE's own slot is on the taker's side).
    reg [NORD-1:0] c_ltw, c_eqw, c_lt, c_eq, in_lim, acct_eq;
    always @* begin
        for (l0 = 0; l0 < NORD; l0 = l0 + 1) begin
            c_ltw[l0] = (o_pxu[l0] < tk_lim);
            c_eqw[l0] = (o_pxu[l0] == tk_lim);
            in_lim[l0] = !tk_has_lim || (tk_side ? !c_lt[l0] : (c_lt[l0] || c_eq[l0]));
            acct_eq[l0] = (o_acct[l0] == m_acct);
        end
    end
    wire cross_m = opp_f && in_lim[opp_i];
    wire self_hit = acct_eq[opp_i];

    // FOK: the taker's own first order within its limit (FOK1), what trades before it (FOK2)
    wire [NORD-1:0] own = elig_o & in_lim & acct_eq;
    reg [NORD-1:0] best_own, fk_take;
    reg [IW-1:0]   own_i;
    always @* begin
        own_i = {IW{1'b0}};
        for (f0 = 0; f0 < NORD; f0 = f0 + 1) begin
            best_own[f0] = own[f0];
            for (f1 = 0; f1 < NORD; f1 = f1 + 1)
                if (f1 != f0 && own[f1] && !opp_bt[f0*NORD+f1]) best_own[f0] = 1'b0;
            if (best_own[f0]) own_i = own_i | f0[IW-1:0];
        end
        for (f0 = 0; f0 < NORD; f0 = f0 + 1) begin
            fk_take[f0] = elig_o[f0] && in_lim[f0] && (!sb_f || opp_bt[f0*NORD+sb_i32]);
        end
    end

    always @(posedge clk) begin
        c_lt <= c_ltw;
        c_eq <= c_eqw;
    end

    // the slot read of the state: CHECK/PREP the target t, MATCH the maker, FILL2 the last maker,
    // FOK2/TOB the slot being scanned
    wire [IW-1:0] rd_i = (state == S_FILL2) ? fm_i : (state == S_MATCH) ? opp_i :
                         (state == S_FOK2 || state == S_TOB) ? sc : t;
    wire [63:0]  rd_id = o_id[rd_i];
    wire [31:0]  rd_acct = o_acct[rd_i];
    wire [52:0]  rd_px = o_pxu[rd_i];
    wire [31:0]  rd_lvs = o_lvs[rd_i];
    wire [QW-1:0] rd_lvq = {{(QW-32){1'b0}}, rd_lvs};
    wire [QW-1:0] sc0 = {QW{1'b0}};
    wire         sc_first = (sc == {IW{1'b0}});
    wire [QW-1:0] f_next = (sc_first ? sc0 : f_acc) + (fk_take[sc] ? rd_lvq : sc0);

    // ------------------------------------------------------------------ checks
    wire [52:0]  p53 = m_px[52:0];
    wire [52:0]  ref_u = r_ref[cur_sym];
    wire [52:0]  lo_u = r_lo[cur_sym];
    wire [52:0]  hi_u = r_hi[cur_sym];
    wire         bps_nz = (c_bps[cur_sym] != 32'd0);
    wire         fields_ok = m_fok_ok;
    wire         is_mkt = m_new && m_mkt;
    wire         bad_tif = is_mkt && m_rests;
    wire         out_band = bps_nz && (p53 < lo_u || p53 > hi_u);
    wire         side_sel = m_rep ? t_side : m_sell;

    reg          lvl_exists, t_others;
    always @* begin
        lvl_exists = 1'b0;
        t_others = 1'b0;
        for (x0 = 0; x0 < NORD; x0 = x0 + 1)
            if (o_valid[x0] && o_sym[x0] == cur_sym) begin
                if (o_side[x0] == side_sel && c_eq[x0]) lvl_exists = 1'b1;
                if (x0[IW-1:0] != t && o_side[x0] == o_side[t] && peq[x0*NORD+t32]) t_others = 1'b1;
            end
    end

    // ------------------------------------------------------------------ matching
    wire [31:0]  fq = (tk_lvs < rd_lvs) ? tk_lvs : rd_lvs;
    wire [31:0]  mk_left = rd_lvs - fq;
    wire [31:0]  tk_left = tk_lvs - fq;

`include "tickbook_book_steps.vh"

    wire          cap_rep = (p53 != rd_px) && !lvl_exists && lvl_full;
    wire [7:0]    new_why = new_reason(sym_known, m_hit, bad_tif, m_qbad, m_qmax,
                                       is_mkt ? !m_pnone : (!m_prng || !m_ontick),
                                       !is_mkt && out_band, 1'b0, 1'b0, 1'b0, !is_mkt && m_rests && cap_new);
    wire [7:0]    can_why = cancel_reason(m_hit, rd_acct == m_acct);
    wire [7:0]    rep_why = replace_reason(m_hit, rd_acct == m_acct, m_qbad, m_qmax,
                                           !m_prng || !m_ontick, out_band, 1'b0, 1'b0, cap_rep);

    // ------------------------------------------------------------------ serial arithmetic
    // tick check: DB restoring-division steps of p mod tick a cycle, MSB first
    reg [52:0] d_next;
    reg [53:0] d_sh;
    always @* begin
        d_next = d_rem;
        for (k = 0; k < DB; k = k + 1) begin
            d_sh = {d_next, m_px[RW-1-k]};
            if (d_sh >= {1'b0, c_tick[cur_sym]}) d_sh = d_sh - {1'b0, c_tick[cur_sym]};
            d_next = d_sh[52:0];
        end
    end
    // collar: b_p = ref * bps (32 shift-add steps, 54-bit adder), then b_p / 10000 (KB steps a cycle)
    reg [PW-1:0] b_pn;
    reg [13:0]   b_rn;
    reg [14:0]   b_sh;
    reg [54:0]   b_sum;
    always @* begin
        b_pn = b_p;
        b_rn = b_rem;
        b_sum = {1'b0, b_p[85:32]} + (b_p[0] ? {2'd0, b_ref} : 55'd0);
        b_sh = 15'd0;
        if (!b_div) begin
            b_pn = {PW{1'b0}};
            b_pn[85:0] = {b_sum, b_p[31:1]};
        end else begin
            for (bi = 0; bi < KB; bi = bi + 1) begin
                b_sh = {b_rn, b_pn[PW-1]};
                b_pn = {b_pn[PW-2:0], 1'b0};
                if (b_sh >= {1'b0, TENK}) begin
                    b_sh = b_sh - {1'b0, TENK};
                    b_pn[0] = 1'b1;
                end
                b_rn = b_sh[13:0];
            end
        end
    end
    // the bounds from band = b_p (the quotient, registered after the last step)
    wire [52:0] b_ref = r_ref[b_cur];
    wire        b_big = (b_p[PW-1:53] != {(PW-53){1'b0}});    // band >= 2**53
    wire [53:0] b_hsum = {1'b0, b_ref} + {1'b0, b_p[52:0]};
    wire [52:0] b_hi = (b_big || b_hsum[53]) ? {53{1'b1}} : b_hsum[52:0];
    wire [52:0] b_lo = (b_big || b_p[52:0] >= b_ref) ? 53'd1 : (b_ref - b_p[52:0]);
    reg  [SW-1:0] b_first;            // lowest symbol whose collar is to be recomputed
    always @* begin
        b_first = {SW{1'b0}};
        for (r1 = NSYM - 1; r1 >= 0; r1 = r1 - 1)
            if (b_dirty[r1]) b_first = r1[SW-1:0];
    end

    // ------------------------------------------------------------------ events
    // the event is held as its fields, the enums in EV_BITS, SIDE_BITS and R_BITS
    task emit;
        /* verilator lint_off UNUSEDSIGNAL */
        input [7:0]  k_kind, k_reason;
        /* verilator lint_on UNUSEDSIGNAL */
        input [63:0] k_oid, k_cid;
        input        k_pnone;
        input [52:0] k_px;
        input [31:0] k_qty, k_lvs, k_acct;
        input        k_sell;
        begin
            ev_seq <= ev_seq + 64'd1;
            ev_mseq <= m_mseq;
            ev_oid <= k_oid;
            ev_cid <= k_cid;
            ev_pnone <= k_pnone;
            ev_px <= k_pnone ? 53'd0 : k_px;
            ev_qty <= k_qty;
            ev_lvs <= k_lvs;
            ev_acct <= k_acct;
            ev_sym <= cur_sym16;
            ev_kind <= k_kind[EV_BITS-1:0];
            ev_side <= k_sell ? SIDE_SELL[SIDE_BITS-1:0] : SIDE_BUY[SIDE_BITS-1:0];
            ev_reason <= k_reason[R_BITS-1:0];
            out_valid <= 1'b1;
        end
    endtask

    task reject;
        input [7:0] k_reason;
        begin
            emit(EV_REJECT, k_reason, m_id, 64'd0, 1'b1, 53'd0, 32'd0, 32'd0, m_acct, 1'b0);
            ev_sym <= m_sym;
            ev_side <= {SIDE_BITS{1'b0}};
        end
    endtask

    // slot s goes to the back of its level: every other slot is older
    task stamp;
        input [IW-1:0] s;
        begin
            for (ai = 0; ai < NORD; ai = ai + 1)
                for (aj = 0; aj < NORD; aj = aj + 1)
                    if (ai != aj) begin
                        if (ai[IW-1:0] == s) age[ai*NORD+aj] <= 1'b0;
                        else if (aj[IW-1:0] == s) age[ai*NORD+aj] <= 1'b1;
                    end
        end
    endtask

    // slot s takes the price tk_lim: its order against every other slot
    task set_order;
        input [IW-1:0] s;
        begin
            for (ai = 0; ai < NORD; ai = ai + 1)
                for (aj = 0; aj < NORD; aj = aj + 1)
                    if (ai != aj) begin
                        if (ai[IW-1:0] == s) begin
                            m_gt[ai*NORD+aj] <= c_lt[aj];
                            m_eq[ai*NORD+aj] <= c_eq[aj];
                        end else if (aj[IW-1:0] == s) begin
                            m_gt[ai*NORD+aj] <= !c_lt[ai] && !c_eq[ai];
                            m_eq[ai*NORD+aj] <= c_eq[ai];
                        end
                    end
        end
    endtask

    task rest_new;
        input [31:0] k_lvs;
        begin
            rest_slot(m_post, k_lvs);
            stamp(free_i);
            set_order(free_i);
            chg <= 1'b1;
        end
    endtask

    task remove_t;
        input k_side;
        begin
            free_t(k_side);
            chg <= 1'b1;
        end
    endtask

    // the taker's events and what the shared steps leave to the build (the taker's id and
    // account are the message's: a REPLACE passed NOT_OWNER)
    task cancel_taker;
        input [7:0] k_reason;
        emit(EV_CANCELED, k_reason, m_id, 64'd0, tk_mkt, p53, tk_lvs, 32'd0, m_acct, tk_side);
    endtask

    task rest_taker;
        rest_new(tk_lvs);
    endtask

    task rest_message;
        rest_new(m_qty);
    endtask

    wire         cross_new = cross_m;   // the taker's limit is registered in S_PREP

    task fill_taker;
        begin
            emit(EV_FILL, R_TAKER, m_id, rd_id, 1'b0, rd_px, fq, tk_left, m_acct, tk_side);
            fm_i <= opp_i;
            chg <= 1'b1;
            tk_lvs <= tk_left;
            r_ref[cur_sym] <= rd_px;
            if (bps_nz && rd_px != ref_u) b_dirty[cur_sym] <= 1'b1;
        end
    endtask

    // S_CHECK, a NEW that passed every rule: ACK, and on to match, rest or FOK
    task accept_new;
        begin
            emit(EV_ACK, R_NONE, m_id, 64'd0, is_mkt, p53, m_qty, m_qty, m_acct, side_sel);
            tk_mkt <= is_mkt;
            new_taker;
        end
    endtask

    // S_CHECK, a CANCEL that passed: CANCELED USER, and slot t leaves
    task accept_cancel;
        begin
            emit(EV_CANCELED, R_USER, m_id, 64'd0, 1'b0, rd_px, rd_lvs, 32'd0, m_acct, t_side);
            remove_t(t_side);
        end
    endtask

    // S_CHECK, a REPLACE that passed: REPLACED; it keeps its place when its price stays and its
    // quantity does not grow, and trades as a taker when it crosses
    task accept_replace;
        begin
            emit(EV_REPLACED, R_NONE, m_id, 64'd0, 1'b0, p53, m_qty, m_qty, m_acct, t_side);
            o_lvs[t] <= m_qty;
            chg <= 1'b1;
            if (!(p53 == rd_px && m_qty <= rd_lvs)) begin
                o_pxu[t] <= p53;
                stamp(t);
                set_order(t);
                if (p53 != rd_px)
                    move_t_level;
                if (cross_m) begin
                    tk_mkt <= 1'b0;
                    replace_taker;
                end
            end
        end
    endtask

    // ------------------------------------------------------------------ the state machine
    always @(posedge clk) begin
        if (rst) begin
            ev_seq <= 64'd0;      // the event presented carries seq, the counter itself
            reset_book;
            b_dirty <= {NSYM{1'b1}};          // the collars of the configured references
            age <= {NN{1'b0}};                // (defined, and an event for the @* blocks)
            m_gt <= {NN{1'b0}};
            m_eq <= {NN{1'b0}};
            sc <= {IW{1'b0}};
            for (j = 0; j < NSYM; j = j + 1) begin
                tob_bf[j] <= 1'b0; tob_bpx[j] <= 53'd0; tob_bqt[j] <= {QW{1'b0}};
                tob_af[j] <= 1'b0; tob_apx[j] <= 53'd0; tob_aqt[j] <= {QW{1'b0}};
            end
        end else begin
            if (out_valid && out_ready) out_valid <= 1'b0;

            case (state)
            S_IDLE: if (b_any) begin
                b_cur <= b_first;
                b_p <= {{(PW-32){1'b0}}, c_bps[b_first]};
                b_rem <= 14'd0;
                b_cnt <= 7'd0;
                b_div <= 1'b0;
                b_fin <= 1'b0;
                state <= S_BAND;
            end else if (in_valid) begin
                take_message;
                m_px   <= in_px[RW-1:0];
                m_qty  <= in_qty[31:0];
                m_new  <= (in_act == ACTION_NEW);
                m_can  <= (in_act == ACTION_CANCEL);
                m_rep  <= (in_act == ACTION_REPLACE);
                m_fok_ok <= fields_valid(in_side, in_type, in_tif);
                malformed_why <= risk_or_malformed(in_act, in_tif);
                m_mkt  <= (in_type == TYPE_MARKET);
                m_sell <= (in_side == SIDE_SELL);
                m_fok  <= (in_tif == TIF_FOK);
                m_post <= (in_tif == TIF_POST);
                m_rests <= (in_tif == TIF_GTC || in_tif == TIF_POST);
                m_pnone <= (in_px == PRICE_NONE);
                m_prng <= (in_px[63:53] == 11'd0) && (in_px != 64'd0);
                m_qbad <= in_qty[63] || (in_qty == 64'd0);
                m_qmax <= (in_qty[63:32] != 32'd0);
                m_div  <= (in_act == ACTION_NEW && in_type == TYPE_LIMIT && in_sym_ok) ||
                          (in_act == ACTION_REPLACE && l_hit);
                d_rem  <= 53'd0;
                d_cnt  <= 6'd0;
                chg    <= 1'b0;
                state <= (in_act == ACTION_NEW || in_act == ACTION_REPLACE) ? S_PREP : S_CHECK;
            end

            // limit of the taker; then the tick check, DB bits a cycle (priced messages)
            S_PREP: begin
                if (d_cnt == 6'd0) begin
                    tk_side <= side_sel;
                    tk_has_lim <= !is_mkt || bps_nz;
                    tk_lim <= !is_mkt ? p53 : side_sel ? lo_u : hi_u;
                end
                if (!m_div) begin
                    d_cnt <= 6'd1;
                    if (d_cnt != 6'd0) state <= S_CHECK;   // two cycles: c_lt/c_eq of tk_lim
                end else begin
                    d_rem <= d_next;
                    m_px <= {m_px[RW-1-DB:0], m_px[RW-1 -: DB]};
                    d_cnt <= d_cnt + 6'd1;
                    if ({26'd0, d_cnt} == DSTEPS - 1) begin
                        m_ontick <= (d_next == 53'd0);
                        state <= S_CHECK;
                    end
                end
            end

            S_CHECK: if (ev_free) check_step;

            S_MATCH: if (ev_free) match_step;

            S_FILL2: if (ev_free) begin
                // the maker's half: same price and quantity as the taker's FILL still presented
                emit(EV_FILL, R_MAKER, ev_cid, m_id, 1'b0, ev_px, ev_qty, rd_lvs, rd_acct, !tk_side);
                fill_next;
            end

            S_FOK1: begin
                f_done <= 1'b0;
                sb_f <= |own;
                sb_i <= own_i;
                state <= S_FOK2;
            end

            // what trades before the own order: one slot a cycle, then the decision
            S_FOK2: if (!f_done) begin
                f_acc <= f_next;
                sc <= sc + 1'b1;
                if (sc == SC_LAST) begin
                    sc <= {IW{1'b0}};
                    f_done <= 1'b1;
                end
            end else if (ev_free) begin
                f_done <= 1'b0;
                if (f_acc < {{(QW-32){1'b0}}, tk_lvs}) begin
                    cancel_taker(R_FOK);
                    state <= S_DONE;
                end else state <= S_MATCH;
            end

            // top of book of the message's symbol: one slot a cycle, then idle
            S_TOB: if (!chg) state <= S_IDLE;
            else begin
                if (cur_ok) begin
                    tob_bf[cur_sym] <= bb_f;
                    tob_af[cur_sym] <= ba_f;
                    if (sc == bb_i) tob_bpx[cur_sym] <= rd_px;
                    if (sc == ba_i) tob_apx[cur_sym] <= rd_px;
                    tob_bqt[cur_sym] <= (sc_first ? sc0 : tob_bqt[cur_sym]) + (at_b[sc] ? rd_lvq : sc0);
                    tob_aqt[cur_sym] <= (sc_first ? sc0 : tob_aqt[cur_sym]) + (at_a[sc] ? rd_lvq : sc0);
                end
                sc <= sc + 1'b1;
                if (sc == SC_LAST) begin
                    sc <= {IW{1'b0}};
                    state <= S_IDLE;
                end
            end

            S_BAND: if (b_fin) begin
                r_lo[b_cur] <= b_lo;
                r_hi[b_cur] <= b_hi;
                b_dirty[b_cur] <= 1'b0;
                state <= S_IDLE;
            end else begin
                b_p <= b_pn;
                b_rem <= b_rn;
                b_cnt <= b_cnt + 7'd1;
                if (!b_div && b_cnt == 7'd31) begin
                    b_div <= 1'b1;
                    b_cnt <= 7'd0;
                end else if (b_div && {25'd0, b_cnt} == KSTEPS - 1) b_fin <= 1'b1;
            end

            default: state <= S_IDLE;
            endcase
        end
        // this build's configuration words (after the state machine: a write of the reference
        // price wins over a trade's), and the collar to recompute
        if (cfg_we && cfg_here) begin
            if (cfg_addr == CFG_BPS) b_dirty[cfg_s] <= 1'b1;
            if (cfg_addr == CFG_REF_UNITS) begin
                c_ref0[cfg_s] <= cfg_data[52:0];
                r_ref[cfg_s] <= cfg_data[52:0];
                b_dirty[cfg_s] <= 1'b1;
            end
        end
    end
endmodule

`default_nettype wire
