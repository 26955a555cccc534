"""Stage 2 of the LOBSTER import: the messages into a tickbook order flow (ORDER_DTYPE records).

    conv = convert(data, mode="book")      # or "match", with evidence "none" | "ahead" | "full"

Message by message, with `msg_end[i]` = number of records emitted up to and including message i,
so the replay can compare the book after every message. The converter keeps its own model of the
book (FIFO queues of order ids per price) to know which ids exist, where seed liquidity sits and
which out-of-view adjustments the orderbook rows call for; every change to the model emits its
record, so model and flow cannot drift apart. The engine is not consulted: the flow is a file
any replay can run (`tickbook lobster --flow`).

book mode: executions reduce the named order. match mode: each run of executions becomes one
aggressive IOC, NASDAQ's executions correct the model's queue first (`evidence`), and repairs after
the IOC keep the book NASDAQ's. docs/lobster.md explains the rules and measures the choices.

Prices: LOBSTER gives dollars x 10000 and the venue's tick is 0.0001, so a LOBSTER price is the
engine's price in ticks, and 10^4 x it is the record's 1e-8 unit price.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field

import numpy as np

from engine.lobster.read import (
    M_DIR,
    M_ID,
    M_PRICE,
    M_SIZE,
    M_TS,
    M_TYPE,
    LobsterData,
    LobsterError,
    row_levels,
    side_of_row,
)
from engine.records import (
    ACTION_CANCEL,
    ACTION_NEW,
    ACTION_REPLACE,
    ORDER_DTYPE,
    PRICE_NONE,
    SIDE_BUY,
    SIDE_SELL,
    TIF_GTC,
    TIF_IOC,
    TYPE_LIMIT,
)

UNITS_PER_LOBSTER = 10**4  # 1e-8 price units per LOBSTER price unit (1/10000 dollar)
BOOK_ACCOUNT = 1  # every resting order (seed, adjustment, known order)
TAKER_ACCOUNT = 2  # match mode: the aggressive IOCs rebuilt from execution runs
SYNTHETIC_BASE = 1 << 40  # ids of seed / adjustment orders; LOBSTER ids are far below
KNOWN_FROM_BACK = True  # size nobody named must come out of named orders: the youngest first
EVIDENCE = ("none", "ahead", "full")


# --- the venue the flow is written for ------------------------------------------------------------


def venue_toml(data: LobsterData, max_orders: int = 1 << 18) -> str:
    """One symbol, tick 0.0001 (LOBSTER prices are dollars x 10000), no collar, no limits."""
    live = data.book[:, 2][data.book[:, 2] > 0]
    ref = int(live[0]) if len(live) else 10000
    return (
        f'[symbols.{data.ticker}]\ntick = "0.0001"\nref_price = "{ref / 10000:.4f}"\nband_bps = 0\n\n'
        f"[accounts.default]\n\n"
        f"[engine]\nmax_orders = {max_orders}\nmax_levels = 65536\nmax_accounts = 16\n"
    )



# --- conversion -----------------------------------------------------------------------------


@dataclass
class Conversion:
    orders: np.ndarray  # ORDER_DTYPE
    msg_end: np.ndarray  # int64 [n_messages]: records emitted up to and including message i
    compare: np.ndarray  # bool [n_messages]: compare the book after message i with row i
    stats: dict[str, int]
    runs: list = field(default_factory=list)  # match mode: (last row, [(lob_id, price, size, submitted in file)], hidden, IOC id)
    tb_lob: dict = field(default_factory=dict)  # tickbook id -> LOBSTER id (0 = anonymous liquidity)
    evidence: str = "full"
    adjusted: list = field(default_factory=list)  # (message index, side, price, "seeded"/"reduced"/"dropped")



class _Flow:
    """Order records being emitted, as parallel lists (one NumPy array at the end)."""

    def __init__(self):
        self.action, self.oid, self.side, self.price, self.qty, self.acct, self.tif, self.msg, self.ts = (
            [], [], [], [], [], [], [], [], []
        )
        self.cur_msg = 0
        self.cur_ts = 0

    def _add(self, action, oid, side, price, qty, acct, tif):
        self.action.append(action)
        self.oid.append(oid)
        self.side.append(side)
        self.price.append(price)
        self.qty.append(qty)
        self.acct.append(acct)
        self.tif.append(tif)
        self.msg.append(self.cur_msg)
        self.ts.append(self.cur_ts)

    def new(self, oid, side, price, qty, acct=BOOK_ACCOUNT, tif=TIF_GTC):
        self._add(ACTION_NEW, oid, side, price * UNITS_PER_LOBSTER, qty, acct, tif)

    def cancel(self, oid):
        self._add(ACTION_CANCEL, oid, 0, PRICE_NONE, 0, BOOK_ACCOUNT, 0)

    def replace(self, oid, price, qty):
        self._add(ACTION_REPLACE, oid, 0, price * UNITS_PER_LOBSTER, qty, BOOK_ACCOUNT, 0)

    def __len__(self):
        return len(self.action)

    def records(self) -> np.ndarray:
        n = len(self.action)
        out = np.zeros(n, ORDER_DTYPE)
        out["ts"] = np.array(self.ts, np.uint64)
        out["order_id"] = np.array(self.oid, np.uint64)
        out["price"] = np.array(self.price, np.int64)
        out["qty"] = np.array(self.qty, np.int64)
        out["msg_seq"] = np.array(self.msg, np.int64)
        out["account"] = np.array(self.acct, np.uint32)
        out["symbol"] = 0
        out["action"] = np.array(self.action, np.uint8)
        out["side"] = np.array(self.side, np.uint8)
        out["type"] = np.where(out["action"] == ACTION_NEW, TYPE_LIMIT, 0).astype(np.uint8)
        out["tif"] = np.array(self.tif, np.uint8)
        return out


class _Model:
    """The converter's view of the book: per side and price a FIFO list of tickbook ids.

    Every change goes through add / reduce, which also emit the flow record, so the model and
    the emitted flow cannot drift apart. orders[tb] = [side, price, leaves, lob_id] where lob_id
    is 0 for anonymous liquidity (seed from the first row, or size taken from a later row)."""

    def __init__(self, flow: _Flow, stats: dict):
        self.q = (None, {}, {})
        self.tot = (None, {}, {})
        self.px = (None, [], [])  # ascending prices held per side
        self.orders: dict[int, list] = {}
        self.lob2tb: dict[int, int] = {}
        self.tb_lob: dict[int, int] = {}
        self.next_syn = SYNTHETIC_BASE
        self.flow = flow
        self.stats = stats

    def synthetic_id(self) -> int:
        self.next_syn += 1
        return self.next_syn

    def level(self, side, price) -> int:
        return self.tot[side].get(price, 0)

    def add(self, tb, lob, side, price, qty):
        q = self.q[side].get(price)
        if q is None:
            q = self.q[side][price] = []
            self.tot[side][price] = 0
            insort(self.px[side], price)
        q.append(tb)
        self.tot[side][price] += qty
        self.orders[tb] = [side, price, qty, lob]
        self.tb_lob[tb] = lob
        if lob:
            self.lob2tb[lob] = tb
        self.flow.new(tb, side, price, qty)

    def _unlink(self, tb, o):
        side, price = o[0], o[1]
        q = self.q[side][price]
        q.remove(tb)
        if not q:
            del self.q[side][price]
            del self.tot[side][price]
            px = self.px[side]
            del px[bisect_left(px, price)]
        del self.orders[tb]
        lob = o[3]
        if lob and self.lob2tb.get(lob) == tb:
            del self.lob2tb[lob]

    def reduce(self, tb, amount, emit=True):
        """Take amount (<= leaves) off order tb: REPLACE keeping priority, or CANCEL at zero."""
        o = self.orders[tb]
        left = o[2] - amount
        self.tot[o[0]][o[1]] -= amount
        if left == 0:
            self._unlink(tb, o)
            if emit:
                self.flow.cancel(tb)
        else:
            o[2] = left
            if emit:
                self.flow.replace(tb, o[1], left)

    def take_level(self, side, price, amount, skip=None) -> tuple[int, int]:
        """Take amount from the level: anonymous liquidity first (front first), then the named
        orders, youngest first (KNOWN_FROM_BACK; docs/lobster.md has the measurement).
        Returns (taken, taken from named orders)."""
        q = self.q[side].get(price)
        taken = from_known = 0
        if q is None:
            return 0, 0
        for anon_pass in (True, False):
            for tb in (list(q) if anon_pass or not KNOWN_FROM_BACK else q[::-1]):
                if amount == 0:
                    return taken, from_known
                if tb == skip:
                    continue
                o = self.orders[tb]
                if (o[3] == 0) != anon_pass:
                    continue
                t = min(amount, o[2])
                self.reduce(tb, t)
                taken += t
                if not anon_pass:
                    from_known += t
                amount -= t
        return taken, from_known

    def drop_level(self, side, price):
        for tb in list(self.q[side][price]):
            self.reduce(tb, self.orders[tb][2])

    def move_to_back(self, tb):
        """Cancel tb and enter its leaves again at the back of its level (same LOBSTER id)."""
        side, price, leaves, lob = self.orders[tb]
        self.reduce(tb, leaves)
        self.add(self.synthetic_id(), lob, side, price, leaves)



def _seed_row(data: LobsterData) -> dict[int, list[tuple[int, int]]]:
    """Row 1 with message 1 undone: {side: [(price, size)] best first}."""
    row = data.book[0]
    m = data.messages[0]
    levels = {s: dict(row_levels(row, s)) for s in (SIDE_BUY, SIDE_SELL)}
    typ, size, price, d = int(m[M_TYPE]), int(m[M_SIZE]), int(m[M_PRICE]), int(m[M_DIR])
    side = SIDE_BUY if d == 1 else SIDE_SELL
    if typ in (1, 2, 3, 4):
        lv = levels[side]
        delta = -size if typ == 1 else size
        lv[price] = lv.get(price, 0) + delta
        if lv[price] <= 0:
            del lv[price]
    return {
        SIDE_BUY: sorted(levels[SIDE_BUY].items(), reverse=True),
        SIDE_SELL: sorted(levels[SIDE_SELL].items()),
    }


def execution_runs(messages: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive type 4/5 rows with the same time and direction holding at least one
    type 4: [(first row, last row)]."""
    t = messages[:, M_TYPE]
    runs = []
    n = len(messages)
    i = 0
    while i < n:
        if t[i] in (4, 5):
            j = i
            while (
                j + 1 < n
                and t[j + 1] in (4, 5)
                and messages[j + 1, M_TS] == messages[i, M_TS]
                and messages[j + 1, M_DIR] == messages[i, M_DIR]
            ):
                j += 1
            if (t[i : j + 1] == 4).any():
                runs.append((i, j))
            i = j + 1
        else:
            i += 1
    return runs


