"""server.response: one ResponseWriter frames one response (exact bytes out).

No event loop. h11 reads our framing back as an oracle.
"""

from __future__ import annotations

import h11
import pytest

from server.http11 import Request
from server.response import (
    DenialResponse,
    ResponseWriter,
    error_response,
    response_head,
    validate_header,
)
from tests.server.test_http11 import UPGRADE, parse


def writer_for(head: bytes) -> ResponseWriter:
    request = parse(head + b"\r\n")[0]
    assert isinstance(request, Request)
    return ResponseWriter(request)


def test_response_head_bytes() -> None:
    assert (
        response_head(200, [(b"a", b"1"), (b"b", b"")]) == b"HTTP/1.1 200 OK\r\na: 1\r\nb: \r\n\r\n"
    )
    assert response_head(599, []) == b"HTTP/1.1 599 \r\n\r\n"
    assert response_head(404, [], http_version="1.0") == b"HTTP/1.0 404 Not Found\r\n\r\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"", b"v"),
        (b"a b", b"v"),
        (b"a:", b"v"),
        (b"x", b"a\r\nb"),
        (b"x", b"a\nb"),
        (b"x", b"a\rb"),
        (b"x", b"a\x00b"),
        ("x", b"v"),
        (b"x", "v"),
    ],
)
def test_validate_header_refuses(name: bytes, value: bytes) -> None:
    with pytest.raises(RuntimeError):
        validate_header(name, value)


def test_validate_header_accepts_token_and_visible_value() -> None:
    validate_header(b"X-Custom_1", b"caf\xc3\xa9 \t v")


def test_response_is_chunked_without_content_length_on_http11() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\n")
    assert writer.start(200, [(b"content-type", b"text/plain")]) == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    assert writer.body(b"hello", True) == b"5\r\nhello\r\n"
    assert writer.body(b"", True) == b""
    assert writer.body(b"x" * 26, False) == b"1a\r\n" + b"x" * 26 + b"\r\n0\r\n\r\n"
    assert writer.keep_alive and writer.finished


def test_response_keeps_app_content_length() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\n")
    assert writer.start(200, [(b"Content-Length", b"5"), (b"transfer-encoding", b"chunked")]) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    )
    assert writer.body(b"hel", True) == b"hel"
    assert writer.body(b"lo", False) == b"lo"
    assert writer.keep_alive


def test_response_refuses_more_than_content_length() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\n")
    writer.start(200, [(b"content-length", b"2")])
    with pytest.raises(RuntimeError):
        writer.body(b"abc", True)
    assert not writer.keep_alive


def test_response_refuses_less_than_content_length() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\n")
    writer.start(200, [(b"content-length", b"4")])
    assert writer.body(b"ab", True) == b"ab"
    with pytest.raises(RuntimeError):
        writer.body(b"c", False)
    assert not writer.keep_alive


@pytest.mark.parametrize(
    ("head", "status", "headers", "expected_head"),
    [
        (
            b"HEAD / HTTP/1.1\r\nHost: h\r\n",
            200,
            [(b"content-length", b"100")],
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n",
        ),
        (b"HEAD / HTTP/1.1\r\nHost: h\r\n", 200, [], b"HTTP/1.1 200 OK\r\n\r\n"),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\n",
            204,
            [(b"content-length", b"0")],
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\n",
            304,
            [(b"etag", b'"x"')],
            b'HTTP/1.1 304 Not Modified\r\netag: "x"\r\n\r\n',
        ),
    ],
)
def test_response_without_body(
    head: bytes, status: int, headers: list[tuple[bytes, bytes]], expected_head: bytes
) -> None:
    writer = writer_for(head)
    assert writer.start(status, headers) == expected_head
    assert writer.body(b"ignored", False) == b""
    assert writer.keep_alive


