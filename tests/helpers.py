"""Test helpers for the sans-I/O WebSocket core: build client frames, read what was sent.

Frames are built here by hand (not with `server.frames`) where a test needs bytes that
our codec refuses to produce: unmasked frames, reserved bits, bogus lengths.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence

from server.frames import Frame, Opcode, parse_frames
from server.websocket import Event, ServerConnection

MASK = b"\x01\x02\x03\x04"


def xor_mask(data: bytes, mask: bytes) -> bytes:
    """Reference masking with a per-byte loop (RFC 6455 5.3), independent of apply_mask."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def client_frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = MASK,
    *,
    rsv2: bool = False,
    rsv3: bool = False,
    length: int | None = None,
    length_bits: int | None = None,
) -> bytes:
    """Build a client frame, masked with `mask` (None: unmasked).

    Args:
        length: the announced payload length, when it must differ from len(payload).
        length_bits: force the 7/16/64-bit length encoding (default: the shortest).
    """
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
    b0 |= (0x10 if rsv3 else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length_bits is None:
        length_bits = 7 if n < 126 else 16 if n < 65536 else 64
    if length_bits == 7:
        head = bytes((b0, mask_bit | n))
    elif length_bits == 16:
        head = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mask_bit | 127, n)
    if mask is None:
        return head + payload
    return head + mask + xor_mask(payload, mask)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """A close frame payload built by hand: any code, any reason bytes."""
    return struct.pack("!H", code) + reason


def feed(conn: ServerConnection, data: bytes, chunks: Iterable[int] | None = None) -> list[Event]:
    """Feed `data` whole (or cut at the offsets in `chunks`); return all events."""
    if chunks is None:
        conn.receive_data(data)
    else:
        last = 0
        for cut in chunks:
            conn.receive_data(data[last:cut])
            last = cut
        conn.receive_data(data[last:])
    return conn.events_received()


def run(data: bytes, cuts: Sequence[int] = (), **kwargs: int | None) -> tuple[list[Event], bytes]:
    """Feed `data` to a fresh connection, cut at `cuts`; return (events, bytes sent)."""
    conn = ServerConnection(**kwargs)
    events: list[Event] = []
    last = 0
    for cut in [*cuts, len(data)]:
        conn.receive_data(data[last:cut])
        last = cut
        events.extend(conn.events_received())
    return events, b"".join(conn.data_to_send())


def split_points(data: bytes) -> Iterator[list[int]]:
    """Every single split point, then byte by byte."""
    for i in range(len(data) + 1):
        yield [i]
    yield list(range(1, len(data)))


def sent_frames(conn: ServerConnection) -> list[Frame]:
    """Parse everything the connection queued for writing (and drain it)."""
    return parse_frames(b"".join(conn.data_to_send()))


def assert_frames_sent(conn: ServerConnection, frames: Sequence[Frame]) -> None:
    """Assert the connection queued exactly these frames, unmasked, in order."""
    raw = b"".join(conn.data_to_send())
    got = parse_frames(raw)
    assert got == list(frames)
    # Server frames are never masked (RFC 6455 5.1).
    assert raw == b"".join(f.serialize() for f in frames)


def close_frame(code: int | None, reason: str = "") -> Frame:
    """The close Frame a server sends for `code`/`reason` (None: empty payload)."""
    if code is None:
        return Frame(Opcode.CLOSE, b"")
    return Frame(Opcode.CLOSE, struct.pack("!H", code) + reason.encode())
