// The ports of both builds of the book (tickbook_book.v, tickbook_book_area.v), `include`d as
// their port list: the two builds are interchangeable by construction. docs/hardware.md.
    input  wire                 clk,
    input  wire                 rst,      // synchronous: empties the book, seq back to 1,
                                          // reference prices back to the configured ones
    // configuration port (kept across rst): addresses CFG_* in tickbook_book_shared.vh
    input  wire                 cfg_we,
    input  wire [2:0]           cfg_addr,
    input  wire [15:0]          cfg_sym,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [127:0]         cfg_data,
    /* verilator lint_on UNUSEDSIGNAL */
    // order records in (engine/records.py ORDER_DTYPE, the record as a little-endian integer)
    input  wire                 in_valid,
    output wire                 in_ready,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [511:0]         in_data,  // ts is not read; reserved bytes: tickbook_risk_verdict.vh
    /* verilator lint_on UNUSEDSIGNAL */
    // event records out (EVENT_DTYPE)
    output reg                  out_valid,
    input  wire                 out_ready,
    output wire [511:0]         out_data,
    // top of book per symbol (symbol s at bits [64*s +: 64]); price PRICE_NONE when empty
    output wire [NSYM*64-1:0]   tob_bid_px,
    output wire [NSYM*64-1:0]   tob_bid_qty,
    output wire [NSYM*64-1:0]   tob_ask_px,
    output wire [NSYM*64-1:0]   tob_ask_qty,
    output wire                 busy      // a message is being worked on
