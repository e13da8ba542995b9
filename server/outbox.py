"""The send side of a sans-I/O WebSocket connection: server frames, queued for the glue.

`Outbox` is the base of `server.websocket.ServerConnection`: it builds the frames the
server sends (RFC 6455 5.2: unmasked, one frame per message; 5.5 control frames) and
queues them for `data_to_send()`. It imports no asyncio, socket, time or clock: only
`server.errors`, `server.frames` and the standard library.

Strategy:
- A frame whose payload is up to `_JOIN_LIMIT` bytes is one buffer (header + payload);
  a larger one is two list items, so a large payload is never copied to prepend a header.
- Broadcast: the last text frame, binary frame and compressed frame built are kept with
  the payload object they came from. A send of that very object (`is`: an equal but
  distinct payload is a miss) queues the same buffers again, so a message sent to 1,000
  connections is encoded and framed once. `str` and `bytes` are immutable, and the entry
  holds a reference to its key, so an identity can neither change nor be reused while it
  is cached. Compressed frames are keyed by the compressed bytes object, which a shared
  no-context-takeover compressor (`server.deflate`) returns for a repeated payload: a
  connection without the extension, or with other parameters, gets other bytes and so
  another frame. Each entry is one tuple, replaced whole (one assignment).
"""

from __future__ import annotations

import enum
from typing import Any, Protocol

from server.errors import InvalidState
from server.frames import (
    MAX_CONTROL_PAYLOAD,
    RSV1,
    CloseCode,
    Opcode,
    frame_header,
    serialize_close,
)

__all__ = ["Compressor", "Outbox", "State"]


class State(enum.IntEnum):
    """What we have sent: OPEN, CLOSING (our close frame is out), CLOSED (done).

    A ServerConnection starts OPEN; CONNECTING is for the glue, before the 101 is sent.
    """

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Compressor(Protocol):
    """Deflates one message's payload (RFC 7692 7.2.1), e.g. permessage-deflate's."""

    def compress(self, data: str | bytes) -> bytes | None:
        """Return the compressed payload of one message, or None to send it uncompressed.

        Text comes as the app's `str`: a compressor may keep what it made for the same
        object (a broadcast), which it could not once the text is encoded anew.
        """


# Payloads up to this size are sent as one buffer (header + payload); larger ones as
# two list items so the payload is never copied to prepend a header.
_JOIN_LIMIT = 1024
_TEXT = Opcode.TEXT.value
_CLOSE = Opcode.CLOSE.value
_MAX_REASON = MAX_CONTROL_PAYLOAD - 2
_BINARY = Opcode.BINARY.value
# The 2-byte headers of small unfragmented server frames (payload < 126), made once.
_SMALL_HEADER = {
    opcode: [bytes((0x80 | opcode, n)) for n in range(126)]
    for opcode in (_TEXT, _BINARY, RSV1 | _TEXT, RSV1 | _BINARY)
}
_SMALL_TEXT_HEADER = _SMALL_HEADER[_TEXT]
_SMALL_BINARY_HEADER = _SMALL_HEADER[_BINARY]

# Broadcast cache, one entry per kind: (payload object, payload length, buffers), replaced
# whole. A small frame is cached on the second send of its payload object in a row (a
# payload sent once, as an echo, costs no entry); `_seen_*` holds the last one sent.
Entry = tuple[Any, int, tuple[bytes, ...]]
_NONE: Entry = (None, 0, ())
_last_text = _last_binary = _last_compressed = _NONE
_seen_text: Any = None
_seen_binary: Any = None


def build(b0_opcode: int, payload: bytes) -> tuple[bytes, ...]:
    """The buffers of one unfragmented frame (`b0_opcode`: RSV1 and opcode)."""
    n = len(payload)
    if n < 126:
        return (_SMALL_HEADER[b0_opcode][n] + payload,)
    header = frame_header(b0_opcode, n)
    if n <= _JOIN_LIMIT:
        return (header + payload,)
    return header, payload


