"""A raw-socket client for integration tests: exact bytes in, exact bytes out.

Well-behaved traffic goes through real clients (websockets, httpx); this one exists for
what they refuse to send: malformed requests, unmasked frames, half-finished heads.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

from tests.helpers import client_frame

__all__ = ["connect", "exchange", "read_response", "upgrade", "read_frame", "client_frame",
           "UPGRADE_HEADERS", "recv_until_closed"]

UPGRADE_HEADERS = (
    "Host: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def connect(addr: str, timeout: float = 5.0) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(addr: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data`, return all bytes until the server closes."""
    with connect(addr, timeout) as sock:
        sock.sendall(data)
        return recv_until_closed(sock, timeout)


class Reader:
    """Buffered reads from a socket: exact counts and lines."""

    def __init__(self, sock: socket.socket | None, data: bytes = b"") -> None:
        self.sock = sock
        self.buf = bytearray(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536) if self.sock is not None else b""
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until(self, sep: bytes) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            self._fill()
        data = bytes(self.buf[: i + len(sep)])
        del self.buf[: i + len(sep)]
        return data


def read_response(reader: Reader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response: (status, headers with lowercase names, body)."""
    head = reader.read_until(b"\r\n\r\n").decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if status in (101, 204, 304) or 100 <= status < 200:
        return status, headers, b""
    if "content-length" in headers:
        return status, headers, reader.read_exact(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int(reader.read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                reader.read_until(b"\r\n")
                return status, headers, body
            body += reader.read_exact(size)
            reader.read_exact(2)
    rest = bytes(reader.buf) + (recv_until_closed(reader.sock) if reader.sock else b"")
    reader.buf.clear()
    return status, headers, rest


def upgrade(
    addr: str, path: str = "/", extra: str = "", key: bytes | None = None
) -> tuple[socket.socket, Reader, int, dict[str, str]]:
    """Open a WebSocket by hand; returns (socket, reader, status, headers)."""
    sock = connect(addr)
    key_text = base64.b64encode(key or os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key_text}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
    )
    reader = Reader(sock)
    status, headers, _ = read_response(reader)
    return sock, reader, status, headers


def read_frame(reader: Reader) -> tuple[int, bool, bytes]:
    """One server frame: (opcode, fin, payload). Server frames must not be masked."""
    b0, b1 = reader.read_exact(2)
    assert not b1 & 0x80, "server frames must not be masked (RFC 6455 5.1)"
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", reader.read_exact(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", reader.read_exact(8))
    return b0 & 0x0F, bool(b0 & 0x80), reader.read_exact(n)


def read_close(reader: Reader) -> tuple[int | None, bytes]:
    """Skip data frames up to the close frame; return (code, reason)."""
    while True:
        opcode, _, payload = read_frame(reader)
        if opcode == 8:
            if not payload:
                return None, b""
            return struct.unpack("!H", payload[:2])[0], payload[2:]
