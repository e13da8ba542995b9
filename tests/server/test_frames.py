"""Frame codec: RFC 6455 5.7 bytes, length boundaries, masking, close payloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import websockets.frames
import websockets.protocol
from hypothesis import given
from hypothesis import strategies as st

from server.errors import InvalidUTF8, ProtocolError
from server.frames import (
    CloseCode,
    Frame,
    MaskFunction,
    Opcode,
    apply_mask,
    apply_mask_c,
    apply_mask_join,
    apply_mask_join_py,
    apply_mask_py,
    frame_header,
    is_valid_close_code,
    parse_close,
    parse_frames,
    serialize_close,
)
from tests.helpers import client_frame, xor_mask

RFC_MASK = bytes.fromhex("37fa213d")


# RFC 6455 5.7 examples ------------------------------------------------------------


def test_rfc_single_frame_unmasked_text() -> None:
    frame = Frame(Opcode.TEXT, b"Hello")
    assert frame.serialize() == bytes.fromhex("810548656c6c6f")
    assert Frame.parse(bytes.fromhex("810548656c6c6f")) == frame


def test_rfc_single_frame_masked_text() -> None:
    data = bytes.fromhex("818537fa213d7f9f4d5158")
    assert Frame(Opcode.TEXT, b"Hello").serialize(RFC_MASK) == data
    assert Frame.parse(data) == Frame(Opcode.TEXT, b"Hello")


def test_rfc_fragmented_unmasked_text() -> None:
    first = Frame(Opcode.TEXT, b"Hel", fin=False)
    second = Frame(Opcode.CONT, b"lo")
    assert first.serialize() == bytes.fromhex("010348656c")
    assert second.serialize() == bytes.fromhex("80026c6f")
    assert parse_frames(bytes.fromhex("010348656c80026c6f")) == [first, second]


def test_rfc_unmasked_ping_and_masked_pong() -> None:
    assert Frame(Opcode.PING, b"Hello").serialize() == bytes.fromhex("890548656c6c6f")
    pong = bytes.fromhex("8a8537fa213d7f9f4d5158")
    assert Frame(Opcode.PONG, b"Hello").serialize(RFC_MASK) == pong
    assert Frame.parse(pong) == Frame(Opcode.PONG, b"Hello")


def test_rfc_256_bytes_binary_uses_16_bit_length() -> None:
    payload = bytes(range(256))
    assert Frame(Opcode.BINARY, payload).serialize() == b"\x82\x7e\x01\x00" + payload


def test_rfc_64_kib_binary_uses_64_bit_length() -> None:
    payload = b"x" * 65536
    data = Frame(Opcode.BINARY, payload).serialize()
    assert data[:10] == b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"
    assert data[10:] == payload


# frame_header ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (40_000, b"\x81\x7e\x9c\x40"),  # the seed packed this signed: negative
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (2**32, b"\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x00"),
        (2**63 - 1, b"\x81\x7f\x7f\xff\xff\xff\xff\xff\xff\xff"),
    ],
)
def test_frame_header_boundary_lengths(length: int, header: bytes) -> None:
    assert frame_header(Opcode.TEXT, length) == header


def test_frame_header_without_fin() -> None:
    assert frame_header(Opcode.BINARY, 3, fin=False) == b"\x02\x03"
    assert frame_header(Opcode.CONT, 3) == b"\x80\x03"


@pytest.mark.parametrize("length", [-1, 2**63, 2**64 - 1, 2**64])
def test_frame_header_rejects_impossible_lengths(length: int) -> None:
    with pytest.raises(ValueError):
        frame_header(Opcode.BINARY, length)


# apply_mask -----------------------------------------------------------------------


MASKERS = [
    pytest.param(apply_mask_py, id="python"),
    pytest.param(
        apply_mask_c,
        id="c",
        marks=pytest.mark.skipif(apply_mask_c is None, reason="server._speedups is not built"),
    ),
]


def test_apply_mask_is_the_fastest_available() -> None:
    assert apply_mask is (apply_mask_c or apply_mask_py)


@pytest.mark.parametrize("mask_fn", MASKERS)
@given(data=st.binary(max_size=2000), mask=st.binary(min_size=4, max_size=4))
def test_apply_mask_matches_per_byte_xor(mask_fn: MaskFunction, data: bytes, mask: bytes) -> None:
    assert mask_fn(data, mask) == xor_mask(data, mask)
    assert mask_fn(mask_fn(data, mask), mask) == data


@pytest.mark.parametrize("mask_fn", MASKERS)
@pytest.mark.parametrize("size", [0, 3, 10, 511, 512, 513, 70_001])
def test_apply_mask_accepts_bytearray_and_memoryview(mask_fn: MaskFunction, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    expected = xor_mask(data, RFC_MASK)
    assert mask_fn(data, RFC_MASK) == expected
    assert mask_fn(bytearray(data), bytearray(RFC_MASK)) == expected
    assert mask_fn(memoryview(data), RFC_MASK) == expected
    assert type(mask_fn(bytearray(data), RFC_MASK)) is bytes


@pytest.mark.parametrize("mask_fn", MASKERS)
def test_apply_mask_keeps_leading_and_trailing_zero_bytes(mask_fn: MaskFunction) -> None:
    # A big-int round trip must not drop zero bytes at either end.
    mask = b"\x01\x02\x03\x04"
    assert mask_fn(b"\x01\x02\x03\x04\x01\x02", mask) == bytes(6)
    assert mask_fn(b"\x00\x00\x03\x04\x01", mask) == b"\x01\x02\x00\x00\x00"
    assert mask_fn(b"\x01\x02\x03\x05", mask) == b"\x00\x00\x00\x01"
    assert mask_fn(bytes(7), b"\x00\x00\x00\x00") == bytes(7)


@pytest.mark.parametrize("mask_fn", MASKERS)
@pytest.mark.parametrize("mask", [b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
def test_apply_mask_rejects_wrong_mask_size(mask_fn: MaskFunction, mask: bytes) -> None:
    with pytest.raises(ValueError, match="mask must be 4 bytes"):
        mask_fn(b"abc", mask)


JOINERS = [
    pytest.param(apply_mask_join_py, id="python"),
    pytest.param(
        apply_mask_join,
        id="c",
        marks=pytest.mark.skipif(apply_mask_c is None, reason="server._speedups is not built"),
    ),
]


@pytest.mark.parametrize("join_fn", JOINERS)
@given(pieces=st.lists(st.binary(max_size=300), max_size=8),
       mask=st.binary(min_size=4, max_size=4))
def test_apply_mask_join_equals_masking_the_joined_pieces(
    join_fn: Callable[[list[bytes], bytes], bytes], pieces: list[bytes], mask: bytes
) -> None:
    # Pieces of any length: the mask phase carries over from one piece to the next.
    assert join_fn(pieces, mask) == xor_mask(b"".join(pieces), mask)


@pytest.mark.parametrize("join_fn", JOINERS)
def test_apply_mask_join_rejects_a_wrong_mask(
    join_fn: Callable[[list[bytes], bytes], bytes],
) -> None:
    with pytest.raises(ValueError, match="mask must be 4 bytes"):
        join_fn([b"abc"], b"\x01\x02")


# Frame round trips and parse errors ----------------------------------------------

opcodes = st.sampled_from(list(Opcode))


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    opcode = draw(opcodes)
    control = opcode >= 8
    size = 125 if control else 70_000
    payload = draw(st.binary(max_size=size) | st.sampled_from([b"", b"x" * 126, b"y" * 65536]))
    if control:
        payload = payload[:125]
    return Frame(
        opcode,
        payload,
        fin=True if control else draw(st.booleans()),
        rsv1=draw(st.booleans()),
        rsv2=draw(st.booleans()),
        rsv3=draw(st.booleans()),
    )


@given(frames(), st.none() | st.binary(min_size=4, max_size=4))
def test_frame_round_trip(frame: Frame, mask: bytes | None) -> None:
    assert Frame.parse(frame.serialize(mask)) == frame


def test_frame_serialize_sets_rsv_bits() -> None:
    frame = Frame(Opcode.BINARY, b"", rsv1=True, rsv2=True, rsv3=True)
    assert frame.serialize() == b"\xf2\x00"


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_parse_rejects_reserved_opcode(opcode: int) -> None:
    with pytest.raises(ProtocolError) as exc:
        Frame.parse(bytes((0x80 | opcode, 0)))
    assert exc.value.close_code == 1002


def test_parse_rejects_64_bit_length_with_top_bit() -> None:
    data = client_frame(Opcode.BINARY, b"", length=2**63, mask=None)
    with pytest.raises(ProtocolError) as exc:
        Frame.parse(data)
    assert exc.value.close_code == 1002
    assert exc.value.reason == "payload length with the most significant bit set"


def test_parse_rejects_fragmented_control_frame() -> None:
    with pytest.raises(ProtocolError, match="fragmented control frame"):
        Frame.parse(client_frame(Opcode.PING, b"x", fin=False))


def test_parse_rejects_long_control_frame() -> None:
    with pytest.raises(ProtocolError, match="control frame payload over 125 bytes"):
        Frame.parse(client_frame(Opcode.PONG, b"x" * 126))


@pytest.mark.parametrize("cut", [0, 1, 3, 5, 7])
def test_parse_rejects_truncated_frame(cut: int) -> None:
    data = client_frame(Opcode.TEXT, b"x" * 200)  # 2 + 2 + 4 header bytes
    with pytest.raises(ProtocolError, match="truncated"):
        Frame.parse(data[:cut])
    with pytest.raises(ProtocolError, match="truncated frame payload"):
        Frame.parse(data[:-1])


def test_parse_rejects_trailing_bytes() -> None:
    with pytest.raises(ProtocolError, match="1 bytes after the frame"):
        Frame.parse(Frame(Opcode.TEXT, b"hi").serialize() + b"\x81")


# close payloads -------------------------------------------------------------------


def test_serialize_close() -> None:
    assert serialize_close(1000) == b"\x03\xe8"
    assert serialize_close(1001, "bye") == b"\x03\xe9bye"
    assert serialize_close(4999, "é") == b"\x13\x87\xc3\xa9"
    assert serialize_close(None) == b""


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_serialize_close_rejects_codes_that_must_not_be_sent(code: int) -> None:
    with pytest.raises(ValueError):
        serialize_close(code)


def test_serialize_close_limits() -> None:
    assert len(serialize_close(1000, "x" * 123)) == 125
    with pytest.raises(ValueError):
        serialize_close(1000, "x" * 124)
    with pytest.raises(ValueError):
        serialize_close(None, "reason without code")


def test_parse_close_empty_is_1005() -> None:
    assert parse_close(b"") == (1005, "")
    assert parse_close(b"") == (CloseCode.NO_STATUS_RCVD, "")


# Autobahn 7.7.x valid codes, plus the IANA registry's 1012-1014.
VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
VALID_CODES += [3000, 3999, 4000, 4999]
# Autobahn 7.9.x and 7.13.x invalid codes, plus 1015 (never sent on the wire).
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_parse_close_accepts_valid_codes(code: int) -> None:
    assert parse_close(code.to_bytes(2, "big") + "ok ✓".encode()) == (code, "ok ✓")
    assert is_valid_close_code(code)


@pytest.mark.parametrize("code", INVALID_CODES)
def test_parse_close_rejects_invalid_codes(code: int) -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_close(code.to_bytes(2, "big"))
    assert exc.value.close_code == 1002
    assert exc.value.reason == f"invalid close code {code}"
    assert not is_valid_close_code(code)


def test_parse_close_rejects_one_byte_payload() -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_close(b"\x03")
    assert exc.value.close_code == 1002


def test_parse_close_rejects_invalid_utf8_reason() -> None:
    with pytest.raises(InvalidUTF8) as exc:
        parse_close(b"\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")
    assert exc.value.close_code == 1007


@given(st.sampled_from(VALID_CODES), st.text(max_size=40))
def test_close_round_trip(code: int, reason: str) -> None:
    payload = serialize_close(code, reason) if len(reason.encode()) <= 123 else None
    if payload is not None:
        assert parse_close(payload) == (code, reason)


# reference peers as oracles -------------------------------------------------------


@given(st.sampled_from(list(Opcode)), st.binary(max_size=70_000), st.booleans())
def test_websockets_client_frames_parse_the_same(opcode: Opcode, payload: bytes, fin: bool) -> None:
    if opcode >= 8:
        payload, fin = payload[:125], True
    ref = websockets.frames.Frame(websockets.frames.Opcode(opcode), payload, fin)
    assert Frame.parse(ref.serialize(mask=True, extensions=[])) == Frame(opcode, payload, fin)


@given(st.sampled_from([Opcode.TEXT, Opcode.BINARY]), st.binary(max_size=70_000))
def test_our_server_frames_parse_in_websockets_client(opcode: Opcode, payload: bytes) -> None:
    if opcode == Opcode.TEXT:
        payload = payload.decode(errors="replace").encode()
    client = websockets.protocol.Protocol(
        websockets.protocol.Side.CLIENT, state=websockets.protocol.State.OPEN, max_size=None
    )
    client.receive_data(frame_header(opcode, len(payload)) + payload)
    [frame] = client.events_received()
    assert (frame.opcode.value, frame.data, frame.fin) == (opcode, payload, True)


# --- benchmark: `python -m tests.server.test_frames` (never run by pytest) ----------


def _bench(count: int = 100_000, repeat: int = 9) -> None:  # pragma: no cover
    """Print wsrun's core against websockets' sans-I/O Protocol on the same bytes."""
    import time

    from websockets.protocol import Protocol, Side, State

    from server.websocket import ServerConnection

    def best(run: Callable[[], int]) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    def parse(chunks: list[bytes], new: Callable[[], object]) -> Callable[[], int]:
        def run() -> int:
            conn: Any = new()
            received = 0
            for chunk in chunks:
                conn.receive_data(chunk)
                received += len(conn.events_received())
            return received

        return run

    def chop(data: bytes) -> list[bytes]:
        return [data[i : i + 65536] for i in range(0, len(data), 65536)]

    def ours() -> object:
        return ServerConnection(max_message_size=2**24)

    def theirs() -> object:
        return Protocol(Side.SERVER, state=State.OPEN, max_size=2**24)

    small = chop(Frame(Opcode.TEXT, b"x" * 32).serialize(RFC_MASK) * count)
    large = chop(Frame(Opcode.BINARY, bytes(2**20)).serialize(RFC_MASK) * 20)

    def send_ours() -> int:
        conn = ServerConnection()
        for _ in range(count):
            conn.send_text("x" * 32)
        return len(conn.data_to_send())

    def send_theirs() -> int:
        conn = Protocol(Side.SERVER, state=State.OPEN)
        for _ in range(count):
            conn.send_text(("x" * 32).encode())
        return len(conn.data_to_send())

    print(f"C speedups: {apply_mask_c is not None}")
    cases = [
        (f"parse {count} masked 32-byte text frames", parse(small, ours), parse(small, theirs)),
        (f"serialize {count} 32-byte text frames", send_ours, send_theirs),
        ("parse 20 masked 1 MiB binary frames", parse(large, ours), parse(large, theirs)),
    ]
    for name, mine, ref in cases:
        a, b = best(mine), best(ref)
        print(f"{name}: wsrun {a * 1e3:.1f} ms, websockets {b * 1e3:.1f} ms ({b / a:.2f}x)")


if __name__ == "__main__":
    _bench()
