// What the builds that keep the whole order record and present the whole 512-bit event
// (tickbook_book.v, tickbook_book_bram.v) declare the same way, `include`d after
// tickbook_book_common.vh: the message's fields as received, what they say, the event being
// presented (ev_data, with its sequence number seq) and the tasks that emit an event of the
// message (its symbol cur_sym) or reject the record (echoing its own symbol, id and account).
    reg [63:0]  seq;
    reg [63:0]  m_px, m_qty;
    reg [7:0]   m_act, m_side, m_type, m_tif;
    reg [511:0] ev_data;
    assign out_data = ev_data;

    wire        m_new = (m_act == ACTION_NEW);
    wire        m_can = (m_act == ACTION_CANCEL);
    wire        m_rep = (m_act == ACTION_REPLACE);
    wire        fields_ok = fields_valid(m_side, m_type, m_tif);
    wire        is_mkt = m_new && (m_type == TYPE_MARKET);
    wire        bad_tif = is_mkt && (m_tif == TIF_GTC || m_tif == TIF_POST);
    wire        bad_qty = $signed(m_qty) <= 64'sd0;
    wire        max_qty = (m_qty[63:32] != 32'd0);
    wire [7:0]  malformed_why = risk_or_malformed(m_act, m_tif);   // no NEW, CANCEL, REPLACE

    task emit;
        input [7:0]  k_kind, k_reason;
        input [63:0] k_oid, k_cid, k_px;
        input [31:0] k_qty, k_lvs, k_acct;
        input        k_sell;
        begin
            ev_data <= event_record(seq, m_mseq, k_oid, k_cid, k_px, k_qty, k_lvs, k_acct,
                                    cur_sym16, k_kind, k_sell ? SIDE_SELL : SIDE_BUY, k_reason);
            out_valid <= 1'b1;
            seq <= seq + 64'd1;
        end
    endtask

    task reject;
        input [7:0] k_reason;
        begin
            ev_data <= event_record(seq, m_mseq, m_id, 64'd0, PRICE_NONE, 32'd0, 32'd0, m_acct,
                                    m_sym, EV_REJECT, 8'd0, k_reason);
            out_valid <= 1'b1;
            seq <= seq + 64'd1;
        end
    endtask
