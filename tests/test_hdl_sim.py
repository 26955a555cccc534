"""hdl/sim/driver.py: the record <-> file paths (binary for the file-driven bench, hex), the
reciprocal, the error when Icarus is missing, edges; and the RTL's arithmetic constants, read from
the RTL itself."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from engine.records import EVENT_DTYPE, ORDER_DTYPE
from hdl.sim import driver as sim
from testkit.flows import diff_venue, random_records

PRICE_RTL = sim.RTL_DIR / "tickbook_book_price.vh"  # the price arithmetic of the tick-based builds
COMMON_RTL = sim.RTL_DIR / "tickbook_book_cfg.vh"  # the configuration addresses (CFG_*)


def rtl_localparam(path, name: str) -> int:
    """The value of `localparam ... NAME = <value>` in a Verilog file (sized like 86'h3f or a
    plain integer), so a test checks the constant the RTL is built with, not a copy of it."""
    text = re.sub(r"//[^\n]*", "", path.read_text())
    m = re.search(rf"\b{name}\s*=\s*(?:\d+'([dhb]))?([0-9a-fA-F_]+)\s*[,;]", text)
    assert m, f"no localparam {name} in {path}"
    base = {"h": 16, "b": 2, "d": 10, None: 10}[m.group(1)]
    return int(m.group(2).replace("_", ""), base)


def test_reciprocal_divides_exactly():
    rng = np.random.default_rng(3)
    ticks = [1, 2, 3, 7, 25_000_000, 1_000_000, 50_000_000, 10**8, 2**52 + 1, 2**53 - 1]
    ticks += [int(t) for t in rng.integers(1, 2**53, 200)]
    assert sim.RECIP_SHIFT == rtl_localparam(PRICE_RTL, "RECIP_SHIFT")  # the shift the RTL applies
    for d in ticks:
        m = sim.recip(d)
        ps = [0, 1, d - 1, d, d + 1, 2**53 - 1, (2**53 - 1) // d * d, (2**53 - 1) // d * d - 1]
        ps += [int(p) for p in rng.integers(0, 2**53, 50)]
        for p in ps:
            if 0 <= p < 2**53:
                assert (p * m) >> sim.RECIP_SHIFT == p // d, (p, d)


def test_collar_constant_divides_by_10000():
    """The fast and block-RAM builds' collar divides by 10000 with MAG10K and MAG10K_SHIFT: exact
    for every product of a 53-bit reference and a 32-bit band_bps."""
    mag, shift = rtl_localparam(PRICE_RTL, "MAG10K"), rtl_localparam(PRICE_RTL, "MAG10K_SHIFT")
    rng = np.random.default_rng(4)
    xs = [0, 9999, 10000, 10001, 2**85 - 1] + [int(a) * int(b) for a, b in
                                               zip(rng.integers(0, 2**53, 300), rng.integers(0, 2**32, 300))]
    for x in xs:
        assert (x * mag) >> shift == x // 10000, x


def test_configuration_addresses_are_the_rtls():
    """The host writes the configuration port at the addresses every build decodes."""
    for name in ("CFG_TICK", "CFG_RECIP", "CFG_REF", "CFG_BPS", "CFG_NSYM", "CFG_REF_UNITS", "CFG_ACCT", "CFG_ACCTS"):
        assert getattr(sim, name) == rtl_localparam(COMMON_RTL, name), name


def test_rtl_localparam_reads_what_the_file_says(tmp_path):
    f = tmp_path / "x.v"
    f.write_text("localparam [7:0] A = 8'h1f, B = 3'd5;  // C = 9\nlocalparam integer D = 99;\n")
    assert [rtl_localparam(f, n) for n in "ABD"] == [0x1F, 5, 99]
    with pytest.raises(AssertionError, match="no localparam C"):
        rtl_localparam(f, "C")


def _as_z(recs: np.ndarray, masks=None) -> bytes:
    """What $fwrite(fd, "%z", event) writes for these records: per record its 16 32-bit words,
    least significant first, each as value then X/Z mask (four little-endian bytes each)."""
    words = np.ascontiguousarray(recs).view("<u4").reshape(-1, 16)
    z = np.zeros((len(words), 16, 2), "<u4")
    z[:, :, 0] = words
    if masks is not None:
        z[:, :, 1] = masks
    return z.tobytes()


def test_bin_round_trip_and_layout():
    recs = random_records(2, 40, diff_venue(), nord=4, nlvl=2)
    raw = sim.records_to_bin(recs)
    assert len(raw) == 64 * len(recs)
    for k in (0, 17, 39):  # $fread fills the 512-bit reg big-endian: the record as a little-endian integer
        assert raw[64 * k : 64 * k + 64] == int.from_bytes(recs[k].tobytes(), "little").to_bytes(64, "big")
    back = sim.bin_to_records(_as_z(recs), ORDER_DTYPE)
    assert back.dtype == ORDER_DTYPE and back.tobytes() == recs.tobytes()
    assert len(sim.bin_to_records(b"")) == 0


def test_bin_unknown_bits_and_partial_records_are_refused():
    recs = random_records(3, 5, diff_venue(), nord=4, nlvl=2)
    masks = np.zeros((5, 16), "<u4")
    masks[3, 2] = 1 << 5  # bit 69 of event 3: hex digit 17 from the right
    with pytest.raises(sim.SimError, match=r"unknown \(X/Z\) bits \(event 3\)") as e:
        sim.bin_to_records(_as_z(recs, masks), ORDER_DTYPE)
    digits = str(e.value).rsplit(" ", 1)[1]
    assert len(digits) == 128 and digits.count("x") == 1 and digits[127 - 17] == "x"
    with pytest.raises(sim.SimError, match="whole number"):
        sim.bin_to_records(_as_z(recs)[:-8], ORDER_DTYPE)


@pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None, reason="Icarus not installed")
def test_bin_layout_is_icarus_own(tmp_path):
    """The layout bin_to_records and records_to_bin assume, checked against Icarus's own $fread and
    $fwrite("%z") (tb_file.v's calls): an event read back is the record, an X or Z bit is refused
    (Verilator writes the same bytes with no mask: tests/test_hdl_verilator.py compares the two)."""
    recs = random_records(4, 3, diff_venue(), nord=4, nlvl=2)
    (tmp_path / "in.bin").write_bytes(sim.records_to_bin(recs))
    (tmp_path / "t.v").write_text("""
module t;
    reg [511:0] rec;
    integer fi, fo, k;
    initial begin
        fi = $fopen("in.bin", "rb");
        fo = $fopen("out.bin", "wb");
        for (k = 0; k < 3; k = k + 1) begin
            if ($fread(rec, fi) != 64) $display("short read");
            $fwrite(fo, "%z", rec);
        end
        rec[300] = 1'bx;
        rec[301] = 1'bz;
        $fwrite(fo, "%z", rec);
        $fclose(fo);
        $finish;
    end
endmodule
""")
    subprocess.run(["iverilog", "-g2005", "-o", "t.vvp", "t.v"], cwd=tmp_path, check=True)
    r = subprocess.run(["vvp", "-n", "t.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True)
    assert "short read" not in r.stdout
    raw = (tmp_path / "out.bin").read_bytes()
    assert sim.bin_to_records(raw[: 3 * 128], ORDER_DTYPE).tobytes() == recs.tobytes()
    with pytest.raises(sim.SimError, match=r"event 3\)") as e:
        sim.bin_to_records(raw)
    digits = str(e.value).rsplit(" ", 1)[1]
    assert digits.count("x") == 1 and digits[127 - 300 // 4] == "x"  # bits 300 and 301: one digit


@pytest.mark.hdl
def test_short_input_file_fails_the_run(monkeypatch):
    """The bench reads each record when it puts it on the input: a file shorter than +N says so
    and ends the run without a summary, which simulate() reports."""
    v = diff_venue()
    flow = random_records(5, 30, v, nord=4, nlvl=2)
    full = sim.records_to_bin
    monkeypatch.setattr(sim, "records_to_bin", lambda recs: full(recs)[:-64])  # the last record cut
    with pytest.raises(sim.SimError, match="in.bin ends at record 29 of 30"):
        sim.simulate(flow, v, nord=4, nlvl=2)


def _run_with_bram_changed(tmp_path, monkeypatch, old: str, new: str):
    """A flow that the block-RAM RTL as it is runs to its end, then the same flow through a copy of
    that RTL with `old` (found once) replaced by `new`: what the copy's simulation raises."""
    v = diff_venue()
    flow = random_records(5, 300, v, nord=64, nlvl=16)
    assert sim.simulate(flow, v, nord=64, nlvl=16).messages == len(flow)
    rtl = tmp_path / "rtl"
    shutil.copytree(sim.RTL_DIR, rtl)
    bram = rtl / "tickbook_book_bram.v"
    assert bram.read_text().count(old) == 1
    bram.write_text(bram.read_text().replace(old, new))
    monkeypatch.setattr(sim, "BRAM_SOURCES", [rtl / p.name for p in sim.BRAM_SOURCES])
    monkeypatch.setattr(sim, "INCLUDE_DIRS", [rtl])
    monkeypatch.setattr(sim, "BUILD_DIR", tmp_path / "build")
    with pytest.raises(sim.SimError) as err:
        sim.simulate(flow, v, nord=64, nlvl=16)
    return str(err.value)


@pytest.mark.hdl
def test_the_bram_builds_end_of_message_check_stops_a_run_that_breaks_it(tmp_path, monkeypatch):
    """The block-RAM build works out whether a message ends (`ends`, from registers) beside its
    next-state choice and checks the two every cycle in simulation: a copy of the RTL whose term
    for S_R4 (a NEW joins a level) is wrong stops the run there, where the RTL as it is runs the
    same flow to its end."""
    err = _run_with_bram_changed(tmp_path, monkeypatch, "S_R4, S_FT1: ends = book_clean;",
                                 "S_R4: ends = 1'b0;\n        S_FT1: ends = book_clean;")
    assert re.search(r"ends = 0 in state 28, which chose state 0", err)


@pytest.mark.hdl
def test_the_bram_builds_best_level_check_stops_a_run_whose_registers_drift(tmp_path, monkeypatch):
    """Between messages the block-RAM build checks, in simulation, that each book's best-level
    registers (first order, size, price, handle) are the level memory's and the ladder's: a copy
    of the RTL that forgets to move the first order on when a fill takes the head of the best
    level stops at the next message, where the RTL as it is runs the same flow to its end."""
    err = _run_with_bram_changed(tmp_path, monkeypatch, "set_hd(!tk_side, mk_next[IW-1:0]);", "")
    assert re.search(r"book \d+'s best level \d+ in registers \(first order", err)


@pytest.mark.hdl
def test_the_bram_builds_working_copy_check_stops_a_run_that_forgets_a_symbol(tmp_path, monkeypatch):
    """Every state reads the message's own symbol's books from a working copy, loaded when the
    symbol changes, and the simulation checks between messages, and at each unlink, that the copy
    is that symbol's books: a copy of the RTL where a CANCEL or REPLACE does not load its order's
    symbol stops, where the RTL as it is runs the same multi-symbol flow to its end."""
    err = _run_with_bram_changed(tmp_path, monkeypatch, "cur_sym <= q_osym;\n                        load_books(q_osym);",
                                 "cur_sym <= q_osym;")
    assert re.search(r"the working copy of symbol \d+ side \d is not its book's", err)


def test_missing_icarus_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sim.shutil, "which", lambda tool: None)
    with pytest.raises(sim.SimError, match="apt-get install iverilog"):
        sim.run_flow(np.zeros(1, ORDER_DTYPE), diff_venue())


