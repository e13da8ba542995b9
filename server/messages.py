"""Fragments -> messages (RFC 6455 5.4, 5.6): ordering, the size limit, UTF-8 as it arrives.

`MessageAssembler` gets the data frames of one connection, already unmasked, and returns
each complete `TextMessage` / `BinaryMessage`. It knows nothing of frame headers (that is
`server.frames`) or of connection state (`server.websocket`); it imports no asyncio,
socket or clock.

Strategy:
- `check()` is pure: it validates a data frame header (continuation order, size limit)
  and changes nothing, so the connection can call it again when a header arrives in
  pieces, and the limit is enforced before the payload is buffered.
- A whole unfragmented message (the common case) never enters the assembler's state:
  `complete()` decodes it in one call.
- Text is decoded as it arrives, with an incremental decoder made on first use, so invalid
  UTF-8 fails on the first bad byte (Autobahn 6.4.x); pieces are joined once, at the end,
  so a message costs O(its size) however many fragments carry it.
- Extension hook (RFC 7692 permessage-deflate): with a `decompressor`, a message whose
  first frame has RSV1 set is inflated piece by piece as it arrives, the decompressor
  bounding the inflated size (so a small frame that would inflate past the limit fails
  with 1009 before its output exists), and its output is decoded like any message's.
"""

from __future__ import annotations

import codecs
from typing import Any, Protocol

from server.errors import InvalidUTF8, PayloadTooBig, ProtocolError
from server.events import BinaryMessage, TextMessage, _new, _set_text, new_binary, new_text  # noqa: PLC2701 - see complete()

__all__ = ["Decompressor", "MessageAssembler", "complete"]

TEXT = 0x1
BINARY = 0x2
BAD_UTF8 = "invalid UTF-8 in text message"
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")
# Stands for the list of parts until a streamed message begins: an idle connection (most
# of them) holds no list. Appending to it would be our bug, which the connection turns
# into 1011.
_NO_LIST: Any = ()


class Decompressor(Protocol):
    """Inflates compressed messages (RFC 7692 7.2.2), e.g. permessage-deflate's."""

    def start_message(self) -> None:
        """A compressed message begins."""

    def decompress(self, data: bytes, max_size: int | None) -> bytes:
        """Inflate the next piece of the message's payload.

        Raises:
            PayloadTooBig: the message inflates to more than `max_size` bytes.
            ProtocolError: `data` is not valid compressed data (1007).
        """

    def end_message(self, max_size: int | None) -> bytes:
        """The message's last frame is in: the rest of its payload (same errors)."""

    def stop_input(self) -> None:
        """No more input will be read (state may be freed)."""


def complete(opcode: int, payload: bytes) -> TextMessage | BinaryMessage:
    """The message carried whole by one unfragmented, uncompressed frame.

    Raises:
        InvalidUTF8: a text payload that is not UTF-8.
    """
    if opcode == TEXT:
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            raise InvalidUTF8(BAD_UTF8) from None
        message: TextMessage = _new(TextMessage)
        _set_text(message, text)  # new_text() inlined: this runs once per message
        return message
    return new_binary(payload)


