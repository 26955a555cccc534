// What the risk stage (tickbook_risk.v) hands the book besides the record itself, `include`d by
// the stage and by every build of the book (through tickbook_book_common.vh). docs/hardware.md,
// "The risk stage".
//
// A message the stage rejects (an account rule that comes before every check of the book:
// UNKNOWN_ACCOUNT, ACCOUNT_DISABLED, the account CAPACITY, RATE_LIMIT) reaches the book with its
// action set to ACTION_RISK_REJECT and the reason in its tif byte; the book rejects it with that
// reason, echoing its symbol, id and account, as it does a MALFORMED record. A KILL the stage
// accepts (its account is known, or tracked now: the stage has marked it killed) reaches the
// block-RAM book as ACTION_RISK_KILL, with the account's entry (VERDICT_SLOT_LSB): the book
// cancels the orders of that entry; a KILL that comes without the stage (ACTION_KILL) is
// MALFORMED, since only the stage knows accounts. The stage turns a host's record that carries
// either action into a MALFORMED one, so only the stage can send them.
// A quantity above the account's max_order_qty reaches the book with bit 32 set: the book's own
// MAX_QTY rule (a quantity beyond 32 bits) then rejects it in the rulebook's place, after
// UNKNOWN_SYMBOL, DUPLICATE_ORDER_ID, BAD_TIF and BAD_QTY (a REPLACE: after UNKNOWN_ORDER,
// NOT_OWNER and BAD_QTY).
// The account's notional limit reaches the book in the record's reserved bytes, 63 bits from
// VERDICT_NT_LSB: {has, limit}. `has` 0 is no limit (and the stage clears these bits of every
// record it passes, a host's included). The limit is floor(max_notional x 1e8), in the record's
// price units times quantity, below 2**62: the book rejects MAX_NOTIONAL when price x qty, the
// price in 1e-8 units (a MARKET order's protection price, or the reference price without a
// collar), is above it. That is the engine's qty > floor(floor(max_notional / tick) / price_ticks)
// exactly, for any tick (docs/hardware.md, "The risk stage").
// Then, 24 bits from VERDICT_MO_LSB, the account's max_open_orders (0 none), and from
// VERDICT_SLOT_LSB the account's index (clog2(NACCT) bits, 0 .. NACCT - 1, given in the order the
// stage tracks accounts): the block-RAM book keeps each account's resting orders by that index,
// for MAX_OPEN_ORDERS and KILL, and its positions (by that index and the symbol), for
// MAX_POSITION.
// The account's max_position (0 none, up to 2**62) takes the record's ts field, 63 bits from
// VERDICT_MP_LSB, which the book does not read (the stage has used ts for the rate limit), for a
// NEW or REPLACE the stage passes; the reserved byte's top bit, VERDICT_MP_ON, says that it does
// (the stage clears it in every other record), so that a book without the stage in front never
// takes a host's ts for a limit.
    /* verilator lint_off UNUSEDPARAM */
    localparam [7:0] ACTION_RISK_REJECT = 8'd128;
    localparam [7:0] ACTION_RISK_KILL = 8'd129;
    localparam integer VERDICT_NT_LSB = ORDER_RESERVED_LSB;
    localparam integer VERDICT_MO_LSB = ORDER_RESERVED_LSB + 63;     // 24 bits
    localparam integer VERDICT_SLOT_LSB = ORDER_RESERVED_LSB + 87;   // up to 24 bits
    localparam integer VERDICT_MP_LSB = ORDER_TS_LSB;                // 63 bits
    localparam integer VERDICT_MP_ON = ORDER_RESERVED_LSB + 111;     // the record's last bit
    /* verilator lint_on UNUSEDPARAM */
