// tickbook: the book a bench runs, one of the three builds by parameter, behind the ports they
// share (hdl/rtl/tickbook_book_ports.vh), with the risk stage in front of it (tickbook_risk.v,
// NACCT accounts). The file-driven bench (tb_file.v) and the bridge's wrapper (tb_bridge.v)
// instantiate this, so that which build runs is chosen in one place.
//
// AREA=1: tickbook_book_area; else BRAM=1: tickbook_book_bram; else tickbook_book (fast).
`timescale 1ns / 1ps
`default_nettype none

module tb_book #(
    parameter integer NSYM = 4,
    parameter integer NORD = 16,
    parameter integer NLVL = 8,
    parameter integer AREA = 0,
    parameter integer BRAM = 0,
    parameter integer NACCT = 16,
    parameter integer GEN_W = 8    // the risk stage's generation tag (a test makes it wrap)
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 cfg_we,
    input  wire [2:0]           cfg_addr,
    input  wire [15:0]          cfg_sym,
    input  wire [127:0]         cfg_data,
    input  wire                 in_valid,
    output wire                 in_ready,
    input  wire [511:0]         in_data,
    output wire                 out_valid,
    input  wire                 out_ready,
    output wire [511:0]         out_data,
    output wire [NSYM*64-1:0]   tob_bid_px,
    output wire [NSYM*64-1:0]   tob_bid_qty,
    output wire [NSYM*64-1:0]   tob_ask_px,
    output wire [NSYM*64-1:0]   tob_ask_qty,
    output wire                 busy
);
    // the risk stage: records in, the same records (rejected or passed) on to the book
    wire         r_valid, r_ready, r_busy, b_busy;
    wire [511:0] r_data;
    assign busy = r_busy || b_busy;
    tickbook_risk #(.NACCT(NACCT), .GEN_W(GEN_W)) risk (
        .clk(clk), .rst(rst),
        .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_data(cfg_data),
        .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .out_valid(r_valid), .out_ready(r_ready), .out_data(r_data), .busy(r_busy)
    );

    generate
        if (AREA != 0) begin : g_area
            tickbook_book_area #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL)) dut (
                .clk(clk), .rst(rst),
                .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_sym(cfg_sym), .cfg_data(cfg_data),
                .in_valid(r_valid), .in_ready(r_ready), .in_data(r_data),
                .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
                .tob_bid_px(tob_bid_px), .tob_bid_qty(tob_bid_qty),
                .tob_ask_px(tob_ask_px), .tob_ask_qty(tob_ask_qty), .busy(b_busy)
            );
        end else if (BRAM != 0) begin : g_bram
            tickbook_book_bram #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL), .NACCT(NACCT)) dut (
                .clk(clk), .rst(rst),
                .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_sym(cfg_sym), .cfg_data(cfg_data),
                .in_valid(r_valid), .in_ready(r_ready), .in_data(r_data),
                .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
                .tob_bid_px(tob_bid_px), .tob_bid_qty(tob_bid_qty),
                .tob_ask_px(tob_ask_px), .tob_ask_qty(tob_ask_qty), .busy(b_busy)
            );
        end else begin : g_fast
            tickbook_book #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL)) dut (
                .clk(clk), .rst(rst),
                .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_sym(cfg_sym), .cfg_data(cfg_data),
                .in_valid(r_valid), .in_ready(r_ready), .in_data(r_data),
                .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
                .tob_bid_px(tob_bid_px), .tob_bid_qty(tob_bid_qty),
                .tob_ask_px(tob_ask_px), .tob_ask_qty(tob_ask_qty), .busy(b_busy)
            );
        end
    endgenerate
endmodule

`default_nettype wire
