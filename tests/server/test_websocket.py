"""ServerConnection: bytes in, events and bytes out; every rule with its close code."""

from __future__ import annotations

import pytest
import wsproto.events
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection as WsprotoConnection
from wsproto.connection import ConnectionType

import server.websocket
from server.errors import InvalidState
from server.frames import Frame, Opcode, apply_mask_join_py, apply_mask_py
from server.websocket import (
    BinaryMessage,
    CloseReceived,
    ConnectionFailed,
    Event,
    PingReceived,
    PongReceived,
    ServerConnection,
    State,
    TextMessage,
)
from tests.helpers import (
    assert_frames_sent,
    client_frame,
    close_frame,
    close_payload,
    feed,
    run,
    split_points,
)

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG


def failed_with(data: bytes, code: int, reason: str, **kwargs: int | None) -> None:
    """`data` fails the connection with exactly this code and reason, at every split,
    sends nothing by itself, and `fail()` then writes exactly that close frame."""
    for cuts in [[], *split_points(data)] if len(data) < 300 else [[]]:
        conn = ServerConnection(**kwargs)
        events = feed(conn, data, cuts)
        assert events[-1] == ConnectionFailed(code, reason)
        assert ConnectionFailed not in map(type, events[:-1])
    assert conn.data_to_send() == []  # the core never writes a close on its own
    assert conn.state is State.OPEN and not conn.close_expected()
    conn.fail(code, reason)
    assert_frames_sent(conn, [close_frame(code, reason)])
    assert conn.state is State.CLOSING and conn.close_expected()
    conn.receive_data(client_frame(TEXT, b"after"))  # discarded
    assert conn.events_received() == []


# messages -------------------------------------------------------------------------


def test_server_receives_text_and_binary_messages() -> None:
    data = client_frame(TEXT, "café".encode()) + client_frame(BINARY, b"\x00\xff")
    assert run(data) == ([TextMessage("café"), BinaryMessage(b"\x00\xff")], b"")


def test_server_receives_empty_messages() -> None:
    data = client_frame(TEXT, b"") + client_frame(BINARY, b"")
    assert run(data)[0] == [TextMessage(""), BinaryMessage(b"")]


