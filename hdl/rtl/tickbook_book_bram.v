// tickbook: the Verilog order book, block-RAM build.
//
// The same ports, record layout and events as tickbook_book.v, with the state in memories that
// map to block RAM instead of registers, so that it grows to thousands of orders: the engine's
// own structures (engine/book.py), one read port a memory, one access a cycle.
//
//   orders    a pool of NORD slots (id, account, leaves, level, the level's FIFO links,
//             the id hash chain's links), allocated from a free stack
//   id table  2^(IW+1) hash buckets, each the head of a doubly linked chain through the order
//             slots: a lookup walks a chain, a delete unlinks in O(1); the buckets are a block
//             RAM with its output register (tickbook_book_buckets.v), read as a record comes in
//   levels    a pool of level handles (price, size, head and tail of its FIFO of orders); an
//             order's price is its level's
//   level     per {symbol, side} its levels in price order, best first, doubly linked through
//   list      the level handles (each entry: the level behind, its price in ticks, the level in
//             front); a level is found by a walk from the best, as the engine walks its ladder,
//             and joins or leaves its list in one or two cycles wherever it is
//
// One message at a time, a state machine of short steps; every state emits at most one event,
// and a state that emits waits while the previous event is not taken. Records come through the
// tick unit (tickbook_book_ticks.v), which works out each price in ticks on the way; the next
// record waits in a one-record buffer and starts in the cycle the previous message ends, its
// id's bucket read since the record came in. The best level of each book is kept in registers (the
// top of book), valid the cycle after a message's last state; the collar width of each symbol too,
// worked out by a band unit after the reference price moves. docs/hardware.md, "The block-RAM
// build".
`timescale 1ns / 1ps
`default_nettype none