def convert(data: LobsterData, mode: str = "book", evidence: str = "full") -> Conversion:
    """LOBSTER messages to tickbook order records (see the module docstring and docs/lobster.md)."""
    if mode not in ("book", "match"):
        raise ValueError(f"mode must be 'book' or 'match', got {mode!r}")
    if evidence not in EVIDENCE:
        raise ValueError(f"evidence must be one of {EVIDENCE}, got {evidence!r}")
    msgs = data.messages
    book = data.book
    n = len(msgs)
    L = data.levels
    stats = dict.fromkeys(
        (
            "seed_orders", "adj_seeded", "adj_reduced", "adj_dropped", "adj_rows", "short_named",
            "orphan_from_known", "unplaced_size", "delete_excess", "type5", "type6", "type7", "runs",
            "hidden_runs", "moved_ahead", "grown", "repairs",
        ),
        0,
    )
    flow = _Flow()
    model = _Model(flow, stats)
    msg_end = np.zeros(n, np.int64)
    compare = np.ones(n, bool)

    # seed: one order per level of row 1 with message 1 undone, before message 1
    seed = _seed_row(data)
    flow.cur_msg = 0
    flow.cur_ts = int(msgs[0, M_TS])
    for side in (SIDE_BUY, SIDE_SELL):
        for price, size in seed[side]:
            model.add(model.synthetic_id(), 0, side, price, size)
            stats["seed_orders"] += 1
    prev_prices = {s: {p for p, _ in seed[s]} for s in (SIDE_BUY, SIDE_SELL)}
    for s_ in (SIDE_BUY, SIDE_SELL):
        prev_prices[("full", s_)] = False  # the seed row may hold L+1 levels: check fully
        prev_prices[("worst", s_)] = None

    # the rows whose shown prices differ from the previous row's: only there can a price be new
    pcols = np.r_[0 : 4 * L : 4, 2 : 4 * L : 4]
    changed = np.ones(n, bool)
    changed[1:] = (book[1:, pcols] != book[:-1, pcols]).any(axis=1)
    chg_idx = np.flatnonzero(changed)
    chg_rows = dict(zip(chg_idx.tolist(), book[chg_idx].tolist()))

    run_of = {}  # first row -> last row (match mode)
    if mode == "match":
        for a, b in execution_runs(msgs):
            run_of[a] = b
    runs_out = []
    run_end = -1
    cur_run = None  # match mode: the run of executions being read
    adjusted: list = []

    types = msgs[:, M_TYPE].tolist()
    ids = msgs[:, M_ID].tolist()
    sizes = msgs[:, M_SIZE].tolist()
    prices = msgs[:, M_PRICE].tolist()
    dirs = msgs[:, M_DIR].tolist()
    tss = msgs[:, M_TS].tolist()
    known_lob = set()  # LOBSTER ids submitted (type 1) in the file so far

    for i in range(n):
        flow.cur_msg = i + 1
        flow.cur_ts = tss[i]
        typ = types[i]
        lob = ids[i]
        size = sizes[i]
        price = prices[i]
        side = SIDE_BUY if dirs[i] == 1 else SIDE_SELL

        if mode == "match" and i in run_of:
            run_end = run_of[i]
            cur_run = _Run()
            stats["runs"] += 1
        in_run = i <= run_end

        if typ == 1:
            if lob in model.lob2tb:
                raise LobsterError(f"{data.message_source}: row {i + 1}: order id {lob} submitted twice")
            known_lob.add(lob)
            model.add(lob, lob, side, price, size)
        elif typ in (2, 3) or (typ == 4 and not in_run):
            _apply_reduction(model, stats, typ, lob, side, price, size)
        elif typ == 4:
            _note_execution(model, stats, cur_run, lob, side, price, size, known_lob, evidence)
        elif typ == 5:
            stats["type5"] += 1
            if in_run:
                cur_run.hidden = True
        elif typ == 6:
            stats["type6"] += 1  # a cross trade: no change to the visible book
        else:
            stats["type7"] += 1  # a trading halt / quoting / resume marker: the row repeats

        r = chg_rows.get(i)
        if r is not None:
            shown = _adjust(model, stats, r, prev_prices, L, cur_run.prices if in_run else frozenset(), adjusted, i)
        if in_run:
            if i == run_end:
                runs_out.append(_close_run(model, stats, cur_run, i))
            else:
                compare[i] = False  # NASDAQ's partial state inside one aggressor's run
        msg_end[i] = len(flow)
        if r is not None:
            prev_prices = shown

    stats["resting_at_end"] = len(model.orders)
    return Conversion(flow.records(), msg_end, compare, stats, runs_out, model.tb_lob, evidence, adjusted)


