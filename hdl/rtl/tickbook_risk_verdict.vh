// What the risk stage (tickbook_risk.v) hands the book besides the record itself, `include`d by
// the stage and by every build of the book (through tickbook_book_common.vh). docs/hardware.md,
// "The risk stage".
//
// A message the stage rejects (an account rule that comes before every check of the book:
// UNKNOWN_ACCOUNT, ACCOUNT_DISABLED, the account CAPACITY, RATE_LIMIT) reaches the book with its
// action set to ACTION_RISK_REJECT and the reason in its tif byte; the book rejects it with that
// reason, echoing its symbol, id and account, as it does a MALFORMED record. The stage turns a
// host's record that carries this action into a MALFORMED one, so only the stage can send it.
// A quantity above the account's max_order_qty reaches the book with bit 32 set: the book's own
// MAX_QTY rule (a quantity beyond 32 bits) then rejects it in the rulebook's place, after
// UNKNOWN_SYMBOL, DUPLICATE_ORDER_ID, BAD_TIF and BAD_QTY (a REPLACE: after UNKNOWN_ORDER,
// NOT_OWNER and BAD_QTY).
    /* verilator lint_off UNUSEDPARAM */
    localparam [7:0] ACTION_RISK_REJECT = 8'd128;
    /* verilator lint_on UNUSEDPARAM */
