"""A flow file read block by block (engine/stream.py) is the flow read whole: the same records,
numbered on across blocks, and the same events file, REJECT echoes included, wherever the
blocks are cut. Whole-file faults are raised before the first block."""

import io

import numpy as np
import pytest

import engine.codec as codec
from engine.api import Venue
from engine.codec import FLOW_HEADER, FlowError, parse_flow_bytes
from engine.config import load_venue
from engine.gen import generate
from engine.stream import FlowReader
from tickbook.cli import replay_flow
from testkit.flows import generated_csv


@pytest.fixture(scope="module")
def venue():
    return load_venue(None)


@pytest.fixture(scope="module")
def flow_text(venue):
    # malformed and rejected rows, so that REJECT echoes cross the block cuts too
    bad = b"1,7,NEW,NOPE,1,BUY,LIMIT,GTC,1.00,5\n\n1,1,NEW,AAPL,2,BUY,LIMIT,GTC,-1,5\r\n,,,\n"
    return generated_csv(venue, 20_000, seed=5) + bad * 300


def _records(blocks):
    return np.concatenate([b.orders.copy() for b in blocks])


@pytest.mark.parametrize("block_bytes", [1 << 10, 5_000, 1 << 16, 8 << 20])
@pytest.mark.parametrize("tail", [b"", b"1,1,KILL,,,,,,,", b"\r\n\r\n", b"x" * 3000, b"9,9,CANCEL,,9,,,,,\r"])
def test_blocks_are_the_whole_flow(venue, flow_text, tmp_path, block_bytes, tail):
    data = flow_text + tail
    path = tmp_path / "flow.csv"
    path.write_bytes(data)
    whole = parse_flow_bytes(data, venue)
    reader = FlowReader(path, venue, block_bytes=block_bytes)
    texts = []
    blocks = []
    for b in reader:
        blocks.append(b.orders.copy())
        assert b.seq0 == int(b.orders["msg_seq"][0])
        texts += [bytes(b.raw[s:e]) for s, e in zip(b.row_start, b.row_end)]
    got = np.concatenate(blocks)
    assert np.array_equal(got.view(np.uint8), whole.orders.view(np.uint8))
    assert texts == [bytes(whole.raw[s:e]) for s, e in zip(whole.row_start, whole.row_end)]
    assert reader.messages == len(whole.orders) <= reader.messages_bound
    if block_bytes < 1 << 16:
        assert len(blocks) > 10


def _events_csv(venue, blocks, most):
    out = io.BytesIO()
    replay_flow(blocks, venue, out, progress=False, most=most)
    return out.getvalue()


def test_replay_in_blocks_writes_the_events_of_the_whole_flow(venue, flow_text, tmp_path):
    path = tmp_path / "flow.csv"
    path.write_bytes(flow_text)
    whole = io.BytesIO()
    Venue(venue).replay(parse_flow_bytes(flow_text, venue), whole)
    reader = FlowReader(path, venue, block_bytes=3_000)
    got = _events_csv(venue, reader, reader.messages_bound)
    assert b"REJECT,NOPE,1,7" in got and got.count(b"MALFORMED") >= 600
    assert got == whole.getvalue()


def test_npy_blocks_and_replay(venue, tmp_path):
    orders = generate(venue, 10_000, seed=2)
    path = tmp_path / "flow.npy"
    np.save(path, orders)
    reader = FlowReader(path, venue, block_bytes=64 * 999)
    assert reader.messages_bound == len(orders)
    assert np.array_equal(_records(reader).view(np.uint8), orders.view(np.uint8))
    reader = FlowReader(path, venue, block_bytes=64 * 999)
    expected = io.BytesIO()
    Venue(venue).replay(codec.Flow(orders), expected)
    assert _events_csv(venue, reader, len(orders)) == expected.getvalue()


