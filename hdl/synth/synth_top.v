// Pin-limited harness for synthesis only: the book's 512-bit streams and configuration word go
// through shift registers fed from a few pins, so place-and-route sees the book's logic with
// registered inputs and outputs (what Fmax is measured on), not 1,500 I/O pins.
`default_nettype none

module synth_top #(
    parameter integer NSYM = 1,
    parameter integer NORD = 4,
    parameter integer NLVL = 2
) (
    input  wire clk,
    input  wire rst,
    input  wire sin,       // serial data in (record or configuration word)
    input  wire sin_rec,   // shift sin into the record register
    input  wire sin_cfg,   // shift sin into the configuration register
    input  wire go_rec,    // present the record register on the input stream
    input  wire go_cfg,    // write the configuration register
    input  wire out_take,  // consumer ready / shift the event register
    output wire sout,
    output wire in_ready,
    output wire out_valid,
    output wire tob_par,
    output wire busy
);
    reg [511:0] rec;
    reg [150:0] cfg;
    reg [511:0] ev;
    reg         ev_full;
    wire [511:0] out_data;
    wire [NSYM*64-1:0] bpx, bqt, apx, aqt;

    always @(posedge clk) begin
        if (sin_rec) rec <= {sin, rec[511:1]};
        if (sin_cfg) cfg <= {sin, cfg[150:1]};
        if (out_valid && !ev_full) begin
            ev <= out_data;
            ev_full <= 1'b1;
        end else if (out_take) begin
            ev <= {1'b0, ev[511:1]};
            if (ev == 512'd0) ev_full <= 1'b0;
        end
        if (rst) ev_full <= 1'b0;
    end

    tickbook_book #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL)) book (
        .clk(clk), .rst(rst),
        .cfg_we(go_cfg), .cfg_addr(cfg[150:148]), .cfg_sym(cfg[143:128]), .cfg_data(cfg[127:0]),
        .in_valid(go_rec), .in_ready(in_ready), .in_data(rec),
        .out_valid(out_valid), .out_ready(!ev_full), .out_data(out_data),
        .tob_bid_px(bpx), .tob_bid_qty(bqt), .tob_ask_px(apx), .tob_ask_qty(aqt),
        .busy(busy)
    );

    assign sout = ev[0];
    assign tob_par = ^{bpx, bqt, apx, aqt};
endmodule

`default_nettype wire
