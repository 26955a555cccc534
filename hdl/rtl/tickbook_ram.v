// tickbook: a block-RAM memory with its output register: one write port, one read port, and the
// word read two edges after its address (the address is taken at a clock edge, the word is in
// the block's output register at the next one).
//
// Under synthesis (yosys defines SYNTHESIS) it is ECP5 DP16KD blocks instantiated with
// REGMODE_B = "OUTREG". yosys maps an inferred memory to DP16KD without that register, and the
// block's 5.8 ns clock-to-out then takes most of an 8 ns cycle; with the register it is 0.96 ns
// (make synth-budget, docs/hardware-timing.md, "Toward 125 MHz"). The blocks take the shape the depth
// needs (1K x 18, 2K x 9, 4K x 4, 8K x 2, 16K x 1), side by side for the width; deeper than 16K
// they are stacked, and the word is chosen by the address's top bits, which travel with it.
//
// In simulation it is a model with the same timing. A read of the address written at the same
// edge gives X: the block's read port does not see the other port's write of that edge, so a
// test fails where a design relies on it. Every word starts at zero (the bitstream's contents;
// the model's initial block): a design that needs another value stores its difference from it.
`timescale 1ns / 1ps
`default_nettype none

module tickbook_ram #(
    parameter integer W  = 8,                        // bits a word
    parameter integer D  = 1024,                     // words
    parameter integer AW = (D > 1) ? $clog2(D) : 1   // address bits
) (
    input  wire          clk,
    input  wire          we,
    input  wire [AW-1:0] wa,
    input  wire [W-1:0]  wd,
    input  wire [AW-1:0] ra,      // taken at the edge
    output wire [W-1:0]  rd       // the word at ra, from the edge after
);
`ifndef SYNTHESIS
    reg [W-1:0] mem [0:D-1];
    reg [W-1:0] q1, q2;
    integer i;
    initial begin
        for (i = 0; i < D; i = i + 1) mem[i] = {W{1'b0}};
        q1 = {W{1'b0}};
        q2 = {W{1'b0}};
    end
    always @(posedge clk) begin
        if (we) mem[wa] <= wd;
        q1 <= (we && wa == ra) ? {W{1'bx}} : mem[ra];
        q2 <= q1;
    end
    assign rd = q2;
`else
    // a block: BW bits a word, BA address bits (the 14-bit address of a DP16KD holds the word
    // address in its top BA bits)
    localparam integer BW = (D <= 1024) ? 18 : (D <= 2048) ? 9 : (D <= 4096) ? 4 : (D <= 8192) ? 2 : 1;
    localparam integer BA = (D <= 1024) ? 10 : (D <= 2048) ? 11 : (D <= 4096) ? 12 : (D <= 8192) ? 13 : 14;
    localparam integer NC = (W + BW - 1) / BW;                 // blocks side by side
    localparam integer RB = (AW > BA) ? AW - BA : 1;           // bits choosing a stack's block
    localparam integer NR = (AW > BA) ? (D + (1 << BA) - 1) >> BA : 1;   // blocks stacked
    wire [NC*BW-1:0] wpad = {{(NC*BW-W){1'b0}}, wd};
    wire [BA-1:0]    wlo = wa[BA-1:0];
    wire [BA-1:0]    rlo = ra[BA-1:0];
    wire [RB-1:0]    wrow, rrow;
    reg  [RB-1:0]    rrow1, rrow2;      // the read's block, travelling with its word
    wire [NR*NC*BW-1:0] q;              // every block's word, stack by stack
    generate
        if (AW > BA) begin : g_rows
            assign wrow = wa[AW-1:BA];
            assign rrow = ra[AW-1:BA];
        end else begin : g_row
            assign wrow = 1'b0;
            assign rrow = 1'b0;
        end
    endgenerate
    always @(posedge clk) begin
        rrow1 <= rrow;
        rrow2 <= rrow1;
    end
    // x18: the write port's two low address bits are its byte enables
    wire [13:0] aw14 = (BW == 18) ? {wlo, 4'b0011} : ({wlo, 4'b0000} >> (BA - 10));
    wire [13:0] ar14 = {rlo, 4'b0000} >> (BA - 10);
    genvar gr, gc;
    generate
        for (gr = 0; gr < NR; gr = gr + 1) begin : g_r
            wire wsel = we && (wrow == gr[RB-1:0]);
            for (gc = 0; gc < NC; gc = gc + 1) begin : g_c
                wire [17:0] di = {{(18-BW){1'b0}}, wpad[gc*BW +: BW]};
                wire [17:0] dout;
                assign q[(gr*NC+gc)*BW +: BW] = dout[BW-1:0];
                DP16KD #(
                    .DATA_WIDTH_A(BW), .DATA_WIDTH_B(BW),
                    .REGMODE_A("NOREG"), .REGMODE_B("OUTREG"),
                    .WRITEMODE_A("NORMAL"), .WRITEMODE_B("NORMAL"),
                    .RESETMODE("SYNC"), .ASYNC_RESET_RELEASE("SYNC"),
                    .CSDECODE_A("0b000"), .CSDECODE_B("0b000"), .GSR("DISABLED")
                ) blk (
                    .CLKA(clk), .CEA(1'b1), .OCEA(1'b1), .WEA(wsel), .RSTA(1'b0),
                    .CSA0(1'b0), .CSA1(1'b0), .CSA2(1'b0),
                    .ADA0(aw14[0]), .ADA1(aw14[1]), .ADA2(aw14[2]), .ADA3(aw14[3]),
                    .ADA4(aw14[4]), .ADA5(aw14[5]), .ADA6(aw14[6]), .ADA7(aw14[7]),
                    .ADA8(aw14[8]), .ADA9(aw14[9]), .ADA10(aw14[10]), .ADA11(aw14[11]),
                    .ADA12(aw14[12]), .ADA13(aw14[13]),
                    .DIA0(di[0]), .DIA1(di[1]), .DIA2(di[2]), .DIA3(di[3]), .DIA4(di[4]),
                    .DIA5(di[5]), .DIA6(di[6]), .DIA7(di[7]), .DIA8(di[8]), .DIA9(di[9]),
                    .DIA10(di[10]), .DIA11(di[11]), .DIA12(di[12]), .DIA13(di[13]),
                    .DIA14(di[14]), .DIA15(di[15]), .DIA16(di[16]), .DIA17(di[17]),
                    .DOA0(), .DOA1(), .DOA2(), .DOA3(), .DOA4(), .DOA5(), .DOA6(), .DOA7(),
                    .DOA8(), .DOA9(), .DOA10(), .DOA11(), .DOA12(), .DOA13(), .DOA14(),
                    .DOA15(), .DOA16(), .DOA17(),
                    .CLKB(clk), .CEB(1'b1), .OCEB(1'b1), .WEB(1'b0), .RSTB(1'b0),
                    .CSB0(1'b0), .CSB1(1'b0), .CSB2(1'b0),
                    .ADB0(ar14[0]), .ADB1(ar14[1]), .ADB2(ar14[2]), .ADB3(ar14[3]),
                    .ADB4(ar14[4]), .ADB5(ar14[5]), .ADB6(ar14[6]), .ADB7(ar14[7]),
                    .ADB8(ar14[8]), .ADB9(ar14[9]), .ADB10(ar14[10]), .ADB11(ar14[11]),
                    .ADB12(ar14[12]), .ADB13(ar14[13]),
                    .DIB0(1'b0), .DIB1(1'b0), .DIB2(1'b0), .DIB3(1'b0), .DIB4(1'b0),
                    .DIB5(1'b0), .DIB6(1'b0), .DIB7(1'b0), .DIB8(1'b0), .DIB9(1'b0),
                    .DIB10(1'b0), .DIB11(1'b0), .DIB12(1'b0), .DIB13(1'b0), .DIB14(1'b0),
                    .DIB15(1'b0), .DIB16(1'b0), .DIB17(1'b0),
                    .DOB0(dout[0]), .DOB1(dout[1]), .DOB2(dout[2]), .DOB3(dout[3]),
                    .DOB4(dout[4]), .DOB5(dout[5]), .DOB6(dout[6]), .DOB7(dout[7]),
                    .DOB8(dout[8]), .DOB9(dout[9]), .DOB10(dout[10]), .DOB11(dout[11]),
                    .DOB12(dout[12]), .DOB13(dout[13]), .DOB14(dout[14]), .DOB15(dout[15]),
                    .DOB16(dout[16]), .DOB17(dout[17])
                );
            end
        end
    endgenerate
    assign rd = q[rrow2*NC*BW +: W];
`endif
endmodule

`default_nettype wire
