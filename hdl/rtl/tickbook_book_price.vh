// The exact price arithmetic of the tick-based builds (tickbook_book.v, tickbook_book_bram.v),
// `include`d in their module bodies after the message registers: the configuration words it
// needs, the message price in ticks and whether it is on tick, the collar, and the limit of a
// NEW (a MARKET order's protection price). Uses m_px, is_mkt, side_sel and cur_sym of the build.
// Records carry 1e-8 units, the book compares ticks; every division is a multiplication by a
// reciprocal (docs/hardware.md, "Prices and division").
    // floor(x / 10000) == (x * MAG10K) >> MAG10K_SHIFT for every x < 2**85 (Granlund-Montgomery)
    localparam [85:0] MAG10K = 86'h346dc5d63886594af4f0d9;
    localparam integer MAG10K_SHIFT = 99;
`ifndef TICKBOOK_TICKS_PIPED
    // floor(p / tick) == (p * recip) >> RECIP_SHIFT for p < 2**53 (recip: CFG_RECIP)
    localparam integer RECIP_SHIFT = 106;
`endif

    // ------------------------------------------------------------------ configuration
`ifndef TICKBOOK_TICKS_PIPED
    reg [106:0] c_recip [0:NSYM-1];   // floor(2**106 / tick) + 1: exact division of 53-bit values
`endif
    reg [52:0]  c_ref0  [0:NSYM-1];   // configured reference price, ticks
    reg [52:0]  r_ref   [0:NSYM-1];   // current reference price, ticks

    // the configuration words of the price arithmetic (the reciprocal, the reference price),
    // called at the end of the build's clocked block, after its state machine, so that a write
    // of the reference price wins over a trade's
    task take_price_config;
        if (cfg_we && cfg_here) begin
`ifndef TICKBOOK_TICKS_PIPED
            if (cfg_addr == CFG_RECIP) c_recip[cfg_s] <= cfg_data[106:0];
`endif
            if (cfg_addr == CFG_REF) begin
                c_ref0[cfg_s] <= cfg_data[52:0];
                r_ref[cfg_s] <= cfg_data[52:0];
            end
        end
    endtask

    // a symbol's band as its bounds, in ticks: ref + band, and ref - band (0 when the band reaches
    // below 0); a price is out of band when it is above the one or below the other, which is
    // |q - ref| > band
    function [73:0] band_hi;
        input [52:0] k_ref;
        input [71:0] k_band;
        band_hi = {21'd0, k_ref} + {2'd0, k_band};
    endfunction
    function [52:0] band_lo;
        input [52:0] k_ref;
        input [71:0] k_band;
        band_lo = (k_band >= {19'd0, k_ref}) ? 53'd0 : (k_ref - k_band[52:0]);
    endfunction

    wire         px_rng = (m_px[63:53] == 11'd0) && (m_px != 64'd0);
    wire [52:0]  p53 = m_px[52:0];

    wire [31:0]  bps = c_bps[cur_sym];
    wire [52:0]  q_t;                                      // floor(price / tick)
    wire         on_tick;
`ifndef TICKBOOK_BAND_KEPT
    wire [52:0]  ref_t = r_ref[cur_sym];
    wire [71:0]  band;                                     // floor(ref * bps / 10000)
`endif
`ifdef TICKBOOK_TICKS_PIPED
    // the block-RAM build works the quotient and the tick check out ahead, in a pipeline
    // (tickbook_book_ticks.v), into m_qt and m_on_tick, and keeps its bands (both declared
    // before this file)
    assign q_t = m_qt;
    assign on_tick = m_on_tick;
`elsif TICKBOOK_CORE_ONLY
    // Synthesis of the matching core alone (make synth CORE=1): NOT a functional build. The
    // exact price arithmetic (two 53-bit multiplications for the tick, one for the collar) is
    // replaced by tick = 1 unit and a collar of ref/8, to measure what the rest costs.
    assign q_t = p53;
    assign on_tick = 1'b1;
    assign band = {19'd0, 3'd0, ref_t[52:3]};
`else
    /* verilator lint_off UNUSEDSIGNAL */
    wire [159:0] prod_q = {{107{1'b0}}, p53} * {{53{1'b0}}, c_recip[cur_sym]};
    /* verilator lint_on UNUSEDSIGNAL */
    assign q_t = prod_q[RECIP_SHIFT +: 53];
    wire [105:0] back = {{53{1'b0}}, q_t} * {{53{1'b0}}, c_tick[cur_sym]};
    assign on_tick = (back == {{53{1'b0}}, p53});
    wire [84:0]  refbps = {{32{1'b0}}, ref_t} * {{53{1'b0}}, bps};
    /* verilator lint_off UNUSEDSIGNAL */
    wire [170:0] prod_b = {{86{1'b0}}, refbps} * {{85{1'b0}}, MAG10K};
    /* verilator lint_on UNUSEDSIGNAL */
    assign band = prod_b[MAG10K_SHIFT +: 72];
`endif
`ifdef TICKBOOK_BAND_KEPT
    // the build keeps each symbol's bounds (r_hi, r_lo, declared before this file), worked out
    // after each change of the reference price, off the message's path
    wire [73:0]  ref_plus = r_hi[cur_sym];
    wire [52:0]  ref_lo = r_lo[cur_sym];
`else
    wire [73:0]  ref_plus = band_hi(ref_t, band);
    wire [52:0]  ref_lo = band_lo(ref_t, band);
`endif
    wire         out_band = (bps != 32'd0) && (({21'd0, q_t} > ref_plus) || (q_t < ref_lo));
    // a MARKET order's protection price: a bound of the band, at least 1 tick
    wire [73:0]  ref_minus = (ref_lo == 53'd0) ? 74'd1 : {21'd0, ref_lo};

    // limit of the incoming order, in ticks (MARKET: protection price at acceptance)
    wire         has_lim_c = !is_mkt || (bps != 32'd0);
    wire [73:0]  lim_c = !is_mkt ? {21'd0, q_t} : (side_sel ? ref_minus : ref_plus);
