"""A lean WebSocket client on a bare asyncio.Protocol, the load generator's fallback.

Used when picows is not installed, and for the deflate scenarios. Speaks just enough RFC 6455
for the benchmarks: the opening handshake (with Sec-WebSocket-Accept checked), masked
text/binary frames out, unmasked frames in (fragments reassembled), ping answered, close
handshake; with `deflate=True` it offers permessage-deflate (RFC 7692) as browsers do and
inflates the compressed messages it receives (it sends its own uncompressed). Imports
nothing from the rest of the project besides the `Conn` interface shape shared with
`client_picows`.

Strategy: the client must not be the bottleneck, so
- masking XORs the whole payload as one big integer (`int.from_bytes`), no per-byte loop;
- a frame is built once per payload object: sending the same payload again (echo, fan-out)
  rewrites the cached masked frame; the server still unmasks every frame, which is the point;
- parsing works on one bytearray with an offset and compacts it once per `data_received`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import zlib
from collections.abc import Callable
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_H16 = struct.Struct("!BBH")
_H64 = struct.Struct("!BBQ")
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_CLOSE_1000 = b"\x03\xe8"
_DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.2: appended before inflating

OnMessage = Callable[["RawConn", bytes], None]


def mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 5.3: XOR `payload` with the 4-byte `key` repeated; one big-int XOR."""
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little")


def build_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked client frame (RFC 6455 5.2: "frames sent from the client ... masked")."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = _H16.pack(0x80 | opcode, 0x80 | 126, n)
    else:
        head = _H64.pack(0x80 | opcode, 0x80 | 127, n)
    return head + key + mask(payload, key)


class HandshakeFailed(Exception):
    """The server did not answer the opening handshake with a valid 101."""


class RawConn(asyncio.Protocol):
    """One client connection; `on_message(conn, payload)` gets every complete message."""

    def __init__(self, path: str, host: str, on_message: OnMessage,
                 subprotocol: str | None, deflate: bool = False) -> None:
        self.on_message = on_message
        self.state: Any = None  # free slot for the scenario's per-connection data
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_sent = False
        self._key = base64.b64encode(os.urandom(16))
        extra = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
        extra += _DEFLATE_OFFER if deflate else ""
        # permessage-deflate, once accepted: the decompressor, and whether it starts afresh
        # for each message (server_no_context_takeover).
        self.deflate = False
        self._inflater: Any = None
        self._fresh_inflater = True
        self._compressed = False
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()
        self._buf = bytearray()
        self._handshaken = False
        self._fragments: list[bytes] = []
        self._last_payload: bytes | None = None
        self._last_opcode = -1
        self._last_frame = b""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeFailed("connection lost during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._handshaken:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end])
            del self._buf[:end + 4]
            self._check_response(head)
            if not self._handshaken:
                return
        self._parse()

    def _check_response(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        expected = base64.b64encode(hashlib.sha1(self._key + GUID).digest())
        accept = b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"sec-websocket-accept":
                accept = value.strip()
            elif name == b"sec-websocket-extensions" and value.strip().startswith(
                    b"permessage-deflate"):
                self.deflate = True
                self._fresh_inflater = b"server_no_context_takeover" in value
        if not lines[0].startswith(b"HTTP/1.1 101") or accept != expected:
            self.opened.set_exception(HandshakeFailed(lines[0].decode(errors="replace")))
            assert self.transport is not None
            self.transport.abort()
            return
        self._handshaken = True
        self.opened.set_result(None)

    def _parse(self) -> None:
        buf, off, size = self._buf, 0, len(self._buf)
        while size - off >= 2:
            b0, b1 = buf[off], buf[off + 1]
            n, pos = b1 & 0x7F, off + 2
            if n == 126:
                if size - pos < 2:
                    break
                n, pos = _U16.unpack_from(buf, pos)[0], pos + 2
            elif n == 127:
                if size - pos < 8:
                    break
                n, pos = _U64.unpack_from(buf, pos)[0], pos + 8
            if size - pos < n:
                break
            payload = bytes(buf[pos:pos + n])
            off = pos + n
            if b0 & 0x40:
                self._compressed = True  # RSV1: the first frame of a compressed message
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        if off:
            del buf[:off]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                self._fragments.append(payload)
                payload = b"".join(self._fragments)
                self._fragments.clear()
            if self._compressed:
                self._compressed = False
                if self._inflater is None or self._fresh_inflater:
                    self._inflater = zlib.decompressobj(wbits=-15)
                payload = self._inflater.decompress(payload + _TAIL)
            self.on_message(self, payload)
        elif opcode == OP_PING:
            self._write(build_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            # RFC 6455 5.5.1: an endpoint that receives a Close frame and has not sent one
            # "MUST send a Close frame in response"; then the server closes the TCP connection.
            if not self.close_sent:
                self.close_sent = True
                self._write(build_frame(OP_CLOSE, payload[:2]))
            if self.transport is not None:
                self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # the Conn interface
    def send(self, payload: bytes, text: bool) -> None:
        """Send one message; the same payload object reuses its already masked frame."""
        opcode = OP_TEXT if text else OP_BINARY
        if payload is not self._last_payload or opcode != self._last_opcode:
            self._last_frame = build_frame(opcode, payload)
            self._last_payload, self._last_opcode = payload, opcode
        self._write(self._last_frame)

    async def close(self, timeout: float = 5.0) -> None:
        """Start the close handshake (1000) and wait until the server closes the socket."""
        if not self.close_sent:
            self.close_sent = True
            self._write(build_frame(OP_CLOSE, _CLOSE_1000))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(host: str, port: int, path: str, on_message: OnMessage,
                  subprotocol: str | None = None, timeout: float = 10.0,
                  deflate: bool = False) -> RawConn:
    """Open a TCP connection and complete the opening handshake (offering deflate if asked)."""
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(loop.create_connection(
        lambda: RawConn(path, f"{host}:{port}", on_message, subprotocol, deflate), host, port),
        timeout)
    try:
        await asyncio.wait_for(asyncio.shield(conn.opened), timeout)
    except BaseException:
        conn.abort()
        raise
    return conn
