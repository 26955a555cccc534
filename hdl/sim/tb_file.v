// File-driven testbench for volume (driven by hdl/sim/driver.py, not by cocotb). AREA and BRAM
// select the book: the fast build (tickbook_book) by default, AREA=1 the area build
// (tickbook_book_area), BRAM=1 the block-RAM build (tickbook_book_bram).
//
// Reads, in its working directory:
//   cfg.hex            NCFG lines: {addr[7:0], sym[15:0], data[127:0]} (38 hex digits)
//   in.bin             the order records, 64 bytes each, each record's bytes reversed: $fread
//                      fills a 512-bit reg big-endian, so the reg is the record as a
//                      little-endian integer. Read front to back, BLK records at a time.
// Writes:
//   events.bin         one event per output handshake, in output order, $fwrite "%z": the
//                      event's 16 32-bit words, least significant first, each as its value
//                      then its X/Z mask (4 bytes each, little-endian): the values are the
//                      64-byte record, and a mask bit set is an unknown bit (driver.py refuses it)
//   trace.txt          with +TRACE: "A <cycle>" per accepted record (by the risk stage in front
//                      of the book), "B <cycle>" per record the book itself accepted from the
//                      stage, "E <cycle>" per event, and for the block-RAM build "S <cycle>" per
//                      message started (the edge its state machine took it, which a pipeline in
//                      front makes later than "B")
//   summary.txt        "cycles <n> messages <n> events <n>"
// Plusargs: +N=<records> +NCFG=<lines> +IDLE=<% idle cycles on input> +STALL=<% cycles
//           with out_ready low> +SEED=<n> +TRACE
//
// Binary files, not hex: $readmemh and "%h" parse and print 128 digits a record one character
// at a time, which was a third of a Verilator run of the block-RAM build (docs/hardware.md,
// "Simulators"). %z, not %u: %u would write an X as 0, where %z keeps Icarus's unknown bits.
// With TB_FILE_DPI_IO defined (Verilator, hdl/sim/verilator.py) the same two files are read and
// written by C functions of the build's main loop, a whole record a call: Verilator's $fread
// takes a byte a getc and its "%z" formats a character at a time, a quarter of its run of the
// block-RAM build. A two-state simulator has no unknown bit, so their masks are 0 either way.
//
// The clock: tb_file makes it (`always #5`, a 10 ns period), or, with TB_FILE_CLOCK_IN defined,
// takes it as an input. Icarus runs the first (driver.build); Verilator the second, the clock
// toggled by a C++ loop (hdl/sim/verilator.py defines the macro), compiled without --timing: the
// bench then has no delay or event control outside `always @(posedge clk)`, and the coroutine
// scheduler that `#5` and `@(edge)` need in Verilator was a quarter of a run. Both simulators
// give the same results: the configuration sequence is the same in rising edges, and the
// idle/stall draws come from next_random below, not from $random, whose generator differs
// between the two.
`timescale 1ns / 1ps
`default_nettype none

module tb_file
`ifdef TB_FILE_CLOCK_IN
    (input wire clk)               // rising edges every 10 ns, the first at 5 ns
`endif
;
    parameter integer NSYM = 4;
    parameter integer NORD = 16;
    parameter integer NLVL = 8;
    parameter integer AREA = 0;    // 1: tickbook_book_area (hdl/rtl/tickbook_book_area.v)
    parameter integer BRAM = 0;    // 1: tickbook_book_bram (hdl/rtl/tickbook_book_bram.v)
    parameter integer NACCT = 16;  // accounts the risk stage tracks (hdl/rtl/tickbook_risk.v)

