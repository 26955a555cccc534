// tickbook_risk: the pre-trade risk stage, in front of any build of the book, with the same record
// stream in and out (docs/hardware.md, "The risk stage"; docs/rulebook.md, sections 4 and 7).
//
// It decides the account rules that come before every check of the book, for each NEW with valid
// side, type and tif and each REPLACE, in the rulebook's order:
//   1. UNKNOWN_ACCOUNT (not listed, no default), ACCOUNT_DISABLED (enabled = false), then the
//      account CAPACITY of a new account when max_accounts are tracked;
//   2. RATE_LIMIT: the account's count of its bucket floor(ts / 1e9), counted before the check.
// and hands the book the account's max_order_qty for check 6, its max_notional for check 8, its
// max_position for check 9, its max_open_orders for check 10 and its account index, by which
// the book keeps its resting orders and positions (tickbook_risk_verdict.vh says how).
// A KILL is checked for UNKNOWN_ACCOUNT and the account CAPACITY only (killing a disabled or
// killed account is accepted, and a KILL does not count toward the rate limit); one that passes
// marks the account's entry killed (ACCOUNT_DISABLED from then on) and reaches the book as
// ACTION_RISK_KILL with the entry, whose resting orders the block-RAM book cancels.
// CANCEL and MALFORMED records pass untouched.
//
// The accounts: a hash table in block RAM (2**HW >= 2 x NACCT entries, linear probing), keyed by
// the account id, each entry the whole account: its limits and its rate bucket and count, so one
// read tells everything and the decision writes it back. The listed accounts are loaded over the
// configuration port (CFG_ACCT, CFG_ACCTS) into a list of NACCT words, kept across reset, and
// inserted into the table when reset is released; any other account is tracked from its first
// message past check 1, as the engine does. Each account gets the next index, 0 .. NACCT - 1, as
// it is tracked (the count of accounts tracked), kept in its entry: the book's memories by account
// are NACCT deep, not as deep as the table, which is at most half full. Entries carry a
// generation tag: a reset moves to the next generation, which forgets every entry at once (the
// table is swept only when the tag wraps), and the indices start again from 0.
//
// A message takes 2 cycles (accepted, then decided from the entry read) plus one per probe, and
// one more when its ts leaves the second of the message before (its bucket is then worked out
// by a multiplication: once a second of the flow's time). Decided records go to a 2-record FIFO,
// so that the stage runs ahead of the book while the book works on a long message.
`timescale 1ns / 1ps
`default_nettype none