@pytest.mark.parametrize("size", [125, 126, 40_000, 65535, 65536, 70_000])
def test_server_receives_boundary_lengths(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    data = client_frame(BINARY, payload)
    assert run(data)[0] == [BinaryMessage(payload)]
    assert run(data, [len(data) // 3, len(data) // 2 + 1])[0] == [BinaryMessage(payload)]


def test_server_receives_fragmented_message_with_ping_between() -> None:
    data = (
        client_frame(TEXT, b"Hel", fin=False)
        + client_frame(PING, b"p")
        + client_frame(CONT, b"", fin=False)
        + client_frame(PONG, b"q")
        + client_frame(CONT, b"lo")
    )
    events = [PingReceived(b"p"), PongReceived(b"q"), TextMessage("Hello")]
    assert run(data) == (events, b"\x8a\x01p")


def test_server_receives_many_fragments() -> None:
    # Autobahn 9.3/9.4: 4 MiB in 64-byte fragments; cost must stay O(size).
    piece = bytes(range(64))
    count = 4 * 2**20 // 64
    frag = client_frame(CONT, piece, fin=False)
    data = client_frame(BINARY, piece, fin=False) + frag * (count - 2) + client_frame(CONT, piece)
    conn = ServerConnection()
    for i in range(0, len(data), 65536):
        conn.receive_data(data[i : i + 65536])
    assert conn.events_received() == [BinaryMessage(piece * count)]


def test_server_receives_utf8_split_across_fragments() -> None:
    text = "κόσμε €𝄞"
    raw = text.encode()
    data = b"".join(
        client_frame(TEXT if i == 0 else CONT, raw[i : i + 1], fin=i == len(raw) - 1)
        for i in range(len(raw))
    )
    assert run(data)[0] == [TextMessage(text)]


def test_trailing_partial_frame_waits() -> None:
    first = client_frame(TEXT, b"one")
    second = client_frame(TEXT, b"two" * 50)
    for cut in range(len(second)):
        conn = ServerConnection()
        assert feed(conn, first + second[:cut]) == [TextMessage("one")]
        assert feed(conn, second[cut:]) == [TextMessage("two" * 50)]


# control frames -------------------------------------------------------------------


def test_server_answers_ping_with_same_payload() -> None:
    conn = ServerConnection()
    assert feed(conn, client_frame(PING, b"abc") + client_frame(PING, b"")) == [
        PingReceived(b"abc"),
        PingReceived(b""),
    ]
    assert conn.data_to_send() == [b"\x8a\x03abc", b"\x8a\x00"]


def test_server_answers_125_byte_ping() -> None:
    conn = ServerConnection()
    assert feed(conn, client_frame(PING, b"z" * 125)) == [PingReceived(b"z" * 125)]
    assert_frames_sent(conn, [Frame(PONG, b"z" * 125)])


def test_server_receives_close_and_answers_on_request() -> None:
    conn = ServerConnection()
    data = client_frame(TEXT, b"last") + client_frame(CLOSE, close_payload(1001, b"bye"))
    data += client_frame(PING, b"after close") + client_frame(TEXT, b"after close")
    assert feed(conn, data) == [TextMessage("last"), CloseReceived(1001, "bye")]
    assert conn.data_to_send() == []  # no close (and no pong) until the glue says so
    assert (conn.close_code, conn.close_reason) == (1001, "bye")
    assert conn.state is State.OPEN and not conn.close_expected()
    conn.send_text("reply before close")  # RFC 6455 5.5.1 lets the current message finish
    conn.send_close(1001)
    assert_frames_sent(conn, [Frame(TEXT, b"reply before close"), close_frame(1001)])
    assert conn.state is State.CLOSED and conn.close_expected()


def test_server_echoes_close_without_status_with_empty_close() -> None:
    conn = ServerConnection()
    assert feed(conn, client_frame(CLOSE)) == [CloseReceived(1005, "")]
    conn.send_close(1005)  # the echo of "no status" is an empty close payload
    assert conn.data_to_send() == [b"\x88\x00"]
    assert conn.state is State.CLOSED


def test_close_between_fragments_is_a_normal_close() -> None:
    # Autobahn 7.1.5: the partial message is dropped, the close is honoured.
    data = client_frame(TEXT, b"frag", fin=False) + client_frame(CLOSE, close_payload(1000))
    data += client_frame(CONT, b"ment")
    assert run(data) == ([CloseReceived(1000, "")], b"")


@pytest.mark.parametrize("code", [1000, 1003, 1011, 1014, 3000, 4999])
def test_close_with_valid_code_is_echoed(code: int) -> None:
    conn = ServerConnection()
    assert feed(conn, client_frame(CLOSE, close_payload(code))) == [CloseReceived(code, "")]
    conn.send_close(code)
    assert_frames_sent(conn, [close_frame(code)])


# protocol errors ------------------------------------------------------------------


def test_server_fails_on_unmasked_frame() -> None:
    failed_with(client_frame(TEXT, b"hi", mask=None), 1002, "frame not masked")


@pytest.mark.parametrize("bits", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)])
def test_server_fails_on_reserved_bits(bits: tuple[int, int, int]) -> None:
    rsv1, rsv2, rsv3 = map(bool, bits)
    data = client_frame(TEXT, b"hi", rsv1=rsv1, rsv2=rsv2, rsv3=rsv3)
    failed_with(data, 1002, "reserved bits set")


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_server_fails_on_reserved_opcode(opcode: int) -> None:
    failed_with(client_frame(opcode, b"x"), 1002, f"reserved opcode {opcode}")


def test_server_fails_on_64_bit_length_with_top_bit_set() -> None:
    data = client_frame(BINARY, length=2**63)[:10]  # fails before the mask arrives
    reason = "payload length with the most significant bit set"
    failed_with(data, 1002, reason, max_message_size=None)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_server_fails_on_fragmented_control_frame(opcode: int) -> None:
    failed_with(client_frame(opcode, b"", fin=False), 1002, "fragmented control frame")


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_server_fails_on_control_frame_over_125_bytes(opcode: int) -> None:
    data = client_frame(opcode, b"\x03\xe8" + b"x" * 124)
    failed_with(data, 1002, "control frame payload over 125 bytes")


def test_server_fails_on_continuation_without_message() -> None:
    failed_with(client_frame(CONT, b"x"), 1002, "continuation frame without a message")
    data = client_frame(TEXT, b"done") + client_frame(CONT, b"x")
    failed_with(data, 1002, "continuation frame without a message")


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_server_fails_on_new_message_during_fragmented_message(opcode: int) -> None:
    data = client_frame(BINARY, b"a", fin=False) + client_frame(opcode, b"b")
    failed_with(data, 1002, "new message before the previous one finished")


def test_messages_before_an_error_are_delivered_in_order() -> None:
    data = client_frame(TEXT, b"1") + client_frame(PING, b"2") + client_frame(7, b"")
    data += client_frame(TEXT, b"discarded")
    events, sent = run(data)
    assert events == [
        TextMessage("1"),
        PingReceived(b"2"),
        ConnectionFailed(1002, "reserved opcode 7"),
    ]
    assert sent == b"\x8a\x012"


@pytest.mark.parametrize(
    ("payload", "code", "reason"),
    [
        (b"\x03", 1002, "close frame payload of 1 byte"),
        (close_payload(1004), 1002, "invalid close code 1004"),
        (close_payload(1005), 1002, "invalid close code 1005"),
        (close_payload(999), 1002, "invalid close code 999"),
        (close_payload(2999), 1002, "invalid close code 2999"),
        (close_payload(5000), 1002, "invalid close code 5000"),
        (close_payload(1000, b"\xff"), 1007, "invalid UTF-8 in close reason"),
    ],
)
def test_server_fails_on_invalid_close_payload(payload: bytes, code: int, reason: str) -> None:
    failed_with(client_frame(CLOSE, payload), code, reason)


# size limit -----------------------------------------------------------------------


def test_message_too_big_fails_from_the_header_alone() -> None:
    header = client_frame(BINARY, length=2 * 2**30)[:10]  # 2 GiB announced, no payload
    failed_with(header, 1009, f"message over {16 * 2**20} bytes")


def test_fragmented_message_too_big_fails_on_the_fragment_over_the_limit() -> None:
    data = client_frame(TEXT, b"x" * 60, fin=False) + client_frame(CONT, b"x" * 40, fin=False)
    failed_with(
        data + client_frame(CONT, b"x"), 1009, "message over 100 bytes", max_message_size=100
    )


def test_message_at_the_limit_is_accepted() -> None:
    data = client_frame(BINARY, b"x" * 60, fin=False) + client_frame(CONT, b"y" * 40)
    assert run(data, max_message_size=100)[0] == [BinaryMessage(b"x" * 60 + b"y" * 40)]
    assert run(client_frame(BINARY, b"z" * 100), max_message_size=100)[0] == [
        BinaryMessage(b"z" * 100)
    ]


def test_no_size_limit() -> None:
    payload = b"q" * 300_000
    assert run(client_frame(BINARY, payload), max_message_size=None)[0] == [BinaryMessage(payload)]


# UTF-8 ----------------------------------------------------------------------------

BAD_UTF8 = "invalid UTF-8 in text message"


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"ok\xf4\x90\x80\x80", b"\xce", b"\xe2\x82"],
)
def test_server_fails_on_invalid_utf8_text(payload: bytes) -> None:
    failed_with(client_frame(TEXT, payload), 1007, BAD_UTF8)
    fragmented = client_frame(TEXT, payload, fin=False) + client_frame(CONT, b"")
    failed_with(fragmented, 1007, BAD_UTF8)


