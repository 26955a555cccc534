// What the two register builds of the book (tickbook_book.v, tickbook_book_area.v) declare the
// same way, `include`d first in their module bodies: everything every build shares
// (tickbook_book_common.vh), then the order slots, the message's slot, the id lookup (a CAM over
// the slots) and the free slot. The state-machine steps both share are in tickbook_book_steps.vh,
// included after the build's own declarations.
`include "tickbook_book_common.vh"
    localparam integer LW = $clog2(NLVL + 1);                 // a count of levels

    // ------------------------------------------------------------------ order slots
    // every resting order lives in a register slot; each build adds how it ranks them
    reg [NORD-1:0] o_valid;
    reg [63:0]     o_id    [0:NORD-1];
    reg [31:0]     o_acct  [0:NORD-1];
    reg [SW-1:0]   o_sym   [0:NORD-1];
    reg [NORD-1:0] o_side;            // 0 buy, 1 sell
    reg [NORD-1:0] o_post;            // post-only (matters when it is replaced)
    reg [52:0]     o_pxu   [0:NORD-1];// price, 1e-8 units
    reg [31:0]     o_lvs   [0:NORD-1];// leaves
    reg [CW-1:0]   rest_cnt;          // slots in use
    reg [LW-1:0]   lvl_cnt [0:(2<<SW)-1]; // price levels, index {sym, side}

    // the message's resting order (CANCEL / REPLACE), looked up at acceptance
    reg           cur_ok;             // cur_sym names a symbol of this build (top of book)
    reg           m_hit;              // the id rests (looked up at acceptance), in slot m_hidx
    reg [IW-1:0]  m_hidx;
    wire [IW-1:0] t = m_hidx;         // the target slot of a CANCEL / REPLACE
    wire          t_side = o_side[t];

    // id lookup: a CAM over the slots
    reg          l_hit;
    reg [IW-1:0] l_idx;
    integer      li;
    always @* begin
        l_hit = 1'b0;
        l_idx = {IW{1'b0}};
        for (li = 0; li < NORD; li = li + 1)
            if (o_valid[li] && o_id[li] == in_id) begin
                l_hit = 1'b1;
                l_idx = li[IW-1:0];
            end
    end

    // the lowest free slot (a NEW that rests takes it)
    reg [IW-1:0] free_i;
    integer      fi;
    always @* begin
        free_i = {IW{1'b0}};
        for (fi = NORD - 1; fi >= 0; fi = fi - 1)
            if (!o_valid[fi]) free_i = fi[IW-1:0];
    end

