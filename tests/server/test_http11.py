"""server.http11: request parsing (bytes in, exact events or statuses out).

No event loop: every test feeds bytes to a `RequestParser` and asserts exact events and
statuses. h11 serves as an oracle on valid requests. Responses: test_response.py.
"""

from __future__ import annotations

from itertools import pairwise

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.errors import RequestError
from server.http11 import Data, EndOfMessage, Request, RequestParser

Event = Request | Data | EndOfMessage


def drain(parser: RequestParser) -> list[Event]:
    events: list[Event] = []
    while (event := parser.next_event()) is not None:
        events.append(event)
    return events


def merge(events: list[Event]) -> list[Event]:
    """Join adjacent Data events: how a body is cut into pieces depends on the reads."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def parse(pieces: list[bytes] | bytes, *, eof: bool = False, **limits: int) -> list[Event]:
    """Feed pieces one by one, draining events after each (as the glue does)."""
    parser = RequestParser(**limits)
    events: list[Event] = []
    for piece in [pieces] if isinstance(pieces, bytes) else pieces:
        parser.receive_data(piece)
        events += drain(parser)
    if eof:
        parser.receive_eof()
        events += drain(parser)
    return merge(events)


def parse_error(pieces: list[bytes] | bytes, *, eof: bool = False, **limits: int) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse(pieces, eof=eof, **limits)
    return info.value


def splits(data: bytes) -> list[list[bytes]]:
    """The input whole, cut at every point, and byte by byte."""
    return (
        [[data]]
        + [[data[:i], data[i:]] for i in range(1, len(data))]
        + [[data[i : i + 1] for i in range(len(data))]]
    )


def req(
    method: str = "GET",
    target: bytes = b"/",
    headers: list[tuple[bytes, bytes]] | None = None,
    version: str = "1.1",
    *,
    path: str = "/",
    raw_path: bytes = b"/",
    query_string: bytes = b"",
    keep_alive: bool = True,
    expect_continue: bool = False,
    websocket_upgrade: bool = False,
) -> Request:
    return Request(
        method,
        target,
        path,
        raw_path,
        query_string,
        version,
        [(b"host", b"example.com")] if headers is None else headers,
        keep_alive,
        expect_continue,
        websocket_upgrade,
    )


SIMPLE = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
POST_CL = b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
POST_CHUNKED = (
    b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5;name=value\r\nhello\r\n6 ; a ; b="q"\r\n world\r\n0;last\r\nTrailer-A: 1\r\nB: 2\r\n\r\n'
)
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SAMPLES = [SIMPLE, POST_CL, POST_CHUNKED, UPGRADE, b"\r\n\r\n" + SIMPLE]


# --- valid requests --------------------------------------------------------------------


def test_server_parses_simple_get() -> None:
    assert parse(SIMPLE) == [req(), EndOfMessage()]


def test_server_returns_none_until_head_is_complete() -> None:
    parser = RequestParser()
    parser.receive_data(SIMPLE[:-1])
    assert parser.next_event() is None
    assert parser.buffered() == len(SIMPLE) - 1
    parser.receive_data(SIMPLE[-1:])
    assert parser.next_event() == req()
    assert parser.next_event() == EndOfMessage()
    assert parser.next_event() is None
    assert parser.buffered() == 0


def test_server_ignores_empty_lines_before_request_line() -> None:
    assert parse(b"\r\n\r\n" + SIMPLE) == [req(), EndOfMessage()]
    assert parse(SIMPLE + b"\r\n" * 10000 + SIMPLE) == [req(), EndOfMessage()] * 2
    assert parse_error(b"\r\n\n" + SIMPLE).status == 400


def test_server_keeps_header_order_lowercases_names_strips_ows() -> None:
    events = parse(
        b"GET / HTTP/1.1\r\nHost: example.com\r\nX-A:\t v1 \t\r\nx-a: v2\r\nEmpty:\r\n"
        b'X-Obs: caf\xc3\xa9 "q" a\tb\r\n\r\n'
    )
    assert events[0] == req(
        headers=[
            (b"host", b"example.com"),
            (b"x-a", b"v1"),
            (b"x-a", b"v2"),
            (b"empty", b""),
            (b"x-obs", b'caf\xc3\xa9 "q" a\tb'),
        ]
    )


@pytest.mark.parametrize("host", [b"", b"localhost:8000", b"[::1]:8000", b"xn--caf-dma.example"])
def test_server_accepts_valid_host(host: bytes) -> None:
    request = parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")[0]
    assert request == req(headers=[(b"host", host)])


def test_server_keeps_method_case() -> None:
    assert parse(b"get / HTTP/1.1\r\nHost: h\r\n\r\n")[0].method == "get"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query_string"),
    [
        (b"/", "/", b"/", b""),
        (b"/a/b?x=1&y=%20", "/a/b", b"/a/b", b"x=1&y=%20"),
        (b"/caf%C3%A9%20x/%2F", "/caf\u00e9 x//", b"/caf%C3%A9%20x/%2F", b""),
        (b"/p?q#frag", "/p", b"/p", b"q"),
        (b"/p#frag?notquery", "/p", b"/p", b""),
        (b"/p?", "/p", b"/p", b""),
        (b"http://example.com/a%20b?c", "/a b", b"/a%20b", b"c"),
        (b"HTTPS://example.com:8443", "/", b"/", b""),
        (b"http://example.com?x", "/", b"/", b"x"),
    ],
)
def test_server_splits_request_target(
    target: bytes, path: str, raw_path: bytes, query_string: bytes
) -> None:
    request = parse(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")[0]
    assert request == req(
        target=target,
        path=path,
        raw_path=raw_path,
        query_string=query_string,
        headers=[(b"host", b"h")],
    )


def test_server_accepts_asterisk_form_for_options_only() -> None:
    request = parse(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")[0]
    assert isinstance(request, Request)
    assert (request.path, request.raw_path, request.query_string) == ("*", b"*", b"")
    assert parse_error(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n").status == 400


def test_server_accepts_authority_form_for_connect() -> None:
    request = parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")[0]
    assert isinstance(request, Request)
    assert (request.path, request.raw_path) == ("example.com:443", b"example.com:443")


def test_server_streams_content_length_body_as_it_arrives() -> None:
    parser = RequestParser()
    parser.receive_data(POST_CL[:-6])
    assert isinstance(parser.next_event(), Request)
    assert parser.next_event() == Data(b"hello")
    assert parser.next_event() is None
    parser.receive_data(b" worl")
    assert parser.next_event() == Data(b" worl")
    assert parser.next_event() is None
    parser.receive_data(b"d")
    assert parser.next_event() == Data(b"d")
    assert parser.next_event() == EndOfMessage()


def test_server_never_holds_a_large_body_whole() -> None:
    parser = RequestParser()
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000\r\n\r\n")
    assert isinstance(parser.next_event(), Request)
    for _ in range(10):
        parser.receive_data(b"x" * 1000)
        assert parser.next_event() == Data(b"x" * 1000)
        assert parser.buffered() == 0
    assert parser.next_event() is None


def test_server_dechunks_body_ignoring_extensions_and_trailers() -> None:
    assert parse(POST_CHUNKED) == [
        req(
            "POST",
            b"/up",
            [(b"host", b"h"), (b"transfer-encoding", b"chunked")],
            path="/up",
            raw_path=b"/up",
        ),
        Data(b"hello world"),
        EndOfMessage(),
    ]


def test_server_accepts_chunked_coding_case_insensitively_and_empty_body() -> None:
    events = parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n000\r\n\r\n")
    assert events[1:] == [EndOfMessage()]


def test_server_streams_chunk_data_before_the_chunk_ends() -> None:
    parser = RequestParser()
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    parser.receive_data(b"1000\r\nabc")
    assert isinstance(parser.next_event(), Request)
    assert parser.next_event() == Data(b"abc")
    assert parser.next_event() is None


def test_server_accepts_identical_content_lengths() -> None:
    body = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc"
    assert parse(body)[1:] == [Data(b"abc"), EndOfMessage()]


def test_server_parses_pipelined_requests_in_order() -> None:
    data = POST_CL + POST_CHUNKED + SIMPLE
    events = parse(data)
    assert [type(e) for e in events] == [
        Request,
        Data,
        EndOfMessage,
        Request,
        Data,
        EndOfMessage,
        Request,
        EndOfMessage,
    ]
    assert [e.target for e in events if isinstance(e, Request)] == [b"/submit", b"/up", b"/"]
    assert [e.data for e in events if isinstance(e, Data)] == [b"hello world", b"hello world"]


def test_server_parses_next_request_only_when_asked() -> None:
    parser = RequestParser()
    parser.receive_data(SIMPLE + SIMPLE)
    assert parser.next_event() == req()
    assert parser.next_event() == EndOfMessage()
    assert parser.buffered() == len(SIMPLE)  # the second request is not touched yet
    assert parser.next_event() == req()


@pytest.mark.parametrize("data", SAMPLES + [POST_CL + POST_CHUNKED + SIMPLE])
def test_server_gives_same_events_at_every_split_point(data: bytes) -> None:
    expected = parse(data)
    for pieces in splits(data):
        assert parse(pieces) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(POST_CL + POST_CHUNKED + SIMPLE)), max_size=20))
def test_server_gives_same_events_for_random_splits(cuts: list[int]) -> None:
    data = POST_CL + POST_CHUNKED + SIMPLE
    points = [0, *sorted(cuts), len(data)]
    pieces = [data[a:b] for a, b in pairwise(points)]
    assert parse(pieces) == parse(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 50), min_size=1, max_size=20))
def test_server_dechunks_any_body(body: bytes, sizes: list[int]) -> None:
    chunks, rest, i = [], body, 0
    while rest:
        n = sizes[i % len(sizes)]
        chunks.append(b"%x\r\n%b\r\n" % (min(n, len(rest)), rest[:n]))
        rest, i = rest[n:], i + 1
    data = (
        b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(chunks)
        + b"0\r\n\r\n"
    )
    events = parse([data[i : i + 7] for i in range(0, len(data), 7)])
    assert events[1:] == ([Data(body)] if body else []) + [EndOfMessage()]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 400), st.binary(min_size=0, max_size=3)), max_size=4),
    st.booleans(),
)
def test_server_only_raises_request_error_on_mutated_input(
    data: bytes, edits: list[tuple[int, bytes]], eof: bool
) -> None:
    for position, replacement in edits:  # replace one byte by 0 to 3 bytes
        position %= len(data)
        data = data[:position] + replacement + data[position + 1 :]
    try:
        events = parse([data[i : i + 9] for i in range(0, len(data), 9)], eof=eof)
    except RequestError as exc:
        assert exc.status in (400, 414, 431, 501, 505)
    else:
        assert all(isinstance(e, (Request, Data, EndOfMessage)) for e in events)


# --- connection handling ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("1.1", None, True),
        ("1.1", b"keep-alive", True),
        ("1.1", b"close", False),
        ("1.1", b"Keep-Alive, CLOSE", False),
        ("1.1", b"upgrade", True),
        ("1.0", None, False),
        ("1.0", b"keep-alive", True),
        ("1.0", b"Keep-Alive", True),
        ("1.0", b"close", False),
        ("1.0", b"foo, keep-alive", True),
    ],
)
def test_server_decides_keep_alive(
    version: str, connection: bytes | None, keep_alive: bool
) -> None:
    head = b"GET / HTTP/" + version.encode() + b"\r\nHost: h\r\n"
    if connection is not None:
        head += b"Connection: " + connection + b"\r\n"
    request = parse(head + b"\r\n")[0]
    assert isinstance(request, Request)
    assert request.keep_alive is keep_alive


def test_server_stops_reading_after_connection_close() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + SIMPLE)
    assert [type(e) for e in drain(parser)] == [Request, EndOfMessage]
    assert parser.next_event() is None


@pytest.mark.parametrize(
    ("head", "expect"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: h\r\n", False),
        (b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n", False),
    ],
)
def test_server_reads_expect_continue(head: bytes, expect: bool) -> None:
    request = parse(head + b"\r\n")[0]
    assert isinstance(request, Request)
    assert request.expect_continue is expect


@pytest.mark.parametrize(
    ("head", "upgrade"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c, websocket\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: h\r\n", False),
        (b"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n", False),
        (b"GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n", False),
    ],
)
def test_server_detects_websocket_upgrade(head: bytes, upgrade: bool) -> None:
    request = parse(head + b"\r\n")[0]
    assert isinstance(request, Request)
    assert request.websocket_upgrade is upgrade


def test_server_leaves_bytes_after_upgrade_as_trailing_data() -> None:
    parser = RequestParser()
    frames = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58" + SIMPLE
    parser.receive_data(UPGRADE + frames)
    events = drain(parser)
    assert [type(e) for e in events] == [Request, EndOfMessage]
    assert parser.next_event() is None
    assert parser.trailing_data() == frames
    assert parser.buffered() == len(frames)


def test_server_reports_eof_between_requests() -> None:
    parser = RequestParser()
    parser.receive_data(SIMPLE + b"\r\n")
    assert len(drain(parser)) == 2
    assert not parser.at_eof
    parser.receive_eof()
    assert parser.next_event() is None
    assert parser.at_eof


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\nHost", b"G", b"\r", POST_CL[:-1], POST_CHUNKED[:-2], POST_CHUNKED[:-20]],
)
def test_server_fails_on_eof_inside_a_request(data: bytes) -> None:
    error = parse_error(data, eof=True)
    assert (error.status, error.reason) == (400, "incomplete request")


def test_server_stays_dead_after_an_error() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n" + SIMPLE)
    with pytest.raises(RequestError) as first:
        parser.next_event()
    parser.receive_data(SIMPLE)
    with pytest.raises(RequestError) as second:
        parser.next_event()
    assert second.value is first.value
    assert parser.buffered() == 0


# --- invalid requests ------------------------------------------------------------------

H = b"Host: h\r\n"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        # malformed request line
        (b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400),
        (b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"GET /\r\n" + H + b"\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"G\xc3\xa9T / HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"GET /a\tb HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"GET /\x00 HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"GET a/b HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"GET /%ff HTTP/1.1\r\n" + H + b"\r\n", 400),
        (b"GET / HTTP/1.1\n" + H + b"\r\n", 400),
        # versions
        (b"GET / HTTP/x\r\n" + H + b"\r\n", 400),
        (b"GET / http/1.1\r\n" + H + b"\r\n", 400),
        (b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400),
        (b"GET / HTTP/1\r\n" + H + b"\r\n", 400),
        (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
        (b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505),
        (b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
        # header lines
        (b"GET / HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"Name : v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"Name\t: v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b": v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"Na(me: v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"N\xc3\xa4me: v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n  folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n\tfolded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n X: a\r\n" + H + b"\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"X: a\rb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"X: a\nb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + H + b"X: a\x1bb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\nX: y\n\n", 400),
        # Host
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a#b\r\n\r\n", 400),
        # framing
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 501),
        (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
            501,
        ),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n\r\n", 501),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x10\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 4\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \xd9\xa3\r\n\r\n", 400),
        # chunks
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n 5\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n;x\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1_0\r\n", 400),
        (
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"1" * 17
            + b"\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n", 400),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3;\x00\r\nabc\r\n", 400),
        (
            b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX: \x00\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\n", 400),
    ],
)
def test_server_fails_on_invalid_request(data: bytes, status: int) -> None:
    # Whole, and byte by byte: the status must not depend on how the bytes arrive.
    assert parse_error(data).status == status
    assert parse_error([data[i : i + 1] for i in range(len(data))]).status == status


def test_server_fails_with_414_as_soon_as_request_line_exceeds_limit() -> None:
    ok = b"GET /" + b"a" * (8192 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    assert len(ok.split(b"\r\n")[0]) == 8192
    assert isinstance(parse(ok)[0], Request)
    # 8193 bytes with no CRLF yet: the line is already too long, decided without more data.
    error = parse_error(b"GET /" + b"a" * 8188)
    assert error.status == 414
    assert parse_error(b"GET /" + b"a" * 8188 + b" HTTP/1.1\r\n" + H + b"\r\n").status == 414
    assert parse(b"GET /" + b"a" * 8187) == []  # 8192 bytes: might still end with CRLF


def test_server_applies_configured_request_line_limit() -> None:
    assert parse_error(b"GET /abcdef HTTP/1.1\r\n", max_request_line_size=10).status == 414


def test_server_fails_with_431_on_too_large_header_section() -> None:
    big = b"X: " + b"v" * 70000 + b"\r\n"
    assert parse_error(b"GET / HTTP/1.1\r\n" + H + big + b"\r\n").status == 431
    assert parse_error(b"GET / HTTP/1.1\r\n" + big).status == 431  # before the end arrives
    ok = b"GET / HTTP/1.1\r\n" + H + b"X: " + b"v" * 60000 + b"\r\n\r\n"
    assert isinstance(parse(ok)[0], Request)


def test_server_fails_with_431_on_too_many_headers() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(99))
    assert len(parse(b"GET / HTTP/1.1\r\n" + H + fields + b"\r\n")[0].headers) == 100  # type: ignore[union-attr]
    error = parse_error(b"GET / HTTP/1.1\r\n" + H + fields + b"X: v\r\n\r\n")
    assert error.status == 431
    assert parse_error(b"GET / HTTP/1.1\r\n" + H + b"\r\n", max_headers=0).status == 431


def test_server_fails_with_431_on_too_large_trailers() -> None:
    data = (
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
        + b"X: "
        + b"v" * 70000
    )
    assert parse_error(data).status == 431


# --- h11 as an oracle ------------------------------------------------------------------

ORACLE_REQUESTS = [
    SIMPLE,
    POST_CL,
    # h11 refuses the BWS that RFC 9112 7.1.1 allows around ";" in chunk extensions.
    POST_CHUNKED.replace(b"6 ; a ; b=", b"6;a;b="),
    UPGRADE,
    (
        b"GET /a/b%20c?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8.0\r\n"
        b"Accept: */*\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: a=1; b=2\r\n\r\n"
    ),
    b"PUT /x HTTP/1.0\r\nContent-Length: 4\r\nX-Tab:\tv\t\r\n\r\nbody",
    b"DELETE /item/7 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer abc.def\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"PATCH http://example.com/p?q HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("data", ORACLE_REQUESTS)
def test_server_agrees_with_h11(data: bytes) -> None:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(data)
    theirs: list[tuple[object, ...]] = []
    while (event := connection.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
        if isinstance(event, h11.Request):
            theirs.append(
                (
                    event.method.decode(),
                    event.target,
                    list(event.headers),
                    event.http_version.decode(),
                )
            )
        elif isinstance(event, h11.Data):
            theirs.append((event.data,))
        elif isinstance(event, h11.EndOfMessage):
            theirs.append(())
            break
    ours: list[tuple[object, ...]] = []
    for event in parse(data):
        if isinstance(event, Request):
            ours.append((event.method, event.target, event.headers, event.http_version))
        elif isinstance(event, Data):
            ours.append((event.data,))
        else:
            ours.append(())
    assert ours == merge_oracle(theirs)


def merge_oracle(events: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for event in events:
        if len(event) == 1 and out and len(out[-1]) == 1:
            out[-1] = (out[-1][0] + event[0],)  # type: ignore[operator]
        else:
            out.append(event)
    return out
