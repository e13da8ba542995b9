"""The send side (server/outbox.py): exact frames, and a broadcast's frame built once."""

from __future__ import annotations

import pytest

from server.errors import InvalidState
from server.websocket import ServerConnection
from tests.server.test_deflate_codec import connection, inflate

# RFC 6455 5.2: FIN + opcode, then the 7-bit length (or 126 + 16-bit length).
TEXT_2, TEXT_126 = b"\x81", b"\x81\x7e"
BINARY_2 = b"\x82"
COMPRESSED_TEXT = 0xC1  # FIN, RSV1 (RFC 7692 6 "Per-Message Compressed"), text


def test_same_text_to_connections_with_and_without_deflate_gets_each_its_bytes() -> None:
    small = "hello, everyone"  # a distinct object from any literal the tests share
    large = "x" * 200  # a 16-bit length
    plain = [ServerConnection() for _ in range(3)]
    deflated = [connection() for _ in range(3)]  # shared no-context-takeover compressor
    windowed = [connection(b"permessage-deflate; server_max_window_bits=10")]
    for text in (small, large):
        # Interleaved, as an app's broadcast loop meets its members.
        for conn in (plain[0], deflated[0], windowed[0], plain[1], deflated[1], plain[2],
                     deflated[2]):
            conn.send_text(text)
    for conn in plain:
        assert conn.data_to_send() == [
            TEXT_2 + bytes((len(small),)) + small.encode(),
            TEXT_126 + (200).to_bytes(2, "big") + large.encode(),
        ]
    for conn in deflated + windowed:
        wbits = 10 if conn in windowed else 15
        out = conn.data_to_send()
        assert len(out) == 2
        for frame, text in zip(out, (small, large), strict=True):
            assert frame[0] == COMPRESSED_TEXT
            assert frame[1] == len(frame) - 2  # compressed, both fit a 7-bit length
            assert inflate(frame[2:], wbits) == text.encode()
    assert deflated[0].bytes_out == deflated[1].bytes_out == deflated[2].bytes_out
    assert plain[0].bytes_out == len(small.encode()) + 200


def test_broadcast_frame_is_built_once_for_its_receivers() -> None:
    text = "broadcast " * 5
    data = bytes(range(50))
    conns = [ServerConnection() for _ in range(4)]
    for conn in conns:
        conn.send_text(text)
        conn.send_binary(data)
    frames = [conn.data_to_send() for conn in conns]
    assert frames[0] == [TEXT_2 + b"\x32" + text.encode(), BINARY_2 + b"\x32" + data]
    # The third receiver on reuse the very buffers (the second send of an object caches).
    assert frames[2][0] is frames[3][0] and frames[2][1] is frames[3][1]
    assert all(f == frames[0] for f in frames)
    assert [conn.messages_out for conn in conns] == [2] * 4
    assert [conn.bytes_out for conn in conns] == [100] * 4


def test_equal_payloads_of_other_kinds_are_not_confused() -> None:
    conns = [ServerConnection() for _ in range(3)]
    blob = bytearray(b"one")
    for conn in conns:
        conn.send_text("one")
    conns[0].send_binary(b"one")
    conns[1].send_binary(blob)
    blob[:] = b"two"  # a bytearray changes between sends: each send copies it
    conns[2].send_binary(blob)
    assert [conn.data_to_send() for conn in conns] == [
        [b"\x81\x03one", b"\x82\x03one"],
        [b"\x81\x03one", b"\x82\x03one"],
        [b"\x81\x03one", b"\x82\x03two"],
    ]


def test_large_binary_goes_out_as_header_and_the_same_payload_object() -> None:
    payload = b"\x00" * 70_000  # a 64-bit length, past the join limit
    conn = ServerConnection()
    conn.send_binary(payload)
    header, body = conn.data_to_send()
    assert header == b"\x82\x7f" + (70_000).to_bytes(8, "big")
    assert body is payload


def test_sending_after_close_raises_invalid_state() -> None:
    conn = ServerConnection()
    conn.send_close()
    with pytest.raises(InvalidState):
        conn.send_text("late")
    with pytest.raises(InvalidState):
        conn.send_binary(b"late")
