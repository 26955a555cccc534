"""verilator --lint-only -Wall is clean on the order book, over a sweep of its parameters."""

import shutil
import subprocess

import pytest

from hdl.sim.driver import AREA_SOURCES, RTL_SOURCES

pytestmark = pytest.mark.hdl


LINT_PARAMS = [(1, 1, 1), (4, 16, 8), (3, 5, 3), (4, 64, 16)]


@pytest.mark.parametrize("area", [False, True], ids=["fast", "area"])
@pytest.mark.parametrize("nsym,nord,nlvl", LINT_PARAMS + [(1, 4, 2), (2, 7, 2)])
def test_verilator_lint_clean(nsym, nord, nlvl, area):
    verilator = shutil.which("verilator")
    if verilator is None:
        pytest.fail("verilator not found (apt-get install verilator): the RTL must lint clean")
    cmd = [verilator, "--lint-only", "-Wall", f"-GNSYM={nsym}", f"-GNORD={nord}", f"-GNLVL={nlvl}",
           *map(str, AREA_SOURCES if area else RTL_SOURCES)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_icarus_compiles_without_warnings_that_matter():
    """Icarus accepts the RTL as Verilog-2005 (its @*-over-array notes aside)."""
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        pytest.fail("iverilog not found (apt-get install iverilog)")
    r = subprocess.run([iverilog, "-g2005", "-Wall", "-o", "/dev/null", *map(str, RTL_SOURCES + AREA_SOURCES)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    other = [ln for ln in r.stderr.splitlines() if "warning" in ln and "is sensitive to all" not in ln]
    assert not other, "\n".join(other)
