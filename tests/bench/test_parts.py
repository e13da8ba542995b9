"""The harness's parts on their own: the raw client's masking and framing (checked against
websockets as an oracle), percentiles, /proc readings, and the figures of a round."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame
from websockets.streams import StreamReader
from websockets.utils import apply_mask

from bench import procfs
from bench.client_raw import OP_BINARY, OP_TEXT, build_frame, mask
from bench.load import percentile
from bench.scenarios import SCENARIOS, figures


@given(st.binary(max_size=3000), st.binary(min_size=4, max_size=4))
def test_mask_matches_websockets(payload: bytes, key: bytes) -> None:
    assert mask(payload, key) == apply_mask(payload, key)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 1 << 20])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_built_frame_parses_as_a_masked_client_frame(size: int, opcode: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    wire = build_frame(opcode, payload)
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    else:
        raise AssertionError("frame not complete")
    assert (frame.opcode.value, frame.fin, frame.data) == (opcode, True, payload)
    assert wire[1] & 0x80  # RFC 6455 5.3: the MASK bit is set on every client frame


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 99) == 0.0
    assert percentile([7.0], 1) == 7.0


def test_process_tree_cpu_and_rss_include_children() -> None:
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'input()'])"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        for _ in range(200):  # the grandchild appears once the child has started it
            tree = procfs.process_tree(proc.pid)
            if len(tree) == 2:
                break
            subprocess.run(["sleep", "0.02"], check=True)
        assert tree[0] == proc.pid and len(tree) == 2
        assert procfs.rss_bytes(tree) > procfs.rss_bytes(tree[:1]) > 0
        assert procfs.cpu_seconds(tree) >= procfs.cpu_seconds(tree[:1]) >= 0.0
        assert procfs.process_tree(os.getpid())[0] == os.getpid()
    finally:
        proc.communicate(b"\n", timeout=10)
    assert procfs.cpu_seconds([proc.pid]) == 0.0  # gone: counted as nothing, no error


def test_figures_of_a_round() -> None:
    raw = {"count": 1000, "elapsed": 2.0, "server_cpu": 0.5, "client_busy": 0.25,
           "errors": 0, "p50_ms": 1.0, "p99_ms": 3.0, "bytes": 4_000_000}
    assert figures(SCENARIOS["echo"], raw) == {
        "rate": 500.0, "per_cpu": 2000.0, "server_cpu": 0.5, "client_busy": 0.25,
        "p50_ms": 1.0, "p99_ms": 3.0}
    large = figures(SCENARIOS["large"], raw)
    assert (large["rate"], large["per_cpu"]) == (2.0, 8.0)  # MB/s and MB per CPU-s
    assert figures(SCENARIOS["connect"], {**raw, "server_cpu": 0.0})["per_cpu"] is None
    idle = figures(SCENARIOS["idle"], {"count": 100, "rss_per_conn": 2048.0})
    assert idle == {"rss_kib": 2.0, "conns": 100.0}