def test_invalid_utf8_fails_on_the_fragment_that_has_the_bad_byte() -> None:
    # Autobahn 6.4.1/6.4.2: fail fast, before the rest of the message arrives.
    conn = ServerConnection()
    assert feed(conn, client_frame(TEXT, "κόσμε".encode(), fin=False)) == []
    assert feed(conn, client_frame(CONT, b"\xf4", fin=False)) == []
    assert feed(conn, client_frame(CONT, b"\x90", fin=False)) == [ConnectionFailed(1007, BAD_UTF8)]


@pytest.mark.parametrize("bad", [b"\xf4\x90\x80\x80", b"\xed\xa0\x80", b"\xc0"])
def test_invalid_utf8_fails_within_a_frame_arriving_in_chops(bad: bytes) -> None:
    # Autobahn 6.4.3/6.4.4: one frame in chops; fail on the chop with the bad byte.
    head = "κόσμε".encode()
    data = client_frame(TEXT, head + bad + b"edited")
    start = len(data) - len(b"edited") - len(bad)
    # The byte that makes the sequence invalid: F4 90 (> U+10FFFF), ED A0 (a surrogate),
    # C0 (never valid).
    detect = start if bad == b"\xc0" else start + 1
    conn = ServerConnection()
    assert feed(conn, data[:detect]) == []
    assert feed(conn, data[detect : detect + 1]) == [ConnectionFailed(1007, BAD_UTF8)]