class MessageAssembler:
    """Reassembles one connection's fragmented messages.

    Args:
        max_size: largest message in bytes (None: no limit); larger fails with 1009.
        decompressor: set when a compression extension was negotiated.
    """

    __slots__ = ("_decoder", "_parts", "compressed", "decompressor", "max_size", "opcode",
                 "size")

    def __init__(self, max_size: int | None, decompressor: Decompressor | None = None) -> None:
        self.max_size = max_size
        self.decompressor = decompressor
        self.opcode = 0  # of the message in progress; 0: none
        self.size = 0  # its payload so far (compressed size when compressed)
        self.compressed = False
        self._parts: list[str] | list[bytes] = _NO_LIST
        # Made for the first streamed text message; most connections never need one.
        self._decoder: codecs.IncrementalDecoder | None = None

    @property
    def streams(self) -> bool:
        """Whether payload pieces are taken as they arrive (text, or compressed)."""
        return self.opcode == TEXT or self.compressed

    def check(self, opcode: int, length: int, rsv1: bool = False) -> None:
        """Validate a data frame header; changes nothing.

        Raises:
            ProtocolError: a continuation without a message, a new message before the last
                one ended (RFC 6455 5.4: fragments "MUST NOT be interleaved"), or RSV1
                where RFC 7692 6.1 forbids it (on a continuation frame).
            PayloadTooBig: the message would exceed `max_size`.
        """
        if opcode == 0:
            if not self.opcode:
                raise ProtocolError("continuation frame without a message")
            if rsv1:
                # RFC 7692 6.1: the "Per-Message Compressed" bit is set on the first frame.
                raise ProtocolError("reserved bits set")
        elif self.opcode:
            raise ProtocolError("new message before the previous one finished")
        max_size = self.max_size
        if max_size is not None and self.size + length > max_size:
            raise PayloadTooBig(f"message over {max_size} bytes")

    def begin(self, opcode: int, length: int, rsv1: bool = False) -> None:
        """A checked data frame starts (a first frame when `opcode` is not 0)."""
        if opcode:
            self.opcode = opcode
            self.size = 0
            self.compressed = rsv1 and self.decompressor is not None
            self._parts = []
            if self.compressed:
                self.decompressor.start_message()  # type: ignore[union-attr]
            if opcode == TEXT:
                if self._decoder is None:
                    self._decoder = _Utf8Decoder()
                else:
                    self._decoder.reset()
        self.size += length

    def feed(self, chunk: bytes) -> None:
        """A piece of the current frame's unmasked payload.

        Raises:
            InvalidUTF8: the text so far cannot be UTF-8, whatever follows.
            PayloadTooBig, ProtocolError: see `Decompressor`.
        """
        if self.compressed:
            chunk = self.decompressor.decompress(chunk, self.max_size)  # type: ignore[union-attr]
        if self.opcode == TEXT:
            self._decode(chunk, final=False)
        elif chunk:
            self._parts.append(chunk)  # type: ignore[arg-type]

    def finish(self) -> TextMessage | BinaryMessage:
        """The final fragment is in: return the message and forget it.

        Raises:
            InvalidUTF8, PayloadTooBig, ProtocolError: see `feed` and `Decompressor`.
        """
        if self.compressed:
            self.compressed = False
            assert self.decompressor is not None
            rest = self.decompressor.end_message(self.max_size)
            if self.opcode != TEXT and rest:
                self._parts.append(rest)  # type: ignore[arg-type]
            elif rest:
                self._decode(rest, final=False)
        opcode = self.opcode
        self.opcode = 0
        self.size = 0
        if opcode == TEXT:
            self._decode(b"", final=True)
            texts: list[str] = self._parts  # type: ignore[assignment]
            self._parts = _NO_LIST
            return new_text(texts[0] if len(texts) == 1 else "".join(texts))
        chunks: list[bytes] = self._parts  # type: ignore[assignment]
        self._parts = _NO_LIST
        return new_binary(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def reset(self) -> None:
        """Drop the message in progress (the connection stopped reading)."""
        self.opcode = 0
        self.size = 0
        self.compressed = False
        self._parts = _NO_LIST
        if self.decompressor is not None:
            self.decompressor.stop_input()

    def _decode(self, chunk: bytes, final: bool) -> None:
        decoder = self._decoder
        assert decoder is not None  # made when the text message began
        try:
            text = decoder.decode(chunk, final)
        except UnicodeDecodeError:
            raise InvalidUTF8(BAD_UTF8) from None
        if text:
            self._parts.append(text)  # type: ignore[arg-type]
        if not final:
            pending = decoder.getstate()[0]
            # CPython's decoder rejects most bad prefixes at once, but waits for the third
            # byte of ED A0..BF (a UTF-16 surrogate, invalid in UTF-8, RFC 3629 3).
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise InvalidUTF8(BAD_UTF8)
