// The streaming bridge's wrapper around the book (driven by hdl/sim/bridge_dma.py through cocotb,
// on Icarus or Verilator). It plays the card's DMA buffers: an input FIFO of order records the
// host fills in bulk and an output FIFO of events it drains in bulk, so that the Python side
// wakes once per batch (when the wrapper needs it, see below, or after a time-out) instead of
// once per clock cycle. Everything between the FIFOs and the book is the AXI-Stream handshake
// of the book's ports, cycle by cycle, in the simulator.
//
// Waking the host: it arms (arm = !fired) and waits for `fired` to change, which happens at
// the first falling edge where attention is needed (quiet, ev_high, in_low, or the cycle
// count reaching wake_at). On a falling edge every register and wire has settled since the
// rising edge, so what the host reads then is one consistent state (Icarus calls back in the
// middle of a time step's updates; a rising-edge wake-up could see half of them), and what it
// writes is seen by the next rising edge.
//
// Host side (all counters free-running, modulo 2^32; the host writes only what it owns):
//   in_mem[i]   order records (the 64-byte record as a 512-bit little-endian word), written by
//               the host in slots the book has taken (in_wr - in_rd < 2**IW), then in_wr
//   in_wr       records written;              in_rd   records the book has accepted
//   ev_mem[i]   events, in output order;      ev_wr   events taken from the book
//   ev_rd       events the host has read out of ev_mem (frees their slots)
//   ev_lim      events ev_mem may hold: out_ready is low while ev_wr - ev_rd >= ev_lim, so a
//               host that cannot publish (event ring full) stalls the book, losing nothing
//   done_rec, done_ev   at the last edge where the book was idle (busy low), done_rec records
//               had been accepted and all their events are among the first done_ev: the host
//               may move ring 0's TAIL past done_rec once done_ev events are published
//   in_low      in_wr - in_rd < in_lo (refill; 0: never); ev_high  ev_wr - ev_rd >= ev_hi (drain)
//   quiet       nothing accepted is left in the book and nothing is waiting to be taken
//   arm, fired, wake_at   see above
//   cycles, stall_cycles   clock cycles out of reset, and those with out_ready low
//
// The clock is the wrapper's own (always #5: Verilator builds it with --timing), 10 ns a cycle.
//
// AREA and BRAM select the book as in tb_file.v: the fast build by default, AREA=1 the area
// build, BRAM=1 the block-RAM build.
`timescale 1ns / 1ps
`default_nettype none

module tb_bridge #(
    parameter integer NSYM = 4,
    parameter integer NORD = 16,
    parameter integer NLVL = 8,
    parameter integer AREA = 0,
    parameter integer BRAM = 0,
    parameter integer NACCT = 16, // accounts the risk stage tracks (hdl/rtl/tickbook_risk.v)
    parameter integer IW = 8,   // input FIFO: 2**IW records
    parameter integer EW = 8    // event FIFO: 2**EW events
) (
    input  wire         rst,
    input  wire         cfg_we,
    input  wire [2:0]   cfg_addr,
    input  wire [15:0]  cfg_sym,
    input  wire [127:0] cfg_data,
    input  wire [31:0]  in_wr,
    input  wire [31:0]  ev_rd,
    input  wire [31:0]  ev_lim,
    input  wire [31:0]  in_lo,
    input  wire [31:0]  ev_hi,
    input  wire [31:0]  wake_at,
    input  wire         arm,
    output reg          fired,
    output reg  [31:0]  in_rd,
    output reg  [31:0]  ev_wr,
    output reg  [31:0]  done_rec,
    output reg  [31:0]  done_ev,
    output wire         in_low,
    output wire         ev_high,
    output wire         quiet,
    output reg  [63:0]  cycles,
    output reg  [63:0]  stall_cycles
);
    // The clock is generated here, not by cocotb: a clock driven through VPI costs a callback
    // into cocotb's scheduler at every edge, most of an idle cycle's cost on Verilator.
    reg clk = 1'b0;
    always #5 clk = ~clk;

    reg [511:0] in_mem [0:(1 << IW) - 1];  // written by the host (VPI), read here
    reg [511:0] ev_mem [0:(1 << EW) - 1];  // written here, read by the host (VPI)

    wire         in_valid = (in_wr != in_rd);
    wire         in_ready;
    wire [511:0] in_data = in_mem[in_rd[IW-1:0]];
    wire         out_valid;
    wire [31:0]  ev_n = ev_wr - ev_rd;
    wire         out_ready = (ev_n < ev_lim);
    wire [511:0] out_data;
    wire [NSYM*64-1:0] bpx, bqt, apx, aqt;
    wire         busy;

    assign in_low = (in_wr - in_rd) < in_lo;
    assign ev_high = ev_n >= ev_hi;
    // done_rec == in_rd: the idle edge that recorded the last accepted record has passed
    assign quiet = !in_valid && !busy && !out_valid && done_rec == in_rd;

    wire [31:0] to_wake = cycles[31:0] - wake_at;  // "negative" (bit 31) until wake_at

    always @(negedge clk) begin
        if (rst) fired <= arm;
        else if (arm != fired && (quiet || ev_high || in_low || !to_wake[31])) fired <= arm;
    end

    always @(posedge clk) begin
        if (rst) begin
            in_rd <= in_wr;  // the host writes in_wr = 0 during reset
            ev_wr <= ev_rd;
            done_rec <= in_wr;
            done_ev <= ev_rd;
            cycles <= 64'd0;
            stall_cycles <= 64'd0;
        end else begin
            cycles <= cycles + 64'd1;
            if (!out_ready) stall_cycles <= stall_cycles + 64'd1;
            if (in_valid && in_ready) in_rd <= in_rd + 32'd1;
            if (out_valid && out_ready) begin
                ev_mem[ev_wr[EW-1:0]] <= out_data;
                ev_wr <= ev_wr + 32'd1;
            end
            // busy low before this edge: every record accepted at an earlier edge has emitted
            // all its events, the last one possibly still on out_data (counted here)
            if (!busy) begin
                done_rec <= in_rd;
                done_ev <= ev_wr + {31'd0, out_valid};
            end
        end
    end

    // the build the parameters choose (tb_book.v)
    tb_book #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL), .AREA(AREA), .BRAM(BRAM), .NACCT(NACCT)) book (
        .clk(clk), .rst(rst),
        .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_sym(cfg_sym), .cfg_data(cfg_data),
        .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
        .tob_bid_px(bpx), .tob_bid_qty(bqt), .tob_ask_px(apx), .tob_ask_qty(aqt),
        .busy(busy)
    );
endmodule

`default_nettype wire