class Outbox:
    """Builds and queues what one connection sends; `ServerConnection` is the whole.

    This class keeps the queue, the counters and `state`; the subclass reads the input
    and sets `_close_rcvd` and `_eof`.
    """

    __slots__ = ("_close_sent", "_compressor", "_out", "bytes_out", "messages_out", "state")

    state: State
    _close_rcvd: bool  # the peer's close frame came (input side)
    _eof: bool  # the peer closed TCP (input side)

    def __init__(self, compressor: Compressor | None) -> None:
        self.state = State.OPEN
        self._compressor = compressor
        self._out: list[bytes] = []
        self._close_sent = False  # our close frame is queued
        #: Data messages sent, and the payload bytes of their frames on the wire.
        self.messages_out = 0
        self.bytes_out = 0

    def data_to_send(self) -> list[bytes]:
        """Return the buffers to write, in order (possibly []), for `writelines()`."""
        out, self._out = self._out, []
        return out

    def send_text(self, data: str) -> None:
        """Queue a text message (one frame; an empty string is a real frame).

        Raises:
            InvalidState: not OPEN.
        """
        global _last_text, _seen_text
        if self.state is not State.OPEN:
            raise InvalidState(f"cannot send in state {self.state.name}")
        self.messages_out += 1
        if self._compressor is not None and self._send_compressed(_TEXT, data):
            return
        entry = _last_text
        if entry[0] is data:
            self.bytes_out += entry[1]
            self._out += entry[2]
            return
        payload = data.encode()
        n = len(payload)
        if n < 126:
            # Fast path (chat traffic): one precomputed header, one concatenation.
            self.bytes_out += n
            frame = _SMALL_TEXT_HEADER[n] + payload
            self._out.append(frame)
            if data is _seen_text:
                _last_text = (data, n, (frame,))
            else:
                _seen_text = data
        else:
            _last_text = entry = (data, n, build(_TEXT, payload))
            self.bytes_out += n
            self._out += entry[2]

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a binary message. A bytearray or memoryview is copied (it may change
        before the glue writes it); bytes are not.

        Raises:
            InvalidState: not OPEN.
        """
        global _last_binary, _seen_binary
        if self.state is not State.OPEN:
            raise InvalidState(f"cannot send in state {self.state.name}")
        payload = data if type(data) is bytes else bytes(data)
        self.messages_out += 1
        if self._compressor is not None and self._send_compressed(_BINARY, payload):
            return
        entry = _last_binary
        if entry[0] is payload:
            self.bytes_out += entry[1]
            self._out += entry[2]
            return
        n = len(payload)
        if n < 126:
            self.bytes_out += n
            frame = _SMALL_BINARY_HEADER[n] + payload
            self._out.append(frame)
            if payload is _seen_binary:
                _last_binary = (payload, n, (frame,))
            else:
                _seen_binary = payload
        else:
            _last_binary = entry = (payload, n, build(_BINARY, payload))
            self.bytes_out += n
            self._out += entry[2]

    def _send_compressed(self, opcode: int, data: str | bytes) -> bool:
        """Queue `data` compressed; False when the compressor declines (below its threshold)."""
        global _last_compressed
        assert self._compressor is not None
        compressed = self._compressor.compress(data)
        if compressed is None:
            return False
        # RFC 7692 6: "Per-Message Compressed" on the (only) frame.
        b0_opcode = RSV1 | opcode
        entry = _last_compressed
        if entry[0] is not compressed or entry[2][0][0] & 0x7F != b0_opcode:
            entry = (compressed, len(compressed), build(b0_opcode, compressed))
            _last_compressed = entry
        self.bytes_out += entry[1]
        self._out += entry[2]
        return True

    def send_ping(self, data: bytes = b"") -> None:
        """Queue a ping.

        Raises:
            InvalidState: not OPEN.
            ValueError: a payload over 125 bytes.
        """
        self._check_open()
        self._send_control(Opcode.PING, bytes(data))

    def send_pong(self, data: bytes) -> None:
        """Queue an unsolicited pong (pings are answered automatically).

        Raises:
            InvalidState: not OPEN.
            ValueError: a payload over 125 bytes.
        """
        self._check_open()
        self._send_control(Opcode.PONG, bytes(data))

    def _check_open(self) -> None:
        if self.state is not State.OPEN:
            raise InvalidState(f"cannot send in state {self.state.name}")

    def _send_control(self, opcode: int, payload: bytes) -> None:
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("control frame payload over 125 bytes")
        self._out.append(frame_header(opcode, len(payload)) + payload)

    def send_close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake, or answer the peer's close.

        OPEN -> CLOSING (ours first) or CLOSED (answering `CloseReceived`). Once a close
        frame was sent, or after EOF, this does nothing: RFC 6455 allows one close frame,
        and a peer's close may cross ours.

        Args:
            code: the status code; None or 1005 (the echo of a close without status)
                send an empty close payload.
            reason: cut to 123 bytes of UTF-8 (ASGI lets an app pass any string).

        Raises:
            ValueError: a code that must not be sent, or a reason without a code.
        """
        if self._close_sent or self._eof or self.state is State.CLOSED:
            return
        if code == CloseCode.NO_STATUS_RCVD:
            code = None
        self._queue_close(code, reason)
        self._close_sent = True
        self.state = State.CLOSED if self._close_rcvd else State.CLOSING

    def _queue_close(self, code: int | None, reason: str) -> None:
        """Queue a close frame; the reason is cut to 123 bytes of UTF-8.

        Raises:
            ValueError: a code that must not be sent, or a reason without a code.
        """
        payload = serialize_close(code, _truncate_reason(reason))
        self._out.append(frame_header(_CLOSE, len(payload)) + payload)


def _truncate_reason(reason: str) -> str:
    """Cut a close reason to 123 bytes of UTF-8, on a character boundary.

    RFC 6455 5.5: control frame payloads are at most 125 bytes, 2 of them the code.
    """
    data = reason.encode()
    if len(data) <= _MAX_REASON:
        return reason
    return data[:_MAX_REASON].decode(errors="ignore")
