// Pin-limited harness for synthesis only: the book's record and configuration words come in
// through shift registers fed from a few pins and the event goes out one bit a clock, so
// place-and-route sees the book's logic with registered inputs and outputs (what Fmax is measured
// on), not 1,500 I/O pins.
//   - record: only bytes 8-49 (order_id .. tif, in_data[399:64]) are shifted in; ts and the
//     reserved bytes, which neither book reads, are tied to zero;
//   - event and top of book: observed through registered parities (an XOR over bits [455:0] of
//     out_data, bytes 57-63 being reserved zeros, and one over the top of book), so no output bit
//     and none of the logic behind it can be optimized away, at the cost of an XOR tree rather
//     than a 456-bit shift register or multiplexer. out_take is the consumer's ready. This
//     harness measures area and timing; it is not a way to read events off a board;
//   - configuration: address, symbol and the data bits the book reads (107 for the reciprocal of
//     the fast and block-RAM builds, 54 for the area build; 128 with the risk stage);
//   - RISK=1: the risk stage (tickbook_risk.v, NACCT accounts) in front of the book, as the
//     benches run them (hdl/sim/tb_book.v); the record's ts (bytes 0-7) is shifted in too.
`timescale 1ns / 1ps
`default_nettype none

module synth_top #(
    parameter integer NSYM = 1,
    parameter integer NORD = 4,
    parameter integer NLVL = 2,
    parameter integer AREA = 1,    // 1: tickbook_book_area, 0: tickbook_book (the fast build),
                                   // 2: tickbook_book_bram (the block-RAM build), 3: no book
                                   // (the risk stage alone, its output record observed)
    parameter integer RISK = 0,    // 1: the risk stage in front of the book
    parameter integer NACCT = 1024 // its accounts
) (
    input  wire clk,
    input  wire rst,
    input  wire sin,       // serial data in (record or configuration word)
    input  wire sin_rec,   // shift sin into the record register
    input  wire sin_cfg,   // shift sin into the configuration register
    input  wire go_rec,    // present the record register on the input stream
    input  wire go_cfg,    // write the configuration register
    input  wire out_take,  // consumer ready
    output wire sout,      // registered parity of the event
    output wire in_ready,
    output wire out_valid,
    output wire tob_par,
    output wire busy
);
    localparam integer CDW = (RISK != 0) ? 128 : (AREA == 1) ? 54 : 107;
    localparam integer CFW = 3 + 16 + CDW;
    localparam integer RW = (RISK != 0) ? 400 : 336;   // the record bits shifted in
    reg  [RW-1:0]    rec;
    reg  [CFW-1:0]   cfg;
    reg              ev_par, tb_par;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [511:0]     out_data;         // bytes 57-63 are reserved (zero)
    /* verilator lint_on UNUSEDSIGNAL */
    wire [NSYM*64-1:0] bpx, bqt, apx, aqt;

    always @(posedge clk) begin
        if (sin_rec) rec <= {sin, rec[RW-1:1]};
        if (sin_cfg) cfg <= {sin, cfg[CFW-1:1]};
        ev_par <= ^out_data[455:0];
        tb_par <= ^{bpx, bqt, apx, aqt};
    end

    wire [511:0] in_data = {112'd0, rec, {(400 - RW){1'b0}}};
    wire [127:0] cfg_data;
    if (CDW < 128) begin : g_cdw
        assign cfg_data = {{(128-CDW){1'b0}}, cfg[CDW-1:0]};
    end else begin : g_cdw_all
        assign cfg_data = cfg[127:0];
    end

    // the book's input: the harness's record, or the risk stage's output
    wire         b_valid, b_ready, r_busy, b_busy;
    wire [511:0] b_data;
    assign busy = r_busy || b_busy;
    if (RISK != 0) begin : g_risk
        tickbook_risk #(.NACCT(NACCT)) risk (
            .clk(clk), .rst(rst),
            .cfg_we(go_cfg), .cfg_addr(cfg[CFW-1 -: 3]), .cfg_data(cfg_data),
            .in_valid(go_rec), .in_ready(in_ready), .in_data(in_data),
            .out_valid(b_valid), .out_ready(b_ready), .out_data(b_data), .busy(r_busy)
        );
    end else begin : g_norisk
        assign b_valid = go_rec;
        assign in_ready = b_ready;
        assign b_data = in_data;
        assign r_busy = 1'b0;
    end

    generate
        if (AREA == 1) begin : g_area
            tickbook_book_area #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL)) book (
                .clk(clk), .rst(rst),
                .cfg_we(go_cfg), .cfg_addr(cfg[CFW-1 -: 3]), .cfg_sym(cfg[CDW +: 16]), .cfg_data(cfg_data),
                .in_valid(b_valid), .in_ready(b_ready), .in_data(b_data),
                .out_valid(out_valid), .out_ready(out_take), .out_data(out_data),
                .tob_bid_px(bpx), .tob_bid_qty(bqt), .tob_ask_px(apx), .tob_ask_qty(aqt),
                .busy(b_busy)
            );
        end else if (AREA == 2) begin : g_bram
            tickbook_book_bram #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL), .NACCT(NACCT)) book (
                .clk(clk), .rst(rst),
                .cfg_we(go_cfg), .cfg_addr(cfg[CFW-1 -: 3]), .cfg_sym(cfg[CDW +: 16]), .cfg_data(cfg_data),
                .in_valid(b_valid), .in_ready(b_ready), .in_data(b_data),
                .out_valid(out_valid), .out_ready(out_take), .out_data(out_data),
                .tob_bid_px(bpx), .tob_bid_qty(bqt), .tob_ask_px(apx), .tob_ask_qty(aqt),
                .busy(b_busy)
            );
        end else if (AREA == 3) begin : g_none
            assign out_valid = b_valid;
            assign b_ready = out_take;
            assign out_data = b_data;
            assign {bpx, bqt, apx, aqt} = {(NSYM * 256){1'b0}};
            assign b_busy = 1'b0;
        end else begin : g_fast
            tickbook_book #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL)) book (
                .clk(clk), .rst(rst),
                .cfg_we(go_cfg), .cfg_addr(cfg[CFW-1 -: 3]), .cfg_sym(cfg[CDW +: 16]), .cfg_data(cfg_data),
                .in_valid(b_valid), .in_ready(b_ready), .in_data(b_data),
                .out_valid(out_valid), .out_ready(out_take), .out_data(out_data),
                .tob_bid_px(bpx), .tob_bid_qty(bqt), .tob_ask_px(apx), .tob_ask_qty(aqt),
                .busy(b_busy)
            );
        end
    endgenerate

    assign sout = ev_par;
    assign tob_par = tb_par;
endmodule

`default_nettype wire