def _apply_reduction(model: _Model, stats, typ, lob, side, price, size):
    """Type 2 (partial cancel), 3 (delete) or 4 (execution, book mode): the level at price
    loses exactly size; the named order first, then anonymous liquidity, then the other named
    orders youngest first."""
    tb = model.lob2tb.get(lob)
    if tb is not None and model.orders[tb][1] != price:
        tb = None  # the id is at another price in our book: treat as unknown here
    rest = size
    if tb is not None:
        leaves = model.orders[tb][2]
        if typ == 3 and leaves > size:
            # NASDAQ deletes the order with `size` left; what we hold beyond that stays as
            # anonymous liquidity (cancelled out of sight, or never there)
            model.reduce(tb, size)
            model.orders[tb][3] = 0
            model.tb_lob[tb] = 0
            del model.lob2tb[lob]
            stats["delete_excess"] += 1
            return
        t = min(leaves, size)
        model.reduce(tb, t)
        rest -= t
        if rest:
            stats["short_named"] += 1
    if rest:
        taken, from_known = model.take_level(side, price, rest)
        if from_known:
            stats["orphan_from_known"] += 1
        if taken < rest:
            stats["unplaced_size"] += rest - taken


def _adjust(model: _Model, stats, r: list, prev_prices, L, skip=frozenset(), log=None, row_i=0):
    """The three out-of-view rules, on prices not visible in the previous row only. Returns what
    the next row needs as its `prev_prices`: per side the shown prices, whether the side showed
    all L levels and its worst shown price. Prices in skip (match mode: executed in the current
    run, whose executions the model has not applied yet) are left alone."""
    touched = False
    nxt = {}
    for side in (SIDE_BUY, SIDE_SELL):
        prices, sizes = side_of_row(r, side)
        full = len(prices) == L
        shown_px = set(prices)
        nxt[side] = shown_px
        nxt[("full", side)] = full
        nxt[("worst", side)] = prices[-1] if prices else None
        prev = prev_prices[side]
        if full and prev_prices[("full", side)] and shown_px <= prev:
            # nothing new in view and the range did not grow past the previous full row's
            pw = prev_prices[("worst", side)]
            if (side == SIDE_BUY and prices[-1] >= pw) or (side == SIDE_SELL and prices[-1] <= pw):
                continue
        for k in range(len(prices)):
            price = prices[k]
            if price in prev or price in skip:
                continue
            diff = sizes[k] - model.tot[side].get(price, 0)
            if diff > 0:
                model.add(model.synthetic_id(), 0, side, price, diff)
                stats["adj_seeded"] += 1
                log.append((row_i, side, price, "seeded"))
                touched = True
            elif diff < 0:
                model.take_level(side, price, -diff)
                stats["adj_reduced"] += 1
                log.append((row_i, side, price, "reduced"))
                touched = True
        # prices held inside the row's visible range that the row does not show
        px = model.px[side]
        if side == SIDE_BUY:
            cand = px[bisect_left(px, prices[-1]) :] if full else px
        else:
            cand = px[: bisect_left(px, prices[-1] + 1)] if full else px
        drop = [price for price in cand if price not in shown_px and price not in prev and price not in skip]
        for price in drop:
            model.drop_level(side, price)
            stats["adj_dropped"] += 1
            log.append((row_i, side, price, "dropped"))
            touched = True
    if touched:
        stats["adj_rows"] += 1
    return nxt


