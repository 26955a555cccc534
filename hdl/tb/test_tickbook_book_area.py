"""The cocotb tests of the order book on its area build, hdl/rtl/tickbook_book_area.v: the same
ports and the same events as the fast build, so the same tests (test_tickbook_book.py, run inside
the simulator), swept over the area build's parameters."""

import pytest
from test_tickbook_book import run_book_tests  # the module beside this one (hdl/tb is on sys.path)

from hdl.sim.driver import AREA_SOURCES

pytestmark = pytest.mark.hdl


@pytest.mark.parametrize("nsym,nord,nlvl", [
    (4, 4, 2),  # the NORD and NLVL `BOOK=area make synth` places, with symbols for the random flows
    (3, 5, 3),
])
def test_tickbook_book_area_passes_the_cocotb_tests(nsym, nord, nlvl):
    run_book_tests("tickbook_book_area", AREA_SOURCES, nsym, nord, nlvl)
