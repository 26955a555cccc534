// What every build of the book (tickbook_book.v, tickbook_book_area.v, tickbook_book_bram.v)
// declares and computes the same way, `include`d first in their module bodies: the record layout
// (generated from engine/records.py), the widths, the configuration port, the message registers,
// the fields of the record being accepted, the order in which the rules reject, and the event
// record. The register builds add their order slots with tickbook_book_shared.vh.
`include "tickbook_records.vh"
`include "tickbook_risk_verdict.vh"

    localparam integer SW = (NSYM > 1) ? $clog2(NSYM) : 1;   // a symbol index
    localparam integer IW = (NORD > 1) ? $clog2(NORD) : 1;   // a slot index
    localparam integer CW = $clog2(NORD + 1);                 // a count of slots

`include "tickbook_book_cfg.vh"

    // ------------------------------------------------------------------ configuration
    reg [52:0]  c_tick  [0:NSYM-1];   // tick in 1e-8 price units
    reg [31:0]  c_bps   [0:NSYM-1];   // band_bps, 0 = no collar
    reg [15:0]  c_nsym;               // symbols configured (<= NSYM)
    wire          cfg_here = ({16'd0, cfg_sym} < NSYM);   // a symbol of this build
    wire [SW-1:0] cfg_s = cfg_sym[SW-1:0];
    // the words no message changes (the host loads them while the book is idle); the reference
    // price, which trades move, is written in the build's state machine
    always @(posedge clk)
        if (cfg_we) begin
            if (cfg_addr == CFG_NSYM) c_nsym <= cfg_data[15:0];
            if (cfg_addr == CFG_TICK && cfg_here) c_tick[cfg_s] <= cfg_data[52:0];
            if (cfg_addr == CFG_BPS && cfg_here) c_bps[cfg_s] <= cfg_data[31:0];
        end

    // ------------------------------------------------------------------ message being worked on
    reg [63:0]    m_id, m_mseq;
    reg [31:0]    m_acct;
    reg [15:0]    m_sym;
    reg [SW-1:0]  cur_sym;            // the symbol whose book the message works on
    wire [15:0]   cur_sym16 = {{(16-SW){1'b0}}, cur_sym};
    wire          sym_known = (m_sym < c_nsym) && ({16'd0, m_sym} < NSYM);
    wire          ev_free = !out_valid || out_ready;    // an event can be presented

    // ------------------------------------------------------------------ the record being accepted
    wire [63:0] in_id   = in_data[ORDER_ORDER_ID_LSB +: ORDER_ORDER_ID_W];
    wire [63:0] in_px   = in_data[ORDER_PRICE_LSB +: ORDER_PRICE_W];
    wire [63:0] in_qty  = in_data[ORDER_QTY_LSB +: ORDER_QTY_W];
    wire [63:0] in_mseq = in_data[ORDER_MSG_SEQ_LSB +: ORDER_MSG_SEQ_W];
    wire [31:0] in_acct = in_data[ORDER_ACCOUNT_LSB +: ORDER_ACCOUNT_W];
    wire [15:0] in_sym  = in_data[ORDER_SYMBOL_LSB +: ORDER_SYMBOL_W];
    wire [7:0]  in_act  = in_data[ORDER_ACTION_LSB +: ORDER_ACTION_W];
    wire [7:0]  in_side = in_data[ORDER_SIDE_LSB +: ORDER_SIDE_W];
    wire [7:0]  in_type = in_data[ORDER_TYPE_LSB +: ORDER_TYPE_W];
    wire [7:0]  in_tif  = in_data[ORDER_TIF_LSB +: ORDER_TIF_W];
    wire        in_sym_ok = (in_sym < c_nsym) && ({16'd0, in_sym} < NSYM);

    // a NEW's side, type and tif are values of their enums (else MALFORMED, as the engine does)
    function fields_valid;
        input [7:0] k_side, k_type, k_tif;
        fields_valid = (k_side == SIDE_BUY || k_side == SIDE_SELL) &&
                       (k_type == TYPE_LIMIT || k_type == TYPE_MARKET) &&
                       (k_tif >= TIF_GTC && k_tif <= TIF_POST);
    endfunction

    // what a record that is no NEW with valid fields, no CANCEL and no REPLACE is rejected for:
    // the risk stage's reason when it rejected the message (tickbook_risk_verdict.vh), else
    // MALFORMED
    function [7:0] risk_or_malformed;
        input [7:0] k_act, k_tif;
        risk_or_malformed = (k_act == ACTION_RISK_REJECT) ? k_tif : R_MALFORMED;
    endfunction

    // ------------------------------------------------------------------ the order of the rules
    // The first rule a message breaks, in the order of docs/rulebook.md (sections 4, 5, 7), or
    // R_NONE: written once for both builds, which compute the conditions each its own way.
    // (notional, open: MAX_NOTIONAL and MAX_OPEN_ORDERS, which only the block-RAM build checks;
    // the others give 0)
    function [7:0] new_reason;
        input sym_ok, dup, tif_bad, qty_bad, qty_max, px_bad, band_out, notional, position, open, cap;
        new_reason = !sym_ok ? R_UNKNOWN_SYMBOL : dup ? R_DUPLICATE_ORDER_ID :
                     tif_bad ? R_BAD_TIF : qty_bad ? R_BAD_QTY : qty_max ? R_MAX_QTY :
                     px_bad ? R_BAD_PRICE : band_out ? R_PRICE_BAND :
                     notional ? R_MAX_NOTIONAL : position ? R_MAX_POSITION :
                     open ? R_MAX_OPEN_ORDERS : cap ? R_CAPACITY : R_NONE;
    endfunction

    function [7:0] cancel_reason;     // also the first checks of a REPLACE
        input hit, owner;
        cancel_reason = !hit ? R_UNKNOWN_ORDER : !owner ? R_NOT_OWNER : R_NONE;
    endfunction

    function [7:0] replace_reason;
        input hit, owner, qty_bad, qty_max, px_bad, band_out, notional, position, cap;
        replace_reason = (!hit || !owner) ? cancel_reason(hit, owner) : qty_bad ? R_BAD_QTY :
                         qty_max ? R_MAX_QTY : px_bad ? R_BAD_PRICE : band_out ? R_PRICE_BAND :
                         notional ? R_MAX_NOTIONAL : position ? R_MAX_POSITION :
                         cap ? R_CAPACITY : R_NONE;
    endfunction

    // ------------------------------------------------------------------ the event record
    function [511:0] event_record;
        input [63:0] f_seq, f_mseq, f_oid, f_cid, f_px;
        input [31:0] f_qty, f_lvs, f_acct;
        input [15:0] f_sym;
        input [7:0]  f_kind, f_side, f_reason;
        begin
            event_record = 512'd0;   // the reserved bytes
            event_record[EVENT_SEQ_LSB +: EVENT_SEQ_W] = f_seq;
            event_record[EVENT_MSG_SEQ_LSB +: EVENT_MSG_SEQ_W] = f_mseq;
            event_record[EVENT_ORDER_ID_LSB +: EVENT_ORDER_ID_W] = f_oid;
            event_record[EVENT_CONTRA_ID_LSB +: EVENT_CONTRA_ID_W] = f_cid;
            event_record[EVENT_PRICE_LSB +: EVENT_PRICE_W] = f_px;
            event_record[EVENT_QTY_LSB +: EVENT_QTY_W] = f_qty;
            event_record[EVENT_LEAVES_LSB +: EVENT_LEAVES_W] = f_lvs;
            event_record[EVENT_ACCOUNT_LSB +: EVENT_ACCOUNT_W] = f_acct;
            event_record[EVENT_SYMBOL_LSB +: EVENT_SYMBOL_W] = f_sym;
            event_record[EVENT_KIND_LSB +: EVENT_KIND_W] = f_kind;
            event_record[EVENT_SIDE_LSB +: EVENT_SIDE_W] = f_side;
            event_record[EVENT_REASON_LSB +: EVENT_REASON_W] = f_reason;
        end
    endfunction