@pytest.mark.hdl
def test_empty_flow_and_too_many_symbols():
    assert len(sim.run_flow(np.zeros(0, ORDER_DTYPE), diff_venue(), nord=4, nlvl=2)) == 0
    with pytest.raises(sim.SimError, match="symbols"):
        sim.run_flow(np.zeros(1, ORDER_DTYPE), diff_venue(), nsym=2)


def test_wrong_dtype():
    with pytest.raises(TypeError):
        sim.run_flow(np.zeros(1, EVENT_DTYPE), diff_venue())


def test_unsupported_venue_features_warn():
    assert sim.unsupported(diff_venue()) == []
    assert sim.unsupported(sim._venue(None)) == []   # the block-RAM build checks every account limit
    with pytest.warns(UserWarning, match="max_position in \\[accounts.7\\] \\(the fast build has no max_position check\\)"):
        sim._warn_scope(sim._venue(None), np.zeros(0, ORDER_DTYPE), "fast")


def test_area_configuration_words():
    """The area build gets the reference price in 1e-8 units (address 5) besides the fast
    build's words; it holds 53 bits, which the engine's price range guarantees (MAX_PRICE_UNITS)."""
    from engine.records import MAX_PRICE_UNITS

    v = diff_venue()
    fast, area = sim.config_words(v), sim.config_words(v, area=True)
    assert [w for w in area if w[0] != sim.CFG_REF_UNITS] == fast
    units = {s: d for a, s, d in area if a == sim.CFG_REF_UNITS}
    assert units == {i: s.ref_ticks * s.tick_units for i, s in enumerate(v.symbols)}
    assert MAX_PRICE_UNITS < 2**53
