// tickbook: the block-RAM order book (tickbook_book_bram) with its two record streams under
// AXI4-Stream names, so that it drops into a design built of AXI-Stream cores (a DMA engine, a
// FIFO, an interconnect) and into testbenches built on cocotbext-axi's AxiStreamSource/Sink.
//
//   s_axis_*   order records in: one 64-byte record (engine/records.py ORDER_DTYPE, byte 0 in
//              bits [7:0]) a beat; the book's in_data/in_valid/in_ready
//   m_axis_*   event records out: one 64-byte record (EVENT_DTYPE) a beat; the book's
//              out_data/out_valid/out_ready
//
// Nothing is added between the streams and the book: no register stage, no cycle of latency,
// the same events on the same cycles as tickbook_book_bram. The book already keeps the rules an
// AXI-Stream transmitter must keep: m_axis_tvalid and m_axis_tdata are registers that hold until
// the beat is taken and do not wait for m_axis_tready; s_axis_tready is the room in the first
// stage of the book's tick unit, a function of registers, which does not depend on
// s_axis_tvalid. In reset s_axis_tready is low and m_axis_tvalid falls at the first clock edge.
//
// No TLAST on either stream. In: a message is one record, one beat, so a TLAST would be high on
// every beat and say nothing. Out: TLAST on the last event of a message would mean something
// (the packet of one message's events), but the book does not know an event is its message's
// last when it presents it (after a maker's FILL it reads the next level to see whether the
// taker still crosses; after an ACK, the order may rest without another event; the next record
// may be taken while the previous message's last event still waits), and AXI-Stream forbids
// changing TLAST while TVALID is waiting. Deriving it would take a register stage that holds
// every event until the book's next event or the end of its message: latency on every message,
// where each event already carries its message's msg_seq for a consumer to group them by. No
// TKEEP/TSTRB: every beat is a whole record. docs/hardware.md.
`timescale 1ns / 1ps
`default_nettype none

module tickbook_book_axis #(
    parameter integer NSYM = 4,   // symbols
    parameter integer NORD = 16,  // resting orders (all symbols) = [engine] max_orders
    parameter integer NLVL = 8,   // price levels per side per symbol = [engine] max_levels
    parameter integer NACCT = 16  // accounts of a risk stage in front (tickbook_book_bram)
) (
    input  wire                 clk,
    input  wire                 rst,      // synchronous: empties the book (tickbook_book_bram)
    // configuration port, as the book's (addresses CFG_* in tickbook_book_common.vh)
    input  wire                 cfg_we,
    input  wire [2:0]           cfg_addr,
    input  wire [15:0]          cfg_sym,
    input  wire [127:0]         cfg_data,
    // order records in (AXI4-Stream slave)
    input  wire [511:0]         s_axis_tdata,
    input  wire                 s_axis_tvalid,
    output wire                 s_axis_tready,
    // event records out (AXI4-Stream master)
    output wire [511:0]         m_axis_tdata,
    output wire                 m_axis_tvalid,
    input  wire                 m_axis_tready,
    // top of book per symbol (symbol s at bits [64*s +: 64]), valid when busy is low
    output wire [NSYM*64-1:0]   tob_bid_px,
    output wire [NSYM*64-1:0]   tob_bid_qty,
    output wire [NSYM*64-1:0]   tob_ask_px,
    output wire [NSYM*64-1:0]   tob_ask_qty,
    output wire                 busy      // a message is being worked on
);

    tickbook_book_bram #(
        .NSYM(NSYM),
        .NORD(NORD),
        .NLVL(NLVL),
        .NACCT(NACCT)
    ) book (
        .clk(clk),
        .rst(rst),
        .cfg_we(cfg_we),
        .cfg_addr(cfg_addr),
        .cfg_sym(cfg_sym),
        .cfg_data(cfg_data),
        .in_valid(s_axis_tvalid),
        .in_ready(s_axis_tready),
        .in_data(s_axis_tdata),
        .out_valid(m_axis_tvalid),
        .out_ready(m_axis_tready),
        .out_data(m_axis_tdata),
        .tob_bid_px(tob_bid_px),
        .tob_bid_qty(tob_bid_qty),
        .tob_ask_px(tob_ask_px),
        .tob_ask_qty(tob_ask_qty),
        .busy(busy)
    );

endmodule

`default_nettype wire