module tickbook_risk #(
    parameter integer NACCT = 16,   // accounts the table can track ([engine] max_accounts <= NACCT)
    parameter integer GEN_W = 8     // the generation tag (a test sets 2 to make it wrap)
) (
    input  wire         clk,
    input  wire         rst,      // synchronous: forgets every account but the listed ones
    // configuration port, shared with the book (CFG_ACCT, CFG_ACCTS; kept across rst, takes
    // effect when rst is released: the host loads it in reset)
    input  wire         cfg_we,
    input  wire [2:0]   cfg_addr,
    input  wire [127:0] cfg_data,
    // order records in (engine/records.py ORDER_DTYPE)
    input  wire         in_valid,
    output wire         in_ready,
    input  wire [511:0] in_data,
    // the same records out, to the book (tickbook_risk_verdict.vh)
    output wire         out_valid,
    input  wire         out_ready,
    output wire [511:0] out_data,
    output wire         busy      // a record is inside the stage, or the table is being loaded
);
`include "tickbook_records.vh"
`include "tickbook_risk_verdict.vh"
`include "tickbook_book_cfg.vh"

    localparam integer HW = $clog2(NACCT) + 1;              // table index: 2**HW >= 2 x NACCT
    localparam integer KW = (NACCT > 1) ? $clog2(NACCT) : 1; // an account's index (listed, or tracked)
    localparam integer CW = $clog2(NACCT + 1);              // accounts tracked, 0 .. NACCT
    localparam [63:0]  SEC = 64'd1_000_000_000;
    localparam [HW:0]  T = 1 << HW;

    // ---------------------------------------------------------------- an entry of the table
    // {gen, index, id, disabled, book's limits, max_qty, max_rate, bucket, count}: max_qty and
    // max_rate 0 = none; the book's limits {max_position, max_open_orders, notional {has,
    // limit}}, 63 + 24 + 63 bits (tickbook_risk_verdict.vh); the index the book keeps the account by
    localparam integer XLW = 150;
    localparam integer E_CNT = 0, E_BK = 32, E_MR = 67, E_MQ = 99, E_XL = 131, E_DIS = 281,
                       E_ID = 282, E_IX = 314, E_GEN = 314 + KW, EW = 314 + KW + GEN_W;

    function [EW-1:0] entry;
        input [GEN_W-1:0] k_gen;
        input [KW-1:0]    k_ix;
        input [31:0]      k_id;
        input             k_dis;
        input [XLW-1:0]   k_xl;
        input [31:0]      k_mq, k_mr;
        input [34:0]      k_bk;
        input [31:0]      k_cnt;
        entry = {k_gen, k_ix, k_id, k_dis, k_xl, k_mq, k_mr, k_bk, k_cnt};
    endfunction

    // the table's index of an account id: its 32 bits folded by xor (ids given in order, the
    // common case, fall in distinct entries)
    function [HW-1:0] home;
        input [31:0] k_id;
        integer i;
        begin
            home = {HW{1'b0}};
            for (i = 0; i < 32; i = i + 1) home[i % HW] = home[i % HW] ^ k_id[i];
        end
    endfunction

    reg [EW-1:0]  ht [0:T-1];
    reg [EW-1:0]  ht_q;           // the entry read (a read takes one edge)
    reg [GEN_W-1:0] cur_gen;      // entries of another generation are empty
    integer i0;
    initial begin                 // power-up: every entry of generation 0, which is never current
        for (i0 = 0; i0 < T; i0 = i0 + 1) ht[i0] = {EW{1'b0}};
        cur_gen = {GEN_W{1'b0}};
    end

    wire [GEN_W-1:0] q_gen = ht_q[E_GEN +: GEN_W];
    wire [KW-1:0]    q_ix  = ht_q[E_IX +: KW];
    wire [31:0]      q_id  = ht_q[E_ID +: 32];
    wire             q_dis = ht_q[E_DIS];
    wire [XLW-1:0]   q_xl  = ht_q[E_XL +: XLW];
    wire [31:0]      q_mq  = ht_q[E_MQ +: 32];
    wire [31:0]      q_mr  = ht_q[E_MR +: 32];
    wire [34:0]      q_bk  = ht_q[E_BK +: 35];
    wire [31:0]      q_cnt = ht_q[E_CNT +: 32];
    wire             q_live = (q_gen == cur_gen);

    // ---------------------------------------------------------------- configuration
    // Each is two words, told apart by cfg_data[103:100] (the word).
    // CFG_ACCTS, the default account and the counts. Word 0: [31:0] max_order_qty, [63:32]
    // max_msgs_per_sec, [87:64] max_accounts, [111:88] listed accounts, [112] a default exists,
    // [113] it is enabled. Word 1: [62:0] its notional limit, [87:64] its max_open_orders.
    // Word 2: [62:0] its max_position.
    // CFG_ACCT, a listed account, [127:104] its index in the list. Word 0: [31:0] id, [63:32]
    // max_order_qty, [95:64] max_msgs_per_sec, [96] enabled. Word 1: [62:0] its notional limit,
    // [87:64] its max_open_orders. Word 2: [62:0] its max_position.
    reg [31:0]  d_mq, d_mr;
    reg [XLW-1:0] d_xl;
    reg [23:0]  c_max, c_listed;
    reg         d_has, d_en;
    reg [96:0]  ls [0:NACCT-1];      // {enabled, max_rate, max_qty, id}
    reg [XLW-1:0] ls_xl [0:NACCT-1]; // its limits the book checks: {max_position, max_open_orders, notional}
    reg [96:0]  ls_q;
    reg [XLW-1:0] ls_xl_q;
    wire [23:0] cfg_k = cfg_data[127:104];
    wire [3:0]  cfg_word = cfg_data[103:100];
    wire        cfg_ls = (cfg_addr == CFG_ACCT) && ({8'd0, cfg_k} < NACCT);
    always @(posedge clk)
        if (cfg_we) begin
            if (cfg_addr == CFG_ACCTS && cfg_word == 4'd0) begin
                d_mq <= cfg_data[31:0];
                d_mr <= cfg_data[63:32];
                c_max <= cfg_data[87:64];
                c_listed <= cfg_data[111:88];
                d_has <= cfg_data[112];
                d_en <= cfg_data[113];
            end
            if (cfg_addr == CFG_ACCTS && cfg_word == 4'd1) d_xl[86:0] <= {cfg_data[87:64], cfg_data[62:0]};
            if (cfg_addr == CFG_ACCTS && cfg_word == 4'd2) d_xl[149:87] <= cfg_data[62:0];
            if (cfg_ls && cfg_word == 4'd0) ls[cfg_k[KW-1:0]] <= cfg_data[96:0];
            if (cfg_ls && cfg_word == 4'd1) ls_xl[cfg_k[KW-1:0]][86:0] <= {cfg_data[87:64], cfg_data[62:0]};
            if (cfg_ls && cfg_word == 4'd2) ls_xl[cfg_k[KW-1:0]][149:87] <= cfg_data[62:0];
        end

    // ---------------------------------------------------------------- the second of ts
    // w_sec = floor(ts / 1e9) for every ts in [w_lo, w_lo + 1e9) (w_ok). A ts outside that
    // window gets its second in S_SEC, as floor((ts >> 9) x SEC_M / 2**76): 1e9 = 2**9 x 5**9,
    // and for every 55-bit n, floor(n / 5**9) = floor(n x SEC_M / 2**76) with SEC_M =
    // ceil(2**76 / 5**9), since SEC_M x 5**9 - 2**76 = 799,614 <= 2**21 (Granlund-Montgomery;
    // tests/test_hdl_risk.py checks it). The window follows in S_LOOK, w_lo = w_sec x 1e9.
    localparam [55:0] SEC_M = 56'd38685626227668134;
    reg          w_ok;
    reg [63:0]   w_lo;
    reg [34:0]   w_sec;
    wire [63:0]  w_hi = w_lo + SEC;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [110:0] sec_prod = m[ORDER_TS_LSB + 9 +: 55] * SEC_M;   // its bits [110:76] are the second
    /* verilator lint_on UNUSEDSIGNAL */

    // ---------------------------------------------------------------- the state machine
    localparam [3:0] S_INIT = 4'd0, S_SWEEP = 4'd1, S_LS0 = 4'd2, S_LS1 = 4'd3, S_LS2 = 4'd4,
                     S_IDLE = 4'd5, S_LOOK = 4'd6, S_SEC = 4'd7;
    reg [3:0]    state;
    reg [HW-1:0] h;               // the entry being read
    reg [HW:0]   sw;              // S_SWEEP: the next entry to clear
    reg [KW:0]   k;               // the listed account being inserted
    reg [CW-1:0] n_tracked;
    reg [511:0]  m;               // the record being decided

    wire [31:0]  m_acct = m[ORDER_ACCOUNT_LSB +: 32];

    wire [63:0]  in_ts = in_data[ORDER_TS_LSB +: 64];
    wire [31:0]  in_acct = in_data[ORDER_ACCOUNT_LSB +: 32];
    wire [7:0]   in_act = in_data[ORDER_ACTION_LSB +: 8];
    wire [7:0]   in_side = in_data[ORDER_SIDE_LSB +: 8];
    wire [7:0]   in_type = in_data[ORDER_TYPE_LSB +: 8];
    wire [7:0]   in_tif = in_data[ORDER_TIF_LSB +: 8];
    // the records the account rules apply to (the engine's well_formed NEW, and REPLACE)
    wire         in_new_ok = (in_act == ACTION_NEW) &&
                             (in_side == SIDE_BUY || in_side == SIDE_SELL) &&
                             (in_type == TYPE_LIMIT || in_type == TYPE_MARKET) &&
                             (in_tif >= TIF_GTC && in_tif <= TIF_POST);
    wire         in_checked = in_new_ok || (in_act == ACTION_REPLACE) || (in_act == ACTION_KILL);
    wire         m_kill = (m[ORDER_ACTION_LSB +: 8] == ACTION_KILL);
    wire         in_window = w_ok && (in_ts >= w_lo) && (in_ts < w_hi);

    // ---------------------------------------------------------------- the FIFO to the book
    reg [511:0]  f0, f1;
    reg [1:0]    fc;
    assign out_valid = (fc != 2'd0);
    assign out_data = f0;
    wire         pop = out_valid && out_ready;
    assign in_ready = (state == S_IDLE) && (fc != 2'd2);
    assign busy = (state != S_IDLE) || (fc != 2'd0);

    // what the edge does, worked out in order by blocking assignments (the decision's writes of
    // the table and the FIFO come from one place each)
    /* verilator lint_off BLKSEQ */
    // the record an edge pushes: from the input (a record that passes untouched) or m (a record
    // decided), with its verdict (push_why: a reject's reason, else push_mq and push_xl: the
    // account's max_order_qty and the limits the book checks, and push_slot its index), worked
    // out only when it pushes: a 512-bit copy every edge was a quarter of Icarus's time
    reg          push, push_m, push_mal;
    reg [7:0]    push_why;
    reg [31:0]   push_mq;
    reg [XLW-1:0] push_xl;
    reg [KW-1:0] push_slot;
    reg [511:0]  rec_w;
    reg          ht_re, ht_we;
    reg [HW-1:0] ht_ra, ht_wa;
    reg [EW-1:0] ht_wd;
    reg          ls_re;
    reg [31:0]   cnt1;

    always @(posedge clk) begin
        push = 1'b0;
        push_m = 1'b0;
        push_mal = 1'b0;
        push_why = R_NONE;
        push_mq = 32'd0;
        push_xl = {XLW{1'b0}};
        push_slot = {KW{1'b0}};
        ht_re = 1'b0;
        ht_we = 1'b0;
        ht_ra = h;
        ht_wa = h;
        ls_re = 1'b0;
        cnt1 = 32'd1;

        if (rst) begin
            state <= S_INIT;
            w_ok <= 1'b0;
        end else case (state)
            // reset released: the next generation (the table swept when the tag wraps), then the
            // listed accounts inserted
            S_INIT: begin
                n_tracked <= {CW{1'b0}};
                k <= {(KW + 1){1'b0}};
                sw <= {(HW + 1){1'b0}};
                if (cur_gen + 1'b1 == {GEN_W{1'b0}}) state <= S_SWEEP;
                else begin
                    cur_gen <= cur_gen + 1'b1;
                    state <= (c_listed != 24'd0) ? S_LS0 : S_IDLE;
                end
            end
            S_SWEEP: begin
                ht_we = 1'b1;
                ht_wa = sw[HW-1:0];
                ht_wd = {EW{1'b0}};
                sw <= sw + 1'b1;
                if (sw + 1'b1 == T) begin
                    cur_gen <= {{(GEN_W - 1){1'b0}}, 1'b1};
                    state <= (c_listed != 24'd0) ? S_LS0 : S_IDLE;
                end
            end
            S_LS0: begin
                ls_re = 1'b1;
                state <= S_LS1;
            end
            S_LS1: begin
                ht_re = 1'b1;
                ht_ra = home(ls_q[31:0]);
                h <= home(ls_q[31:0]);
                state <= S_LS2;
            end
            S_LS2: begin
                if (q_live) begin           // taken by another listed account: the next entry
                    ht_re = 1'b1;
                    ht_ra = h + 1'b1;
                    h <= h + 1'b1;
                end else begin
                    ht_we = 1'b1;
                    ht_wd = entry(cur_gen, n_tracked[KW-1:0], ls_q[31:0], !ls_q[96], ls_xl_q,
                                  ls_q[63:32], ls_q[95:64], 35'd0, 32'd0);
                    n_tracked <= n_tracked + 1'b1;
                    k <= k + 1'b1;
                    state <= ({{(24 - KW - 1){1'b0}}, k} + 24'd1 == c_listed ||
                              {{(31 - KW){1'b0}}, k} + 32'd1 == NACCT) ? S_IDLE : S_LS0;
                end
            end

            S_IDLE:
                if (in_valid && in_ready) begin
                    if (in_checked) begin
                        m <= in_data;
                        ht_re = 1'b1;
                        ht_ra = home(in_acct);
                        h <= home(in_acct);
                        state <= in_window ? S_LOOK : S_SEC;
                    end else begin          // passes untouched (the stage's own actions are MALFORMED)
                        push = 1'b1;
                        push_mal = (in_act == ACTION_RISK_REJECT) || (in_act == ACTION_RISK_KILL);
                    end
                end
            S_SEC: begin
                w_sec <= sec_prod[110:76];
                w_ok <= 1'b0;
                state <= S_LOOK;
            end
            // the entry of the account, or of the first probe: decide when the FIFO has room
            S_LOOK: begin
                if (!w_ok) begin                              // the window of S_SEC's second
                    w_lo <= {29'd0, w_sec} * SEC;
                    w_ok <= 1'b1;
                end
                if (q_live && q_id != m_acct) begin          // another account's: probe on
                    ht_re = 1'b1;
                    ht_ra = h + 1'b1;
                    h <= h + 1'b1;
                end else if (fc != 2'd2) begin
                    push = 1'b1;
                    push_m = 1'b1;
                    state <= S_IDLE;
                    if (q_live && m_kill) begin               // killed from now on, counts kept
                        ht_we = 1'b1;
                        ht_wd = entry(cur_gen, q_ix, q_id, 1'b1, q_xl, q_mq, q_mr, q_bk, q_cnt);
                        push_slot = q_ix;
                    end else if (q_live) begin                // a tracked account
                        if (q_bk == w_sec) cnt1 = (q_cnt == 32'hFFFF_FFFF) ? q_cnt : q_cnt + 1'b1;
                        if (q_dis) push_why = R_ACCOUNT_DISABLED;
                        else begin
                            ht_we = 1'b1;
                            ht_wd = entry(cur_gen, q_ix, q_id, 1'b0, q_xl, q_mq, q_mr, w_sec, cnt1);
                            if (q_mr != 32'd0 && cnt1 > q_mr) push_why = R_RATE_LIMIT;
                            else begin
                                push_mq = q_mq;
                                push_xl = q_xl;
                                push_slot = q_ix;
                            end
                        end
                    end else if (!d_has) push_why = R_UNKNOWN_ACCOUNT;
                    else if (!d_en && !m_kill) push_why = R_ACCOUNT_DISABLED;
                    else if ({{(24 - CW){1'b0}}, n_tracked} >= c_max ||
                             n_tracked == NACCT[CW-1:0]) push_why = R_CAPACITY;
                    else begin                                // tracked from now on, its first message
                        ht_we = 1'b1;                         // (a KILL's: killed, nothing counted)
                        ht_wd = entry(cur_gen, n_tracked[KW-1:0], m_acct, m_kill, d_xl, d_mq, d_mr,
                                      w_sec, {31'd0, !m_kill});
                        n_tracked <= n_tracked + 1'b1;
                        push_mq = d_mq;
                        push_xl = d_xl;
                        push_slot = n_tracked[KW-1:0];
                    end
                end
            end
            default: state <= S_INIT;
        endcase

        if (ht_re) ht_q <= ht[ht_ra];
        if (ht_we) ht[ht_wa] <= ht_wd;
        if (ls_re) begin
            ls_q <= ls[k[KW-1:0]];
            ls_xl_q <= ls_xl[k[KW-1:0]];
        end

        // the record as the book gets it (tickbook_risk_verdict.vh): rejected with a reason, or
        // passed, its quantity marked above the account's max_order_qty when it is, and the
        // account's limits and entry in the reserved bytes (none for a record not decided here,
        // so that a host's reserved bytes never reach the book)
        if (push) begin
            rec_w = push_m ? m : in_data;
            rec_w[VERDICT_NT_LSB +: 63] = push_xl[62:0];
            rec_w[VERDICT_MO_LSB +: 24] = push_xl[86:63];
            // max_position in the ts field, which the book does not read, marked as the stage's
            rec_w[VERDICT_MP_ON] = 1'b0;
            if (push_m && push_why == R_NONE && !m_kill) begin
                rec_w[VERDICT_MP_LSB +: 63] = push_xl[149:87];
                rec_w[VERDICT_MP_ON] = 1'b1;
            end
            rec_w[VERDICT_SLOT_LSB +: KW] = push_slot;
            if (push_why != R_NONE) begin
                rec_w[ORDER_ACTION_LSB +: 8] = ACTION_RISK_REJECT;
                rec_w[ORDER_TIF_LSB +: 8] = push_why;
            end else if (push_m && m_kill)
                rec_w[ORDER_ACTION_LSB +: 8] = ACTION_RISK_KILL;
            else if (rec_w[ORDER_QTY_LSB + 32 +: 32] == 32'd0 && push_mq != 32'd0 &&
                         rec_w[ORDER_QTY_LSB +: 32] > push_mq)
                rec_w[ORDER_QTY_LSB + 32] = 1'b1;
            if (push_mal) rec_w[ORDER_ACTION_LSB +: 8] = ACTION_MALFORMED;
        end

        // the FIFO: at most one record in and one out an edge
        if (rst) fc <= 2'd0;
        else if (push && pop) begin
            if (fc == 2'd1) f0 <= rec_w;
            else begin f0 <= f1; f1 <= rec_w; end
        end else if (pop) begin
            f0 <= f1;
            fc <= fc - 1'b1;
        end else if (push) begin
            if (fc == 2'd0) f0 <= rec_w; else f1 <= rec_w;
            fc <= fc + 1'b1;
        end
    end
    /* verilator lint_on BLKSEQ */
endmodule

`default_nettype wire