def _consume(model: _Model, used: dict, side, price, tb, size) -> int:
    """Record in `used` which orders of our book NASDAQ's execution of size at price takes:
    the named order tb first, then anonymous liquidity front first, then the others front
    first (executions hit the oldest order at the price). Returns what could not be placed."""
    if tb is not None:
        t = min(size, model.orders[tb][2] - used.get(tb, 0))
        if t > 0:
            used[tb] = used.get(tb, 0) + t
            size -= t
    q = model.q[side].get(price, ())
    for anon_pass in (True, False):
        for o_tb in q:
            if size == 0:
                return 0
            o = model.orders[o_tb]
            if (o[3] == 0) != anon_pass:
                continue
            t = min(size, o[2] - used.get(o_tb, 0))
            if t > 0:
                used[o_tb] = used.get(o_tb, 0) + t
                size -= t
    return size


class _Run:
    def __init__(self):
        self.execs = []  # (lob_id, price, size, submitted in the file)
        self.hidden = False
        self.used: dict[int, int] = {}  # our order -> size NASDAQ's executions take from it
        self.side = 0
        self.unplaced = 0
        self.prices: set[int] = set()


def _note_execution(model: _Model, stats, run: _Run, lob, side, price, size, known_lob, evidence="full"):
    """Match mode: a visible execution inside a run. Nothing is emitted for it (one IOC closes
    the run), but with `evidence` the execution corrects our reconstruction of the queue, which
    the data only shows while the price is in view: the executed order sits right behind what
    this run has executed at that price, with at least `size` left. So orders our queue holds
    ahead of it go behind it (same ids and sizes), and when it holds less than `size` (size
    that an earlier guess took from it, or an id never seen at a level without anonymous
    liquidity), the missing size is taken from the level's other orders (anonymous first, then
    the youngest) and given to it. The level's total, which the row shows, never changes."""
    tb = model.lob2tb.get(lob)
    if tb is not None and model.orders[tb][1] != price:
        tb = None
    run.side = side
    run.prices.add(price)
    run.execs.append((lob, price, size, lob in known_lob))
    if evidence != "none":
        _front(model, stats, run, side, price, tb, lob if lob in known_lob else 0, size, grow=evidence == "full")
        tb = model.lob2tb.get(lob, tb) if tb is not None or lob in known_lob else None
        if tb is not None and (tb not in model.orders or model.orders[tb][1] != price):
            tb = None
    run.unplaced += _consume(model, run.used, side, price, tb, size)


