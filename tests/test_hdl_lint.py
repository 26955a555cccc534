"""verilator --lint-only -Wall is clean on the order book, over a sweep of its parameters; Icarus
accepts it; the record header the RTL includes is the one engine/records.py generates."""

import shutil
import subprocess

import pytest

from engine import records
from hdl.gen import records_header
from hdl.sim.driver import AREA_SOURCES, BRAM_SOURCES, INCLUDE_DIRS, RTL_DIR, RTL_SOURCES

LINT_PARAMS = [(1, 1, 1), (4, 16, 8), (3, 5, 3), (4, 64, 16)]
# the block-RAM build also at the sizes it is for (the register builds would take minutes)
BRAM_LINT_PARAMS = [(8, 8192, 256), (16, 16384, 256), (2, 1 << 20, 4096)]
INCLUDES = [f"-I{d}" for d in INCLUDE_DIRS]
# the AXI-Stream wrapper (tickbook_book_axis) with the block-RAM build it instantiates; Verilator
# takes the wrapper as the top (the module nothing instantiates), so -G sets its parameters
AXIS_SOURCES = BRAM_SOURCES + [RTL_DIR / "tickbook_book_axis.v"]


@pytest.mark.hdl
@pytest.mark.parametrize("sources", [RTL_SOURCES, AREA_SOURCES, BRAM_SOURCES, AXIS_SOURCES],
                         ids=["fast", "area", "bram", "axis"])
@pytest.mark.parametrize("nsym,nord,nlvl", LINT_PARAMS + [(1, 4, 2), (2, 7, 2)])
def test_verilator_lint_clean(nsym, nord, nlvl, sources):
    verilator = shutil.which("verilator")
    if verilator is None:
        pytest.fail("verilator not found (apt-get install verilator): the RTL must lint clean")
    cmd = [verilator, "--lint-only", "-Wall", *INCLUDES, f"-GNSYM={nsym}", f"-GNORD={nord}", f"-GNLVL={nlvl}",
           *map(str, sources)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


@pytest.mark.hdl
@pytest.mark.parametrize("nsym,nord,nlvl", BRAM_LINT_PARAMS)
def test_verilator_lint_clean_bram_at_scale(nsym, nord, nlvl):
    test_verilator_lint_clean(nsym, nord, nlvl, BRAM_SOURCES)


@pytest.mark.hdl
def test_verilator_lint_clean_axis_at_the_device_size():
    """The wrapper passes the parameters through at the size make synth places (8 symbols, 8,192
    orders, 256 levels): its tob_* widths follow NSYM."""
    test_verilator_lint_clean(8, 8192, 256, AXIS_SOURCES)


@pytest.mark.hdl
def test_icarus_compiles_without_warnings_that_matter():
    """Icarus accepts the RTL as Verilog-2005 (its @*-over-array notes aside)."""
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        pytest.fail("iverilog not found (apt-get install iverilog)")
    r = subprocess.run([iverilog, "-g2005", "-Wall", *INCLUDES, "-o", "/dev/null",
                        *map(str, RTL_SOURCES + AREA_SOURCES + AXIS_SOURCES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    other = [ln for ln in r.stderr.splitlines() if "warning" in ln and "is sensitive to all" not in ln]
    assert not other, "\n".join(other)


def test_the_checked_in_records_header_is_what_engine_records_generates():
    """hdl/rtl/tickbook_records.vh, byte for byte, is `python -m hdl.gen.records_header`'s output:
    edit engine/records.py and regenerate, never the header."""
    assert records_header.HEADER.read_bytes() == records_header.render().encode(), (
        f"{records_header.HEADER} is stale: run python -m hdl.gen.records_header")
    assert records_header.main(["--check"]) == 0


def test_a_changed_record_layout_makes_the_header_stale(monkeypatch, capsys):
    """The check above can fail: a changed enum value and a moved field each change the generated
    text, and --check then exits 1."""
    checked_in = records_header.HEADER.read_text()
    monkeypatch.setattr(records, "R_CAPACITY", 99)
    assert "localparam [7:0] R_CAPACITY           = 8'd99;" in records_header.render()
    assert records_header.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
    monkeypatch.undo()
    assert records_header.render() == checked_in

    moved = records.np.dtype([(n, records.ORDER_DTYPE.fields[n][0]) for n in
                              ("order_id", "ts", *records.ORDER_DTYPE.names[2:])])
    monkeypatch.setattr(records, "ORDER_DTYPE", moved)
    monkeypatch.setattr(records_header, "RECORDS", [("ORDER", moved, "ORDER_DTYPE")] + records_header.RECORDS[1:])
    text = records_header.render()
    assert "ORDER_ORDER_ID_LSB =   0" in text and "ORDER_TS_LSB       =  64" in text
    assert text != checked_in


def test_the_fusesoc_core_lists_every_rtl_file_and_parameter():
    """hdl/tickbook_book.core (FuseSoC CAPI2) names every file of hdl/rtl/ (headers as include
    files), each top its RTL module, and exactly the parameters the modules declare. (FuseSoC
    itself is not a test dependency; `fusesoc run --target lint tickbook:hdl:book` was run by
    hand, docs/hardware.md.)"""
    import re

    import yaml

    from hdl.sim.driver import HDL_DIR, RTL_DIR

    text = (HDL_DIR / "tickbook_book.core").read_text()
    assert text.startswith("CAPI=2:\n")
    core = yaml.safe_load(text)
    listed = {}
    for fs in core["filesets"].values():
        for f in fs["files"]:
            (path, attrs), = f.items() if isinstance(f, dict) else [(f, {})]
            listed[path] = bool(attrs.get("is_include_file"))
    on_disk = {f"rtl/{p.name}": p.suffix == ".vh" for p in RTL_DIR.iterdir() if p.suffix in (".v", ".vh")}
    assert listed == on_disk
    for target, module in (("default", "tickbook_book_bram"), ("fast", "tickbook_book"), ("area", "tickbook_book_area"),
                           ("lint", "tickbook_book_bram"), ("axis", "tickbook_book_axis"), ("risk", "tickbook_risk")):
        t = core["targets"][target]
        assert t["toplevel"] == module
        src = (RTL_DIR / f"{module}.v").read_text()
        assert re.search(rf"^module {module}\b", src, re.M)
        assert f"rtl/{module}.v" in [next(iter(f)) if isinstance(f, dict) else f
                                     for fs in t["filesets"] for f in core["filesets"][fs]["files"]]
        header = src.split(") (", 1)[0]  # module NAME #( parameters ) ( ports
        declared = set(re.findall(r"parameter integer (\w+) =", header))
        assert set(t["parameters"]) == declared <= set(core["parameters"]), (target, declared)