# sending --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 1024, 1025, 40_000, 65535, 65536])
def test_send_binary_boundary_lengths(size: int) -> None:
    conn = ServerConnection()
    payload = b"\xab" * size
    conn.send_binary(payload)
    assert_frames_sent(conn, [Frame(BINARY, payload)])


def test_send_large_payload_is_not_copied() -> None:
    conn = ServerConnection()
    payload = b"L" * 40_000
    conn.send_binary(payload)
    header, body = conn.data_to_send()
    assert header == b"\x82\x7e\x9c\x40"  # unsigned 16-bit length (seed bug: signed)
    assert body is payload


def test_send_text_ping_pong() -> None:
    conn = ServerConnection()
    conn.send_text("")
    conn.send_text("héllo")
    conn.send_binary(bytearray(b"ba"))
    conn.send_binary(memoryview(b"mv"))
    conn.send_ping()
    conn.send_ping(b"p")
    conn.send_pong(b"u")
    assert conn.data_to_send() == [
        b"\x81\x00",
        b"\x81\x06h\xc3\xa9llo",
        b"\x82\x02ba",
        b"\x82\x02mv",
        b"\x89\x00",
        b"\x89\x01p",
        b"\x8a\x01u",
    ]


def test_send_control_frame_over_125_bytes_is_refused() -> None:
    conn = ServerConnection()
    with pytest.raises(ValueError):
        conn.send_ping(b"x" * 126)
    with pytest.raises(ValueError):
        conn.send_pong(b"x" * 126)
    assert conn.data_to_send() == []


def test_server_initiated_close() -> None:
    conn = ServerConnection()
    conn.send_close(1001, "going")
    assert_frames_sent(conn, [close_frame(1001, "going")])
    assert conn.state is State.CLOSING and not conn.close_expected()
    with pytest.raises(InvalidState):
        conn.send_text("x")
    for send in (conn.send_binary, conn.send_ping, conn.send_pong):
        with pytest.raises(InvalidState):
            send(b"x")
    # After our close, data frames are ignored and pings get no pong.
    data = client_frame(TEXT, b"late") + client_frame(BINARY, b"late", fin=False)
    data += client_frame(CONT, b"r") + client_frame(PING, b"p")
    assert feed(conn, data) == [PingReceived(b"p")]
    assert feed(conn, client_frame(CLOSE, close_payload(1001))) == [CloseReceived(1001, "")]
    assert conn.state is State.CLOSED and conn.close_expected()
    conn.send_close(1000)  # crossing closes: no second close frame
    assert conn.data_to_send() == []