def test_whole_file_faults_come_before_the_first_block(venue, tmp_path):
    orders = generate(venue, 1_000, seed=2)
    cut = tmp_path / "cut.npy"
    np.save(cut, orders)
    cut.write_bytes(cut.read_bytes()[:-10])
    with pytest.raises(FlowError, match="cut short"):
        FlowReader(cut, venue)
    flat = tmp_path / "two_d.npy"
    np.save(flat, orders.reshape(10, 100))
    with pytest.raises(FlowError, match="1-D array"):
        FlowReader(flat, venue)
    other = tmp_path / "ints.npy"
    np.save(other, np.arange(10))
    with pytest.raises(FlowError, match="ORDER_DTYPE"):
        FlowReader(other, venue)
    pickle = tmp_path / "p.npy"
    pickle.write_bytes(b"not numpy at all")
    with pytest.raises(FlowError, match="magic"):
        FlowReader(pickle, venue)
    header = tmp_path / "h.csv"
    header.write_bytes(b"ts,account\n1,2\n")
    with pytest.raises(FlowError, match="row 1: header"):
        FlowReader(header, venue)
    with pytest.raises(FlowError, match="cannot read"):
        FlowReader(tmp_path / "missing.csv", venue)


def test_a_header_alone_and_a_header_without_newline(venue, tmp_path):
    for text in (FLOW_HEADER, FLOW_HEADER + "\n", FLOW_HEADER + "\r\n"):
        path = tmp_path / "h.csv"
        path.write_text(text)
        reader = FlowReader(path, venue)
        assert [len(b) for b in reader] == [] and reader.messages == 0


def test_blocks_reuse_their_buffers(venue, tmp_path):
    """Memory is the block's: the text and record arrays are the same objects block after block."""
    path = tmp_path / "flow.csv"
    with open(path, "wb") as fh:
        codec.write_flow_csv(fh, generate(venue, 20_000, seed=6), venue)
    reader = FlowReader(path, venue, block_bytes=1 << 16)
    raws, bases = set(), set()
    for b in reader:
        raws.add(id(b.raw))
        bases.add(b.orders.base.ctypes.data if b.orders.base is not None else b.orders.ctypes.data)
    assert len(raws) == 1 and len(bases) == 1


def _through_a_pipe(tmp_path, data: bytes, name: str):
    """A FIFO fed in small writes by a thread, as `<(zcat flow.csv.gz)` would be."""
    import os
    import threading

    fifo = tmp_path / name
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as fh:
            for k in range(0, len(data), 777):
                fh.write(data[k : k + 777])
                fh.flush()

    threading.Thread(target=feed, daemon=True).start()
    return fifo


def test_a_flow_through_a_pipe_is_read_whole(venue, flow_text, tmp_path):
    reader = FlowReader(_through_a_pipe(tmp_path, flow_text, "flow.csv"), venue, block_bytes=1 << 16)
    assert reader.messages_bound == 0  # no size to bound the state's first touch by
    whole = parse_flow_bytes(flow_text, venue)
    assert np.array_equal(_records(reader).view(np.uint8), whole.orders.view(np.uint8))


def test_npy_records_through_a_pipe(venue, tmp_path):
    orders = generate(venue, 3_000, seed=4)
    out = io.BytesIO()
    np.save(out, orders)
    reader = FlowReader(_through_a_pipe(tmp_path, out.getvalue(), "flow.npy"), venue, block_bytes=64 * 500)
    assert np.array_equal(_records(reader).view(np.uint8), orders.view(np.uint8))


def test_a_streamed_replay_runs_the_code_warm_up_loaded(tmp_path):
    """One array type for every caller: warm_up (and `tickbook compile`) load the parser and
    writer that the blocks run, so a replay compiles nothing (a read-only buffer would make
    Numba compile parse_rows again, ~4 s, inside the timings)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import io, sys\n"
        "import engine.codec as c\n"
        "from engine.api import warm_up\n"
        "from engine.config import load_venue\n"
        "from engine.stream import FlowReader\n"
        "from tickbook.cli import replay_flow\n"
        "venue = load_venue(None)\n"
        "warm_up(venue)\n"
        "r = FlowReader(sys.argv[1], venue)\n"
        "replay_flow(r, venue, io.BytesIO(), False, None, r.messages_bound)\n"
        "print([len(f.signatures) for f in (c.parse_rows, c._count_rows, c.format_events)])\n"
    )
    path = tmp_path / "flow.csv"
    path.write_bytes(f"{FLOW_HEADER}\n1,7,NEW,NOPE,1,BUY,LIMIT,GTC,1.00,5\n2,1,KILL,,,,,,,\n".encode())
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=repo, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[1,", "1,", "1]"], r.stdout