def test_response_to_http10_without_length_is_close_delimited() -> None:
    writer = writer_for(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n")
    assert writer.start(200, []) == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
    assert writer.body(b"abc", True) == b"abc"
    assert writer.body(b"", False) == b""
    assert not writer.keep_alive


def test_response_to_http10_keep_alive_with_length() -> None:
    writer = writer_for(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n")
    assert writer.start(200, [(b"content-length", b"0")]) == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
    )
    assert writer.body(b"", False) == b""
    assert writer.keep_alive


def test_response_closes_when_request_asked_to() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n")
    assert writer.start(200, [(b"content-length", b"0")]) == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    assert not writer.keep_alive


def test_response_closes_when_app_asks_to() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\n")
    assert writer.start(200, [(b"Connection", b"close"), (b"content-length", b"0")]) == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    assert not writer.keep_alive


def test_response_connection_header_follows_our_decision() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n")
    assert writer.start(204, [(b"connection", b"keep-alive")]) == (
        b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
    )
    writer = writer_for(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n")
    assert writer.start(204, [(b"Connection", b"keep-alive")]) == (
        b"HTTP/1.1 204 No Content\r\nconnection: keep-alive\r\n\r\n"
    )
    assert writer.keep_alive


def test_response_to_refused_upgrade_closes() -> None:
    writer = writer_for(UPGRADE[:-2])
    assert writer.start(403, [(b"content-length", b"0")]) == (
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    assert not writer.keep_alive


@pytest.mark.parametrize(
    "headers", [[(b"bad name", b"v")], [(b"x", b"a\r\nb")], [(b"content-length", b"x")]]
)
def test_response_refuses_invalid_app_headers(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(RuntimeError):
        writer_for(b"GET / HTTP/1.1\r\nHost: h\r\n").start(200, headers)


def test_response_refuses_misuse() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: h\r\n")
    with pytest.raises(RuntimeError):
        writer.body(b"", False)
    with pytest.raises(RuntimeError):
        writer.start(1000, [])
    writer.start(200, [])
    with pytest.raises(RuntimeError):
        writer.start(200, [])
    writer.body(b"", False)
    with pytest.raises(RuntimeError):
        writer.body(b"", False)


@pytest.mark.parametrize(
    ("head", "headers", "pieces"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\n", [], [b"ab", b"", b"cd"]),
        (b"GET / HTTP/1.1\r\nHost: h\r\n", [(b"content-length", b"4")], [b"ab", b"cd"]),
        (b"GET / HTTP/1.0\r\n", [], [b"ab", b"cd"]),
    ],
)
def test_response_framing_is_read_back_by_h11(
    head: bytes, headers: list[tuple[bytes, bytes]], pieces: list[bytes]
) -> None:
    writer = writer_for(head)
    wire = writer.start(200, headers)
    for i, piece in enumerate(pieces):
        wire += writer.body(piece, i < len(pieces) - 1)
    client = h11.Connection(h11.CLIENT)
    version = head.split(b"\r\n")[0][-3:].decode()
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    if not writer.keep_alive:
        client.receive_data(b"")
    body = b""
    response = client.next_event()
    assert isinstance(response, h11.Response) and response.status_code == 200
    while not isinstance(event := client.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data)
        body += event.data
    assert body == b"abcd"
    assert writer.keep_alive is (version == "1.1")


def test_error_response_bytes() -> None:
    assert error_response(426, "upgrade required", [(b"sec-websocket-version", b"13")]) == (
        b"HTTP/1.1 426 Upgrade Required\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 17\r\nconnection: close\r\nsec-websocket-version: 13\r\n\r\n"
        b"upgrade required\n"
    )


def test_response_checked_at_begin_and_framed_at_head() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: a\r\n")
    with pytest.raises(RuntimeError):
        writer.begin(200, [(b"bad name", b"v")])
    assert not writer.head_pending  # nothing kept from a refused start: it may start again
    writer.begin(200, [(b"x-a", b"1")])
    assert writer.head_pending
    with pytest.raises(RuntimeError):
        writer.body(b"early", False)  # no body before its head
    # A body known whole when the head goes out: Content-Length, not chunked.
    assert writer.head(body_length=5) == (
        b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 5\r\n\r\n"
    )
    assert not writer.head_pending
    assert writer.body(b"hello", False) == b"hello"
    assert writer.keep_alive


def test_response_head_can_close_the_connection() -> None:
    writer = writer_for(b"GET / HTTP/1.1\r\nHost: a\r\n")
    writer.begin(204, [])
    assert writer.head(close=True) == b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
    assert not writer.keep_alive


def test_denial_response_whole_body_in_pieces_and_cut_short() -> None:
    request = parse(UPGRADE)[0]
    assert isinstance(request, Request)
    whole = DenialResponse(request, 403, [(b"content-type", b"text/plain")])
    assert whole.body(b"no", False) == (
        b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
        b"connection: close\r\n\r\nno"
    )
    assert whole.end() == b""  # the head is out: nothing more to add
    pieces = DenialResponse(request, 401, [])
    assert pieces.body(b"a", True) == (
        b"HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\nconnection: close\r\n"
        b"\r\n1\r\na\r\n"
    )
    assert pieces.body(b"", False) == b"0\r\n\r\n"
    assert DenialResponse(request, 404, []).end() == (
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    # The app announced a length it never sent: the head alone.
    assert DenialResponse(request, 403, [(b"content-length", b"9")]).end() == (
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 9\r\nconnection: close\r\n\r\n"
    )
    for status in (101, 600, "403"):
        with pytest.raises(RuntimeError):
            DenialResponse(request, status, [])  # type: ignore[arg-type]