def _front(model: _Model, stats, run: _Run, side, price, tb, lob, size, grow=True):
    """Make the level's queue agree with an execution of `size` on tb (a known order of our
    book) or, tb None, on an id we hold only as anonymous liquidity (lob = its id when it was
    submitted in the file, else 0). What this run executed earlier stays in front; the executed
    order comes next with at least `size`; everything else follows in its previous order."""
    q = model.q[side].get(price)
    if not q:
        return
    used = run.used
    orders = model.orders
    front = [o for o in q if used.get(o, 0)]
    rest = [o for o in q if not used.get(o, 0)]
    if tb is not None:
        target = tb
    else:
        target = next((o for o in front if orders[o][3] == 0 and orders[o][2] > used[o]), None)
        if target is None and lob == 0:
            target = next((o for o in rest if orders[o][3] == 0), None)
    in_front = target is not None and bool(used.get(target, 0))
    avail = orders[target][2] - used.get(target, 0) if target is not None else 0
    # remainders of other orders executed earlier in the run are not ahead of this one
    stale = [o for o in front if o != target and orders[o][2] > used[o]]
    need = max(0, size - avail) if grow else 0
    if target is None and need == 0:
        return
    if not stale and need == 0 and (in_front or rest[:1] == [target]):
        return  # the common case: our queue already agrees
    behind = []  # [leaves, lob] in queue order, the executed order excluded
    for o in stale:
        r = orders[o][2] - used[o]
        behind.append([r, orders[o][3]])
        model.reduce(o, r)  # its executed part keeps its place
    for o in rest:
        if o != target:
            behind.append([orders[o][2], orders[o][3]])
    got = 0
    for entry in [e for e in behind if e[1] == 0] + [e for e in behind if e[1] != 0][::-1]:
        if got == need:
            break
        t = min(need - got, entry[0])
        entry[0] -= t
        got += t
    stats["grown" if got else "moved_ahead"] += 1
    t_lob = model.tb_lob.get(target, 0) if target is not None else lob
    for o in rest:
        model.reduce(o, orders[o][2])
    first = got if in_front else avail + got
    if first:
        model.add(model.synthetic_id(), t_lob, side, price, first)
    for leaves, o_lob in behind:
        if leaves:
            model.add(model.synthetic_id(), o_lob, side, price, leaves)


