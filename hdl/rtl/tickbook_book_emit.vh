// The event tasks of the builds that present the whole 512-bit event record (tickbook_book.v,
// tickbook_book_bram.v), `include`d after their declarations of ev_data (the event presented),
// seq (the next event's sequence number) and out_valid: emit an event of the message being
// worked on (its symbol cur_sym), or reject the record (echoing its own symbol, id and account).
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
