"""cocotb testbenches of the Verilog order book (hdl/tb/test_book.py), run on Icarus through
cocotb's Python runner, swept over the book's parameters. WAVES=1 dumps FST waveforms into
build/hdl/cocotb_*/."""

import os
import sys
import xml.etree.ElementTree as ET

import pytest

from hdl.sim.driver import AREA_SOURCES, BUILD_DIR, REPO, RTL_SOURCES, TB_DIR, _need

pytestmark = pytest.mark.hdl

PARAMS = [  # NSYM, NORD, NLVL, area build
    (4, 4, 2, False),
    (4, 12, 5, False),
    (5, 7, 3, False),  # not powers of two
    (4, 4, 2, True),   # the area build (tickbook_book_area), the synthesized capacities
    (3, 5, 3, True),
]


@pytest.mark.parametrize("nsym,nord,nlvl,area", PARAMS)
def test_book_cocotb(nsym, nord, nlvl, area):
    from cocotb_tools.runner import get_runner

    _need("iverilog")
    waves = bool(os.environ.get("WAVES"))
    top = "tickbook_book_area" if area else "tickbook_book"
    build_dir = BUILD_DIR / f"cocotb_s{nsym}_o{nord}_l{nlvl}{'_area' if area else ''}{'_waves' if waves else ''}"
    runner = get_runner("icarus")
    params = {"NSYM": nsym, "NORD": nord, "NLVL": nlvl}
    runner.build(
        sources=[str(s) for s in (AREA_SOURCES if area else RTL_SOURCES)],
        hdl_toplevel=top,
        parameters=params,
        build_dir=build_dir,
        waves=waves,
        timescale=("1ns", "1ps"),
    )
    env = {"HDL_NSYM": str(nsym), "HDL_NORD": str(nord), "HDL_NLVL": str(nlvl), "HDL_AREA": str(int(area))}
    for p in (str(REPO), str(TB_DIR)):  # the runner hands sys.path to the simulator
        if p not in sys.path:
            sys.path.insert(0, p)
    results = runner.test(
        test_module="test_book",
        hdl_toplevel=top,
        parameters=params,
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env=env,
        waves=waves,
        results_xml=str(build_dir / "results.xml"),
    )
    root = ET.parse(results).getroot()
    cases = root.findall(".//testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    assert cases, "no cocotb test ran"
    assert not failed, f"cocotb tests failed: {failed} (log above, results in {results})"
