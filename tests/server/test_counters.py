"""The connection's figures (/metrics, the access log): counted once, however bytes arrive."""

from __future__ import annotations

from server.frames import Opcode, parse_frames
from server.websocket import (
    BinaryMessage,
    CloseReceived,
    PingReceived,
    PongReceived,
    ServerConnection,
    TextMessage,
)
from tests.helpers import client_frame, split_points

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
PING, PONG = Opcode.PING, Opcode.PONG

# Data frames of every header size (7-, 16- and 64-bit lengths are read from 2, 4 and
# 10 bytes), a fragmented text message, control frames (not counted) and a close.
STREAM = (
    client_frame(TEXT, "héllo".encode())
    + client_frame(BINARY, bytes(200))
    + client_frame(PING, b"p")
    + client_frame(TEXT, b"ab", fin=False)
    + client_frame(CONT, b"", fin=False)
    + client_frame(CONT, "cd€".encode())
    + client_frame(BINARY, bytes(range(256)) * 2)
    + client_frame(PONG, b"q")
    + client_frame(BINARY, b"x" * 70_000, length_bits=64)
    + client_frame(Opcode.CLOSE, b"\x03\xe8")
)
EVENTS = [
    TextMessage("héllo"),
    BinaryMessage(bytes(200)),
    PingReceived(b"p"),
    TextMessage("abcd€"),
    BinaryMessage(bytes(range(256)) * 2),
    PongReceived(b"q"),
    BinaryMessage(b"x" * 70_000),
    CloseReceived(1000, ""),
]
PAYLOAD_IN = len("héllo".encode()) + 200 + len("abcd€".encode()) + 512 + 70_000


def feed_cut(data: bytes, cuts: list[int]) -> ServerConnection:
    conn = ServerConnection()
    last = 0
    events = []
    for cut in [*cuts, len(data)]:
        conn.receive_data(data[last:cut])
        events.extend(conn.events_received())
        last = cut
    assert events == EVENTS
    return conn


def test_a_200_byte_frame_fed_byte_by_byte_counts_200_bytes() -> None:
    data = client_frame(BINARY, bytes(200))
    conn = ServerConnection()
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
    assert conn.events_received() == [BinaryMessage(bytes(200))]
    assert (conn.bytes_in, conn.messages_in) == (200, 1)


def test_counters_in_are_the_same_at_every_split_point() -> None:
    # Every single cut in the first 2,000 bytes (every header is there), cuts in and
    # around the 70,000-byte frame, then the whole stream byte by byte.
    big = STREAM.index(client_frame(BINARY, b"x" * 70_000, length_bits=64))
    cuts = [[i] for i in range(2000)]
    cuts += [[big + i] for i in range(16)] + [[big + 5000, big + 40_000]]
    cuts.append(list(range(1, len(STREAM))))
    for cut in cuts:
        conn = feed_cut(STREAM, cut)
        assert (conn.bytes_in, conn.messages_in) == (PAYLOAD_IN, 5), cut
        assert (conn.bytes_out, conn.messages_out) == (0, 0)


def test_a_fragmented_message_counts_once_at_every_split_point() -> None:
    data = client_frame(TEXT, b"a" * 130, fin=False) + client_frame(CONT, b"b" * 3)
    for cuts in split_points(data):
        conn = ServerConnection()
        for i, cut in enumerate([*cuts, len(data)]):
            conn.receive_data(data[(cuts[i - 1] if i else 0) : cut])
        assert conn.events_received() == [TextMessage("a" * 130 + "bbb")]
        assert (conn.bytes_in, conn.messages_in) == (133, 1)


def test_counters_out_count_data_messages_and_their_payload() -> None:
    conn = ServerConnection()
    conn.send_text("héllo")
    conn.send_binary(bytes(126))
    conn.send_text("x" * 70_000)
    conn.send_ping(b"ping")  # control frames are not data messages
    conn.send_binary(b"")
    conn.send_close(1000)
    frames = parse_frames(b"".join(conn.data_to_send()))
    data = [f for f in frames if f.opcode in (TEXT, BINARY)]
    assert conn.messages_out == len(data) == 4
    assert conn.bytes_out == sum(len(f.payload) for f in data) == 6 + 126 + 70_000


def test_data_after_our_close_is_counted_on_the_wire_but_not_delivered() -> None:
    conn = ServerConnection()
    conn.send_close(1000)
    conn.receive_data(client_frame(TEXT, b"late") + client_frame(BINARY, bytes(300)))
    assert conn.events_received() == []
    assert (conn.bytes_in, conn.messages_in) == (304, 0)
