"""Control-frame floods from a client that never reads, against a real wsrun process.

The server owes a pong for every ping (RFC 6455 5.5.2) and a close frame for a close; a
client that sends them and never reads must not make the server buffer those replies
without bound. The bound is checked on the server's RSS (/proc/PID/status), never on
timings: the client sends as much as the server will read, up to FLOOD bytes, then the
server's growth must stay within a few MiB. Then the client starts reading: every pong
comes back, in order, followed by the echo of its close frame.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import close_payload
from tests.integration.rawclient import Reader, client_frame, read_frame, read_response
from tests.procs import ROOT, free_port, server_command, stop, wait_for_port

CLOSE, PING, PONG = 8, 9, 10
FLOOD = 25 * 2**20  # bytes of control frames the client tries to send
MAX_GROWTH_KIB = 8 * 1024  # "within a few MiB"; an unbounded buffer grows ~1.3x FLOOD
STALL = 2.0  # seconds the socket stays unwritable before the client calls it a stop
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], addr: str) -> None:
        self.proc, self.addr = proc, addr

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@contextlib.contextmanager
def running(app: str, log: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    port = free_port()
    with log.open("wb") as out:
        # No keepalive pings: this client reads nothing until the flood is over, and an
        # unanswered ping would close it (1011) on a machine slow enough to take 20 s.
        args = ["--no-access-log", "--ws-ping-interval", "0"]
        proc = subprocess.Popen(server_command("wsrun", app, port, args),
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, proc)
            yield Server(proc, f"127.0.0.1:{port}")
        finally:
            assert stop(proc) == 0
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module", params=["echo", "chat"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Server, str]]:
    """wsrun on the echo test app (path /), or on `app:chat` (path /ws)."""
    tmp = tmp_path_factory.mktemp("floods")
    if request.param == "echo":
        with running("tests.integration.apps:echo", tmp / "wsrun.log") as srv:
            yield srv, "/"
    else:
        env = {**os.environ, "CHAT_DB": str(tmp / "chat.db")}
        with running("app:chat", tmp / "wsrun.log", env) as srv:
            yield srv, "/ws"


def open_websocket(addr: str, path: str) -> tuple[socket.socket, Reader]:
    """A WebSocket on a socket with small buffers, so the kernel holds little of the flood."""
    host, port = addr.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.settimeout(10)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    reader = Reader(sock)
    assert read_response(reader)[0] == 101
    return sock, reader


def flood(sock: socket.socket, frame: bytes, total: int) -> int:
    """Send copies of `frame` until `total` bytes are out or the server stops reading.

    Returns the bytes sent (possibly ending inside a frame).
    """
    block = frame * (65536 // len(frame))
    sock.setblocking(False)
    sent = 0
    try:
        while sent < total:
            if not select.select([], [sock], [], STALL)[1]:
                break  # the server reads no more: the kernel buffers are full
            offset = sent % len(block)
            sent += sock.send(block[offset:])
    finally:
        sock.setblocking(True)
        sock.settimeout(30)
    return sent


def read_until_close(reader: Reader, result: dict[str, object]) -> None:
    pongs = 0
    while True:
        opcode, _, payload = read_frame(reader)
        if opcode == PONG:
            assert payload == b"p" * 125
            pongs += 1
        elif opcode == CLOSE:
            result["pongs"], result["close"] = pongs, payload
            return


@pytest.mark.parametrize("kind", ["ping", "pong"])
def test_control_frame_flood_from_a_client_that_never_reads_keeps_rss_bounded(
    server: tuple[Server, str], kind: str
) -> None:
    srv, path = server
    sock, reader = open_websocket(srv.addr, path)
    with sock:
        before = srv.rss_kib()
        frame = client_frame(PING if kind == "ping" else PONG, b"p" * 125)
        sent = flood(sock, frame, FLOOD)
        grown = srv.rss_kib() - before
        assert grown < MAX_GROWTH_KIB, (kind, sent, before, grown)
        # Now read: reading resumes as the pongs drain, and the close frame sent after
        # the flood is answered after every pong owed before it (RFC 6455 5.5.1, 5.5.2).
        result: dict[str, object] = {}
        thread = threading.Thread(target=read_until_close, args=(reader, result))
        thread.start()
        sock.sendall(frame[sent % len(frame):] if sent % len(frame) else b"")
        sock.sendall(client_frame(CLOSE, close_payload(1000)))
        thread.join(60)
        frames = -(-sent // len(frame))
        assert result == {"pongs": frames if kind == "ping" else 0,
                          "close": close_payload(1000)}
