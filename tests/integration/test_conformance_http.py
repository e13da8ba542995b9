"""HTTP/1.1 cases from uvicorn's and h11's suites, run black-box against a real wsrun.

Where uvicorn behaves the same, the case runs against both (`server` parameter), so a
difference between them shows; where the RFC asks for more than uvicorn does, the case
runs against wsrun alone and says why.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from tests.integration.rawclient import Reader, connect, read_response, recv_until_closed
from tests.procs import serve

APP = "tests.integration.apps:conformance"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    with serve("wsrun", APP, args=["--no-access-log"]) as ours, serve(
        "uvicorn", APP, args=["--http", "h11"]  # the same oracle whether httptools is installed
    ) as theirs:
        yield {"wsrun": ours, "uvicorn": theirs}


BOTH = pytest.mark.parametrize("server", ["wsrun", "uvicorn"])


def read_all(addr: str, data: bytes, shut: bool = False) -> bytes:
    with connect(addr) as sock:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        return recv_until_closed(sock)


@BOTH
def test_early_response_then_body_keeps_the_connection(
    servers: dict[str, str], server: str
) -> None:
    # uvicorn test_early_response: the app answers before the body arrives; the body that
    # follows is read and dropped, and the connection serves the next request.
    with connect(servers[server]) as sock:
        sock.sendall(b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 18\r\n\r\n")
        reader = Reader(sock)
        assert read_response(reader)[::2] == (200, b"early")
        sock.sendall(b'{"hello": "world"}'
                     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nnext")
        status, headers, body = read_response(reader)
    assert (status, body) == (200, b"next")
    assert "connection" not in headers


@BOTH
def test_early_response_to_a_chunked_body_keeps_the_connection(
    servers: dict[str, str], server: str
) -> None:
    with connect(servers[server]) as sock:
        sock.sendall(b"POST /early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n")
        reader = Reader(sock)
        assert read_response(reader)[::2] == (200, b"early")
        sock.sendall(b"2\r\nde\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_response(reader)[::2] == (200, b"")


def test_early_response_to_an_unsent_100_continue_body_closes(servers: dict[str, str]) -> None:
    # RFC 9110 10.1.1: a client that sent "Expect: 100-continue" and got a final status
    # instead may or may not send the body; the server cannot tell what comes next.
    response = read_all(servers["wsrun"], b"POST /early HTTP/1.1\r\nHost: a\r\n"
                        b"Content-Length: 18\r\n"
                        b"Expect: 100-continue\r\n\r\n")
    status, headers, body = read_response(Reader(None, response))
    assert (status, headers["connection"], body) == (200, "close", b"early")
    assert b"100 Continue" not in response


def test_bad_body_after_the_response_started_cuts_without_a_second_status(
    servers: dict[str, str],
) -> None:
    # The 200 head and a chunk are out: a 400 now would land inside the chunked body and
    # be read as body bytes (uvicorn writes it there). Cutting the connection is all that
    # is left (the response has no last-chunk, so the client knows it is incomplete).
    with connect(servers["wsrun"]) as sock:
        sock.sendall(b"POST /stream-slow HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        reader = Reader(sock)
        head = reader.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert reader.read_exact(9) == b"4\r\nhead\r\n"
        sock.sendall(b"zz\r\n")  # not a chunk size
        assert bytes(reader.buf) + recv_until_closed(sock) == b""


def test_truncated_body_after_the_response_started_cuts_without_a_second_status(
    servers: dict[str, str],
) -> None:
    with connect(servers["wsrun"]) as sock:
        sock.sendall(b"POST /stream-slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        reader = Reader(sock)
        assert reader.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 200 OK\r\n")
        assert reader.read_exact(9) == b"4\r\nhead\r\n"
        sock.shutdown(socket.SHUT_WR)  # EOF 7 bytes short of the Content-Length
        assert bytes(reader.buf) + recv_until_closed(sock) == b""


def received(addr: str, n: int) -> list[str]:
    """What /receive-all got, once it holds `n` messages (bounded wait)."""
    import json
    import time

    deadline = time.monotonic() + 5
    while True:
        body = read_response(Reader(None, read_all(addr, b"GET /received HTTP/1.1\r\nHost: a\r\n"
                                                     b"Connection: close\r\n\r\n")))[2]
        messages: list[str] = json.loads(body)
        if len(messages) >= n or time.monotonic() > deadline:
            return messages
        time.sleep(0.02)


@BOTH
def test_client_gone_mid_body_gives_the_app_http_disconnect(
    servers: dict[str, str], server: str
) -> None:
    addr = servers[server]
    before = len(received(addr, 0))
    with connect(addr) as sock:
        sock.sendall(b"POST /receive-all HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        received(addr, before + 1)  # the app has the first piece
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    assert received(addr, before + 2)[before:] == ["http.request", "http.disconnect"]


@BOTH
def test_pipelined_requests_wait_for_a_slow_first_response(
    servers: dict[str, str], server: str
) -> None:
    with connect(servers[server]) as sock:
        sock.sendall(b"POST /sleep?0.3 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nslow"
                     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nfast"
                     b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        reader = Reader(sock)
        bodies = [read_response(reader)[2] for _ in range(3)]
        assert recv_until_closed(sock) == b""
    assert bodies == [b"slow", b"fast", b""]


@BOTH
def test_app_crash_after_the_head_cuts_without_a_500(servers: dict[str, str], server: str) -> None:
    # uvicorn test_exception_during_response: no 500 after a started response; the chunked
    # body ends without its last chunk, so the client sees it is incomplete.
    response = read_all(servers[server], b"GET /crash-after-body HTTP/1.1\r\nHost: a\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"1\r\n1\r\n"


@BOTH
def test_message_after_the_last_body_closes_the_connection(
    servers: dict[str, str], server: str
) -> None:
    response = read_all(servers[server], b"GET /after-complete HTTP/1.1\r\nHost: a\r\n\r\n")
    status, _, body = read_response(Reader(None, response))
    assert (status, body) == (200, b"done")


@BOTH
def test_header_values_from_an_iterator_with_tab_space_and_non_ascii(
    servers: dict[str, str], server: str
) -> None:
    response = read_all(servers[server], b"GET /header-values HTTP/1.1\r\nHost: a\r\n"
                        b"Connection: close\r\n\r\n")
    assert b"\r\nx-iter: test value\r\n" in response
    assert "\r\nx-chars: <\t µ>\r\n".encode() in response


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_send_no_body_and_keep_the_connection(
    servers: dict[str, str], status: int
) -> None:
    # RFC 9112 6.3: 204 and 304 responses end at the head (uvicorn sends the app's body,
    # which the client would read as the start of the next response).
    with connect(servers["wsrun"]) as sock:
        sock.sendall(b"GET /status?%d HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n"
                     b"Connection: close\r\n\r\n" % status)
        reader = Reader(sock)
        head = reader.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status)
        # RFC 9110 8.6: no Content-Length in a 204; a 304 may carry the would-be length.
        assert (b"content-length" in head) == (status == 304)
        assert read_response(reader)[::2] == (200, b"")


@BOTH
def test_head_response_keeps_the_length_and_sends_no_body(
    servers: dict[str, str], server: str
) -> None:
    with connect(servers[server]) as sock:
        sock.sendall(b"HEAD /status?200 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n"
                     b"Connection: close\r\n\r\n")
        reader = Reader(sock)
        head = reader.read_until(b"\r\n\r\n")
        assert b"\r\ncontent-length: 4\r\n" in head
        assert read_response(reader)[::2] == (200, b"")


@BOTH
@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"G?T / HTTP/1.1", 400),  # uvicorn test_invalid_http_request
        (b"GET /?x=y z HTTP/1.1", 400),
        (b"GET / HTTP1.1", 400),
        (b"GET / http/1.1", 400),  # RFC 9112 2.3: HTTP-name is case-sensitive
        (b"GET  / HTTP/1.1", 400),
        (b"GET / HTTP/1.1 ", 400),
    ],
    ids=["invalid-method", "space-in-target", "no-slash-version", "lowercase-version",
         "double-space", "trailing-space"],
)
def test_invalid_request_lines(
    servers: dict[str, str], server: str, request_line: bytes, status: int
) -> None:
    if server == "uvicorn" and request_line.count(b" ") != 2:
        pytest.skip("uvicorn (h11) waits instead of answering these")
    response = read_all(servers[server], request_line + b"\r\nHost: a\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 %d " % status)
    assert b"\r\nconnection: close\r\n" in response.lower()  # field names: any case


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /%ff HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # ASGI path is UTF-8
        (b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # RFC 3986: a URI is ASCII
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400),  # DEL is a CTL
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),  # HTTP/0.9
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"0x3\r\nabc\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
    ],
    ids=["bad-utf8-path", "raw-utf8-path", "del-in-value", "space-in-host", "http09",
         "te-identity", "chunk-size-0x", "cl-plus"],
)
def test_stricter_than_uvicorn(servers: dict[str, str], raw: bytes, status: int) -> None:
    response = read_all(servers["wsrun"], raw)
    assert response.startswith(b"HTTP/1.1 %d " % status)


@BOTH
def test_empty_host_is_valid(servers: dict[str, str], server: str) -> None:
    # RFC 9112 3.2: with no authority in the target URI, "a client MUST send a Host header
    # field with an empty field value".
    response = read_all(servers[server], b"GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")


@BOTH
def test_options_asterisk_and_absolute_form(servers: dict[str, str], server: str) -> None:
    for target in (b"*", b"http://a/x?y=1"):
        method = b"OPTIONS" if target == b"*" else b"GET"
        response = read_all(servers[server], method + b" " + target
                            + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