module tickbook_book_bram #(
    parameter integer NSYM = 4,   // symbols
    parameter integer NORD = 16,  // resting orders (all symbols) = [engine] max_orders
    parameter integer NLVL = 8,   // price levels per side per symbol = [engine] max_levels
    parameter integer NACCT = 16  // accounts of the risk stage in front (its account indices,
                                  // 0 .. NACCT - 1, address the book's memories by account)
) (
`include "tickbook_book_ports.vh"
);
`include "tickbook_book_common.vh"
`include "tickbook_book_message.vh"

    localparam integer PW  = IW + 1;                          // a slot pointer: top bit = none
    localparam [PW-1:0] NIL = {1'b1, {IW{1'b0}}};
    localparam integer HW  = IW + 1;                          // a hash bucket: >= 2 NORD of them
    localparam integer AHW = (NACCT > 1) ? $clog2(NACCT) : 1;  // an account's index (the risk stage's)
    localparam integer PSW = AHW + SW;                        // a position: {account entry, symbol}
    localparam integer CLW = (PSW > HW) ? PSW : HW;           // the reset sweep: buckets, accounts, positions
    localparam integer PIW = (NLVL > 1) ? $clog2(NLVL) : 1;
    localparam integer BW  = SW + 1;                          // a book: {symbol, side}
    localparam integer NBK = 1 << BW;
    localparam integer KW  = PIW + 1;                         // a count of levels
    localparam [KW-1:0] K2 = 2;
    // levels in use at once: at most one an order, at most NLVL a book
    localparam integer NLP = (NORD < 2 * NSYM * NLVL) ? NORD : 2 * NSYM * NLVL;
    localparam integer LHW = (NLP > 1) ? $clog2(NLP) : 1;      // a level handle
    localparam integer LCW = $clog2(NLP + 1);                  // a count of level handles
    localparam [LHW:0] LNIL = {1'b1, {LHW{1'b0}}};             // a level pointer: top bit = none
    localparam integer QW  = 32 + IW;                          // a level's size: NORD leaves

    localparam [5:0] S_IDLE = 6'd0, S_CLR = 6'd1, S_LOOK0 = 6'd2, S_LOOK1 = 6'd3, S_CHECK = 6'd4,
                     S_CAPN = 6'd5, S_CAPR = 6'd6, S_DIV = 6'd7,
                     S_KN = 6'd8, S_K1 = 6'd9, S_KC = 6'd10,
                     S_FK2 = 6'd14, S_FK3 = 6'd15, S_FKD = 6'd16,
                     S_M0 = 6'd17, S_M3 = 6'd20, S_M4 = 6'd21,
                     S_END = 6'd22, S_R0 = 6'd23, S_R1B = 6'd25,
                     S_R4 = 6'd28, S_FT0 = 6'd29, S_FT1 = 6'd30,
                     S_F1 = 6'd37, S_I1 = 6'd39, S_I2 = 6'd40,
                     S_BR0 = 6'd41, S_BR2 = 6'd43, S_RK = 6'd44;
    // a search's return for a resting order (search_done): on to its level; not a state
    localparam [5:0] TO_LEVEL = 6'd27;
    localparam [5:0] S_DONE = S_IDLE;       // after a message that did not change the book

    // how a match ended
    // (a taker filled ends in S_M4, no S_END)
    localparam [1:0] E_NOCROSS = 2'd0, E_SELF = 2'd2, E_POST = 2'd3;

    // ------------------------------------------------------------------ memories
    reg [63:0]    o_id    [0:NORD-1];
    reg [31:0]    o_acct  [0:NORD-1];
    reg [31:0]    o_lvs   [0:NORD-1];
    reg [LHW-1:0] o_lvl   [0:NORD-1];     // its level's handle
    reg [PW-1:0]  o_prev  [0:NORD-1];     // the level's FIFO
    reg [PW-1:0]  o_next  [0:NORD-1];
    reg [PW-1:0]  o_hprev [0:NORD-1];     // the id hash chain
    reg [PW-1:0]  o_hnext [0:NORD-1];
    reg [SW-1:0]  o_sym   [0:NORD-1];
    reg           o_side  [0:NORD-1];     // 0 buy, 1 sell
    reg           o_post  [0:NORD-1];     // post-only (matters when it is replaced)
    reg [AHW-1:0] o_aslot [0:NORD-1];     // its account's index (the risk stage's)
    reg [PW-1:0]  o_aprev [0:NORD-1];     // its account's orders in acceptance order (KILL)
    reg [PW-1:0]  o_anext [0:NORD-1];
    reg [IW-1:0]  o_free  [0:NORD-1];     // free slots (a stack), beyond o_unused
    reg [52:0]    l_pxu   [0:NLP-1];      // level: price, 1e-8 units
    reg [QW-1:0]  l_qty   [0:NLP-1];      // level: leaves of its orders
    reg [IW-1:0]  l_head  [0:NLP-1];
    reg [IW-1:0]  l_tail  [0:NLP-1];
    reg [LHW-1:0] l_free  [0:NLP-1];      // free level handles (a stack), beyond l_unused
    // each book's levels in price order, best first: a doubly linked list through the level
    // handles, so that a level leaves in one cycle wherever it is. Each entry also keeps the
    // price of the level behind it, so that a walk decides each step from one read.
    reg [LHW:0]   lad_w   [0:NLP-1];      // the level behind (worse), or LNIL
    reg [52:0]    lad_wpx [0:NLP-1];      // that level's price, ticks
    reg [LHW:0]   lad_b   [0:NLP-1];      // the level in front (better); not kept for a best level
    // (the hash buckets, each the first slot of its chain: tickbook_book_buckets, below)

    // read ports: the address is registered (set in one state, the data is there in the next)
    reg [IW-1:0]  o_ra;
    reg [LHW-1:0] l_ra;
    reg [LHW-1:0] lad_ra;
    wire [63:0]   q_oid    = o_id[o_ra];
    wire [31:0]   q_oacct  = o_acct[o_ra];
    wire [31:0]   q_olvs   = o_lvs[o_ra];
    wire [LHW-1:0] q_olvl  = o_lvl[o_ra];
    wire [PW-1:0] q_oprev  = o_prev[o_ra];
    wire [PW-1:0] q_onext  = o_next[o_ra];
    wire [PW-1:0] q_ohprev = o_hprev[o_ra];
    wire [PW-1:0] q_ohnext = o_hnext[o_ra];
    wire [SW-1:0] q_osym   = o_sym[o_ra];
    wire [AHW-1:0] q_oaslot = o_aslot[o_ra];
    wire [PW-1:0] q_oaprev = o_aprev[o_ra];
    wire [PW-1:0] q_oanext = o_anext[o_ra];
    wire          q_oside  = o_side[o_ra];
    wire          q_opost  = o_post[o_ra];
    wire [52:0]   q_lpxu   = l_pxu[l_ra];
    wire [QW-1:0] q_lqty   = l_qty[l_ra];
    wire [IW-1:0] q_lhead  = l_head[l_ra];
    wire [IW-1:0] q_ltail  = l_tail[l_ra];
    wire [LHW:0]  q_ladw   = lad_w[lad_ra];
    wire [52:0]   q_ladwpx = lad_wpx[lad_ra];
    wire [LHW:0]  q_ladb   = lad_b[lad_ra];

    // counters and per-book registers
    reg [CW-1:0]  rest_cnt;               // orders resting
    reg [CW-1:0]  o_top, o_unused;        // free stack depth; slots never used start here
    reg [LCW-1:0] l_top, l_unused;
    reg [KW-1:0]  lad_n   [0:NBK-1];      // levels per book
    reg [CLW-1:0] clr_i;                  // the bucket (and account) the reset sweep clears next
    reg           h_dirty;                // an id was inserted since the buckets were last empty
    // Power-up (the bitstream's block-RAM contents and flip-flop values): every bucket empty. A
    // reset sweeps the buckets only when an id went in since, one a cycle (2^(IW+1) cycles), and
    // the accounts' counts of resting orders with them (2^AHW of them: the longer of the two).
    initial h_dirty = 1'b0;

    // MAX_OPEN_ORDERS (check 10): each account's resting orders, by its index, 0 .. NACCT - 1 (the
    // risk stage hands the book the message's account index and limit with the record,
    // tickbook_risk_verdict.vh; an order keeps its account's index, o_aslot). Every change is
    // +1 (rest_new) or -1 (free_order) on one account a cycle, from a value read ahead: the
    // message's own account's at its start (oc_ra = the record's entry; a CANCEL's order's in
    // S_LOOK1), a maker's in S_M3. m_oc keeps the message's own account's count from S_CHECK on
    // (a taker's makers are other accounts, but a book without the stage in front counts every
    // order under entry 0: a maker's -1 on the message's entry moves m_oc too).
    reg [CW-1:0]  oc [0:(1<<AHW)-1];
    reg [AHW-1:0] oc_ra;
    wire [CW-1:0] q_oc = oc[oc_ra];
    reg [AHW-1:0] m_slot, t_aslot, mk_aslot;
    reg [23:0]    m_mo;                   // the account's max_open_orders, 0 none
    reg [CW-1:0]  m_oc;
    integer       i_oc;
    initial for (i_oc = 0; i_oc < (1 << AHW); i_oc = i_oc + 1) oc[i_oc] = {CW{1'b0}};
    // KILL: each account's resting orders in the order they were accepted, a doubly linked list
    // through the order slots (o_aprev, o_anext) from a_head to a_tail, by the same entry. A NEW
    // that rests goes last (its tail read at its start: al_ra = the record's entry; m_atail
    // follows a -1 on its own entry, as m_oc does); an order that leaves is unlinked in
    // free_order; a REPLACE keeps its place (its acceptance time stays). A KILL walks the list
    // from the head, cancelling each order as a CANCEL would (S_K1, S_KC). The heads and tails
    // are cleared with the counts in the reset sweep.
    reg [PW-1:0]  a_head [0:(1<<AHW)-1];
    reg [PW-1:0]  a_tail [0:(1<<AHW)-1];
    reg [AHW-1:0] al_ra;
    wire [PW-1:0] q_ahead = a_head[al_ra];
    wire [PW-1:0] q_atail = a_tail[al_ra];
    reg [PW-1:0]  m_atail;
    reg [PW-1:0]  rs_link;                // a NEW that rests: the order before it in its account's list
    reg           kl;                     // a KILL is cancelling its account's orders
    initial for (i_oc = 0; i_oc < (1 << AHW); i_oc = i_oc + 1) begin
        a_head[i_oc] = NIL;
        a_tail[i_oc] = NIL;
    end
    // MAX_POSITION (check 9): each account's position in each symbol (buys add, sells take
    // away; 64 bits signed, as the engine's) and the leaves of its resting buys and sells, one
    // word {pos, open buy, open sell} by {the account's entry, the symbol}, read through a
    // registered address (ps_ra) a cycle before it is used or written: the message's own at its
    // start (a NEW's symbol is its record's) or in S_LOOK1 (a REPLACE's is its order's), a
    // CANCEL's order's in S_LOOK1, a KILL's each order's in S_K1, each maker's in S_M3. m_ps
    // keeps the message's own word from S_CHECK on, through its fills (a maker's on the same
    // entry, without the stage in front, moves it too), written back at each change, one word a
    // cycle.
    localparam integer PVW = 64 + 2 * QW;
    reg [PVW-1:0] ps [0:(1<<PSW)-1];
    reg [PSW-1:0] ps_ra;
    wire [PVW-1:0] q_ps = ps[ps_ra];
    reg [PVW-1:0] m_ps;
    reg [62:0]    m_mp;                   // the account's max_position, 0 none
    initial for (i_oc = 0; i_oc < (1 << PSW); i_oc = i_oc + 1) ps[i_oc] = {PVW{1'b0}};
    // the stacks' top entries, kept as registers beside the depths: a read address that is a
    // register lets the stack be block RAM (a computed one would make it distributed RAM)
    reg [IW-1:0]  o_top_m1;               // o_top - 1
    reg [LHW-1:0] l_top_m1;               // l_top - 1
    wire [IW-1:0] o_alloc = (o_top != {CW{1'b0}}) ? o_free[o_top_m1] : o_unused[IW-1:0];
    wire [LHW-1:0] l_alloc = (l_top != {LCW{1'b0}}) ? l_free[l_top_m1] : l_unused[LHW-1:0];

    // ------------------------------------------------------------------ message being worked on
    reg [5:0]   state, ret;               // ret: where a shared step goes when it is done
    // the state the clocked block chose this cycle (a variable of that block, assigned before
    // it is read): S_IDLE means the message is done, and the next one may start at once
    reg [5:0]   nstate;
    // the next record, taken from the tick unit while a message is worked on, so that it starts
    // the cycle after the message ends, with its id's bucket and its price in ticks known
    reg           nx_valid;
    reg [63:0]    nx_id, nx_mseq, nx_px, nx_qty;
    reg [31:0]    nx_acct;
    reg [15:0]    nx_sym;
    reg [7:0]     nx_act, nx_side, nx_type, nx_tif;
    reg           nx_sym_ok;
    reg [HW-1:0]  nx_bkt;
    reg [52:0]    nx_qt;
    reg           nx_on_tick;
    reg [SW-1:0]  nx_qsym;
    reg [62:0]    nx_nt;
    reg [23:0]    nx_mo;
    reg [AHW-1:0] nx_slot;
    reg [62:0]    nx_mp;
    // a message started at the last edge: what the file bench traces (tb_file.v, "S" lines) and
    // a waveform shows; only the simulation's checks read it, and synthesis drops it
    /* verilator lint_off UNUSEDSIGNAL */
    reg           msg_start;
    /* verilator lint_on UNUSEDSIGNAL */
    // the first slot of the message's own id chain (its bucket m_bkt), kept current as the
    // message's own fills free slots of that chain
    reg [PW-1:0]  m_head;
    // the resting order the message names (CANCEL, REPLACE; a NEW's duplicate)
    reg           found;
    reg [IW-1:0]  t;
    reg [31:0]    t_acct, t_lvs;
    reg [LHW-1:0] t_lvl;
    reg [PW-1:0]  t_prev, t_next;
    reg [PW-1:0]  t_hprev, t_hnext;       // its id chain (current for a CANCEL: nothing else moves)
    reg [PW-1:0]  t_aprev, t_anext;       // its account's list (a KILL's next order: t_anext)
    reg [63:0]    t_id;
    reg           t_side, t_post;
    reg [SW-1:0]  t_sym;
    reg           t_at_best, t_more;      // its level is its side's best; a level is behind that
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
    reg [PW-1:0] mk_next, mk_hprev, mk_hnext, mk_aprev, mk_anext;
    // FOK
    // what the taker still needs of the levels not yet counted: its quantity less what those
    // counted hold, above 0 while the count goes on (it stops when an order covers it)
    reg [31:0]   fk_need;
    // a walk of a book's levels from its best (search: sr_*), and where a new level goes: behind
    // level sr_bh (or first, sr_top), in front of sr_wh (or last), whose price is sr_wpx
    reg          sr_s;                    // its side
    reg [52:0]   sr_px;
    reg          sr_found, sr_top;
    reg [LHW-1:0] sr_bh;
    reg [LHW:0]  sr_wh;
    reg [52:0]   sr_wpx;
    reg [IW-1:0] rs_o;                    // the slot that rests
    // top of book
    // the best level of each book (valid while it has a level): the top of book, and
    // what a NEW's cross and a resting order's level are decided with before any read. When a
    // REPLACE, a CANCEL or a KILL takes a book's best level away, the new best's handle and
    // price come with the old one's list entry (bst_h, bst_px and the count stay current); its
    // size, price in units and first order are a read of the level memory away, and stale until
    // then (S_BR*, or a KILL's next S_K1). Matching finds the next best read ahead.
    // (flip-flops, not distributed RAM: yosys merges the read ports of a LUT RAM into one with a
    // multiplexed address, which put the book's index, late in some states, in front of every
    // read; 33.0 -> 36.6 MHz at 1/1024/64)
    (* ram_style = "logic" *) reg [52:0]    bst_px  [0:NBK-1];      // price, ticks
    (* ram_style = "logic" *) reg [52:0]    bst_pxu [0:NBK-1];      // price, 1e-8 units
    (* ram_style = "logic" *) reg [QW-1:0]  bst_q   [0:NBK-1];      // size
    (* ram_style = "logic" *) reg [LHW-1:0] bst_h   [0:NBK-1];      // level handle
    // its first order (the level's l_head), so that matching reads the first maker at once
    (* ram_style = "logic" *) reg [IW-1:0]  bst_hd  [0:NBK-1];
    // The message's own symbol's two books (index: the side), a copy of bst_* and lad_n at
    // {cur_sym, side} that every state reads instead of them, so that no state's logic goes
    // through a 2 NSYM-way multiplexer (at NSYM=8 those were the documented configuration's
    // critical path). Loaded when cur_sym changes (a NEW's start, a CANCEL's or REPLACE's order
    // found in S_LOOK1); every write goes to both (set_*), so bst_* and lad_n, which the top of
    // book reads, stay current.
    (* ram_style = "logic" *) reg [52:0]    w_px  [0:1];
    (* ram_style = "logic" *) reg [52:0]    w_pxu [0:1];
    (* ram_style = "logic" *) reg [QW-1:0]  w_q   [0:1];
    (* ram_style = "logic" *) reg [LHW-1:0] w_h   [0:1];
    (* ram_style = "logic" *) reg [IW-1:0]  w_hd  [0:1];
    (* ram_style = "logic" *) reg [KW-1:0]  w_n   [0:1];
    // a best level of the message's symbol taken away, by side: w_pxu, w_q and w_hd not yet
    // the new best's (only a message sets one, and it clears it before it ends: S_BR*)
    reg [1:0]     stale;
    reg           br_side;                // the side S_BR* refreshes
    // the end of a message that changed the book: refresh a best level it took away (S_BR*)
    wire          book_clean = (stale == 2'b00);
    // where a message ends: S_IDLE, or for a KILL the next of its account's orders (S_K1, whose
    // slot S_KC read ahead), else KILLED (S_KN)
    wire [5:0]    msg_end = !kl ? S_IDLE : (t_anext == NIL) ? S_KN : S_K1;
    wire [5:0]    after_book = book_clean ? msg_end : S_BR0;
    // S_BR0 refreshes the buy side first, then the sell side (br_s); both stale: it comes back
    wire          br_s = !stale[0];
    wire          br_both = (stale == 2'b11);

    integer i;

    // ------------------------------------------------------------------ the tick unit
    // Every record goes through the tick unit (tickbook_book_ticks.v), which works out its
    // price in ticks; a record that needs none (not a NEW or a REPLACE) goes past it when it and
    // the buffer are empty, so that an idle book answers a CANCEL without the unit's latency.
    // The unit's tag is whether the record's symbol is one of the venue's.
    wire          u_valid, u_on_tick, u_busy;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [511:0]  u_data;                 // ts and the reserved bytes (but the risk stage's) are not read
    /* verilator lint_on UNUSEDSIGNAL */
    wire [HW-1:0] u_key;
    wire          u_sym_ok;
    wire [52:0]   u_qt;
    wire [SW-1:0] u_qsym;
    wire          in_past = in_valid && !u_busy && !nx_valid &&
                            in_act != ACTION_NEW && in_act != ACTION_REPLACE;
    wire          u_take = u_valid && !nx_valid;    // into the buffer, or started at once
    reg           fx_we;                  // a NEW duplicated a resting id: its symbol back
    reg [HW-1:0]  fx_key;
    reg [SW-1:0]  fx_sym;
    reg [HW-1:0]  m_bkt;                  // the message's id's bucket
    tickbook_book_ticks #(.NSYM(NSYM), .KW(HW), .TW(1)) ticks (
        .clk(clk), .rst(rst),
        .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_sym(cfg_sym), .cfg_data(cfg_data),
        .in_data(in_data), .in_valid(in_valid && !in_past), .in_ready(in_ready),
        .in_key(bucket(in_id)), .in_tag(in_sym_ok),
        .fix_we(fx_we), .fix_key(fx_key), .fix_sym(fx_sym),
        .out_valid(u_valid), .out_take(u_take), .out_data(u_data), .out_key(u_key),
        .out_tag(u_sym_ok), .out_qt(u_qt), .out_on_tick(u_on_tick), .out_qsym(u_qsym),
        .busy(u_busy)
    );
    wire [63:0] u_id   = u_data[ORDER_ORDER_ID_LSB +: ORDER_ORDER_ID_W];
    wire [63:0] u_px   = u_data[ORDER_PRICE_LSB +: ORDER_PRICE_W];
    wire [63:0] u_qty  = u_data[ORDER_QTY_LSB +: ORDER_QTY_W];
    wire [63:0] u_mseq = u_data[ORDER_MSG_SEQ_LSB +: ORDER_MSG_SEQ_W];
    wire [31:0] u_acct = u_data[ORDER_ACCOUNT_LSB +: ORDER_ACCOUNT_W];
    wire [15:0] u_sym  = u_data[ORDER_SYMBOL_LSB +: ORDER_SYMBOL_W];
    wire [7:0]  u_act  = u_data[ORDER_ACTION_LSB +: ORDER_ACTION_W];
    wire [7:0]  u_side = u_data[ORDER_SIDE_LSB +: ORDER_SIDE_W];
    wire [7:0]  u_type = u_data[ORDER_TYPE_LSB +: ORDER_TYPE_W];
    wire [7:0]  u_tif  = u_data[ORDER_TIF_LSB +: ORDER_TIF_W];
    wire [62:0] u_nt   = u_data[VERDICT_NT_LSB +: 63];    // the account's notional limit
    wire [62:0] in_nt  = in_data[VERDICT_NT_LSB +: 63];
    wire [23:0] u_mo   = u_data[VERDICT_MO_LSB +: 24];     // its max_open_orders
    wire [23:0] in_mo  = in_data[VERDICT_MO_LSB +: 24];
    wire [AHW-1:0] u_slot  = u_data[VERDICT_SLOT_LSB +: AHW];   // its account's index
    wire [AHW-1:0] in_slot = in_data[VERDICT_SLOT_LSB +: AHW];
    // its max_position, when the stage says so (a host's ts is not a limit)
    wire [62:0]   u_mp  = u_data[VERDICT_MP_ON] ? u_data[VERDICT_MP_LSB +: 63] : 63'd0;
    wire [62:0]   in_mp = in_data[VERDICT_MP_ON] ? in_data[VERDICT_MP_LSB +: 63] : 63'd0;

    // ------------------------------------------------------------------ the id buckets
    // The first slot of each bucket's chain, in block RAM behind its output register
    // (tickbook_book_buckets.v): a record's bucket is read as the record is taken in (into the
    // tick unit or past it), and a message takes the word as it starts, or in S_LOOK0 when it is
    // not in yet (a record that went past an idle book: the read's second cycle). The word is the
    // bucket with every write so far but one: a write that the clocked block sends in the cycle
    // of the take (hw_now*), which the block forwards itself. The states write with h_write; the
    // write goes out at the next edge through hw_*.
    reg           hw_we;
    initial hw_we = 1'b0;                 // no write before the first reset (a simulation's
                                          // random power-up would write the memory)
    reg [HW-1:0]  hw_wa;
    reg [PW-1:0]  hw_wd;
    reg           hw_now;                 // variables of the clocked block, as nstate: the write
    reg [HW-1:0]  hw_now_a;               // sent this cycle
    reg [PW-1:0]  hw_now_v;
    reg [PW-1:0]  h_first;                // (a variable of the clocked block: the word taken)
    wire          bk_ready;
    wire [HW-1:0] bk_key;
    wire [PW-1:0] bk_val;
    // a record starts at this edge (the hand-over at the end of the clocked block)
    wire          st_go = ends && (nx_valid || u_valid || in_past);
    wire          bk_take = bk_ready && (state == S_LOOK0 || st_go);
`ifndef SYNTHESIS
    // the word taken is the message's own bucket's (the reads and the messages in one order)
    wire [HW-1:0] st_bkt = nx_valid ? nx_bkt : u_valid ? u_key : bucket(in_id);
    always @(posedge clk)
        if (!rst && bk_take && bk_key != ((state == S_LOOK0) ? m_bkt : st_bkt))
            $fatal(1, "tickbook_book_bram: bucket %0d's word taken for a message of bucket %0d", bk_key,
                   (state == S_LOOK0) ? m_bkt : st_bkt);
`endif
    tickbook_book_buckets #(.HW(HW), .PW(PW), .EMPTY(NIL)) buckets (
        .clk(clk), .rst(rst), .we(hw_we), .wa(hw_wa), .wd(hw_wd),
        .go(in_valid && in_ready), .key(bucket(in_id)),
        .ready(bk_ready), .head_key(bk_key), .head_val(bk_val), .take(bk_take)
    );

    assign busy = (state != S_IDLE) || nx_valid || u_busy;

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

    // ------------------------------------------------------------------ checks (S_CHECK)
    wire         side_sel = m_rep ? t_side : (m_side == SIDE_SELL);
    // each symbol's collar as the bounds of its band, in ticks: r_hi = ref + band and r_lo =
    // ref - band (0 when the band reaches below 0), band = floor(ref * bps / 10000); and whether
    // they are current. The band unit below works them out again after the reference price (a
    // trade) or the collar changes, so that no message's checks wait on its two wide products or
    // the sums after them; S_CHECK waits for it
    reg [73:0]    r_hi [0:NSYM-1];
    reg [52:0]    r_lo [0:NSYM-1];
    reg [NSYM-1:0] band_ok;
    // the message's price in ticks and whether it is on tick (from the tick unit, or S_DIV), and
    // the symbol whose tick that is
    reg [52:0]    m_qt;
    reg           m_on_tick;
    reg [SW-1:0]  m_qsym;
    // S_DIV: the remainder of a division one bit a cycle, and the bits done
    reg [52:0]    dv_r;
    reg [5:0]     dv_n;
`define TICKBOOK_BAND_KEPT
`define TICKBOOK_TICKS_PIPED
`include "tickbook_book_price.vh"
`undef TICKBOOK_TICKS_PIPED
`undef TICKBOOK_BAND_KEPT
    // S_DIV's step: the remainder shifted, the next dividend bit in; the tick subtracted if it fits
    wire [53:0]   dv_sh = {dv_r, m_qt[52]};
    wire          dv_ge = dv_sh >= {1'b0, c_tick[cur_sym]};
    wire [53:0]   dv_sub = dv_sh - {1'b0, c_tick[cur_sym]};
    // the band unit, three stages: take a symbol whose band is not current (the message's own
    // first) with its reference price and collar; multiply them; divide by 10,000 (a product by
    // the reciprocal, as tickbook_book_price.vh does), add the band to the reference price and
    // take it away, and keep the bounds if the reference price and the collar are still the
    // ones it took
    reg           bu_v1, bu_v2;
    reg [SW-1:0]  bu_s1, bu_s2;
    reg [52:0]    bu_ref1, bu_ref2;
    reg [31:0]    bu_bps1, bu_bps2;
    reg [84:0]    bu_rb2;
    function [SW-1:0] first_stale;        // the lowest symbol whose band is not current
        input [NSYM-1:0] k_ok;
        integer j;
        begin
            first_stale = {SW{1'b0}};
            for (j = NSYM - 1; j >= 0; j = j - 1)
                if (!k_ok[j]) first_stale = j[SW-1:0];
        end
    endfunction
    wire [SW-1:0] bu_pick = band_ok[cur_sym] ? first_stale(band_ok) : cur_sym;
`ifndef TICKBOOK_CORE_ONLY
    /* verilator lint_off UNUSEDSIGNAL */
    wire [170:0]  bu_prod = {{86{1'b0}}, bu_rb2} * {{85{1'b0}}, MAG10K};
    /* verilator lint_on UNUSEDSIGNAL */
    wire [71:0]   bu_band = bu_prod[MAG10K_SHIFT +: 72];
`else
    wire [71:0]   bu_band = {19'd0, 3'd0, bu_ref2[52:3]};   // CORE=1: not functional (price.vh)
`endif
    wire         m_rests = (m_tif == TIF_GTC || m_tif == TIF_POST);
    wire         m_kill = (m_act == ACTION_RISK_KILL);   // a KILL the risk stage accepted

    // MAX_NOTIONAL (check 8): the account's limit comes from the risk stage with the record,
    // {has, limit} (tickbook_risk_verdict.vh: price in 1e-8 units x qty, below 2**62). The check
    // is worked out beside the message's first cycles, so that S_CHECK reads a register: value x
    // qty against the limit, the value in 1e-8 units. A LIMIT's or a REPLACE's is its price, so
    // its verdict is in after one edge; a MARKET order's is its protection price, or the
    // reference price without a collar, times the tick (2**62 stands for any value at or above
    // it, which is over every limit), one edge before. nt_age counts the edges since the
    // message's inputs to it are current (a MARKET order's bounds wait for the band unit).
    reg [62:0]   m_nt;
    reg [62:0]   nt_v;
    reg          nt_over;
    reg [1:0]    nt_age;
    wire [73:0]  nt_mkt_t = has_lim_c ? lim_c : {21'd0, r_ref[cur_sym]};
    wire [114:0] nt_mkt_u = {53'd0, nt_mkt_t[61:0]} * {62'd0, c_tick[cur_sym]};
    wire         nt_mkt_sat = (nt_mkt_t[73:62] != 12'd0) || (nt_mkt_u[114:62] != 53'd0);
    wire [94:0]  nt_prod = {32'd0, is_mkt ? nt_v : {10'd0, p53}} * {63'd0, m_qty[31:0]};
    wire         nt_inputs = !(is_mkt && !band_ok[cur_sym]);
    wire         nt_ok = !m_nt[62] || nt_age == 2'd2 || (!is_mkt && nt_age != 2'd0);   // S_CHECK waits for it
    wire         nt_bad = m_nt[62] && nt_over;
    // the message's own account's resting orders: read in S_CHECK, kept after it
    wire [CW-1:0] own_oc = (state == S_CHECK) ? q_oc : m_oc;
    wire [PW-1:0] own_atail = (state == S_CHECK) ? q_atail : m_atail;   // (KILL) the same way
    wire         oo_bad = (m_mo != 24'd0) && ({{(32-CW){1'b0}}, own_oc} >= {8'd0, m_mo});
    // MAX_POSITION: BUY pos + open buys + qty, SELL open sells + qty - pos, against the limit; a
    // REPLACE's own old leaves out of its side's open quantity (67 bits signed: no overflow)
    wire [PVW-1:0] own_ps = (state == S_CHECK) ? q_ps : m_ps;
    wire signed [66:0] po_pos = {{3{own_ps[2*QW + 63]}}, own_ps[2*QW +: 64]};
    wire signed [66:0] po_open = {{(67-QW){1'b0}}, side_sel ? own_ps[0 +: QW] : own_ps[QW +: QW]};
    wire signed [66:0] po_more = {35'd0, m_qty[31:0]} - (m_rep ? {35'd0, t_lvs} : 67'sd0);
    wire signed [66:0] po_val = side_sel ? po_open + po_more - po_pos : po_pos + po_open + po_more;
    wire         po_bad = (m_mp != 63'd0) && (po_val > $signed({4'd0, m_mp}));
    wire [KW-1:0] own_n = w_n[side_sel];
    wire         own_full = ({{(32-KW){1'b0}}, own_n} >= NLVL);
    wire         orders_full = ({{(32-CW){1'b0}}, rest_cnt} >= NORD);
    wire [7:0]   new_why = new_reason(sym_known, found, bad_tif, bad_qty, max_qty,
                                      is_mkt ? (m_px != PRICE_NONE) : (!px_rng || !on_tick),
                                      !is_mkt && out_band, nt_bad, po_bad, oo_bad, !is_mkt && m_rests && orders_full);
    // slot t's price is its level's (an order keeps no copy): S_LOOK1 points l_ra at the level
    // for S_CHECK and S_CAPR, the only states that read it
    wire [52:0]  t_pxu = q_lpxu;
    wire         rep_moves = (p53 != t_pxu);
    wire         rep_keeps = !rep_moves && m_qty[31:0] <= t_lvs;   // a REPLACE keeps its place
    // slot t (unlink): its level's only order; its level is its side's best (a current one)
    wire         t_alone = (t_prev == NIL && t_next == NIL);
    // (t_at_best and t_more, registers taken with t below, say whether its level is its side's
    // best and has a level behind it: `ends` reads them, and as compares of w_h and w_n they
    // closed a combinational loop through logic yosys shared with a message's start)
    wire [7:0]   can_why = cancel_reason(found, t_acct == m_acct);
    wire [7:0]   rep_why = replace_reason(found, t_acct == m_acct, bad_qty, max_qty,
                                          !px_rng || !on_tick, out_band, nt_bad, po_bad, 1'b0);
    // S_CHECK: does the message cross the other side's best level (stale bits are all clear
    // between messages)?
    wire         cross_c = (w_n[!side_sel] != {KW{1'b0}}) &&
                           (!has_lim_c || (side_sel ? ({21'd0, w_px[!side_sel]} >= lim_c)
                                                    : ({21'd0, w_px[!side_sel]} <= lim_c)));
    // does the taker cross a level of the other side: the one behind the level whose list
    // entry is read (matching's next level in S_M4, the FOK's count's in S_FK3), or the best
    // level's registers (S_M0)?
    wire [KW-1:0] opp_n = w_n[!tk_side];
    wire         lad_cross = !tk_has_lim || (tk_side ? ({21'd0, q_ladwpx} >= tk_lim)
                                                     : ({21'd0, q_ladwpx} <= tk_lim));
    wire         bst_cross = !tk_has_lim || (tk_side ? ({21'd0, w_px[!tk_side]} >= tk_lim)
                                                     : ({21'd0, w_px[!tk_side]} <= tk_lim));
    wire         opp_more = (opp_n >= K2);   // a level behind the best on the other side
    // the walk: is the level behind the one read still better than the price searched for?
    wire         sr_better = sr_s ? (q_ladwpx < sr_px) : (q_ladwpx > sr_px);
    wire [31:0]  fill_q = (tk_lvs < q_olvs) ? tk_lvs : q_olvs;
    // does this order cover what the taker still needs? One carry chain from the order memory's
    // leaves to the decision (a sum of the counted, then its compare with the taker's quantity,
    // were two in a row: at 8/8192/256 the critical path, docs/hardware.md)
    wire         fk_covers = (q_olvs >= fk_need);

    // ------------------------------------------------------------------ steps the states share
    // The tasks below and the state machine choose the next state in nstate, a blocking variable
    // of the clocked block (written first, read at its end, never outside it), so that a message
    // that ends this cycle hands over to the next one at once (which the block tells from `ends`,
    // worked out beside the choice, and checks against it in simulation).
    /* verilator lint_off BLKSEQ */
    // a field of a best level of the message's symbol, or its count of levels: the working copy
    // and the book's own register together (the index of the latter is cur_sym, a register, so
    // its write enables are a decoder, not a multiplexer in front of anything)
    task set_px;  input k_s; input [52:0]    k_v; begin w_px[k_s]  <= k_v; bst_px[{cur_sym, k_s}]  <= k_v; end endtask
    task set_pxu; input k_s; input [52:0]    k_v; begin w_pxu[k_s] <= k_v; bst_pxu[{cur_sym, k_s}] <= k_v; end endtask
    task set_q;   input k_s; input [QW-1:0]  k_v; begin w_q[k_s]   <= k_v; bst_q[{cur_sym, k_s}]   <= k_v; end endtask
    task set_h;   input k_s; input [LHW-1:0] k_v; begin w_h[k_s]   <= k_v; bst_h[{cur_sym, k_s}]   <= k_v; end endtask
    task set_hd;  input k_s; input [IW-1:0]  k_v; begin w_hd[k_s]  <= k_v; bst_hd[{cur_sym, k_s}]  <= k_v; end endtask
    task set_n;   input k_s; input [KW-1:0]  k_v; begin w_n[k_s]   <= k_v; lad_n[{cur_sym, k_s}]   <= k_v; end endtask

    // the new best level of side br_side, read at l_ra (its handle and price are set already):
    // its size, price in units and first order
    task refresh_best;
        begin
            set_pxu(br_side, q_lpxu);
            set_q(br_side, q_lqty);
            set_hd(br_side, q_lhead);
            stale[br_side] <= 1'b0;
        end
    endtask

    // the message's symbol becomes k_sym: the working copy of its two books from their registers
    // (no write of them is in flight: cur_sym's are the only ones written, and the caller loads
    // only another symbol's, or in S_LOOK1, where nothing is written)
    task load_books;
        input [SW-1:0] k_sym;
        integer k;
        begin
            for (k = 0; k < 2; k = k + 1) begin
                w_px[k]  <= bst_px[{k_sym, k[0]}];
                w_pxu[k] <= bst_pxu[{k_sym, k[0]}];
                w_q[k]   <= bst_q[{k_sym, k[0]}];
                w_h[k]   <= bst_h[{k_sym, k[0]}];
                w_hd[k]  <= bst_hd[{k_sym, k[0]}];
                w_n[k]   <= lad_n[{k_sym, k[0]}];
            end
        end
    endtask

    // a bucket's first slot changes (at most once a cycle): out at the next edge (hw_*)
    task h_write;
        input [HW-1:0] k_a;
        input [PW-1:0] k_v;
        begin
            hw_now = 1'b1;
            hw_now_a = k_a;
            hw_now_v = k_v;
        end
    endtask

    // slot o_ra (being read) becomes t, the order a CANCEL, REPLACE or KILL works on: its
    // fields and links, its level and its level's list entry read next (for S_CHECK, S_KC: the
    // neighbours it leaves between, in case it empties its level)
    task take_t;
        begin
            t <= o_ra;
            t_id <= q_oid;
            t_acct <= q_oacct;
            t_lvs <= q_olvs;
            t_lvl <= q_olvl;
            t_at_best <= (q_olvl == bst_h[{q_osym, q_oside}]);   // (nothing moves the best before unlink)
            t_more <= (lad_n[{q_osym, q_oside}] >= K2);
            l_ra <= q_olvl;
            lad_ra <= q_olvl;
            t_prev <= q_oprev;
            t_next <= q_onext;
            t_hprev <= q_ohprev;
            t_hnext <= q_ohnext;
            t_aprev <= q_oaprev;
            t_anext <= q_oanext;
            t_side <= q_oside;
            t_post <= q_opost;
            t_sym <= q_osym;
            t_aslot <= q_oaslot;
        end
    endtask

    // a position word after a change: the position by k_dp, side k_sell's open quantity by k_do
    // (two's complement)
    function [PVW-1:0] ps_move;
        input [PVW-1:0] k_v;
        input           k_sell;
        input [63:0]    k_dp;
        /* verilator lint_off UNUSEDSIGNAL */
        input [63:0]    k_do;             // (its low QW bits)
        /* verilator lint_on UNUSEDSIGNAL */
        reg   [63:0]    f_pos;
        reg   [QW-1:0]  f_ob, f_os;
        begin
            f_pos = k_v[2*QW +: 64] + k_dp;
            f_ob = k_v[QW +: QW] + (k_sell ? {QW{1'b0}} : k_do[QW-1:0]);
            f_os = k_v[0 +: QW] + (k_sell ? k_do[QW-1:0] : {QW{1'b0}});
            ps_move = {f_pos, f_ob, f_os};
        end
    endfunction

    // a position word written (one a cycle), and m_ps with it when it is the message's own
    task ps_write;
        input [AHW-1:0] k_aslot;
        input [SW-1:0]  k_sym;
        input [PVW-1:0] k_v;
        begin
            ps[{k_aslot, k_sym}] <= k_v;
            if (k_aslot == m_slot && k_sym == cur_sym) m_ps <= k_v;
        end
    endtask

    // the message takes its bucket's word (bk_take): the first slot of its id's chain, then the
    // chain's walk (S_LOOK1), or the checks when it is empty
    task look_first;
        begin
            h_first = (hw_now && hw_now_a == bk_key) ? hw_now_v : bk_val;
            m_head <= h_first;
            if (h_first == NIL) nstate = S_CHECK;
            else begin
                o_ra <= h_first[IW-1:0];
                nstate = S_LOOK1;
            end
        end
    endtask

    // an order leaves its id chain (its bucket, its chain neighbours) and the pool
    task free_order;
        input [IW-1:0]  k_o;
        input [63:0]    k_id;
        input [PW-1:0]  k_hprev, k_hnext;
        input [AHW-1:0] k_aslot;          // its account's entry, and that account's count now
        input [CW-1:0]  k_oc;
        input [PW-1:0]  k_aprev, k_anext; // its neighbours in its account's list
        begin
            if (k_aprev == NIL) a_head[k_aslot] <= k_anext;
            else o_anext[k_aprev[IW-1:0]] <= k_anext;
            if (k_anext == NIL) begin
                a_tail[k_aslot] <= k_aprev;
                if (k_aslot == m_slot) m_atail <= k_aprev;
            end else o_aprev[k_anext[IW-1:0]] <= k_aprev;
`ifndef SYNTHESIS
            if (k_oc == {CW{1'b0}})
                $fatal(1, "tickbook_book_bram: account entry %0d frees an order it does not count", k_aslot);
`endif
            oc[k_aslot] <= k_oc - 1'b1;
            if (k_aslot == m_slot) m_oc <= k_oc - 1'b1;   // (the same entry: m_oc stays its count)
            if (k_hprev == NIL) begin
                h_write(bucket(k_id), k_hnext);
                if (bucket(k_id) == m_bkt) m_head <= k_hnext;
            end else o_hnext[k_hprev[IW-1:0]] <= k_hnext;
            if (k_hnext != NIL) o_hprev[k_hnext[IW-1:0]] <= k_hprev;
            o_free[o_top[IW-1:0]] <= k_o;
            o_top <= o_top + 1'b1;
            o_top_m1 <= o_top[IW-1:0];
            rest_cnt <= rest_cnt - 1'b1;
        end
    endtask

    // a level handle back on its stack (the caller takes the level out of its list)
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

    // a walk of side sr_s's levels for a price ended: found (level k_h), or a new level goes
    // first (k_top) or behind level k_bh, in front of k_wh (LNIL: last) at k_wpx. A CAPACITY
    // check goes back to k_ret with sr_found (and a REPLACE's own level's list entry read again,
    // for its unlink: S_CAPR); a resting order (k_ret = TO_LEVEL) goes on to its level (S_R4) or
    // a new one (S_I1, S_I2).
    task search_done;
        input [5:0]     k_ret;
        input           k_found;
        input [LHW-1:0] k_h;
        input           k_top;
        input [LHW-1:0] k_bh;
        input [LHW:0]   k_wh;
        input [52:0]    k_wpx;
        begin
            sr_found <= k_found;
            sr_top <= k_top;
            sr_bh <= k_bh;
            sr_wh <= k_wh;
            sr_wpx <= k_wpx;
            if (k_ret != TO_LEVEL) begin
                lad_ra <= t_lvl;
                nstate = k_ret;
            end else if (k_found) begin
                l_ra <= k_h;
                nstate = S_R4;
            end else begin
                ret <= after_book;
                nstate = k_top ? S_I2 : S_I1;
            end
        end
    endtask

    // find price k_px on side k_side of the message's symbol: the best level, or a new best,
    // decided from the best level's registers without a read; else a walk from the best (S_F1),
    // one level a cycle; then search_done
    task search;
        input          k_side;
        input [52:0]   k_px;
        input [5:0]    k_ret;
        begin
            sr_s <= k_side;
            sr_px <= k_px;
            ret <= k_ret;
            if (w_n[k_side] == {KW{1'b0}})
                search_done(k_ret, 1'b0, {LHW{1'b0}}, 1'b1, {LHW{1'b0}}, LNIL, 53'd0);
            else if (k_side ? (k_px < w_px[k_side]) : (k_px > w_px[k_side]))
                search_done(k_ret, 1'b0, {LHW{1'b0}}, 1'b1, {LHW{1'b0}}, {1'b0, w_h[k_side]}, w_px[k_side]);
            else if (k_px == w_px[k_side])
                search_done(k_ret, 1'b1, w_h[k_side], 1'b0, {LHW{1'b0}}, LNIL, 53'd0);
            else begin
                sr_bh <= w_h[k_side];
                lad_ra <= w_h[k_side];
                nstate = S_F1;
            end
        end
    endtask

    // the resting order rs_o's level on its side (S_R4), or a new one (S_I*)
    task place;
        input        k_side;
        input [52:0] k_pxt;                  // its price, ticks
        search(k_side, k_pxt, TO_LEVEL);
    endtask

    // a NEW rests (S_CHECK when it cannot cross, S_R0 after matching): it takes a free slot and
    // goes first in its id's chain (m_head, read at its start), then to its level (S_R4 / S_I*;
    // they read the taker's registers, set by now)
    task rest_new;
        input        k_side, k_post;
        input [31:0] k_lvs;
        input [52:0] k_pxt;
        begin
            rs_o <= o_alloc;
            if (o_top != {CW{1'b0}}) begin
                o_top <= o_top - 1'b1;
                o_top_m1 <= o_top_m1 - 1'b1;
            end
            else o_unused <= o_unused + 1'b1;
            rest_cnt <= rest_cnt + 1'b1;
            o_id[o_alloc] <= m_id;
            o_acct[o_alloc] <= m_acct;
            o_aslot[o_alloc] <= m_slot;
            oc[m_slot] <= own_oc + 1'b1;
            // last in its account's list (the link from the order before it: S_R4 or S_I2,
            // since o_anext takes one write a cycle)
            o_aprev[o_alloc] <= own_atail;
            o_anext[o_alloc] <= NIL;
            a_tail[m_slot] <= ptr(o_alloc);
            m_atail <= ptr(o_alloc);
            if (own_atail == NIL) a_head[m_slot] <= ptr(o_alloc);
            rs_link <= own_atail;
            ps_write(m_slot, cur_sym, ps_move(own_ps, k_side, 64'd0, {32'd0, k_lvs}));   // open + leaves
            o_sym[o_alloc] <= cur_sym;
            o_side[o_alloc] <= k_side;
            o_post[o_alloc] <= k_post;
            o_lvs[o_alloc] <= k_lvs;
            o_next[o_alloc] <= NIL;
            o_hnext[o_alloc] <= m_head;
            o_hprev[o_alloc] <= NIL;
            h_write(m_bkt, ptr(o_alloc));
            h_dirty <= 1'b1;
            if (m_head != NIL) begin
                o_ra <= m_head[IW-1:0];
                nstate = S_R1B;
            end else place(k_side, k_pxt);
        end
    endtask

    // matching starts at the other side's best level, all in registers: its first order is
    // read now (S_M3 next) and its list entry too (the next level), ahead of S_M3's read of it
    task match_best;
        input k_opp;                     // the other side
        begin
            o_ra <= w_hd[k_opp];
            mk_h <= w_h[k_opp];
            mk_pxt <= w_px[k_opp];
            mk_lpxu <= w_pxu[k_opp];
            mk_lqty <= w_q[k_opp];
            lad_ra <= w_h[k_opp];         // its list entry: the next level (if opp_more)
            nstate = S_M3;
        end
    endtask

    // a message starts: its fields, its price in ticks, and its id's bucket's word (S_LOOK0
    // waits for it when it is not in yet)
    task start;
        input [63:0]   k_id, k_mseq, k_px, k_qty;
        input [31:0]   k_acct;
        input [15:0]   k_sym;
        input [7:0]    k_act, k_side, k_type, k_tif;
        input          k_sym_ok;
        input [HW-1:0] k_bkt;
        input [52:0]   k_qt;
        input          k_on_tick;
        input [SW-1:0] k_qsym;
        input [62:0]   k_nt;
        input [23:0]   k_mo;
        input [AHW-1:0] k_slot;
        input [62:0]   k_mp;
        begin
            msg_start <= 1'b1;
            m_mp <= k_mp;
            ps_ra <= {k_slot, k_sym[SW-1:0]};   // its position in its symbol (a NEW's), for S_CHECK
            m_mo <= k_mo;
            m_slot <= k_slot;
            oc_ra <= k_slot;              // its account's count, for S_CHECK
            al_ra <= k_slot;              // its account's list of orders (KILL)
            m_nt <= k_nt;
            nt_age <= 2'd0;
            m_qt <= k_qt;
            m_on_tick <= k_on_tick;
            m_qsym <= k_qsym;
            m_bkt <= k_bkt;
            m_id <= k_id;
            m_mseq <= k_mseq;
            m_acct <= k_acct;
            m_sym <= k_sym;
            m_px <= k_px;
            m_qty <= k_qty;
            m_act <= k_act;
            m_side <= k_side;
            m_type <= k_type;
            m_tif <= k_tif;
            // a NEW's symbol is its record's; a CANCEL's or a REPLACE's is its order's (S_LOOK1).
            // The same symbol keeps its working copy, with the writes of the state that ends the
            // previous message at this edge
            if (k_act == ACTION_NEW && k_sym_ok) begin
                cur_sym <= k_sym[SW-1:0];
                if (k_sym[SW-1:0] != cur_sym) load_books(k_sym[SW-1:0]);
            end
            found <= 1'b0;
            if (bk_ready) look_first;
            else nstate = S_LOOK0;
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
            if (m_tif == TIF_FOK) begin    // count what it can trade, from the best level on
                fk_need <= m_qty[31:0];
                if (!cross_c) nstate = S_FKD;
                else begin                // the best level's first order (S_FK2's step)
                    lad_ra <= w_h[!side_sel];
                    o_ra <= w_hd[!side_sel];
                    nstate = S_FK3;
                end
            end
            else if (cross_c && m_tif == TIF_POST) nstate = S_END;
            else if (cross_c) match_best(!side_sel);   // the other side's best: the first maker's
            else if (!is_mkt && m_rests)   // rests at once: no cross to wait for
                rest_new(side_sel, m_tif == TIF_POST, m_qty[31:0], q_t);
            else nstate = S_END;
        end
    endtask

    // slot t (a CANCEL's or a REPLACE's, found by S_LOOK1, which also set l_ra to its level)
    // leaves its level; the level leaves its side's list when it empties. A CANCEL's slot (k_free)
    // also leaves the id table and the pool and the message ends; a REPLACE goes on to k_ret.
    task unlink;
        input       k_free;
        input [5:0] k_ret;
        begin
`ifndef SYNTHESIS
            // (t_at_best and t_more were taken from the book's registers, the working copy's are
            // read here: they differ only when the copy is not its book's)
            if (t_at_best != (t_lvl == w_h[t_side]) || t_more != (w_n[t_side] >= K2))
                $fatal(1, "tickbook_book_bram: the working copy of symbol %0d side %0d is not its book's at the unlink of order slot %0d (level %0d: at its best %0d, more levels %0d; the copy's best %0d of %0d levels)",
                       cur_sym, t_side, t, t_lvl, t_at_best, t_more, w_h[t_side], w_n[t_side]);
`endif
            if (t_prev == NIL) begin
                l_head[t_lvl] <= t_next[IW-1:0];
                if (t_at_best) set_hd(t_side, t_next[IW-1:0]);
            end
            else o_next[t_prev[IW-1:0]] <= t_next;
            if (t_next == NIL) l_tail[t_lvl] <= t_prev[IW-1:0];
            else o_prev[t_next[IW-1:0]] <= t_prev;
            l_qty[t_lvl] <= q_lqty - {{IW{1'b0}}, t_lvs};
            if (t_at_best) set_q(t_side, q_lqty - {{IW{1'b0}}, t_lvs});
            if (k_free) begin             // (ps_ra: its word, set with t's reads)
                free_order(t, t_id, t_hprev, t_hnext, t_aslot, own_oc, t_aprev, t_anext);
                ps_write(t_aslot, t_sym, ps_move(q_ps, t_side, 64'd0, 64'd0 - {32'd0, t_lvs}));
            end
            if (t_alone) begin            // its level empties and leaves its side's list
                set_n(t_side, w_n[t_side] - 1'b1);
                free_level(t_lvl);
            end
            if (t_alone && t_at_best) begin
                // it was the best: the level behind it (its list entry, read with it) is the new
                // best, whose size, price in units and first order are a read away (stale)
                if (t_more) begin
                    set_px(t_side, q_ladwpx);
                    set_h(t_side, q_ladw[LHW-1:0]);
                    stale[t_side] <= 1'b1;
                    l_ra <= q_ladw[LHW-1:0];
                    br_side <= t_side;
                end
                // a REPLACE refreshes it at its end (S_BR*); a CANCEL at once (S_BR2); a KILL
                // in its next order's first cycle (S_K1), or with KILLED (S_KN)
                if (!k_free) nstate = k_ret;
                else if (!t_more) nstate = after_book;   // its side is empty now
                else nstate = kl ? msg_end : S_BR2;
            end else begin
                if (t_alone) begin
                    // it empties behind the best: the levels in front of it and behind it close up
                    lad_w[q_ladb[LHW-1:0]] <= q_ladw;
                    lad_wpx[q_ladb[LHW-1:0]] <= q_ladwpx;
                    if (q_ladw != LNIL) lad_b[q_ladw[LHW-1:0]] <= q_ladb;
                end
                nstate = k_free ? after_book : k_ret;
            end
        end
    endtask

    // S_CHECK, a CANCEL that passed: CANCELED USER, out of its level, out of the id table
    task accept_cancel;
        begin
            emit(EV_CANCELED, R_USER, m_id, 64'd0, {11'd0, t_pxu}, t_lvs, 32'd0, t_acct, t_side);
            unlink(1'b1, S_IDLE);
        end
    endtask

    // S_CHECK, a REPLACE that passed: REPLACED; it keeps its place (same price, no more
    // quantity), or leaves its level and trades as a taker from its own slot
    task accept_replace;
        begin
            emit(EV_REPLACED, R_NONE, m_id, 64'd0, m_px, m_qty[31:0], m_qty[31:0], t_acct, t_side);
            if (rep_keeps) begin          // keeps its place: its new size
                ps_write(m_slot, cur_sym, ps_move(own_ps, t_side, 64'd0, {32'd0, m_qty[31:0]} - {32'd0, t_lvs}));
                o_lvs[t] <= m_qty[31:0];
                l_qty[t_lvl] <= q_lqty - {{IW{1'b0}}, t_lvs - m_qty[31:0]};
                if (t_lvl == w_h[t_side]) set_q(t_side, q_lqty - {{IW{1'b0}}, t_lvs - m_qty[31:0]});
                // it ends in S_RK, a cycle on: whether it keeps its place is a compare with its
                // level's price, a block-RAM output, which would otherwise decide the hand-over
                nstate = S_RK;
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
                ps_write(m_slot, cur_sym, ps_move(own_ps, t_side, 64'd0, 64'd0 - {32'd0, t_lvs}));   // out of the book
                // the other side's best is what it was: the cross is known now (S_M0 again
                // decides POST_ONLY at the first cross)
                unlink(1'b0, cross_c ? S_M0 : S_R0);
            end
        end
    endtask

    // ------------------------------------------------------------------ does the message end?
    // Whether the state machine chooses S_IDLE this cycle (the message ends, and the next one
    // may start in the same edge), worked out beside that choice rather than read from it: the
    // next record's start, the input buffer's load and the bucket port's next use all hang on
    // it, and read from the choice it waited on every state's decisions from the memories
    // (yosys cannot see that most states never end a message: a FOK's count, a chain walk).
    // Here it is registers only: a REPLACE's price against its level's (a block-RAM output),
    // which says whether it keeps its place, is left out by ending such a REPLACE a cycle later
    // (S_RK). A simulation checks it against the choice every cycle (below, in the clocked
    // block).
    // accept_cancel (unlink): it ends unless its level empties at the best with a level behind
    // it (S_BR2)
    wire         cancel_ends = book_clean && !(t_alone && t_at_best && t_more);
    reg          ends;
    always @* begin
        case (state)
        S_IDLE:  ends = 1'b1;
        S_CLR:   ends = (clr_i == {CLW{1'b1}});
        S_CHECK: ends = !(m_rep && found && m_qsym != cur_sym) && ev_free &&
                        ((band_ok[cur_sym] && nt_ok) || !((m_new && sym_known) || (m_rep && found))) &&
                        ((m_new && fields_ok) ? (new_why != R_NONE)
                         : m_can ? (can_why != R_NONE || cancel_ends)
                         : m_rep ? (rep_why != R_NONE)   // one that passes ends in S_RK or later
                         : !m_kill);
        S_CAPN:  ends = ev_free && !sr_found;
        S_CAPR:  ends = ev_free && !sr_found;   // a REPLACE here moves: it never ends in S_RK
        S_FKD:   ends = ev_free;
        S_M4:    ends = ev_free && tk_lvs == 32'd0 && !tk_rep && book_clean;
        S_END:   ends = ev_free && book_clean && !(tk_rep && (tk_end == E_SELF || tk_end == E_POST));
        S_R4, S_FT1: ends = book_clean;
        S_RK:    ends = book_clean;
        S_I2:    ends = (ret == S_IDLE);
        S_BR0:   ends = (w_n[br_s] == {KW{1'b0}}) && !br_both && !kl;
        S_BR2:   ends = !stale[!br_side] && !kl;
        S_KN:    ends = ev_free;
        S_LOOK0, S_LOOK1, S_DIV, S_FK2, S_FK3, S_M0, S_M3, S_R0, S_R1B, S_FT0,
        S_F1, S_I1, S_K1, S_KC: ends = 1'b0;
        default: ends = 1'b1;
        endcase
    end

    // ------------------------------------------------------------------ the state machine
    always @(posedge clk) begin
        if (rst) begin
            state <= h_dirty ? S_CLR : S_IDLE;
            clr_i <= {CLW{1'b0}};
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
            w_n[0] <= {KW{1'b0}};
            w_n[1] <= {KW{1'b0}};
            stale <= 2'b00;
            kl <= 1'b0;
            nx_valid <= 1'b0;
            hw_we <= 1'b0;
            fx_we <= 1'b0;
            msg_start <= 1'b0;
            band_ok <= {NSYM{1'b0}};
            cur_sym <= {SW{1'b0}};
            bu_v1 <= 1'b0;
            bu_v2 <= 1'b0;
            for (i = 0; i < NSYM; i = i + 1) r_ref[i] <= c_ref0[i];
        end else begin
            bu_v1 <= !(&band_ok);
            bu_s1 <= bu_pick;
            bu_ref1 <= r_ref[bu_pick];
            bu_bps1 <= c_bps[bu_pick];
            bu_v2 <= bu_v1;
            bu_s2 <= bu_s1;
            bu_ref2 <= bu_ref1;
            bu_bps2 <= bu_bps1;
            bu_rb2 <= {{32{1'b0}}, bu_ref1} * {{53{1'b0}}, bu_bps1};
            // (before the state machine: a trade that moves the reference price this cycle
            // clears band_ok after it)
            if (bu_v2 && r_ref[bu_s2] == bu_ref2 && c_bps[bu_s2] == bu_bps2) begin
                r_hi[bu_s2] <= band_hi(bu_ref2, bu_band);
                r_lo[bu_s2] <= band_lo(bu_ref2, bu_band);
                band_ok[bu_s2] <= 1'b1;
            end
            if (state == S_CHECK) begin
                m_oc <= q_oc;
                m_atail <= q_atail;
                m_ps <= q_ps;
            end
            // MAX_NOTIONAL's steps (start() sets nt_age back to 0 for a new message)
            nt_v <= nt_mkt_sat ? 63'd1 << 62 : nt_mkt_u[62:0];
            nt_over <= nt_prod > {33'd0, m_nt[61:0]};
            nt_age <= !nt_inputs ? 2'd0 : (nt_age == 2'd2) ? 2'd2 : nt_age + 2'd1;

            nstate = state;
            msg_start <= 1'b0;
            fx_we <= 1'b0;
            hw_now = 1'b0;
            hw_now_a = {HW{1'b0}};
            hw_now_v = NIL;
            h_first = NIL;
            if (out_valid && out_ready) out_valid <= 1'b0;

            case (state)
            // after a reset that follows traffic: every hash bucket empty, one a cycle
            S_CLR: begin
                if ({{(32-CLW){1'b0}}, clr_i} < (1 << HW)) h_write(clr_i[HW-1:0], NIL);
                if ({{(32-CLW){1'b0}}, clr_i} < (1 << PSW)) ps[clr_i[PSW-1:0]] <= {PVW{1'b0}};
                if ({{(32-CLW){1'b0}}, clr_i} < (1 << AHW)) begin
                    oc[clr_i[AHW-1:0]] <= {CW{1'b0}};
                    a_head[clr_i[AHW-1:0]] <= NIL;
                    a_tail[clr_i[AHW-1:0]] <= NIL;
                end
                clr_i <= clr_i + 1'b1;
                if (clr_i == {CLW{1'b1}}) begin
                    h_dirty <= 1'b0;
                    nstate = S_IDLE;
                end
            end

            S_IDLE: ;                     // a record starts below

            // ---- the id: walk its bucket's chain
            S_LOOK0: if (bk_ready) look_first;

            S_LOOK1: begin
                if (q_oid == m_id) begin
                    found <= 1'b1;
                    take_t;
                    if (m_act == ACTION_CANCEL) oc_ra <= q_oaslot;   // no entry comes with a CANCEL
                    // the position word of its account (a CANCEL's order's) in its symbol
                    ps_ra <= {(m_act == ACTION_CANCEL) ? q_oaslot : m_slot, q_osym};
                    if (m_act == ACTION_CANCEL || m_act == ACTION_REPLACE) begin
                        cur_sym <= q_osym;
                        load_books(q_osym);
                    end
                    nstate = S_CHECK;
                end else if (q_ohnext == NIL) nstate = S_CHECK;
                else o_ra <= q_ohnext[IW-1:0];
            end

            // ---- every rule in the rulebook's order; CAPACITY of a level needs a walk
            // (a NEW of a known symbol and a REPLACE of a live order use the collar: they wait
            // for their symbol's band to be current, a few cycles after a trade moved it, and
            // for the MAX_NOTIONAL verdict of an account with a notional limit)
            // (a REPLACE whose order is of another symbol than the tick unit guessed divides its
            // price by this symbol's tick first, S_DIV)
            S_CHECK: if (m_rep && found && m_qsym != cur_sym) begin
                m_qsym <= cur_sym;
                m_qt <= p53;
                dv_r <= 53'd0;
                dv_n <= 6'd0;
                nstate = S_DIV;
            end else if (ev_free && ((band_ok[cur_sym] && nt_ok) || !((m_new && sym_known) || (m_rep && found)))) begin
                nstate = S_DONE;   // a REJECT ends the message; what accepts goes on
                if (m_new && fields_ok) begin
                    fx_we <= found;       // the tick unit took this NEW's symbol for its id's
                    fx_key <= m_bkt;
                    fx_sym <= t_sym;
                    if (new_why != R_NONE) reject(new_why);
                    else if (!is_mkt && m_rests && own_full) search(side_sel, q_t, S_CAPN);
                    else accept_new;
                end else if (m_can) begin
                    if (can_why != R_NONE) reject(can_why);
                    else accept_cancel;
                end else if (m_rep) begin
                    if (rep_why != R_NONE) reject(rep_why);
                    else if (rep_moves && own_full) search(side_sel, q_t, S_CAPR);
                    else accept_replace;
                end else if (m_kill) begin   // its account's first order, or KILLED at once
                    kl <= 1'b1;
                    t_anext <= q_ahead;
                    o_ra <= q_ahead[IW-1:0];
                    nstate = (q_ahead == NIL) ? S_KN : S_K1;
                end else reject(malformed_why);
            end

            // ---- KILL: each of the account's orders in acceptance order (o_ra: the next one,
            // t_anext), cancelled as a CANCEL is (unlink), then KILLED; 2 cycles an order
            // wherever its level is. A best level the last order took away is refreshed here
            // (l_ra: the new best level), before the working copy moves to this order's symbol.
            S_K1: begin
                if (!book_clean) refresh_best;
                take_t;
                ps_ra <= {q_oaslot, q_osym};
                cur_sym <= q_osym;
                if (q_osym != cur_sym) load_books(q_osym);
                nstate = S_KC;
            end

            S_KC: if (ev_free) begin
`ifndef SYNTHESIS
                if (t_aslot != m_slot || t_aprev != NIL)
                    $fatal(1, "tickbook_book_bram: KILL of account entry %0d reached order slot %0d of entry %0d, not its first",
                           m_slot, t, t_aslot);
`endif
                emit(EV_CANCELED, R_KILL, t_id, 64'd0, {11'd0, t_pxu}, t_lvs, 32'd0, t_acct, t_side);
                o_ra <= t_anext[IW-1:0];  // the next order, for S_K1
                unlink(1'b1, S_IDLE);
            end

            S_KN: if (ev_free) begin     // KILLED: only the account (as the engine writes it)
                if (!book_clean) refresh_best;
                ev_data <= event_record(seq, m_mseq, 64'd0, 64'd0, PRICE_NONE, 32'd0, 32'd0, m_acct,
                                        SYMBOL_UNKNOWN, EV_KILLED, 8'd0, R_NONE);
                out_valid <= 1'b1;
                seq <= seq + 64'd1;
                kl <= 1'b0;
                nstate = S_IDLE;
            end

            // long division, one quotient bit a cycle from the top: m_qt holds the dividend's
            // bits not yet used above the quotient's bits found
            S_DIV: begin
                dv_r <= dv_ge ? dv_sub[52:0] : dv_sh[52:0];   // below the tick either way
                m_qt <= {m_qt[51:0], dv_ge};
                dv_n <= dv_n + 1'b1;
                if (dv_n == 6'd52) begin
                    m_on_tick <= (dv_ge ? dv_sub : dv_sh) == 54'd0;
                    nstate = S_CHECK;
                end
            end

            S_CAPN: if (ev_free) begin
                nstate = S_DONE;   // a REJECT ends the message; what accepts goes on
                if (!sr_found) reject(R_CAPACITY);
                else accept_new;
            end

            S_CAPR: if (ev_free) begin
                nstate = S_DONE;   // a REJECT ends the message; what accepts goes on
                if (!sr_found) reject(R_CAPACITY);
                else accept_replace;
            end

            // ---- FOK: what trades within the limit before the taker's own first order (lad_ra:
            // the level counted, whose list entry gives the next)
            S_FK2: begin
                o_ra <= q_lhead;
                nstate = S_FK3;
            end

            S_FK3: begin
                if (q_oacct == tk_acct) nstate = S_FKD;
                else begin
                    fk_need <= fk_need - q_olvs;   // (read only when the count goes on)
                    if (fk_covers) match_best(!tk_side);   // it fills: from the best
                    else if (q_onext != NIL) o_ra <= q_onext[IW-1:0];
                    else if (q_ladw == LNIL || !lad_cross) nstate = S_FKD;
                    else begin            // the next level: its first order (S_FK2)
                        l_ra <= q_ladw[LHW-1:0];
                        lad_ra <= q_ladw[LHW-1:0];
                        nstate = S_FK2;
                    end
                end
            end

            S_FKD: if (ev_free) begin    // short of its quantity (what fills goes to S_M3)
                cancel_taker(R_FOK);
                nstate = S_DONE;
            end

            // ---- matching: the taker against the best order of the other side. The other
            // side's best-level registers are current here (stale bits are clear between
            // messages, and what a REPLACE or a FOK did before matching touched only its own
            // side), so its first level needs no read at all (match_best: its first order is
            // bst_hd); the next level is read ahead (match_best: the best's list entry, S_M3: the
            // level) while the fills of this one go out.
            S_M0: begin                   // a REPLACE that moves
                if (opp_n == {KW{1'b0}} || !bst_cross) begin
                    tk_end <= E_NOCROSS;
                    nstate = tk_rest ? S_R0 : S_END;
                end else if (tk_post && tk_first) begin
                    tk_end <= E_POST;
                    nstate = S_END;
                end else match_best(!tk_side);
            end

            S_M3: if (ev_free) begin     // the taker's half of a fill
                tk_first <= 1'b0;
                l_ra <= q_ladw[LHW-1:0];  // the next level, read ahead
                if (q_oacct == tk_acct) begin
                    tk_end <= E_SELF;
                    nstate = S_END;
                end else begin
                    emit(EV_FILL, R_TAKER, tk_id, q_oid, {11'd0, mk_lpxu}, fill_q, tk_lvs - fill_q,
                         tk_acct, tk_side);
                    o_lvs[o_ra] <= q_olvs - fill_q;
                    l_qty[mk_h] <= mk_lqty - {{IW{1'b0}}, fill_q};
                    mk_lqty <= mk_lqty - {{IW{1'b0}}, fill_q};
                    set_q(!tk_side, mk_lqty - {{IW{1'b0}}, fill_q});
                    r_ref[cur_sym] <= mk_pxt;
                    if (r_ref[cur_sym] != mk_pxt) band_ok[cur_sym] <= 1'b0;
                    tk_lvs <= tk_lvs - fill_q;
                    ps_write(m_slot, cur_sym, ps_move(m_ps, tk_side, tk_side ? 64'd0 - {32'd0, fill_q} : {32'd0, fill_q},
                                                      64'd0));   // the taker's position
                    ps_ra <= {q_oaslot, cur_sym};   // the maker's, for S_M4
                    fq <= fill_q;
                    mk_o <= o_ra;
                    mk_id <= q_oid;
                    mk_acct <= q_oacct;
                    mk_aslot <= q_oaslot;
                    oc_ra <= q_oaslot;        // its account's count, for S_M4
                    mk_left <= q_olvs - fill_q;
                    mk_next <= q_onext;
                    mk_hprev <= q_ohprev;
                    mk_hnext <= q_ohnext;
                    mk_aprev <= q_oaprev;
                    mk_anext <= q_oanext;
                    nstate = S_M4;
                end
            end

            S_M4: if (ev_free) begin     // the maker's half; a maker filled leaves the book
                emit(EV_FILL, R_MAKER, mk_id, tk_id, {11'd0, mk_lpxu}, fq, mk_left, mk_acct, !tk_side);
                // the maker's position and open quantity (its word read in S_M3, or m_ps when it
                // is the message's own entry, as without the stage in front)
                ps_write(mk_aslot, cur_sym, ps_move((mk_aslot == m_slot) ? m_ps : q_ps, !tk_side,
                                                    tk_side ? {32'd0, fq} : 64'd0 - {32'd0, fq},
                                                    64'd0 - {32'd0, fq}));
                if (mk_left == 32'd0) begin
                    if (mk_next == NIL) begin          // its level empties: the best, at the top
                        set_n(!tk_side, opp_n - 1'b1);
                        free_level(mk_h);
                        // the next level, read ahead, is the new best: the top of book stays
                        // current without a refresh (S_BR*)
                        if (opp_more) begin
                            set_px(!tk_side, q_ladwpx);
                            set_h(!tk_side, q_ladw[LHW-1:0]);
                            set_pxu(!tk_side, q_lpxu);
                            set_q(!tk_side, q_lqty);
                            set_hd(!tk_side, q_lhead);
                        end
                    end else begin
                        l_head[mk_h] <= mk_next[IW-1:0];
                        set_hd(!tk_side, mk_next[IW-1:0]);   // mk_h is the best level
                        o_prev[mk_next[IW-1:0]] <= NIL;
                    end
                    free_order(mk_o, mk_id, mk_hprev, mk_hnext, mk_aslot, q_oc, mk_aprev, mk_anext);
                end
                // the taker has quantity left only when this maker is filled
                if (tk_lvs == 32'd0) nstate = tk_rep ? S_FT0 : after_book;
                else if (mk_next != NIL) begin
                    o_ra <= mk_next[IW-1:0];   // the next order of the same level: 2 cycles a fill
                    nstate = S_M3;
                end else if (!opp_more || !lad_cross) begin
                    tk_end <= E_NOCROSS;
                    nstate = tk_rest ? S_R0 : S_END;
                end else begin            // the next level (read ahead): 2 cycles a fill too
                    o_ra <= q_lhead;
                    mk_h <= q_ladw[LHW-1:0];
                    mk_pxt <= q_ladwpx;
                    mk_lpxu <= q_lpxu;
                    mk_lqty <= q_lqty;
                    lad_ra <= q_ladw[LHW-1:0];   // and the one behind it
                    nstate = S_M3;
                end
            end

            // ---- the end of a match: cancel the rest, or rest it; a REPLACE that does not rest
            // frees its slot
            S_END: if (ev_free) begin
                case (tk_end)
                E_SELF: begin
                    cancel_taker(R_SELF_TRADE);
                    nstate = tk_rep ? S_FT0 : after_book;
                end
                E_POST: begin
                    cancel_taker(R_POST_ONLY);
                    nstate = tk_rep ? S_FT0 : after_book;
                end
                default: begin            // no cross left: a taker that rests went to S_R0
                    cancel_taker(R_IOC);
                    nstate = after_book;
                end
                endcase
            end

            // ---- rest: a NEW takes a free slot and joins the id table; then its level's back
            S_R0: begin                   // the taker rests after matching
                if (!tk_rep) rest_new(tk_side, tk_post, tk_lvs, tk_pxt);
                else begin
                    rs_o <= t;
                    o_lvs[t] <= tk_lvs;
                    ps_write(m_slot, cur_sym, ps_move(m_ps, tk_side, 64'd0, {32'd0, tk_lvs}));
                    o_next[t] <= NIL;
                    place(tk_side, tk_pxt);
                end
            end

            S_R1B: begin                  // the chain's old first slot points back at the new one
                o_hprev[o_ra] <= ptr(rs_o);
                place(tk_side, tk_pxt);
            end

            S_R4: begin                   // l_ra = its level: at the back of the FIFO
                o_next[q_ltail] <= ptr(rs_o);
                o_prev[rs_o] <= ptr(q_ltail);
                o_lvl[rs_o] <= l_ra;
                l_tail[l_ra] <= rs_o;
                if (!tk_rep && rs_link != NIL) o_anext[rs_link[IW-1:0]] <= ptr(rs_o);
                l_qty[l_ra] <= q_lqty + {{IW{1'b0}}, tk_lvs};
                if (l_ra == w_h[tk_side]) set_q(tk_side, q_lqty + {{IW{1'b0}}, tk_lvs});
                nstate = after_book;
            end

            // ---- slot t leaves the id table and is freed (its chain links read again: fills
            // of this message may have unlinked its neighbours)
            S_FT0: begin
                o_ra <= t;
                nstate = S_FT1;
            end

            S_FT1: begin
`ifndef SYNTHESIS
                if (t_aslot != m_slot)
                    $fatal(1, "tickbook_book_bram: a REPLACE's order is of account entry %0d, the message of %0d", t_aslot, m_slot);
`endif
                free_order(t, m_id, q_ohprev, q_ohnext, t_aslot, own_oc, q_oaprev, q_oanext);
                nstate = after_book;
            end

            // the walk of a search (lad_ra = sr_bh, a level better than the price): on while the
            // level behind it is better too, one a cycle
            S_F1: begin
                if (q_ladw != LNIL && sr_better) begin
                    sr_bh <= q_ladw[LHW-1:0];
                    lad_ra <= q_ladw[LHW-1:0];
                end else if (q_ladw != LNIL && q_ladwpx == sr_px)
                    search_done(ret, 1'b1, q_ladw[LHW-1:0], 1'b0, sr_bh, q_ladw, q_ladwpx);
                else search_done(ret, 1'b0, {LHW{1'b0}}, 1'b0, sr_bh, q_ladw, q_ladwpx);
            end

            // a new level (the handle on top of the free stack, l_alloc) for rs_o between sr_bh
            // and sr_wh: its own list entry first (S_I1), then its neighbours' links to it (S_I2;
            // one write a memory a cycle); a new best has no level in front (S_I2 alone); -> ret
            S_I1: begin
                lad_w[l_alloc] <= sr_wh;
                lad_wpx[l_alloc] <= sr_wpx;
                lad_b[l_alloc] <= {1'b0, sr_bh};
                nstate = S_I2;
            end

            S_I2: begin
                if (sr_top) begin
                    lad_w[l_alloc] <= sr_wh;
                    lad_wpx[l_alloc] <= sr_wpx;
                end else begin
                    lad_w[sr_bh] <= {1'b0, l_alloc};
                    lad_wpx[sr_bh] <= sr_px;
                end
                if (sr_wh != LNIL) lad_b[sr_wh[LHW-1:0]] <= {1'b0, l_alloc};
                set_n(sr_s, w_n[sr_s] + 1'b1);
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
                if (!tk_rep && rs_link != NIL) o_anext[rs_link[IW-1:0]] <= ptr(rs_o);
                if (sr_top) begin         // the new best level
                    set_px(sr_s, sr_px);
                    set_h(sr_s, l_alloc);
                    set_pxu(sr_s, tk_pxu[52:0]);
                    set_q(sr_s, {{IW{1'b0}}, tk_lvs});
                    set_hd(sr_s, rs_o);
                    stale[sr_s] <= 1'b0;
                end
                nstate = ret;
            end

            // ---- a best level taken away by this message: read the new one's level (its handle
            // and price are current); the top of book is these registers
            S_BR0: begin
                br_side <= br_s;
                if (w_n[br_s] == {KW{1'b0}}) begin
                    stale[br_s] <= 1'b0;
                    nstate = br_both ? S_BR0 : msg_end;
                end else begin
                    l_ra <= w_h[br_s];
                    nstate = S_BR2;
                end
            end

            S_BR2: begin
                refresh_best;
                nstate = stale[!br_side] ? S_BR0 : msg_end;
            end

            // a REPLACE that kept its place (accept_replace): nothing left to do
            S_RK: nstate = after_book;

            default: nstate = S_IDLE;
            endcase
`ifndef SYNTHESIS
            if (ends != (nstate == S_IDLE))
                $fatal(1, "tickbook_book_bram: ends = %0d in state %0d, which chose state %0d",
                       ends, state, nstate);
            // between messages (in a message's first cycle, or idle) the working copy is the
            // message's symbol's books
            if (msg_start || state == S_IDLE) begin
                for (i = 0; i < 2; i = i + 1)
                    if (w_n[i] != lad_n[{cur_sym, i[0]}] ||
                        (w_n[i] != {KW{1'b0}} &&
                         (w_px[i] != bst_px[{cur_sym, i[0]}] || w_pxu[i] != bst_pxu[{cur_sym, i[0]}] ||
                          w_q[i] != bst_q[{cur_sym, i[0]}] || w_h[i] != bst_h[{cur_sym, i[0]}] ||
                          w_hd[i] != bst_hd[{cur_sym, i[0]}])))
                        $fatal(1, "tickbook_book_bram: the working copy of symbol %0d side %0d is not its book's", cur_sym, i);
                // and each book's best-level registers are its best level's entry in the level
                // memory: what the top of book, a NEW's cross and matching read instead of it;
                // the level behind it is worse
                for (i = 0; i < NBK; i = i + 1)
                    if (lad_n[i] != {KW{1'b0}} && !(i[BW-1:1] == cur_sym && stale[i[0]]) &&
                        (bst_hd[i] != l_head[bst_h[i]] || bst_q[i] != l_qty[bst_h[i]] ||
                         bst_pxu[i] != l_pxu[bst_h[i]] ||
                         (lad_n[i] >= K2) != (lad_w[bst_h[i]] != LNIL) ||
                         (lad_n[i] >= K2 && (i[0] ? (lad_wpx[bst_h[i]] <= bst_px[i])
                                                  : (lad_wpx[bst_h[i]] >= bst_px[i])))))
                        $fatal(1, "tickbook_book_bram: book %0d's best level %0d in registers (first order %0d, size %0d) is not its level's (%0d, %0d)",
                               i, bst_h[i], bst_hd[i], bst_q[i], l_head[bst_h[i]], l_qty[bst_h[i]]);
            end
`endif

            // A message that ends this cycle hands over to the next record (st_go): the buffer's,
            // else the tick unit's last stage's, else one that goes past an empty unit. Otherwise
            // the unit's last stage moves into an empty buffer.
            if (ends && nx_valid) begin
                start(nx_id, nx_mseq, nx_px, nx_qty, nx_acct, nx_sym, nx_act, nx_side, nx_type, nx_tif,
                      nx_sym_ok, nx_bkt, nx_qt, nx_on_tick, nx_qsym, nx_nt, nx_mo, nx_slot, nx_mp);
                nx_valid <= 1'b0;
            end else if (ends && u_valid) begin
                start(u_id, u_mseq, u_px, u_qty, u_acct, u_sym, u_act, u_side, u_type, u_tif,
                      u_sym_ok, u_key, u_qt, u_on_tick, u_qsym, u_nt, u_mo, u_slot, u_mp);
            end else if (ends && in_past) begin
                start(in_id, in_mseq, in_px, in_qty, in_acct, in_sym, in_act, in_side, in_type, in_tif,
                      in_sym_ok, bucket(in_id), 53'd0, 1'b0, {SW{1'b0}}, in_nt, in_mo, in_slot, in_mp);
            end else if (u_take || in_past) begin
                nx_valid <= 1'b1;
                nx_id <= u_take ? u_id : in_id;
                nx_mseq <= u_take ? u_mseq : in_mseq;
                nx_px <= u_take ? u_px : in_px;
                nx_qty <= u_take ? u_qty : in_qty;
                nx_acct <= u_take ? u_acct : in_acct;
                nx_sym <= u_take ? u_sym : in_sym;
                nx_act <= u_take ? u_act : in_act;
                nx_side <= u_take ? u_side : in_side;
                nx_type <= u_take ? u_type : in_type;
                nx_tif <= u_take ? u_tif : in_tif;
                nx_sym_ok <= u_take ? u_sym_ok : in_sym_ok;
                nx_bkt <= u_take ? u_key : bucket(in_id);
                nx_qt <= u_qt;
                nx_on_tick <= u_on_tick;
                nx_qsym <= u_qsym;
                nx_nt <= u_take ? u_nt : in_nt;
                nx_mo <= u_take ? u_mo : in_mo;
                nx_slot <= u_take ? u_slot : in_slot;
                nx_mp <= u_take ? u_mp : in_mp;
            end
            state <= nstate;
            hw_we <= hw_now;
            hw_wa <= hw_now_a;
            hw_wd <= hw_now_v;
        end
        // the price configuration words, last: a write of the reference price wins over a trade's
        take_price_config;
        if (cfg_we && cfg_here && (cfg_addr == CFG_REF || cfg_addr == CFG_BPS)) band_ok[cfg_s] <= 1'b0;
    end
    /* verilator lint_on BLKSEQ */
endmodule

`default_nettype wire
