// The steps of the state machine both builds of the book share, `include`d after the build's
// own declarations and before its state machine (tickbook_book_shared.vh comes first). Besides
// what the shared include declares, they use what each build declares with the same meaning:
//   state, S_IDLE, S_MATCH, S_FILL2, and S_DONE (the state after a message's last event);
//   m_new, m_can, m_rep, fields_ok (what the record is); new_why, can_why, rep_why (the first
//   rule it breaks, from the functions of tickbook_book_shared.vh); tasks reject(reason),
//   accept_new, accept_cancel, accept_replace (what the build does with a message that passed);
//   m_qty, is_mkt, m_rests (GTC or POST), m_post, m_fok; cross_new (the NEW crosses the book, in
//   S_CHECK), task rest_message (the NEW rests, in S_CHECK);
//   c_ref0, r_ref: the configured and the current reference price (in the build's unit);
//   p53 (the message's price, 1e-8 units), side_sel (its side, 1 = sell), lvl_exists (a level
//   at p53 on side_sel), t_others (another order at slot t's price and side);
//   the taker: tk_rep (a REPLACE, in slot t), tk_side, tk_lvs, tk_rest, tk_post, tk_first;
//   its best contra order: cross_m (within the taker's limit), self_hit, opp_i (its slot),
//   maker_alone (the only order at its price), mk_left and tk_left (leaves after a fill);
//   tasks cancel_taker(reason), rest_taker, fill_taker (the taker's half of a fill, and what
//   S_FILL2 needs for the maker's), remove_t(side) (slot t leaves the book).

    // ------------------------------------------------------------------ CAPACITY (section 7)
    wire [LW-1:0] lvl_here = lvl_cnt[{cur_sym, side_sel}];
    wire          lvl_full = ({{(32-LW){1'b0}}, lvl_here} >= NLVL);
    wire          cap_new = ({{(32-CW){1'b0}}, rest_cnt} >= NORD) || (!lvl_exists && lvl_full);

    // ------------------------------------------------------------------ steps
    integer rk;

    // rst: the book empty, the reference prices back to the configured ones (the build resets
    // the rest of its own state)
    task reset_book;
        begin
            state <= S_IDLE;
            out_valid <= 1'b0;
            o_valid <= {NORD{1'b0}};
            rest_cnt <= {CW{1'b0}};
            cur_ok <= 1'b0;
            for (rk = 0; rk < (2 << SW); rk = rk + 1) lvl_cnt[rk] <= {LW{1'b0}};
            for (rk = 0; rk < NSYM; rk = rk + 1) r_ref[rk] <= c_ref0[rk];
        end
    endtask

    // S_IDLE, a record accepted: the fields both builds keep, and the symbol whose book the
    // message works on (a NEW's own, the target's for CANCEL / REPLACE)
    task take_message;
        begin
            m_id   <= in_id;
            m_mseq <= in_mseq;
            m_acct <= in_acct;
            m_sym  <= in_sym;
            m_hit  <= l_hit;
            m_hidx <= l_idx;
            if (in_act == ACTION_NEW && in_sym_ok) begin
                cur_sym <= in_sym[SW-1:0];
                cur_ok <= 1'b1;
            end else if ((in_act == ACTION_CANCEL || in_act == ACTION_REPLACE) && l_hit) begin
                cur_sym <= o_sym[l_idx];
                cur_ok <= 1'b1;
            end
        end
    endtask

    // S_CHECK: the first rule the message breaks (new_why, can_why, rep_why: the build's
    // conditions through the shared rule order) is rejected, else the build accepts it; a record
    // that is neither a NEW with valid side/type/tif, nor a CANCEL, nor a REPLACE is MALFORMED
    task check_step;
        begin
            state <= S_DONE;
            if (m_new && fields_ok) begin
                if (new_why != R_NONE) reject(new_why);
                else accept_new;
            end else if (m_can) begin
                if (can_why != R_NONE) reject(can_why);
                else accept_cancel;
            end else if (m_rep) begin
                if (rep_why != R_NONE) reject(rep_why);
                else accept_replace;
            end else reject(malformed_why);
        end
    endtask

    // a NEW that passed is the taker: FOK is checked first, a crossing order matches, one that
    // does not cross rests (GTC, POST) or ends in S_MATCH (IOC, MARKET: CANCELED IOC)
    task new_taker;
        begin
            tk_rep <= 1'b0;
            tk_lvs <= m_qty[31:0];
            tk_rest <= !is_mkt && m_rests;
            tk_post <= m_post;
            tk_first <= 1'b1;
            if (m_fok) state <= S_FOK1;
            else if (cross_new) state <= S_MATCH;
            else if (!is_mkt && m_rests) rest_message;
            else state <= S_MATCH;
        end
    endtask

    // a REPLACE that passed and crosses trades as the taker, from slot t, and rests there
    task replace_taker;
        begin
            tk_rep <= 1'b1;
            tk_lvs <= m_qty[31:0];
            tk_rest <= 1'b1;
            tk_post <= o_post[t];
            tk_first <= 1'b1;
            state <= S_MATCH;
        end
    endtask

    // a REPLACE moves slot t to the price p53 on its side: a level appears when there was none
    // at p53, and one goes when t was alone at its old price
    task move_t_level;
        lvl_cnt[{cur_sym, t_side}] <= lvl_here + {{(LW-1){1'b0}}, !lvl_exists}
                                               - {{(LW-1){1'b0}}, !t_others};
    endtask

    // a NEW order rests in the free slot at p53 (the build adds its time and price priority)
    task rest_slot;
        input        k_post;
        input [31:0] k_lvs;
        begin
            o_valid[free_i] <= 1'b1;
            o_id[free_i] <= m_id;
            o_acct[free_i] <= m_acct;
            o_sym[free_i] <= cur_sym;
            o_side[free_i] <= side_sel;
            o_post[free_i] <= k_post;
            o_pxu[free_i] <= p53;
            o_lvs[free_i] <= k_lvs;
            rest_cnt <= rest_cnt + 1'b1;
            if (!lvl_exists) lvl_cnt[{cur_sym, side_sel}] <= lvl_here + 1'b1;
        end
    endtask

    // slot t (the target of a CANCEL, or a REPLACE that stops) leaves the book; k_side: its side
    task free_t;
        input k_side;
        begin
            o_valid[t] <= 1'b0;
            rest_cnt <= rest_cnt - 1'b1;
            if (!t_others) lvl_cnt[{cur_sym, k_side}] <= lvl_cnt[{cur_sym, k_side}] - 1'b1;
        end
    endtask

    // the book after a fill: the maker's leaves (at zero it leaves, and its level with it when
    // it was alone there), the same for a REPLACE's own slot, and the count of resting orders
    task fill_book;
        begin
            o_lvs[opp_i] <= mk_left;
            if (mk_left == 32'd0) begin
                o_valid[opp_i] <= 1'b0;
                if (maker_alone)
                    lvl_cnt[{cur_sym, !tk_side}] <= lvl_cnt[{cur_sym, !tk_side}] - 1'b1;
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
        end
    endtask

    // S_MATCH: the taker against the best order of the other side (docs/rulebook.md section 5):
    // POST_ONLY before its first fill, the end of the sweep (CANCELED IOC, or it rests),
    // SELF_TRADE, or a fill (the taker's half now, the maker's in S_FILL2)
    task match_step;
        begin
            tk_first <= 1'b0;
            if (tk_post && tk_first && cross_m) begin
                cancel_taker(R_POST_ONLY);
                if (tk_rep) remove_t(tk_side);
                state <= S_DONE;
            end else if (!cross_m) begin
                if (!tk_rest) cancel_taker(R_IOC);
                else if (!tk_rep) rest_taker;
                state <= S_DONE;
            end else if (self_hit) begin
                cancel_taker(R_SELF_TRADE);
                if (tk_rep) remove_t(tk_side);
                state <= S_DONE;
            end else begin
                fill_taker;
                fill_book;
                state <= S_FILL2;
            end
        end
    endtask

    // S_FILL2, the maker's half of the fill presented: the book already holds the fill, so
    // finish here when nothing else can follow; else back to matching
    task fill_next;
        begin
            if (tk_lvs == 32'd0) state <= S_DONE;
            else if (!cross_m && tk_rest) begin
                if (!tk_rep) rest_taker;
                state <= S_DONE;
            end else state <= S_MATCH;
        end
    endtask
