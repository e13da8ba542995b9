"""WebSocket cases from uvicorn's and websockets' suites, black-box against a real wsrun.

Cases where uvicorn agrees run against both servers (`server` parameter); the rest run
against wsrun alone and say which RFC 6455 / ASGI rule they check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

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

APP = "tests.integration.apps:conformance"
TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10
HANDSHAKE = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
BOTH = pytest.mark.parametrize("server", ["wsrun", "uvicorn"])


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    with serve("wsrun", APP, args=["--no-access-log", "--ws-close-timeout", "1"]) as ours, \
            serve("uvicorn", APP) as theirs:
        yield {"wsrun": ours, "uvicorn": theirs}


def handshake(addr: str, path: str) -> tuple[int, dict[str, str], bytes]:
    response = exchange(addr, f"GET {path} HTTP/1.1\r\nHost: a\r\n{HANDSHAKE}\r\n".encode())
    return read_response(Reader(None, response))


def ws_recorded(addr: str, n: int) -> list[str]:
    deadline = time.monotonic() + 5
    while len(got := httpx.get(f"http://{addr}/ws-recorded").json()) < n:
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return got  # type: ignore[no-any-return]


# -- websocket.http.response (denial) edge cases -----------------------------------------


def test_denial_with_an_invalid_status_is_a_500(servers: dict[str, str]) -> None:
    # uvicorn test_server_reject_connection_with_invalid_status: status 700 is the app's
    # bug, found before anything was written: the client still gets a proper 500.
    status, headers, _ = handshake(servers["wsrun"], "/deny-invalid-status")
    assert (status, headers["connection"]) == (500, "close")


def test_denial_without_a_body_still_sends_the_apps_status(servers: dict[str, str]) -> None:
    # uvicorn test_server_reject_connection_with_missing_body: start, then the app
    # returns (the installed uvicorn closes without a response).
    status, _, body = handshake(servers["wsrun"], "/deny-start-only")
    assert (status, body) == (401, b"")


def test_second_denial_start_is_refused_with_uvicorns_message(servers: dict[str, str]) -> None:
    addr = servers["wsrun"]
    before = len(ws_recorded(addr, 0))
    status, _, body = handshake(addr, "/deny-twice")
    assert (status, body) == (404, b"")
    assert ws_recorded(addr, before + 1)[before:] == [
        "Expected ASGI message 'websocket.http.response.body' but got "
        "'websocket.http.response.start'."]


def test_app_crash_during_the_denial_sends_its_status(servers: dict[str, str]) -> None:
    # uvicorn test_server_reject_connection_with_invalid_msg: the client sees the 404.
    assert handshake(servers["wsrun"], "/deny-twice-crash")[0] == 404


@BOTH
def test_denial_body_given_whole_gets_a_content_length(
    servers: dict[str, str], server: str
) -> None:
    # uvicorn test_server_reject_connection_with_body_nolength (websockets implementation).
    addr = servers[server]
    before = len(ws_recorded(addr, 0))
    status, headers, body = handshake(addr, "/deny-no-length")
    assert (status, headers.get("content-length"), body) == (403, "8", b"hardbody")
    assert "transfer-encoding" not in headers
    disconnect = json.loads(ws_recorded(addr, before + 1)[before])
    assert (disconnect["type"], disconnect["code"]) == ("websocket.disconnect", 1006)


# -- websocket.close from the app --------------------------------------------------------


@pytest.mark.parametrize("code", [999, 1004, 1006, 1015, 5000])
def test_app_close_with_a_code_that_must_not_be_sent_closes_with_1011(
    servers: dict[str, str], code: int
) -> None:
    # RFC 6455 7.4.1: 1006 and 1015 "MUST NOT be set as a status code in a Close control
    # frame"; 999, 1004 and 5000 are not in the registry. The app's send() raises; the
    # connection must still end (it used to stay open with no close frame at all).
    sock, reader, status, _ = upgrade(servers["wsrun"], f"/close-code?{code}")
    with sock:
        assert status == 101
        assert read_close(reader) == (1011, b"internal error")
        sock.sendall(client_frame(CLOSE, close_payload(1011)))
        assert recv_until_closed(sock) == b""


@BOTH
@pytest.mark.parametrize("code", [1000, 3000, 4999])
def test_app_close_codes_are_sent_as_given(servers: dict[str, str], server: str, code: int) -> None:
    sock, reader, _, _ = upgrade(servers[server], f"/close-code?{code}")
    with sock:
        assert read_close(reader) == (code, b"")


def test_app_close_reason_is_cut_to_123_bytes_on_a_character_boundary(
    servers: dict[str, str],
) -> None:
    sock, reader, _, _ = upgrade(servers["wsrun"], "/close-long-reason")
    with sock:
        code, reason = read_close(reader)
    assert code == 1000
    assert reason == "é".encode() * 61  # 122 bytes: a 62nd "é" would need 124


# -- handshake and frames ------------------------------------------------------------------


@BOTH
def test_missing_key_is_a_400_naming_the_header(servers: dict[str, str], server: str) -> None:
    # uvicorn test_invalid_upgrade accepts these bodies (websockets' and wsproto's words).
    response = exchange(servers[server], b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                        b"Connection: upgrade\r\nSec-WebSocket-Version: 11\r\n\r\n")
    status, _, body = read_response(Reader(None, response))
    assert status in (400, 426)
    if status == 400:
        assert body.decode().lower().strip().rstrip(".") in [
            "missing sec-websocket-key header",
            "failed to open a websocket connection: missing sec-websocket-key header",
        ]


@BOTH
def test_non_ascii_request_header_reaches_the_app(servers: dict[str, str], server: str) -> None:
    # uvicorn test_headers: a UTF-8 header value is passed through as bytes.
    sock, reader, status, _ = upgrade(servers[server], "/scope", extra="username: abraão\r\n")
    with sock:
        assert status == 101
        opcode, _, payload = read_frame(reader)
    headers = json.loads(payload)["headers"]
    assert ["username", "abraão".encode().decode("latin-1")] in headers


def test_messages_sent_before_the_close_reach_the_app(servers: dict[str, str]) -> None:
    # uvicorn test_server_can_read_messages_in_buffer_after_close, in bytes: three messages
    # and the close in one write; each is echoed, then the close (uvicorn drops the echoes:
    # the NON-STRICT ordering the issue describes).
    sock, reader, _, _ = upgrade(servers["wsrun"], "/")
    with sock:
        sock.sendall(client_frame(BINARY, b"abc") * 3 + client_frame(CLOSE, close_payload(1000)))
        frames = [read_frame(reader) for _ in range(4)]
    assert frames == [(BINARY, True, b"abc")] * 3 + [(CLOSE, True, close_payload(1000))]


@BOTH
def test_16_bit_length_for_a_short_payload_is_accepted(
    servers: dict[str, str], server: str
) -> None:
    # RFC 6455 5.2 says "the minimal number of bytes MUST be used", but for senders;
    # websockets, uvicorn and Autobahn accept a longer encoding from the client.
    sock, reader, _, _ = upgrade(servers[server], "/")
    with sock:
        sock.sendall(client_frame(TEXT, b"hi", length_bits=16)
                     + client_frame(TEXT, b"yo", length_bits=64))
        assert [read_frame(reader) for _ in range(2)] == [(TEXT, True, b"hi"), (TEXT, True, b"yo")]
