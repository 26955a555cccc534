// tickbook: the id table's buckets of the block-RAM book (tickbook_book_bram.v), and the reads
// of them that are under way.
//
// A bucket holds the first slot of its id chain. The buckets live in a block RAM with its output
// register (tickbook_ram), so a read takes two edges. The book therefore sends each record's
// read early, as it takes the record in (into the tick unit, or past an empty one), in record
// order, and it takes the words in the same order when each message starts. Between a
// read and its take, the earlier messages still write buckets. Every read under way therefore
// keeps its bucket's number and watches the write port. A write to its bucket replaces its word,
// and so does the write at the read's own edge, which the block's read port does not see. The
// word a message takes is the bucket as every write sent so far leaves it, the write of this
// very edge included. Only a write that the book decides in the cycle of the take is not in it
// (the book forwards that one itself).
//
//   f1, f2   a read one and two edges old: at f2, the block's word is out (rd)
//   q        reads whose word is in, a ring: q[rp] is the head, a push goes to q[wp], and a
//            take moves rp only (so the take, which the book decides late, loads no entry)
//
// At most QD reads are queued. The book has at most 8 records whose word is not taken: the tick
// unit's 7 stages and its buffer. (A message that waits for its word has no queued read before
// its own.) A simulation stops on a take without a word, or on a push into a full queue. docs/hardware.md, "The block-RAM build".
`timescale 1ns / 1ps
`default_nettype none

module tickbook_book_buckets #(
    parameter integer HW = 4,                    // bits of a bucket's number
    parameter integer PW = 4,                    // bits of a word (a slot pointer)
    parameter [PW-1:0] EMPTY = {PW{1'b0}},       // an empty bucket's word (every bucket at power-up)
    parameter integer QD = 8                     // reads whose word is in, queued (a power of 2)
) (
    input  wire          clk,
    input  wire          rst,                    // forgets the reads under way, not the buckets
    // a bucket written at this edge
    input  wire          we,
    input  wire [HW-1:0] wa,
    input  wire [PW-1:0] wd,
    // a read sent at this edge
    input  wire          go,
    input  wire [HW-1:0] key,
    // the oldest read not yet taken: its word is there (ready), and its bucket and word; taken
    // at this edge (take)
    output wire          ready,
    output wire [HW-1:0] head_key,
    output wire [PW-1:0] head_val,
    input  wire          take
);
    localparam integer CW = $clog2(QD + 1);

    // The memory holds word XOR EMPTY, so that its power-up zeros are empty buckets.
    wire [PW-1:0] rd;
    tickbook_ram #(.W(PW), .D(1 << HW), .AW(HW)) ram (
        .clk(clk), .we(we), .wa(wa), .wd(wd ^ EMPTY), .ra(key), .rd(rd)
    );

    reg           f1_v, f2_v;
    reg [HW-1:0]  f1_k, f2_k;
    reg           f1_hit, f2_hit;                // a write to the bucket since the read was sent
    reg [PW-1:0]  f1_w, f2_w;                    // the last such write's word
    localparam integer PB = (QD > 1) ? $clog2(QD) : 1;
    reg [CW-1:0]  n;                             // reads queued
    reg [PB-1:0]  rp, wp;
    reg [HW-1:0]  q_k [0:QD-1];
    reg [PW-1:0]  q_w [0:QD-1];

    // f2's word, and the head of the reads under way: the queue's first, else f2
    wire [PW-1:0] f2_word = f2_hit ? f2_w : (rd ^ EMPTY);
    wire          from_q = (n != {CW{1'b0}});
    wire [HW-1:0] h_k = from_q ? q_k[rp] : f2_k;
    wire [PW-1:0] h_w = from_q ? q_w[rp] : f2_word;
    assign ready = from_q || f2_v;
    assign head_key = h_k;
    assign head_val = (we && wa == h_k) ? wd : h_w;

    wire          take_q = take && from_q;
    wire          push = f2_v && !(take && !from_q);
    wire [CW-1:0] at = n - {{(CW-1){1'b0}}, take_q};     // reads queued after the take

    integer i;
    always @(posedge clk) begin
        if (rst) begin
            f1_v <= 1'b0;
            f2_v <= 1'b0;
            n <= {CW{1'b0}};
            rp <= {PB{1'b0}};
            wp <= {PB{1'b0}};
        end else begin
            if (take_q) rp <= rp + 1'b1;
            if (push) wp <= wp + 1'b1;
            f1_v <= go;
            f2_v <= f1_v;
            n <= at + {{(CW-1){1'b0}}, push};
        end
        f1_k <= key;
        f1_hit <= we && wa == key;
        f1_w <= wd;
        f2_k <= f1_k;
        f2_hit <= f1_hit || (we && wa == f1_k);
        f2_w <= (we && wa == f1_k) ? wd : f1_w;
        // f2's word goes to q[wp] whether or not it is pushed: when it is not (the take has it
        // straight from f2, the queue being empty), q[wp] is outside the queue and wp stays.
        // So the entries' enables do not wait for the take, which the book decides late.
        for (i = 0; i < QD; i = i + 1) begin
            if (f2_v && i == {{(32-PB){1'b0}}, wp}) begin
                q_k[i] <= f2_k;
                q_w[i] <= (we && wa == f2_k) ? wd : f2_word;
            end else if (we && wa == q_k[i]) q_w[i] <= wd;
        end
    end

`ifndef SYNTHESIS
    initial if (QD < 2 || (QD & (QD - 1)) != 0)
        $fatal(1, "tickbook_book_buckets: QD = %0d is not a power of 2 (the ring's pointers wrap)", QD);
    always @(posedge clk)
        if (!rst) begin
            if (take && !ready)
                $fatal(1, "tickbook_book_buckets: a word taken before its read is in");
            if (push && {{(32-CW){1'b0}}, at} == QD)
                $fatal(1, "tickbook_book_buckets: more than %0d reads queued", QD);
        end
`endif
endmodule

`default_nettype wire
