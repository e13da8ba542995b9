"""WebSocket over real sockets: handshake answers, close codes, ASGI events, backpressure."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from tests.helpers import close_payload
from tests.integration.rawclient import (
    Reader,
    client_frame,
    exchange,
    read_close,
    read_frame,
    read_response,
    recv_until_closed,
    upgrade,
)
from tests.procs import serve

TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10


@pytest.fixture(scope="module")
def addr() -> Iterator[str]:
    with serve(
        "wsrun",
        "tests.integration.apps:behaviours",
        args=["--no-access-log", "--ws-max-size", "65536"],
    ) as a:
        yield a


def recorded(addr: str) -> list[dict[str, object]]:
    return httpx.get(f"http://{addr}/recorded").json()  # type: ignore[no-any-return]


def wait_recorded(addr: str, n: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 5
    while len(events := recorded(addr)) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return events


# -- opening handshake -----------------------------------------------------------------------


def test_handshake_answers_the_rfc_example_key(addr: str) -> None:
    import base64

    sock, _, status, headers = upgrade(
        addr, "/echo", key=base64.b64decode("dGhlIHNhbXBsZSBub25jZQ==")
    )
    sock.close()
    assert status == 101
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert headers["server"] == "wsrun" and headers["date"].endswith(" GMT")
    assert headers["upgrade"].lower() == "websocket"
    assert "upgrade" in headers["connection"].lower()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", 400),
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\n"
            "Sec-WebSocket-Version: 13\r\n",
            400,
        ),
        (
            "Upgrade: websocket\r\nConnection: keep-alive\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            400,
        ),
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n",
            426,
        ),
    ],
    ids=["no-key", "short-key", "no-upgrade-token", "version-8"],
)
def test_bad_handshakes_get_their_status(addr: str, headers: str, status: int) -> None:
    response = exchange(addr, f"GET / HTTP/1.1\r\nHost: a\r\n{headers}\r\n".encode())
    assert int(response.split(b" ")[1]) == status
    if status == 426:
        assert b"\r\nsec-websocket-version: 13\r\n" in response.lower()


def test_connection_token_list_is_case_insensitive(addr: str) -> None:
    sock, _, status, _ = upgrade(addr, "/echo", extra="")
    sock.close()
    response = exchange(
        addr,
        b"GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\n"
        b"Connection: keep-alive, UPGRADE\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n" + client_frame(CLOSE, close_payload(1000)),
    )
    assert status == 101 and response.startswith(b"HTTP/1.1 101 ")


@pytest.mark.parametrize("request_line", [b"GET /echo HTTP/1.0", b"POST /echo HTTP/1.1"])
def test_http10_or_post_upgrade_gets_no_101(addr: str, request_line: bytes) -> None:
    response = exchange(
        addr,
        request_line + b"\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Content-Length: 0\r\n\r\n",
    )
    assert not response.startswith(b"HTTP/1.1 101")
    assert response.startswith(b"HTTP/1.1 200 ")


def test_frames_sent_with_the_request_are_kept(addr: str) -> None:
    frames = client_frame(TEXT, b"early") + client_frame(CLOSE, close_payload(1000))
    response = exchange(
        addr,
        b"GET /record HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        + frames,
    )
    _, _, after = response.partition(b"\r\n\r\n")
    assert after == b"\x81\x05early" + b"\x88\x02\x03\xe8"


def test_close_before_accept_is_403(addr: str) -> None:
    sock, _, status, _ = upgrade(addr, "/reject")
    sock.close()
    assert status == 403


def test_http_response_denial_carries_the_apps_status_and_body(addr: str) -> None:
    response = exchange(
        addr,
        b"GET /deny HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    status, headers, body = read_response(Reader(None, response))
    assert status == 401
    assert headers["www-authenticate"] == "Bearer"
    assert headers["connection"] == "close"
    assert body == b"no entry"


def test_app_exception_before_accept_is_500(addr: str) -> None:
    sock, _, status, _ = upgrade(addr, "/crash-before-accept")
    sock.close()
    assert status == 500


def test_app_exception_after_accept_closes_with_1011(addr: str) -> None:
    sock, reader, status, _ = upgrade(addr, "/crash-after-accept")
    with sock:
        assert status == 101
        sock.sendall(client_frame(TEXT, b"go"))
        assert read_close(reader) == (1011, b"internal error")


def test_accept_header_with_crlf_is_refused(addr: str) -> None:
    sock, _, status, headers = upgrade(addr, "/bad-accept-header")
    sock.close()
    assert status == 500
    assert "b" not in headers


def test_subprotocol_is_chosen_by_the_app(addr: str) -> None:
    async def main() -> tuple[str | None, str, str]:
        async with ws_connect(
            f"ws://{addr}/subprotocol", subprotocols=["chat.v0", "chat.v1"]
        ) as ws:
            return ws.subprotocol, str(await ws.recv()), ws.response.headers["x-chosen"]

    assert asyncio.run(main()) == ("chat.v1", "chat.v0,chat.v1", "chat.v1")


# -- frames and closing ---------------------------------------------------------------------


def test_echo_of_text_binary_empty_and_large_messages(addr: str) -> None:
    async def main() -> list[object]:
        async with ws_connect(f"ws://{addr}/record", max_size=None) as ws:
            out: list[object] = []
            for message in ["héllo", b"\x00\xff", "", b"", "x" * 40000, b"y" * 65536]:
                await ws.send(message)
                out.append(await ws.recv())
            return out

    assert asyncio.run(main()) == ["héllo", b"\x00\xff", "", b"", "x" * 40000, b"y" * 65536]


def test_ping_gets_a_pong_with_the_same_payload(addr: str) -> None:
    sock, reader, _, _ = upgrade(addr, "/record")
    with sock:
        sock.sendall(client_frame(PING, b"are you there?"))
        assert read_frame(reader) == (PONG, True, b"are you there?")


def test_unmasked_frame_fails_with_1002(addr: str) -> None:
    sock, reader, _, _ = upgrade(addr, "/record")
    with sock:
        sock.sendall(client_frame(TEXT, b"naked", mask=None))
        code, _ = read_close(reader)
        assert code == 1002
        assert recv_until_closed(sock) == b""  # then the server closes TCP
    assert wait_recorded(addr, 1)[-1]["code"] == 1002


def test_message_over_max_size_fails_with_1009_before_the_payload_arrives(addr: str) -> None:
    sock, reader, _, _ = upgrade(addr, "/record")
    with sock:
        header = client_frame(BINARY, b"", length=1 << 20)  # announces 1 MiB, sends none of it
        sock.sendall(header)
        assert read_close(reader)[0] == 1009


def test_invalid_utf8_fails_with_1007(addr: str) -> None:
    sock, reader, _, _ = upgrade(addr, "/record")
    with sock:
        sock.sendall(client_frame(TEXT, b"ok", fin=False) + client_frame(0, b"\xff", fin=False))
        assert read_close(reader)[0] == 1007


def test_message_before_a_protocol_error_is_echoed_before_the_close(addr: str) -> None:
    sock, reader, _, _ = upgrade(addr, "/record")
    with sock:
        sock.sendall(
            client_frame(TEXT, b"first")
            + client_frame(TEXT, b"bad", rsv1=True)
            + client_frame(PING, b"never")
        )
        assert read_frame(reader) == (TEXT, True, b"first")
        assert read_frame(reader)[0] == CLOSE
        assert recv_until_closed(sock) == b""  # no pong after the failure


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (close_payload(1000, b"done"), 1000),
        (close_payload(4123), 4123),
        (b"", None),
        (b"\x03", 1002),
        (close_payload(1005), 1002),
        (close_payload(2999), 1002),
        (close_payload(1000, b"\xff"), 1007),
    ],
)
def test_close_frames_are_echoed_or_refused(addr: str, payload: bytes, code: int | None) -> None:
    sock, reader, _, _ = upgrade(addr, "/record")
    with sock:
        sock.sendall(client_frame(CLOSE, payload))
        assert read_close(reader)[0] == code
        assert recv_until_closed(sock) == b""


def test_app_sees_the_clients_close_code_and_reason(addr: str) -> None:
    before = len(recorded(addr))

    async def main() -> None:
        async with ws_connect(f"ws://{addr}/record") as ws:
            await ws.close(4321, "see you")

    asyncio.run(main())
    assert wait_recorded(addr, before + 1)[-1] == {
        "type": "websocket.disconnect",
        "code": 4321,
        "reason": "see you",
    }


def test_app_sees_1006_when_tcp_just_drops(addr: str) -> None:
    before = len(recorded(addr))
    sock, _, _, _ = upgrade(addr, "/record")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST, no close frame
    assert wait_recorded(addr, before + 1)[-1]["code"] == 1006


def test_app_close_sends_code_and_reason(addr: str) -> None:
    async def main() -> tuple[int | None, str | None]:
        async with ws_connect(f"ws://{addr}/close-4000") as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason

    assert asyncio.run(main()) == (4000, "bye now")


def test_app_returning_after_accept_closes_with_1000(addr: str) -> None:
    sock, reader, _, _ = upgrade(addr, "/returns")
    with sock:
        assert read_close(reader) == (1000, b"")


# -- flow control ----------------------------------------------------------------------------


def test_client_that_never_reads_does_not_grow_server_memory(addr: str) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    host, port = addr.split(":")
    sock.connect((host, int(port)))
    with sock:
        sock.sendall(
            b"GET /flood HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        time.sleep(1.0)
        first = httpx.get(f"http://{addr}/sent").json()
        time.sleep(1.0)
        second = httpx.get(f"http://{addr}/sent").json()
    # send() waits once the write buffer is full: the app is stalled, at a few MiB at most.
    assert first == second
    assert second * 65536 < 32 * 1024 * 1024


def test_server_stops_reading_while_the_app_does_not_receive(addr: str) -> None:
    sock, reader, _, _ = upgrade(addr, "/lazy")
    with sock:
        sock.sendall(client_frame(TEXT, b"1.5"))  # the app sleeps 1.5 s before receiving
        sock.setblocking(False)
        frame = client_frame(TEXT, b"z" * 1024)
        sent = 0
        deadline = time.monotonic() + 1.0
        rest = b""
        while time.monotonic() < deadline and sent < 200_000:
            try:
                n = sock.send(frame)
            except BlockingIOError:
                break
            sent += 1
            if n < len(frame):
                rest = frame[n:]  # finished below, once the app reads again
                break
        # Reading paused: the kernel buffers filled and the client blocked long before
        # 200,000 frames (200 MB) went out.
        assert sent < 200_000
        sock.setblocking(True)
        sock.sendall(rest + client_frame(TEXT, b"done"))
        opcode, _, payload = read_frame(reader)
    assert (opcode, int(payload)) == (TEXT, sent + 1)
