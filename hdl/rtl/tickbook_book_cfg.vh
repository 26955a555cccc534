// The configuration port's addresses, `include`d by every build of the book (through
// tickbook_book_common.vh), by the tick unit in front of the block-RAM build
// (tickbook_book_ticks.v) and by the risk stage in front of the book (tickbook_risk.v). The
// host's copy, hdl/sim/driver.py CFG_*, is tested against these; each module reads the words it
// needs.
    /* verilator lint_off UNUSEDPARAM */
    localparam [2:0] CFG_TICK      = 3'd0,  // tick, 1e-8 units
                     CFG_RECIP     = 3'd1,  // fast and block-RAM builds: floor(2**106 / tick) + 1
                     CFG_REF       = 3'd2,  // fast and block-RAM builds: reference price, ticks
                     CFG_BPS       = 3'd3,  // band_bps, 0 = no collar
                     CFG_NSYM      = 3'd4,  // symbols configured
                     CFG_REF_UNITS = 3'd5,  // area build: reference price, 1e-8 units
                     CFG_ACCT      = 3'd6,  // risk stage: a listed account (tickbook_risk.v)
                     CFG_ACCTS     = 3'd7;  // risk stage: the default account, counts
    /* verilator lint_on UNUSEDPARAM */