def test_send_close_truncates_long_reason() -> None:
    conn = ServerConnection()
    conn.send_close(4000, "x" * 200)
    assert_frames_sent(conn, [close_frame(4000, "x" * 123)])


def test_send_close_refuses_codes_that_must_not_be_sent() -> None:
    conn = ServerConnection()
    for code in (999, 1004, 1006, 1015, 2000, 5000):
        with pytest.raises(ValueError):
            conn.send_close(code)
    with pytest.raises(ValueError):
        conn.send_close(None, "reason without a code")
    assert conn.data_to_send() == []
    assert conn.state is State.OPEN


def test_send_close_without_status() -> None:
    conn = ServerConnection()
    conn.send_close(None)
    assert conn.data_to_send() == [b"\x88\x00"]
    conn.send_close(1000)
    assert conn.data_to_send() == []


def test_protocol_error_after_our_close_fails_without_a_second_close_frame() -> None:
    conn = ServerConnection()
    conn.send_close(1000)
    conn.data_to_send()
    assert feed(conn, client_frame(TEXT, b"x", mask=None)) == [
        ConnectionFailed(1002, "frame not masked")
    ]
    conn.fail(1002, "frame not masked")
    assert conn.data_to_send() == []
    assert conn.close_expected()


def test_fail_truncates_reason_to_123_bytes_on_a_character_boundary() -> None:
    conn = ServerConnection()
    conn.fail(1011, "é" * 100)  # 200 bytes of UTF-8
    [frame] = conn.data_to_send()
    assert frame == b"\x88\x7c\x03\xf3" + "é".encode() * 61  # 122 bytes
    conn.fail(1011, "again")
    assert conn.data_to_send() == []


def test_fail_with_unsendable_code_sends_nothing() -> None:
    conn = ServerConnection()
    conn.fail(1006)
    assert conn.data_to_send() == []
    assert conn.close_expected()
    with pytest.raises(ValueError):
        ServerConnection().fail(2000)


# EOF ------------------------------------------------------------------------------


def test_eof_without_close_is_abnormal_closure() -> None:
    conn = ServerConnection()
    conn.receive_data(client_frame(TEXT, b"partial")[:-1])
    conn.receive_eof()
    assert conn.events_received() == [ConnectionFailed(1006, "connection closed")]
    assert conn.state is State.CLOSED and conn.close_expected()
    conn.fail(1006, "connection closed")  # what a generic glue does: harmless
    conn.send_close(1000)
    assert conn.data_to_send() == []
    with pytest.raises(InvalidState):
        conn.send_text("x")


def test_eof_after_close_handshake_emits_nothing() -> None:
    conn = ServerConnection()
    feed(conn, client_frame(CLOSE, close_payload(1000)))
    conn.send_close(1000)
    conn.data_to_send()
    conn.receive_eof()
    conn.receive_data(client_frame(TEXT, b"x"))
    assert conn.events_received() == []
    assert conn.state is State.CLOSED


# any split gives the same events --------------------------------------------------

STREAM = (
    client_frame(TEXT, "héllo".encode())
    + client_frame(BINARY, b"\x00" * 126)
    + client_frame(TEXT, b"fr", fin=False, mask=b"\xff\x00\xaa\x55")
    + client_frame(PING, b"ping")
    + client_frame(CONT, "ag€".encode(), fin=False, mask=b"\x10\x20\x30\x40")
    + client_frame(CONT, b"", fin=True)
    + client_frame(BINARY, b"", fin=False)
    + client_frame(CONT, bytes(range(7)), mask=b"\x00\x00\x00\x00")
    + client_frame(CLOSE, close_payload(1000, b"done"))
)
STREAM_EVENTS: list[Event] = [
    TextMessage("héllo"),
    BinaryMessage(b"\x00" * 126),
    PingReceived(b"ping"),
    TextMessage("frag€"),
    BinaryMessage(bytes(range(7))),
    CloseReceived(1000, "done"),
]


