"""The CSV edges in pieces (engine/codec.py): a flow parsed by several threads, and events
formatted a block a thread, give the bytes one thread gives, wherever the cuts fall."""

import io

import numpy as np
import pytest

import engine.codec as codec
from engine.api import Venue
from engine.codec import FLOW_HEADER, EventWriter, parse_flow_bytes
from engine.config import load_venue
from testkit.flows import generated_csv


@pytest.fixture(scope="module")
def venue():
    return load_venue(None)


@pytest.fixture(scope="module")
def flow_text(venue):
    return generated_csv(venue, 30_000, seed=3)


def _parse(data, venue, threads, monkeypatch):
    monkeypatch.setattr(codec, "PARSE_THREADS", threads)
    monkeypatch.setattr(codec, "PARSE_PIECE_MIN", 0)
    return parse_flow_bytes(data, venue)


@pytest.mark.parametrize("threads", [2, 3, 7])
@pytest.mark.parametrize(
    "tail",
    [b"", b"1,1,NEW,AAPL,9,BUY,LIMIT,GTC,185.00,1", b"\r\n\r\n", b"\n\n,,,\n", b"garbage without newline"],
)
def test_parsing_in_pieces_equals_one_piece(venue, flow_text, threads, tail, monkeypatch):
    data = flow_text.replace(b"\n", b"\r\n", 50) + tail
    one = _parse(data, venue, 1, monkeypatch)
    many = _parse(data, venue, threads, monkeypatch)
    assert np.array_equal(one.orders.view(np.uint8), many.orders.view(np.uint8))
    assert np.array_equal(one.row_start, many.row_start) and np.array_equal(one.row_end, many.row_end)
    assert list(many.orders["msg_seq"][:3]) == [1, 2, 3] and many.orders["msg_seq"][-1] == len(many.orders)


def test_a_few_rows_cut_into_more_pieces_than_rows(venue, monkeypatch):
    data = f"{FLOW_HEADER}\n1,1,KILL,,,,,,,\n".encode()
    assert len(_parse(data, venue, 8, monkeypatch).orders) == 1


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_events_written_in_blocks_equal_one_block(venue, flow_text, threads, monkeypatch):
    flow = parse_flow_bytes(flow_text, venue)
    events = Venue(venue).submit(flow.orders)

    def write(n_threads, chunk):
        monkeypatch.setattr(codec, "PARSE_THREADS", n_threads)
        monkeypatch.setattr(EventWriter, "CHUNK", chunk)
        out = io.BytesIO()
        w = EventWriter(out, venue, flow)
        for k in range(0, len(events), 7_001):  # chunks as the replay hands them over
            w.write(events[k : k + 7_001])
        return out.getvalue()

    assert write(threads, 1 << 16) == write(1, 1 << 22)
