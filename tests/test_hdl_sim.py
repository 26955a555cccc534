"""hdl/sim/driver.py: the record <-> hex path, the reciprocal, the error when Icarus is missing,
edges; and the RTL's arithmetic constants, read from the RTL itself."""

import re

import numpy as np
import pytest

from engine.records import EVENT_DTYPE, ORDER_DTYPE
from hdl.sim import driver as sim
from testkit.flows import diff_venue, random_records

PRICE_RTL = sim.RTL_DIR / "tickbook_book_price.vh"  # the price arithmetic of the tick-based builds
COMMON_RTL = sim.RTL_DIR / "tickbook_book_common.vh"  # what every build declares (CFG_*)


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
    for name in ("CFG_TICK", "CFG_RECIP", "CFG_REF", "CFG_BPS", "CFG_NSYM", "CFG_REF_UNITS"):
        assert getattr(sim, name) == rtl_localparam(COMMON_RTL, name), name


def test_rtl_localparam_reads_what_the_file_says(tmp_path):
    f = tmp_path / "x.v"
    f.write_text("localparam [7:0] A = 8'h1f, B = 3'd5;  // C = 9\nlocalparam integer D = 99;\n")
    assert [rtl_localparam(f, n) for n in "ABD"] == [0x1F, 5, 99]
    with pytest.raises(AssertionError, match="no localparam C"):
        rtl_localparam(f, "C")


def test_hex_round_trip():
    recs = random_records(1, 50, diff_venue(), nord=4, nlvl=2)
    back = sim.hex_to_records(sim.records_to_hex(recs), ORDER_DTYPE)
    assert back.tobytes() == recs.tobytes()


def test_x_bits_are_reported():
    with pytest.raises(sim.SimError, match="unknown"):
        sim.hex_to_records("x" * 128 + "\n", EVENT_DTYPE)


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
    with pytest.warns(UserWarning, match="account"):
        sim._warn_scope(sim._venue(None), np.zeros(0, ORDER_DTYPE))


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
