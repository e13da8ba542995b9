"""RFC 6455 frame codec: opcodes, frame headers, masking (close payloads: `server.closing`).

This layer turns one frame into bytes and back. It knows nothing about connections,
messages or state (that is `server.websocket`), and imports no asyncio, socket, time
or clock: only the standard library and `server.errors`.

Strategy: `read_header` is the one reader of RFC 6455 5.2 frame headers: the connection
(`server.websocket`) calls it for every frame it receives, and `Frame.parse` (tests, tools)
is built on it. It works on a buffer plus an offset (no copy), returns as soon as the
length is known (so a size limit is checked before the mask and payload arrive), and
raises `ProtocolError` for anything a header alone can break. Frames are built with
`frame_header` (server frames are never masked) and unmasked with `apply_mask`.

RFC 6455 5.2 base framing:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    | |1|2|3|       |K|             |                               |
    +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import struct

from server.closing import (
    MAX_CONTROL_PAYLOAD,
    CloseCode,
    is_valid_close_code,
    parse_close,
    serialize_close,
)
from server.errors import ProtocolError
from server.masking import (
    MaskFunction,
    apply_mask,
    apply_mask_c,
    apply_mask_join,
    apply_mask_join_py,
    apply_mask_py,
)

__all__ = [
    "MAX_CONTROL_PAYLOAD",
    "CloseCode",
    "Frame",
    "Opcode",
    "MaskFunction",
    "apply_mask",
    "apply_mask_c",
    "apply_mask_join",
    "apply_mask_join_py",
    "apply_mask_py",
    "frame_header",
    "read_header",
    "short_headers",
    "is_valid_close_code",
    "parse_close",
    "parse_frames",
    "serialize_close",
]


class Opcode(enum.IntEnum):
    """RFC 6455 5.2 opcodes; 3-7 and 0xB-0xF are reserved."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


# Indexed by the 4-bit opcode: True for the six defined opcodes. A tuple lookup is
# cheaper than `in frozenset` on the per-frame path.
KNOWN_OPCODE = tuple(op in (0, 1, 2, 8, 9, 10) for op in range(16))

# Precompiled structs. RFC 6455 5.2: the extended payload lengths are unsigned ("a 16-bit
# unsigned integer", "a 64-bit unsigned integer"); packed signed, 40,000 would be negative.
U16 = struct.Struct("!H")
U64 = struct.Struct("!Q")
HEAD16 = struct.Struct("!BBH")  # b0, b1=126, 16-bit length
HEAD64 = struct.Struct("!BBQ")  # b0, b1=127, 64-bit length

FIN = 0x80
RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10
MASK_BIT = 0x80

# RFC 6455 5.2: "the most significant bit MUST be 0" in the 64-bit length.
MAX_PAYLOAD = 2**63 - 1