@pytest.mark.parametrize("speedups", [True, False], ids=["fastest", "pure-python"])
def test_every_split_point_gives_the_same_events(
    speedups: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not speedups:  # the same parser with the pure-Python masking paths
        monkeypatch.setattr(server.websocket, "apply_mask", apply_mask_py)
        monkeypatch.setattr(server.websocket, "apply_mask_join", apply_mask_join_py)
    for cuts in split_points(STREAM + b"trailing junk"):
        assert run(STREAM + b"trailing junk", cuts) == (STREAM_EVENTS, b"\x8a\x04ping")


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    data = b""
    events: list[Event] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["text", "binary", "ping", "pong"]))
        mask = draw(st.binary(min_size=4, max_size=4))
        if kind in ("ping", "pong"):
            payload = draw(st.binary(max_size=125))
            data += client_frame(PING if kind == "ping" else PONG, payload, mask=mask)
            events.append((PingReceived if kind == "ping" else PongReceived)(payload))
            continue
        if kind == "text":
            text = draw(st.text(max_size=300))
            payload = text.encode()
            events.append(TextMessage(text))
        else:
            payload = draw(st.binary(max_size=300))
            events.append(BinaryMessage(payload))
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=4)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for i, piece in enumerate(pieces):
            opcode = (TEXT if kind == "text" else BINARY) if i == 0 else CONT
            data += client_frame(opcode, piece, fin=i == len(pieces) - 1, mask=mask)
    return data, events


@settings(max_examples=150, deadline=None)
@given(messages(), st.data())
def test_any_split_of_the_stream_gives_the_same_events(
    stream: tuple[bytes, list[Event]], data: st.DataObject
) -> None:
    raw, events = stream
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    got, sent = run(raw, cuts)
    assert got == events
    pongs = [Frame(PONG, e.data) for e in events if isinstance(e, PingReceived)]
    assert sent == b"".join(f.serialize() for f in pongs)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.data())
def test_random_bytes_never_raise(raw: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=4)))
    events, _ = run(raw, cuts)
    assert all(not isinstance(e, ConnectionFailed) or e.code in (1002, 1007, 1009) for e in events)


def test_conversation_with_wsproto_client() -> None:
    # wsproto's client as an oracle for both directions.
    client = WsprotoConnection(ConnectionType.CLIENT)
    big = bytes(range(256)) * 300
    data = client.send(wsproto.events.TextMessage("héllo"))
    data += client.send(wsproto.events.BytesMessage(big))
    data += client.send(wsproto.events.TextMessage("par", message_finished=False))
    data += client.send(wsproto.events.Ping(b"p"))
    data += client.send(wsproto.events.TextMessage("tial €"))
    data += client.send(wsproto.events.CloseConnection(1001, "bye"))
    conn = ServerConnection()
    conn.receive_data(data)
    events = conn.events_received()
    assert events == [
        TextMessage("héllo"),
        BinaryMessage(big),
        PingReceived(b"p"),
        TextMessage("partial €"),
        CloseReceived(1001, "bye"),
    ]
    for event in events:
        if isinstance(event, TextMessage):
            conn.send_text(event.data)
        elif isinstance(event, BinaryMessage):
            conn.send_binary(event.data)
    conn.send_close(1001, "bye")
    client.receive_data(b"".join(conn.data_to_send()))
    got = [
        (type(e).__name__, getattr(e, "data", None) or getattr(e, "payload", None))
        for e in client.events()
    ]
    assert got == [
        ("Pong", b"p"),
        ("TextMessage", "héllo"),
        ("BytesMessage", big),
        ("TextMessage", "partial €"),
        ("CloseConnection", None),
    ]
    assert (conn.state, conn.close_expected()) == (State.CLOSED, True)
