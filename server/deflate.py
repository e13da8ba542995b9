"""RFC 7692 permessage-deflate, sans-I/O: extension negotiation and the per-message codec.

`DeflateSettings.negotiate` picks the first permessage-deflate offer it can honour (the
offers parsed and each judged by `server.extensions`) and returns an `Agreement` (the
response value and the parameters in force); `DeflateSettings.codec` makes the
`PerMessageDeflate` a `ServerConnection` uses to inflate received messages (bounded by its
size limit as it inflates) and deflate sent ones. Imports only the standard library,
`server.errors` and `server.extensions`: no asyncio, socket, time or clock.

Strategy (memory first: most WebSockets are idle most of the time):
- By default the server answers every accepted offer with ``server_no_context_takeover``
  and ``client_no_context_takeover`` (RFC 7692 7.1.1.1 and 7.1.1.2 let a server add both).
  Each sent message is then compressed on its own by one compressor per parameter set,
  shared by the whole server (reset by a full flush, RFC 1951 / zlib `Z_FULL_FLUSH`), so a
  connection keeps no compressor at all; and the same payload object sent to many
  connections (a broadcast) is compressed once: the last payload and its compressed
  bytes are kept beside the shared compressor. A received compressed message gets a
  decompressor that lives until the message ends.
- With context takeover (``context_takeover=True``) each connection makes its compressor
  on its first compressed message and its decompressor on the first compressed message
  it receives, and keeps them (that is what takeover means); window bits and memLevel
  then decide the memory of every busy connection.
- Inflating is bounded: `zlib.Decompress.decompress` is given ``max_length`` = what the
  message may still grow by, plus one byte; reaching it is a 1009 at once, so a small
  frame that would inflate past the limit never has its full output allocated.
- zlib cannot deflate with a 256-byte window (``wbits`` 8 raises "Invalid initialization
  option" since zlib 1.2.9). An offer asking ``server_max_window_bits=8`` is still
  honoured: those messages are Huffman-coded only (`Z_HUFFMAN_ONLY`: no back references,
  so any window decodes them).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from server.errors import PayloadTooBig, ProtocolError
from server.extensions import (
    CACHE_SIZE,
    NAME,
    Agreement,
    Offer,
    accept_offer,
    parse_extensions,
)

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "DEFAULT_THRESHOLD",
    "DEFAULT_WINDOW_BITS",
    "Agreement",
    "DeflateSettings",
    "Offer",
    "PerMessageDeflate",
    "parse_extensions",
]

# Defaults (docs/benchmarks.md "permessage-deflate" has the measurements behind them).
DEFAULT_WINDOW_BITS = 15
DEFAULT_MEM_LEVEL = 8
DEFAULT_LEVEL = 1
DEFAULT_THRESHOLD = 0

# RFC 7692 7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail end."
# 7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the payload".
TAIL = b"\x00\x00\xff\xff"
_TAIL_LEN = len(TAIL)


class _SharedCompressor:
    """Compresses whole messages with no context takeover, for every connection alike.

    A full flush after each message resets the compressor's history (zlib: "the
    compression state is reset"), so each output depends only on the payload and the
    parameters, and one compressor serves every connection that agreed on them. The last
    payload object and its output are kept: a broadcast compresses once.
    """

    __slots__ = ("_compressor", "_last_in", "_last_out", "compressions")

    def __init__(self, level: int, wbits: int, mem_level: int, strategy: int) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -wbits, mem_level, strategy)
        self._last_in: str | bytes | None = None
        self._last_out = b""
        #: How many payloads were compressed (cache hits excluded), for tests and figures.
        self.compressions = 0

    def compress(self, data: str | bytes) -> bytes:
        if data is self._last_in:
            return self._last_out
        payload = data.encode() if isinstance(data, str) else data
        compressor = self._compressor
        out = compressor.compress(payload) + compressor.flush(zlib.Z_FULL_FLUSH)
        self.compressions += 1
        self._last_in = data
        self._last_out = out = out[:-_TAIL_LEN]
        return out


class DeflateSettings:
    """What the server offers: one instance per server, shared by its connections.

    Args:
        window_bits: the largest LZ77 window (9-15) we compress with, and the one we ask
            clients to stay within when they let us (``client_max_window_bits``).
        mem_level: zlib memLevel (1-9) of our compressors.
        level: zlib compression level (0-9).
        threshold: messages shorter than this (bytes; characters for text) are sent
            uncompressed.
        context_takeover: keep compression context between messages, both ways, when the
            client allows it (more memory per connection, better ratio on similar
            messages); False answers every offer with both no_context_takeover params.

    Raises:
        ValueError: a setting out of range.
    """

    def __init__(
        self,
        window_bits: int = DEFAULT_WINDOW_BITS,
        mem_level: int = DEFAULT_MEM_LEVEL,
        level: int = DEFAULT_LEVEL,
        threshold: int = DEFAULT_THRESHOLD,
        context_takeover: bool = False,
    ) -> None:
        if not 9 <= window_bits <= 15:
            raise ValueError("window_bits must be between 9 and 15")
        if not 1 <= mem_level <= 9:
            raise ValueError("mem_level must be between 1 and 9")
        if not 0 <= level <= 9:
            raise ValueError("level must be between 0 and 9")
        if threshold < 0:
            raise ValueError("threshold must be 0 or more")
        self.window_bits = window_bits
        self.mem_level = mem_level
        self.level = level
        self.threshold = threshold
        self.context_takeover = context_takeover
        self._agreements: dict[tuple[Offer, ...], Agreement | None] = {}
        self._shared: dict[int, _SharedCompressor] = {}

    def negotiate(self, offers: Sequence[Offer]) -> Agreement | None:
        """Accept the first permessage-deflate offer we can honour (RFC 7692 5).

        Returns:
            The agreement, or None when every offer is declined (no extension).
        """
        key = tuple(offers)
        if key in self._agreements:
            return self._agreements[key]
        agreement = None
        for name, params in offers:
            if name == NAME:
                agreement = accept_offer(params, self.window_bits, self.context_takeover)
                if agreement is not None:
                    break
        if len(self._agreements) >= CACHE_SIZE:
            self._agreements.clear()
        self._agreements[key] = agreement
        return agreement

    def codec(self, agreement: Agreement) -> PerMessageDeflate:
        """The per-connection codec for an agreement (allocates no zlib object yet)."""
        shared = None
        if agreement.server_no_context_takeover:
            bits = agreement.server_window_bits
            shared = self._shared.get(bits)
            if shared is None:
                strategy = zlib.Z_HUFFMAN_ONLY if bits == 8 else zlib.Z_DEFAULT_STRATEGY
                shared = _SharedCompressor(self.level, max(bits, 9), self.mem_level, strategy)
                self._shared[bits] = shared
        return PerMessageDeflate(self, agreement, shared)


class PerMessageDeflate:
    """One connection's permessage-deflate state: compress sent messages, inflate received.

    Made by `DeflateSettings.codec`; it is both the `Compressor` of `server.websocket` and
    the `Decompressor` of `server.messages`. Received messages go through `start_message`,
    `decompress` for each piece of payload as it arrives, then `end_message`.
    """

    __slots__ = ("_decoder", "_encoder", "_inflated", "_settings", "_shared", "agreement",
                 "threshold")

    def __init__(
        self, settings: DeflateSettings, agreement: Agreement, shared: _SharedCompressor | None
    ) -> None:
        self._settings = settings
        self.agreement = agreement
        self.threshold = settings.threshold
        self._shared = shared
        self._encoder: zlib._Compress | None = None
        self._decoder: zlib._Decompress | None = None
        self._inflated = 0

    # -- sending ----------------------------------------------------------------------

    def compress(self, data: str | bytes) -> bytes | None:
        """The compressed payload of a message (RFC 7692 7.2.1), or None to send it as is.

        Messages shorter than the threshold are not compressed (RFC 7692 6: "An endpoint
        MAY send uncompressed messages"): small ones gain little or nothing.
        """
        if len(data) < self.threshold:
            return None
        shared = self._shared
        if shared is not None:
            return shared.compress(data)
        encoder = self._encoder
        if encoder is None:
            settings = self._settings
            bits = self.agreement.server_window_bits
            strategy = zlib.Z_HUFFMAN_ONLY if bits == 8 else zlib.Z_DEFAULT_STRATEGY
            encoder = self._encoder = zlib.compressobj(
                settings.level, zlib.DEFLATED, -max(bits, 9), settings.mem_level, strategy
            )
        payload = data.encode() if isinstance(data, str) else data
        out = encoder.compress(payload) + encoder.flush(zlib.Z_SYNC_FLUSH)
        return out[:-_TAIL_LEN]

    # -- receiving --------------------------------------------------------------------

    def start_message(self) -> None:
        """A compressed message begins (its first frame had RSV1 set)."""
        self._inflated = 0
        if self._decoder is None:
            self._decoder = zlib.decompressobj(wbits=-self.agreement.client_window_bits)

    def decompress(self, data: bytes, max_size: int | None) -> bytes:
        """Inflate the next piece of the message's payload.

        Args:
            data: unmasked payload bytes, in order.
            max_size: the largest inflated message allowed (None: no limit).

        Raises:
            PayloadTooBig: the message would inflate past `max_size` (1009); at most
                `max_size` + 1 bytes were produced.
            ProtocolError: the data is not valid DEFLATE (1007).
        """
        decoder = self._decoder
        assert decoder is not None  # start_message() was called
        if max_size is None:
            limit = 0  # zlib: no limit
        else:
            limit = max_size - self._inflated + 1
        try:
            out = decoder.decompress(data, limit)
        except zlib.error:
            raise ProtocolError("invalid compressed data", 1007) from None
        self._inflated += len(out)
        if max_size is not None and self._inflated > max_size:
            raise PayloadTooBig(f"message over {max_size} bytes once inflated")
        return out

    def end_message(self, max_size: int | None) -> bytes:
        """The message's last frame is in: inflate the tail, reset as agreed.

        Raises:
            PayloadTooBig, ProtocolError: as `decompress`.
        """
        decoder = self._decoder
        assert decoder is not None
        out = b"" if decoder.eof else self.decompress(TAIL, max_size)
        # RFC 7692 7.2.3.4: a sender may end a message with a block that has BFINAL set;
        # the stream is then over and the next message needs a new decompressor.
        if self.agreement.client_no_context_takeover or decoder.eof:
            self._decoder = None
        return out

    def stop_input(self) -> None:
        """No more input will be read: free the decompressor."""
        self._decoder = None