def frame_header(opcode: int, length: int, fin: bool = True) -> bytes:
    """Build the header of an unmasked (server-to-client) frame.

    The payload is written separately, so large payloads are never concatenated.

    Args:
        opcode: the frame opcode.
        length: payload length in bytes.
        fin: whether this is the final fragment.

    Returns:
        2, 4 or 10 header bytes.

    Raises:
        ValueError: a negative length or one of 2^63 or more.
    """
    b0 = (FIN if fin else 0) | opcode
    # RFC 6455 5.2: "If 0-125, that is the payload length. If 126, the following 2 bytes
    # interpreted as a 16-bit unsigned integer are the payload length. If 127, the
    # following 8 bytes interpreted as a 64-bit unsigned integer ..."
    if 0 <= length < 126:
        return bytes((b0, length))
    if 126 <= length < 65536:
        return HEAD16.pack(b0, 126, length)
    if 65536 <= length <= MAX_PAYLOAD:
        return HEAD64.pack(b0, 127, length)
    raise ValueError(f"invalid payload length {length}")


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame, unmasked.

    Attributes:
        opcode: the frame opcode.
        payload: the unmasked payload.
        fin: final fragment of a message.
        rsv1/rsv2/rsv3: reserved bits (only extensions may set them).
    """

    opcode: Opcode
    payload: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False

    def serialize(self, mask: bytes | None = None) -> bytes:
        """Encode the frame; masked with `mask` (4 bytes) when given, as a client does.

        Raises:
            ValueError: a mask that is not 4 bytes.
        """
        b0 = (
            (FIN if self.fin else 0)
            | (RSV1 if self.rsv1 else 0)
            | (RSV2 if self.rsv2 else 0)
            | (RSV3 if self.rsv3 else 0)
            | self.opcode
        )
        header = bytearray(frame_header(0, len(self.payload)))
        header[0] = b0
        if mask is None:
            return bytes(header) + self.payload
        if len(mask) != 4:
            raise ValueError("mask must be 4 bytes")
        header[1] |= MASK_BIT
        return bytes(header) + mask + apply_mask(self.payload, mask)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Frame:
        """Decode exactly one complete frame (masked or not); the inverse of serialize.

        Checks what a frame alone can break: reserved opcodes, the 64-bit length's top
        bit, and the control frame rules. Masking rules, RSV bits and message ordering
        belong to the connection.

        Raises:
            ProtocolError: a malformed, truncated or over-long input.
        """
        frame, end = parse_frame_at(bytes(data), 0)
        if end != len(data):
            raise ProtocolError(f"{len(data) - end} bytes after the frame")
        return frame


def read_header(
    data: bytes | bytearray, pos: int, end: int, rsv_allowed: int = 0, mask_required: bool = True
) -> tuple[int, int, int] | None:
    """Read the frame header at `data[pos:end]`: the one place RFC 6455 5.2 is decoded.

    Args:
        data: the receive buffer; only `data[pos:end]` is read.
        rsv_allowed: the RSV bits an extension negotiated (`RSV1` for RFC 7692); others
            set fail the frame.
        mask_required: fail an unmasked frame (a server reading a client, RFC 6455 5.1).

    Returns:
        None while the 2-10 bytes that carry the length are incomplete; else `(b0, length,
        size)`: the first header byte (FIN, RSV, opcode), the payload length and the
        header's size (2-14 bytes): the payload starts at `pos + size`, after the 4-byte
        masking key when there is one. `pos + size` may be past `end` (the key has not
        arrived yet): check before reading it.

    Raises:
        ProtocolError: reserved bits or opcode, a missing mask, a 64-bit length with its
            top bit set, or a fragmented or over-long control frame.
    """
    if end - pos < 2:
        return None
    b0 = data[pos]
    b1 = data[pos + 1]
    # RFC 6455 5.2: "RSV1, RSV2, RSV3: ... MUST be 0 unless an extension is negotiated
    # that defines meanings for non-zero values."
    if b0 & 0x70 & ~rsv_allowed:
        raise ProtocolError("reserved bits set")
    opcode = b0 & 0x0F
    # RFC 6455 5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail
    # the WebSocket Connection_."
    if not KNOWN_OPCODE[opcode]:
        raise ProtocolError(f"reserved opcode {opcode}")
    # RFC 6455 5.1: "The server MUST close the connection upon receiving a frame that is
    # not masked."
    if mask_required and not b1 & MASK_BIT:
        raise ProtocolError("frame not masked")
    length = b1 & 0x7F
    if length < 126:
        size = 2
    elif length == 126:
        if end - pos < 4:
            return None
        (length,) = U16.unpack_from(data, pos + 2)
        size = 4
    else:
        if end - pos < 10:
            return None
        (length,) = U64.unpack_from(data, pos + 2)
        # RFC 6455 5.2: "the most significant bit MUST be 0".
        if length > MAX_PAYLOAD:
            raise ProtocolError("payload length with the most significant bit set")
        size = 10
    if opcode >= 8:
        # RFC 6455 5.5: "All control frames MUST have a payload length of 125 bytes or less
        # and MUST NOT be fragmented."
        if not b0 & FIN:
            raise ProtocolError("fragmented control frame")
        if length > MAX_CONTROL_PAYLOAD:
            raise ProtocolError("control frame payload over 125 bytes")
    if b1 & MASK_BIT:
        size += 4
    return b0, length, size


ShortHeaders = list[list[tuple[int, int, int] | None]]


@functools.cache
def short_headers(rsv_allowed: int = 0) -> ShortHeaders:
    """`read_header`'s verdicts on the 2-byte headers of masked frames, precomputed.

    `short_headers(r)[b0][b1]` is what `read_header(bytes((b0, b1)) + key, 0, 6, r)`
    returns, or None where that raises or needs more bytes (16/64-bit lengths, reserved
    bits or opcodes, unmasked or bad control frames): then call `read_header` itself. Two
    list lookups instead of a call on every small frame; the rules are still only the
    reader's. Rows of the first bytes that never qualify share one list of None.
    """
    nothing: list[tuple[int, int, int] | None] = [None] * 256
    table: ShortHeaders = [nothing] * 256
    for b0 in range(256):
        row: list[tuple[int, int, int] | None] = [None] * 256
        for b1 in range(MASK_BIT, MASK_BIT | 126):
            try:
                row[b1] = read_header(bytes((b0, b1)), 0, 2, rsv_allowed)
            except ProtocolError:
                pass
        if any(row):
            table[b0] = row
    return table


def parse_frame_at(data: bytes, pos: int) -> tuple[Frame, int]:
    """Decode the complete frame (masked or not) at `data[pos:]`; return it and the offset
    after it.

    Raises:
        ProtocolError: a malformed or truncated frame.
    """
    end = len(data)
    header = read_header(data, pos, end, rsv_allowed=RSV1 | RSV2 | RSV3, mask_required=False)
    if header is None or pos + header[2] > end:
        raise ProtocolError("truncated frame header")
    b0, length, size = header
    start = pos + size
    stop = start + length
    if stop > end:
        raise ProtocolError("truncated frame payload")
    payload = data[start:stop]
    if data[pos + 1] & MASK_BIT:
        payload = apply_mask(payload, data[start - 4 : start])
    frame = Frame(
        Opcode(b0 & 0x0F),
        payload,
        fin=bool(b0 & FIN),
        rsv1=bool(b0 & RSV1),
        rsv2=bool(b0 & RSV2),
        rsv3=bool(b0 & RSV3),
    )
    return frame, stop


def parse_frames(data: bytes | bytearray | memoryview) -> list[Frame]:
    """Decode a byte stream of complete frames (e.g. all of `data_to_send()` joined).

    Raises:
        ProtocolError: a malformed or truncated frame.
    """
    raw = bytes(data)
    frames: list[Frame] = []
    pos = 0
    while pos < len(raw):
        frame, pos = parse_frame_at(raw, pos)
        frames.append(frame)
    return frames