def _close_run(model: _Model, stats, run: _Run, last_row):
    """Match mode: the run's aggressor as one IOC, then repairs so the book is NASDAQ's again.

    The IOC takes the opposite side of the resting orders, qty = the visible executions, limit =
    the worst executed price. The model predicts the engine's fills by price-time priority (the
    engine's own fills are what gets compared; a wrong prediction would show up as rejects and
    book divergences). NASDAQ's executions (run.used) are then applied as truth: an order the
    engine filled more than NASDAQ did gets the difference back as a new order at the back of
    its level (same LOBSTER id); one it filled less is reduced (keeping its place)."""
    if run.hidden:
        stats["hidden_runs"] += 1
    if run.unplaced:
        stats["unplaced_size"] += run.unplaced
    side = run.side
    qty = sum(e[2] for e in run.execs)
    limit = min(e[1] for e in run.execs) if side == SIDE_BUY else max(e[1] for e in run.execs)
    taker = model.synthetic_id()
    model.flow.new(taker, SIDE_SELL if side == SIDE_BUY else SIDE_BUY, limit, qty, acct=TAKER_ACCOUNT, tif=TIF_IOC)
    predicted: dict[int, tuple[int, int, int]] = {}  # tb -> (filled, price, lob), fill order
    rem = qty
    px = model.px[side]
    while rem > 0 and px:
        best = px[-1] if side == SIDE_BUY else px[0]
        if (side == SIDE_BUY and best < limit) or (side == SIDE_SELL and best > limit):
            break
        tb = model.q[side][best][0]
        o = model.orders[tb]
        t = min(rem, o[2])
        predicted[tb] = (t, best, o[3])
        model.reduce(tb, t, emit=False)
        rem -= t
    for tb in list(predicted) + [k for k in run.used if k not in predicted]:
        d = run.used.get(tb, 0) - (predicted[tb][0] if tb in predicted else 0)
        if d == 0:
            continue
        stats["repairs"] += 1
        o = model.orders.get(tb)
        if d > 0:
            model.reduce(tb, d)
        elif o is not None:  # filled too much, still resting: all of it to the back
            o_side, o_price, leaves, lob = o
            model.reduce(tb, leaves)
            model.add(model.synthetic_id(), lob, o_side, o_price, leaves - d)
        else:
            _, o_price, lob = predicted[tb]
            model.add(model.synthetic_id(), lob, side, o_price, -d)
    return (last_row, run.execs, run.hidden, taker)