`ifndef TB_FILE_CLOCK_IN
    reg clk = 1'b0;
    always #5 clk = ~clk;
`endif
    reg rst = 1'b1;

    reg          cfg_we = 1'b0;
    reg  [2:0]   cfg_addr = 3'd0;
    reg  [15:0]  cfg_sym = 16'd0;
    reg  [127:0] cfg_data = 128'd0;
    reg          in_valid = 1'b0;
    wire         in_ready;
    reg  [511:0] in_data = 512'd0;
    wire         out_valid;
    reg          out_ready = 1'b1;
    wire [511:0] out_data;
    wire [NSYM*64-1:0] bpx, bqt, apx, aqt;
    wire         busy;

    // the build the parameters choose (tb_book.v)
    tb_book #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL), .AREA(AREA), .BRAM(BRAM), .NACCT(NACCT)) book (
        .clk(clk), .rst(rst),
        .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_sym(cfg_sym), .cfg_data(cfg_data),
        .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
        .tob_bid_px(bpx), .tob_bid_qty(bqt), .tob_ask_px(apx), .tob_ask_qty(aqt),
        .busy(busy)
    );

    reg [151:0] cfgmem [0:4095];
    reg [511:0] rec;
    integer n, ncfg, idle, stall, seed, trace;
    integer fi, fo, ft, fs, sent, nread, nev, cyc, quiet, r;
    // A book that stops moving (no record taken, no event out, while it has work) is stopped
    // with a message, instead of running for ever: a fault that loops (a chain walk through a
    // freed slot, say) then fails its test. No legitimate stretch comes near: a reset's sweep of
    // the id buckets (2 NORD rounded up to a power of 2, at most 4 NORD cycles) or a walk of a
    // ladder (a few cycles a level).
    localparam integer STUCK = 100000 + 8 * NORD + 64 * NLVL;
    integer stuck;
    integer nrise = 0;  // rising edges in reset, for the configuration sequence

    // r = $random(seed) of IEEE 1364-2005 (17.9.3; what Icarus's $random(seed) computes): the
    // seed steps seed * 69069 + 1 (0 taken as 259341593) and r is rtl_dist_uniform over the
    // 32-bit range, here in integers. Verilator's $random(seed) is another generator: written
    // out, both simulators draw the same idle/stall pattern for a seed, so cycles agree too.
    reg signed [63:0] rv;
    task next_random;
        begin
            if (seed == 0) seed = 259341593;
            seed = seed * 69069 + 1;
            // floor(512 * (m + 1) - 2**31 + m / 2**14), m = seed[31:9]; an exact negative
            // integer one less (the standard's (long)(r - 1)); at most 2**31 - 1
            rv = 64'sd512 * ($signed({41'd0, seed[31:9]}) + 64'sd1) - 64'sd2147483648
                 + $signed({55'd0, seed[31:23]});
            if (rv < 0 && seed[22:9] == 14'd0) rv = rv - 64'sd1;
            if (rv > 64'sd2147483647) rv = 64'sd2147483647;
            r = rv[31:0];
        end
    endtask

    // the next record of in.bin into rec. Each record is put on the input once, in order (the
    // input takes a new one only after the previous one was accepted), so the file is read
    // front to back, BLK records at a time: one $fread a record cost Icarus more than the
    // $readmemh of the bench's first version (its $fread reads back the reg it fills).
`ifdef TB_FILE_DPI_IO
    // (tb_main.cpp, hdl/sim/verilator.py): open returns 0 when in.bin is needed and missing;
    // a read 0 at the end of in.bin or a partial record
    import "DPI-C" function int tb_io_open(input int need_in);
    import "DPI-C" function int tb_read_record(output bit [511:0] r);
    import "DPI-C" function void tb_write_event(input bit [511:0] e);
    import "DPI-C" function void tb_io_close();
    task next_record;
        begin
            if (tb_read_record(rec) == 0) begin
                $display("tb_file: in.bin ends at record %0d of %0d", nread, n);
                $finish;
            end
            nread = nread + 1;
        end
    endtask
`else
    localparam integer BLK = 256;
    reg [511:0] blk [0:BLK-1];
    integer bpos = 0, blen = 0, got;
    task next_record;
        begin
            if (bpos == blen) begin
                got = $fread(blk, fi, 0, BLK);
                if (got <= 0 || got % 64 != 0) begin  // none left, or a partial record
                    $display("tb_file: in.bin ends at record %0d of %0d", nread, n);
                    $finish;
                end
                blen = got / 64;
                bpos = 0;
            end
            rec = blk[bpos];
            bpos = bpos + 1;
            nread = nread + 1;
        end
    endtask
`endif

    initial begin
        if (!$value$plusargs("N=%d", n)) n = 0;
        if (!$value$plusargs("NCFG=%d", ncfg)) ncfg = 0;
        if (!$value$plusargs("IDLE=%d", idle)) idle = 0;
        if (!$value$plusargs("STALL=%d", stall)) stall = 0;
        if (!$value$plusargs("SEED=%d", seed)) seed = 1;
        trace = $test$plusargs("TRACE");
        if (ncfg > 0) $readmemh("cfg.hex", cfgmem, 0, ncfg - 1);
`ifdef TB_FILE_DPI_IO
        if (tb_io_open(n > 0) == 0) begin
            $display("tb_file: cannot open in.bin or events.bin");
            $finish;
        end
`else
        fi = $fopen("in.bin", "rb");
        if (n > 0 && fi == 0) begin
            $display("tb_file: cannot open in.bin");
            $finish;
        end
        fo = $fopen("events.bin", "wb");
`endif
        if (trace) ft = $fopen("trace.txt", "w");
        sent = 0;
        nread = 0;
        nev = 0;
        cyc = 0;
        quiet = 0;
        stuck = 0;
    end

    // the block-RAM build says when a message starts (its msg_start register); the others start a
    // record as they accept it, or after a one-record buffer (benchmarks/bench_hdl.py starts())
    wire started;
    wire book_took = book.r_valid && book.r_ready;   // the book's own input (after the risk stage)
    generate
        if (BRAM != 0 && AREA == 0) begin : g_started
            assign started = book.g_bram.dut.msg_start;
        end else begin : g_no_started
            assign started = 1'b0;
        end
    endgenerate

    // In reset, the configuration: after two rising edges, one word a cycle, then cfg_we low for
    // a cycle, then reset released. Each change is made just after a rising edge (nonblocking)
    // and seen by the book at the next one, as the changes made at falling edges of the bench's
    // first version were (the book uses rising edges only): the same cycles.
    always @(posedge clk) begin
        if (rst) begin
            nrise = nrise + 1;
            if (nrise >= 2 && nrise < ncfg + 2) begin
                cfg_we <= 1'b1;
                cfg_addr <= cfgmem[nrise - 2][146:144];
                cfg_sym <= cfgmem[nrise - 2][143:128];
                cfg_data <= cfgmem[nrise - 2][127:0];
            end else if (nrise == ncfg + 2) begin
                cfg_we <= 1'b0;
            end else if (nrise == ncfg + 3) begin
                rst <= 1'b0;
            end
        end else begin
            cyc = cyc + 1;
            if (out_valid && out_ready) begin
`ifdef TB_FILE_DPI_IO
                tb_write_event(out_data);
`else
                $fwrite(fo, "%z", out_data);
`endif
                nev = nev + 1;
                if (trace) $fwrite(ft, "E %0d\n", cyc);
            end
            if (trace && started) $fwrite(ft, "S %0d\n", cyc - 1);   // started at the edge before
            if (trace && book_took) $fwrite(ft, "B %0d\n", cyc);
            if (in_valid && in_ready) begin
                if (trace) $fwrite(ft, "A %0d\n", cyc);
                sent = sent + 1;
            end
            if (!in_valid || in_ready) begin
                // a draw only when one is used: with idle = stall = 0 the seed is never read
                if (idle != 0 || stall != 0) next_random;
                if (sent < n && (idle == 0 || (r & 32'h7fff_ffff) % 100 >= idle)) begin
                    next_record;
                    in_valid <= 1'b1;
                    in_data <= rec;
                end else begin
                    in_valid <= 1'b0;
                end
            end
            if (stall > 0) begin
                next_random;
                out_ready <= ((r & 32'h7fff_ffff) % 100 >= stall);
            end
            if ((in_valid && in_ready) || (out_valid && out_ready) || !(in_valid || busy || out_valid))
                stuck = 0;
            else stuck = stuck + 1;
            if (stuck == STUCK) begin
                $display("tb_file: the book made no progress for %0d cycles (cycle %0d, %0d records taken, %0d events): stopped",
                         STUCK, cyc, sent, nev);
                $finish;
            end
            if (sent == n && !in_valid && !busy && !out_valid) quiet = quiet + 1;
            else quiet = 0;
            if (quiet == 3) begin
                fs = $fopen("summary.txt", "w");
                $fwrite(fs, "cycles %0d messages %0d events %0d\n", cyc - 3, sent, nev);
                $fclose(fs);
`ifdef TB_FILE_DPI_IO
                tb_io_close();
`else
                $fclose(fo);
                if (fi != 0) $fclose(fi);
`endif
                if (trace) $fclose(ft);
                $finish;
            end
        end
    end
endmodule

`default_nettype wire
