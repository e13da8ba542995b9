"""permessage-deflate over real sockets: negotiation with real clients, options, the bomb.

The bomb: ~200 KiB of DEFLATE in one frame that inflates to 200 MiB, against
``--ws-max-size 1048576``. The server must close with 1009 while the frame is still
arriving, and its RSS (from /proc) must grow by no more than a few MiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import connect as ws_connect

from tests.integration.rawclient import client_frame, read_close, read_frame, upgrade
from tests.procs import ROOT, free_port, serve, server_command, stop, wait_for_port

BINARY = 2
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def bomb_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        server_command("wsrun", "tests.integration.apps:echo", port,
                       ["--no-access-log", "--ws-max-size", "1048576"]),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        assert stop(proc) == 0


def compress(data: bytes) -> bytes:
    """A client's compressed payload (RFC 7692 7.2.1), made with zlib directly."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def bomb() -> bytes:
    return compress(bytes(200 * 2**20))


def test_deflate_bomb_is_closed_with_1009_while_arriving(bomb_server: tuple[str, int]) -> None:
    addr, pid = bomb_server
    payload = bomb()
    assert 150_000 < len(payload) < 250_000
    frame = client_frame(BINARY, payload, rsv1=True)
    sock, reader, status, headers = upgrade(addr, extra=DEFLATE_OFFER)
    with sock:
        assert status == 101 and "permessage-deflate" in headers["sec-websocket-extensions"]
        # Warm up with one compressed echo, so that what follows measures the bomb alone.
        sock.sendall(client_frame(BINARY, compress(b"warm " * 100), rsv1=True))
        assert read_frame(reader)[0] == BINARY
        before = rss_kib(pid)
        # The header and the first 16 KiB of payload (which alone inflate to ~16 MiB): the
        # 1009 must come without the rest of the frame.
        sock.sendall(frame[: 16 * 1024])
        assert read_close(reader) == (1009, b"message over 1048576 bytes once inflated")
        try:
            sock.sendall(frame[16 * 1024 :])
        except OSError:
            pass  # the server closed: the rest of the frame may be refused
    growth = rss_kib(pid) - before
    assert growth < 4 * 1024, f"server RSS grew by {growth} KiB"


def test_whole_bomb_frame_in_one_write_keeps_rss_flat(bomb_server: tuple[str, int]) -> None:
    addr, pid = bomb_server
    frame = client_frame(BINARY, bomb(), rsv1=True)
    before = rss_kib(pid)
    sock, reader, status, _ = upgrade(addr, extra=DEFLATE_OFFER)
    with sock:
        assert status == 101
        try:
            sock.sendall(frame)
        except OSError:
            pass
        assert read_close(reader) == (1009, b"message over 1048576 bytes once inflated")
    growth = rss_kib(pid) - before
    assert growth < 4 * 1024, f"server RSS grew by {growth} KiB"


@pytest.mark.parametrize(("args", "extensions"), [
    ([], "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    (["--ws-deflate-context-takeover"], "permessage-deflate"),
    (["--ws-deflate-context-takeover", "--ws-deflate-window-bits", "10",
      "--ws-deflate-mem-level", "3", "--ws-deflate-level", "9"],
     "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"),
    (["--no-ws-per-message-deflate"], None),
])
def test_websockets_client_negotiates_and_echoes(args: list[str], extensions: str | None) -> None:
    messages = ["hello " * 50, b"\x00\x01" * 3000, "é" * 10, "", "x" * 200_000]
    with serve("wsrun", "tests.integration.apps:echo", args=["--no-access-log", *args]) as addr:
        client_ext = [ClientPerMessageDeflateFactory(client_max_window_bits=True)]
        with ws_connect(f"ws://{addr}/", extensions=client_ext, max_size=None) as ws:
            assert ws.response.headers.get("sec-websocket-extensions") == extensions
            for _ in range(3):  # with context takeover, later messages use the window
                for message in messages:
                    ws.send(message)
                    assert ws.recv() == message


def test_deflate_options_from_environment() -> None:
    with serve("wsrun", "tests.integration.apps:echo", args=["--no-access-log"],
               env={"WSRUN_WS_DEFLATE_WINDOW_BITS": "10",
                    "WSRUN_WS_PER_MESSAGE_DEFLATE": "true"}) as addr:
        sock, _, status, headers = upgrade(addr, extra=DEFLATE_OFFER)
        sock.close()
    assert status == 101
    assert headers["sec-websocket-extensions"] == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=10"
    )


@pytest.mark.parametrize(("option", "value"), [
    ("--ws-deflate-window-bits", "8"), ("--ws-deflate-mem-level", "10"),
    ("--ws-deflate-level", "-1"), ("--ws-deflate-threshold", "-5"),
])
def test_bad_deflate_option_is_a_usage_error(option: str, value: str) -> None:
    done = subprocess.run([sys.executable, "-m", "server", "tests.integration.apps:echo",
                           option, value], capture_output=True, text=True, timeout=30, cwd=ROOT,
                          env={**os.environ})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[1] == "Try 'wsrun --help' for help.", done.stderr
    assert lines[-1].startswith(f"Error: Invalid value for '{option}': {value} is not in the range")
