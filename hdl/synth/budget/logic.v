// The cycle budget of the LFE5U-85F (hdl/synth/budget.py): logic from registers to registers.
//   (default)  a 74-bit magnitude compare (CHECK's price against the band's upper bound)
//   DECIDE     a decision of three compares (53-bit >=, 32-bit !=, a fill's min and subtract
//              tested for zero) that loads 600 flip-flops (a message's start loads about as many)
//   DECIDE_REG the same decision registered first, its flip-flop loading the 600 a cycle later
//              (a start decided a cycle ahead: what is left is the enable's fan-out)
// The inputs come from one pin through shift registers and the output is one registered bit
// (the 600 flip-flops' parity taken in two registered steps).
`default_nettype none
module budget_top (input wire clk, input wire si, input wire we, output reg so);
    localparam integer W = 74;
    localparam integer N = 600;
    reg [W-1:0] a, b;
    reg [31:0]  x, y;
    reg [N-1:0] din, dq;
    reg         c0, go;
    wire [31:0] z = y - ((x < y) ? x : y);
    // the 600 flip-flops' parity in two registered steps, so that the output is not the path
    reg [19:0]  par;
    integer k;
    always @(posedge clk)
        for (k = 0; k < 20; k = k + 1) par[k] <= ^dq[30*k +: 30];
    always @(posedge clk) begin
        a <= {a[W-2:0], si};
        b <= {b[W-2:0], a[W-1]};
        x <= {x[30:0], b[W-1]};
        y <= {y[30:0], x[31]};
        din <= {din[N-2:0], y[31] ^ we};
        c0 <= (a > b);
`ifdef DECIDE
        if ((a[52:0] >= b[52:0]) && (x != y) && (z == 32'd0 || c0)) dq <= din;
        so <= ^par;
`elsif DECIDE_REG
        go <= (a[52:0] >= b[52:0]) && (x != y) && (z == 32'd0 || c0);
        if (go) dq <= din;
        so <= ^par;
`else
        so <= c0;
`endif
    end
endmodule
`default_nettype wire
