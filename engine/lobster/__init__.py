"""LOBSTER (NASDAQ TotalView-ITCH rebuilt by LOBSTER) import, conversion and book comparison.

    tickbook lobster ZIP_OR_MESSAGE_CSV [--orderbook ORDERBOOK_CSV] [--mode book|match] [--flow OUT.csv]

One stage a module, each usable on its own (docs/lobster.md); the arrows point one way,
cli -> compare -> replayer -> converter -> read:

- read: a message file and its orderbook file (straight from the zip, or two CSVs) into int64
  arrays, strictly validated; any inconsistency stops with one line naming the file and row.
- converter: the messages into a tickbook order flow (ORDER_DTYPE records), message by message,
  with `msg_end[i]` = number of records emitted up to and including message i, from the
  converter's own model of the book; also the venue the flow is written for.
- replayer: one njit loop runs the records through the engine's `process_one` and, after every
  message, compares `top_levels` of both sides with the LOBSTER orderbook row.
- compare: match mode's comparison of NASDAQ's executions with the engine's fills.
- cli: `run` (the stages in order, timed), the report, and `main(argv)`, the command line.

The modules are not named after the functions they hold (`convert`, `replay`, `report`): this
package exports those functions, and a submodule of the same name would be shadowed by them
(`import engine.lobster.replay as m` would give the function).

This package is the CSV/zip edge for LOBSTER data; the hot path (engine.matcher, engine.book) knows
nothing about it. Prices: LOBSTER gives dollars x 10000, the venue's tick is 0.0001, so a LOBSTER
price is the engine's price in ticks, and 10^4 x it is the record's 1e-8 unit price.
"""

from engine.lobster.cli import main, report, run
from engine.lobster.compare import MatchResult, compare_executions
from engine.lobster.converter import EVIDENCE, UNITS_PER_LOBSTER, Conversion, convert, execution_runs, venue_toml
from engine.lobster.read import EMPTY_ASK, EMPTY_BID, LobsterData, LobsterError, read_lobster
from engine.lobster.replayer import Replay, replay

__all__ = [
    "EMPTY_ASK",
    "EMPTY_BID",
    "EVIDENCE",
    "UNITS_PER_LOBSTER",
    "Conversion",
    "LobsterData",
    "LobsterError",
    "MatchResult",
    "Replay",
    "compare_executions",
    "convert",
    "execution_runs",
    "main",
    "read_lobster",
    "replay",
    "report",
    "run",
    "venue_toml",
]
