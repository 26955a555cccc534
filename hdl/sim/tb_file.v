// File-driven testbench for volume (driven by hdl/sim/driver.py, not by cocotb). AREA and BRAM
// select the book: the fast build (tickbook_book) by default, AREA=1 the area build
// (tickbook_book_area), BRAM=1 the block-RAM build (tickbook_book_bram).
//
// Reads, in its working directory:
//   cfg.hex            NCFG lines: {addr[7:0], sym[15:0], data[127:0]} (38 hex digits)
//   in_<k>.hex         order records, 128 hex digits a line (the 64-byte record as a
//                      little-endian integer), CHUNK records a file, loaded with $readmemh
// Writes:
//   events.hex         one event record a line, in output order ($fwrite)
//   trace.txt          with +TRACE: "A <cycle>" per accepted record, "E <cycle>" per event
//   summary.txt        "cycles <n> messages <n> events <n>"
// Plusargs: +N=<records> +NCFG=<lines> +IDLE=<% idle cycles on input> +STALL=<% cycles
//           with out_ready low> +SEED=<n> +TRACE
//
// Runs on Icarus (driver.build) and on Verilator (hdl/sim/verilator.py, --main --timing) with
// the same results: the idle/stall draws come from next_random below, not from $random, whose
// generator differs between the two simulators.
`timescale 1ns / 1ps
`default_nettype none

module tb_file;
    parameter integer NSYM = 4;
    parameter integer NORD = 16;
    parameter integer NLVL = 8;
    parameter integer CHUNK = 65536;
    parameter integer AREA = 0;    // 1: tickbook_book_area (hdl/rtl/tickbook_book_area.v)
    parameter integer BRAM = 0;    // 1: tickbook_book_bram (hdl/rtl/tickbook_book_bram.v)

    reg clk = 1'b0;
    reg rst = 1'b1;
    always #5 clk = ~clk;

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

    generate
        if (AREA != 0) begin : g_area
            tickbook_book_area #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL)) dut (
                .clk(clk), .rst(rst),
                .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_sym(cfg_sym), .cfg_data(cfg_data),
                .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
                .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
                .tob_bid_px(bpx), .tob_bid_qty(bqt), .tob_ask_px(apx), .tob_ask_qty(aqt),
                .busy(busy)
            );
        end else if (BRAM != 0) begin : g_bram
            tickbook_book_bram #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL)) dut (
                .clk(clk), .rst(rst),
                .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_sym(cfg_sym), .cfg_data(cfg_data),
                .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
                .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
                .tob_bid_px(bpx), .tob_bid_qty(bqt), .tob_ask_px(apx), .tob_ask_qty(aqt),
                .busy(busy)
            );
        end else begin : g_fast
            tickbook_book #(.NSYM(NSYM), .NORD(NORD), .NLVL(NLVL)) dut (
                .clk(clk), .rst(rst),
                .cfg_we(cfg_we), .cfg_addr(cfg_addr), .cfg_sym(cfg_sym), .cfg_data(cfg_data),
                .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
                .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
                .tob_bid_px(bpx), .tob_bid_qty(bqt), .tob_ask_px(apx), .tob_ask_qty(aqt),
                .busy(busy)
            );
        end
    endgenerate

    reg [151:0] cfgmem [0:4095];
    reg [511:0] mem [0:CHUNK-1];
    integer n, ncfg, idle, stall, seed, trace;
    integer fo, ft, fs, k, chunk, ptr, chunk_len, sent, nev, cyc, quiet, r;
    reg [8*64-1:0] fname;

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

    task load_chunk;
        begin
            chunk_len = n - chunk * CHUNK;
            if (chunk_len > CHUNK) chunk_len = CHUNK;
            if (chunk_len > 0) begin
                $sformat(fname, "in_%0d.hex", chunk);
                $readmemh(fname, mem, 0, chunk_len - 1);
            end
            ptr = 0;
        end
    endtask

    initial begin
        if (!$value$plusargs("N=%d", n)) n = 0;
        if (!$value$plusargs("NCFG=%d", ncfg)) ncfg = 0;
        if (!$value$plusargs("IDLE=%d", idle)) idle = 0;
        if (!$value$plusargs("STALL=%d", stall)) stall = 0;
        if (!$value$plusargs("SEED=%d", seed)) seed = 1;
        trace = $test$plusargs("TRACE");
        if (ncfg > 0) $readmemh("cfg.hex", cfgmem, 0, ncfg - 1);
        fo = $fopen("events.hex", "w");
        if (trace) ft = $fopen("trace.txt", "w");
        chunk = 0;
        sent = 0;
        nev = 0;
        cyc = 0;
        quiet = 0;
        load_chunk;
        // configuration while in reset
        repeat (2) @(posedge clk);
        for (k = 0; k < ncfg; k = k + 1) begin
            @(negedge clk);
            cfg_we = 1'b1;
            cfg_addr = cfgmem[k][146:144];
            cfg_sym = cfgmem[k][143:128];
            cfg_data = cfgmem[k][127:0];
        end
        @(negedge clk);
        cfg_we = 1'b0;
        @(negedge clk);
        rst = 1'b0;
    end

    always @(posedge clk) begin
        if (!rst) begin
            cyc = cyc + 1;
            if (out_valid && out_ready) begin
                $fwrite(fo, "%h\n", out_data);
                nev = nev + 1;
                if (trace) $fwrite(ft, "E %0d\n", cyc);
            end
            if (in_valid && in_ready) begin
                if (trace) $fwrite(ft, "A %0d\n", cyc);
                sent = sent + 1;
                ptr = ptr + 1;
                if (ptr == CHUNK) begin
                    chunk = chunk + 1;
                    load_chunk;
                end
            end
            if (!in_valid || in_ready) begin
                next_random;
                if (sent < n && (idle == 0 || (r & 32'h7fff_ffff) % 100 >= idle)) begin
                    in_valid <= 1'b1;
                    in_data <= mem[ptr];
                end else begin
                    in_valid <= 1'b0;
                end
            end
            if (stall > 0) begin
                next_random;
                out_ready <= ((r & 32'h7fff_ffff) % 100 >= stall);
            end
            if (sent == n && !in_valid && !busy && !out_valid) quiet = quiet + 1;
            else quiet = 0;
            if (quiet == 3) begin
                fs = $fopen("summary.txt", "w");
                $fwrite(fs, "cycles %0d messages %0d events %0d\n", cyc - 3, sent, nev);
                $fclose(fs);
                $fclose(fo);
                if (trace) $fclose(ft);
                $finish;
            end
        end
    end
endmodule

`default_nettype wire
