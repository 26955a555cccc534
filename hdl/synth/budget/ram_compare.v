// The cycle budget of the LFE5U-85F (hdl/synth/budget.py): a block-RAM read (1024 x 72, an
// order's id and more) into a 64-bit id compare and a register, three ways:
//   (default)  the read as yosys infers it: DP16KD without its output register (NOREG)
//   FABRIC     the same read into a register of the fabric, the compare a cycle later
//   OUTREG     DP16KD instantiated with its output register (REGMODE_B = "OUTREG"): the data
//              two cycles after the address, from the block's own register
// The inputs come from one pin through shift registers and the output is one registered bit,
// so no path starts or ends at a pin and nothing is optimized away.
`default_nettype none
module budget_top (input wire clk, input wire si, input wire we, output reg so);
    reg [9:0]  ra, wa;
    reg [71:0] wd;
    reg [63:0] key;
    reg        hit, par;
    always @(posedge clk) begin
        wd <= {wd[70:0], si};
        key <= {key[62:0], wd[71]};
        wa <= {wa[8:0], key[63]};
        ra <= {ra[8:0], wa[9]};
        so <= hit ^ par;
    end
`ifdef OUTREG
    wire [71:0] q;
    genvar g;
    generate for (g = 0; g < 4; g = g + 1) begin : g_blk   // 4 blocks of 1024 x 18
        DP16KD #(.DATA_WIDTH_A(18), .DATA_WIDTH_B(18), .REGMODE_A("NOREG"), .REGMODE_B("OUTREG"),
                 .WRITEMODE_A("NORMAL"), .WRITEMODE_B("NORMAL"), .GSR("DISABLED")) ram (
            .CLKA(clk), .CEA(1'b1), .OCEA(1'b1), .WEA(we), .RSTA(1'b0),
            .CSA0(1'b0), .CSA1(1'b0), .CSA2(1'b0),
            // x18: ADA1 and ADA0 are the write's byte enables, the word address is ADA[13:4]
            .ADA0(1'b1), .ADA1(1'b1), .ADA2(1'b0), .ADA3(1'b0),
            .ADA4(wa[0]), .ADA5(wa[1]), .ADA6(wa[2]), .ADA7(wa[3]), .ADA8(wa[4]),
            .ADA9(wa[5]), .ADA10(wa[6]), .ADA11(wa[7]), .ADA12(wa[8]), .ADA13(wa[9]),
            .DIA0(wd[18*g]), .DIA1(wd[18*g+1]), .DIA2(wd[18*g+2]), .DIA3(wd[18*g+3]),
            .DIA4(wd[18*g+4]), .DIA5(wd[18*g+5]), .DIA6(wd[18*g+6]), .DIA7(wd[18*g+7]),
            .DIA8(wd[18*g+8]), .DIA9(wd[18*g+9]), .DIA10(wd[18*g+10]), .DIA11(wd[18*g+11]),
            .DIA12(wd[18*g+12]), .DIA13(wd[18*g+13]), .DIA14(wd[18*g+14]), .DIA15(wd[18*g+15]),
            .DIA16(wd[18*g+16]), .DIA17(wd[18*g+17]),
            .CLKB(clk), .CEB(1'b1), .OCEB(1'b1), .WEB(1'b0), .RSTB(1'b0),
            .CSB0(1'b0), .CSB1(1'b0), .CSB2(1'b0),
            .ADB0(1'b0), .ADB1(1'b0), .ADB2(1'b0), .ADB3(1'b0),
            .ADB4(ra[0]), .ADB5(ra[1]), .ADB6(ra[2]), .ADB7(ra[3]), .ADB8(ra[4]),
            .ADB9(ra[5]), .ADB10(ra[6]), .ADB11(ra[7]), .ADB12(ra[8]), .ADB13(ra[9]),
            .DOB0(q[18*g]), .DOB1(q[18*g+1]), .DOB2(q[18*g+2]), .DOB3(q[18*g+3]),
            .DOB4(q[18*g+4]), .DOB5(q[18*g+5]), .DOB6(q[18*g+6]), .DOB7(q[18*g+7]),
            .DOB8(q[18*g+8]), .DOB9(q[18*g+9]), .DOB10(q[18*g+10]), .DOB11(q[18*g+11]),
            .DOB12(q[18*g+12]), .DOB13(q[18*g+13]), .DOB14(q[18*g+14]), .DOB15(q[18*g+15]),
            .DOB16(q[18*g+16]), .DOB17(q[18*g+17]));
    end endgenerate
`else
    reg [71:0] mem [0:1023];
    reg [71:0] q1;
    always @(posedge clk) begin
        if (we) mem[wa] <= wd;
        q1 <= mem[ra];
    end
`ifdef FABRIC
    reg [71:0] q;
    always @(posedge clk) q <= q1;
`else
    wire [71:0] q = q1;
`endif
`endif
    always @(posedge clk) begin
        hit <= (q[63:0] == key);
        par <= ^q[71:64];
    end
endmodule
`default_nettype wire
