"""The cocotb tests of the order book on its block-RAM build, hdl/rtl/tickbook_book_bram.v: the same
ports and the same events as the fast build, so the same tests (test_tickbook_book.py, run inside
the simulator), swept over the block-RAM build's parameters."""

import pytest
from test_tickbook_book import run_book_tests  # the module beside this one (hdl/tb is on sys.path)

from hdl.sim.driver import BRAM_SOURCES

pytestmark = pytest.mark.hdl


@pytest.mark.parametrize("nsym,nord,nlvl", [
    (4, 4, 2),
    (5, 7, 3),      # not powers of two
    (4, 64, 16),
])
def test_tickbook_book_bram_passes_the_cocotb_tests(nsym, nord, nlvl):
    run_book_tests("tickbook_book_bram", BRAM_SOURCES, nsym, nord, nlvl)
