"""permessage-deflate on the wire (RFC 7692 6, 7.2): bytes in, events and bytes out."""

from __future__ import annotations

import zlib

import pytest

from server.deflate import DeflateSettings, parse_extensions
from server.frames import Frame, Opcode
from server.websocket import (
    BinaryMessage,
    ConnectionFailed,
    PingReceived,
    ServerConnection,
    TextMessage,
)
from tests.helpers import client_frame, feed, sent_frames, split_points

TEXT, BINARY, CONT, PING = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING
# RFC 7692 7.2.3.1: "Hello" compressed, as the payload of one frame.
HELLO = bytes.fromhex("f248cdc9c90700")


def connection(
    offer: bytes = b"permessage-deflate", max_size: int | None = 2**20, **settings: int | bool
) -> ServerConnection:
    deflate = DeflateSettings(**settings)  # type: ignore[arg-type]
    agreement = deflate.negotiate(parse_extensions([offer]))
    assert agreement is not None
    codec = deflate.codec(agreement)
    return ServerConnection(max_size, compressor=codec, decompressor=codec)


def compress(data: bytes, wbits: int = 15) -> bytes:
    """A client's compressed payload, made independently of server/deflate.py."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(payload: bytes, wbits: int = 15) -> bytes:
    """What a client reads from one of our compressed payloads (RFC 7692 7.2.2)."""
    return zlib.decompressobj(wbits=-wbits).decompress(payload + b"\x00\x00\xff\xff")


# -- RFC 7692 7.2.3 examples --------------------------------------------------------------


def test_server_sends_rfc_7692_hello_bytes() -> None:
    # RFC 7692 7.2.3.1: "0xc1 0x07 0xf2 0x48 0xcd 0xc9 0xc9 0x07 0x00"
    conn = connection()
    conn.send_text("Hello")
    assert b"".join(conn.data_to_send()) == bytes.fromhex("c107") + HELLO


def test_server_shares_window_with_context_takeover() -> None:
    # RFC 7692 7.2.3.2: the second "Hello" is "0xc1 0x05 0xf2 0x00 0x11 0x00 0x00".
    conn = connection(context_takeover=True, window_bits=15)
    conn.send_text("Hello")
    conn.send_text("Hello")
    assert b"".join(conn.data_to_send()) == (
        bytes.fromhex("c107") + HELLO + bytes.fromhex("c105f200110000")
    )


def test_server_without_context_takeover_repeats_the_same_bytes() -> None:
    conn = connection()
    conn.send_binary(b"Hello")
    conn.send_text("Hello")
    assert b"".join(conn.data_to_send()) == (
        bytes.fromhex("c207") + HELLO + bytes.fromhex("c107") + HELLO
    )


@pytest.mark.parametrize("payload", [
    HELLO,  # 7.2.3.1
    bytes.fromhex("000500faff48656c6c6f00"),  # 7.2.3.3: a block with no compression
    bytes.fromhex("f348cdc9c9070000"),  # 7.2.3.4: a block with BFINAL set
    bytes.fromhex("f248050000 00ffff cac9c90700".replace(" ", "")),  # 7.2.3.5: two blocks
])
def test_server_inflates_rfc_7692_examples(payload: bytes) -> None:
    conn = connection()
    data = client_frame(TEXT, payload, rsv1=True) + client_frame(TEXT, payload, rsv1=True)
    assert feed(conn, data) == [TextMessage("Hello"), TextMessage("Hello")]


def test_server_inflates_fragmented_hello_at_every_split() -> None:
    # RFC 7692 7.2.3.1: "0x41 0x03 0xf2 0x48 0xcd" then "0x80 0x04 0xc9 0xc9 0x07 0x00";
    # RSV1 on the first frame only.
    data = client_frame(TEXT, HELLO[:3], fin=False, rsv1=True) + client_frame(CONT, HELLO[3:])
    for cuts in split_points(data):
        assert feed(connection(), data, cuts) == [TextMessage("Hello")]


def test_server_inflates_with_shared_window_from_client() -> None:
    # RFC 7692 7.2.3.2, client to server, with context takeover.
    conn = connection(context_takeover=True, window_bits=15)
    data = client_frame(TEXT, HELLO, rsv1=True) + client_frame(
        TEXT, bytes.fromhex("f200110000"), rsv1=True
    )
    assert feed(conn, data) == [TextMessage("Hello"), TextMessage("Hello")]


def test_server_decodes_uncompressed_and_compressed_messages_mixed() -> None:
    conn = connection()
    data = (client_frame(BINARY, b"raw") + client_frame(BINARY, compress(b"x" * 1000), rsv1=True)
            + client_frame(TEXT, "é".encode()))
    assert feed(conn, data) == [BinaryMessage(b"raw"), BinaryMessage(b"x" * 1000),
                                TextMessage("é")]


def test_large_compressed_message_round_trips_at_every_read_size() -> None:
    text = "".join(f"line {i}: the quick brown fox\n" for i in range(3000))
    payload = compress(text.encode())
    frames = client_frame(TEXT, payload[:5000], fin=False, rsv1=True) + client_frame(
        CONT, payload[5000:9000], fin=False) + client_frame(CONT, payload[9000:])
    for step in (1, 7, 4096, len(frames)):
        conn = connection()
        assert feed(conn, frames, range(step, len(frames), step)) == [TextMessage(text)]
        conn.send_text(text)
        (frame,) = sent_frames(conn)
        assert frame.rsv1 and frame.opcode is TEXT
        assert inflate(frame.payload) == text.encode()


# -- RSV1 and bad data --------------------------------------------------------------------


@pytest.mark.parametrize(("data", "reason"), [
    (client_frame(PING, b"x", rsv1=True), "reserved bits set"),
    (client_frame(TEXT, HELLO[:3], fin=False, rsv1=True) + client_frame(CONT, HELLO[3:], rsv1=True),
     "reserved bits set"),
    (client_frame(TEXT, b"Hel", fin=False) + client_frame(CONT, b"lo", rsv1=True),
     "reserved bits set"),
    (client_frame(TEXT, HELLO, rsv2=True), "reserved bits set"),
    (client_frame(TEXT, HELLO, rsv1=True, rsv3=True), "reserved bits set"),
])
def test_misplaced_reserved_bits_fail_with_1002(data: bytes, reason: str) -> None:
    assert feed(connection(), data)[-1] == ConnectionFailed(1002, reason)


def test_rsv1_without_the_extension_fails_with_1002() -> None:
    assert feed(ServerConnection(), client_frame(TEXT, HELLO, rsv1=True)) == [
        ConnectionFailed(1002, "reserved bits set")
    ]


def test_control_frames_between_compressed_fragments_are_answered() -> None:
    data = (client_frame(TEXT, HELLO[:3], fin=False, rsv1=True) + client_frame(PING, b"p")
            + client_frame(CONT, HELLO[3:]))
    conn = connection()
    assert feed(conn, data) == [PingReceived(b"p"), TextMessage("Hello")]
    assert sent_frames(conn) == [Frame(Opcode.PONG, b"p")]


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", bytes.fromhex("f248cdc9c907") + b"\x07"])
def test_corrupt_deflate_data_fails_with_1007(payload: bytes) -> None:
    for data in (client_frame(BINARY, payload, rsv1=True),
                 client_frame(BINARY, payload, fin=False, rsv1=True) + client_frame(CONT, b"")):
        assert feed(connection(), data) == [ConnectionFailed(1007, "invalid compressed data")]


def test_inflated_invalid_utf8_fails_with_1007() -> None:
    data = client_frame(TEXT, compress(b"ok \xc3\x28"), rsv1=True)
    assert feed(connection(), data) == [ConnectionFailed(1007, "invalid UTF-8 in text message")]


# -- size limit while inflating -----------------------------------------------------------


@pytest.mark.parametrize("fragmented", [False, True])
def test_inflated_size_limit_is_exact(fragmented: bool) -> None:
    limit = 10_000
    too_big = ConnectionFailed(1009, "message over 10000 bytes once inflated")
    for size, events in ((limit, [BinaryMessage(b"a" * limit)]), (limit + 1, [too_big])):
        payload = compress(b"a" * size)
        if fragmented:
            data = client_frame(BINARY, payload[:3], fin=False, rsv1=True) + client_frame(
                CONT, payload[3:])
        else:
            data = client_frame(BINARY, payload, rsv1=True)
        assert feed(connection(max_size=limit), data) == events


def test_bomb_fails_before_its_output_is_made() -> None:
    # ~200 KiB of DEFLATE that inflates to 200 MiB, against a 1 MiB limit: the decompressor
    # produces at most limit + 1 bytes before the 1009.
    bomb = compress(bytes(200 * 2**20))
    assert len(bomb) < 250_000
    for data in (client_frame(BINARY, bomb, rsv1=True),
                 client_frame(BINARY, bomb[:2000], fin=False, rsv1=True)):
        conn = connection(max_size=2**20)
        assert feed(conn, data, range(0, len(data), 65536)) == [
            ConnectionFailed(1009, "message over 1048576 bytes once inflated")
        ]


def test_no_size_limit_inflates_everything() -> None:
    payload = compress(bytes(3 * 2**20))
    assert feed(connection(max_size=None), client_frame(BINARY, payload, rsv1=True)) == [
        BinaryMessage(bytes(3 * 2**20))
    ]


# -- sending ------------------------------------------------------------------------------


def test_below_threshold_goes_uncompressed() -> None:
    conn = connection(threshold=6)
    conn.send_text("Hello")
    conn.send_text("Hello!")
    frames = sent_frames(conn)
    assert frames[0] == Frame(TEXT, b"Hello")
    assert frames[1].rsv1 and inflate(frames[1].payload) == b"Hello!"


def test_broadcast_compresses_once_per_payload() -> None:
    deflate = DeflateSettings()
    agreement = deflate.negotiate(parse_extensions([b"permessage-deflate"]))
    assert agreement is not None
    codecs = [deflate.codec(agreement) for _ in range(50)]
    conns = [ServerConnection(compressor=codec, decompressor=codec) for codec in codecs]
    message = "a chat message " * 20
    for conn in conns:
        conn.send_text(message)
    outputs = {b"".join(conn.data_to_send()) for conn in conns}
    assert len(outputs) == 1
    shared = deflate._shared[15]
    assert shared.compressions == 1
    conns[0].send_text("another " * 20)
    conns[1].send_text(message + "")  # an equal string object is compressed again...
    assert shared.compressions == 3
    assert b"".join(conns[1].data_to_send()) == outputs.pop()  # ...to the same bytes


def test_window_bits_8_sends_huffman_coded_messages() -> None:
    conn = connection(b"permessage-deflate; server_max_window_bits=8")
    text = "Hello Hello Hello " * 100
    conn.send_text(text)
    (frame,) = sent_frames(conn)
    assert frame.rsv1 and len(frame.payload) < len(text)
    # A peer that inflates with a 256-byte window reads it.
    assert inflate(frame.payload, 8) == text.encode()


def test_byte_figures_count_frame_payloads_on_the_wire() -> None:
    conn = connection()
    text = "counted on the wire " * 30
    payload = compress(text.encode())
    data = client_frame(TEXT, payload, rsv1=True) + client_frame(
        BINARY, payload[:4], fin=False, rsv1=True) + client_frame(CONT, payload[4:])
    assert feed(conn, data) == [TextMessage(text), BinaryMessage(text.encode())]
    conn.send_text(text)
    (frame,) = sent_frames(conn)
    assert (conn.bytes_in, conn.bytes_out) == (2 * len(payload), len(frame.payload))
    assert (conn.messages_in, conn.messages_out) == (2, 1)
