"""HTTP/1.1 over real sockets: error statuses really sent, keep-alive, pipelining, bodies."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.rawclient import Reader, connect, exchange, read_response, recv_until_closed
from tests.procs import serve


@pytest.fixture(scope="module")
def addr() -> Iterator[str]:
    with serve(
        "wsrun",
        "tests.integration.apps:behaviours",
        args=["--no-access-log", "--timeout-handshake", "1", "--timeout-keep-alive", "1"],
    ) as a:
        yield a


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n"
            + b"".join(b"X-%d: v\r\n" % i for i in range(101))
            + b"\r\n",
            431,
        ),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: v\r\n\r\n", 400),
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ],
    ids=[
        "no-host",
        "two-hosts",
        "uri-too-long",
        "header-block-too-big",
        "too-many-headers",
        "http2",
        "http1.2",
        "unknown-te",
        "cl-and-te",
        "bad-cl",
        "space-in-name",
        "garbage",
        "nul",
    ],
)
def test_bad_requests_get_their_status_before_close(addr: str, raw: bytes, status: int) -> None:
    response = exchange(addr, raw)
    assert status_of(response) == status
    assert b"\r\nconnection: close\r\n" in response.lower()


def test_uri_too_long_is_answered_without_waiting_for_the_end_of_the_line(addr: str) -> None:
    with connect(addr) as sock:
        sock.sendall(b"GET /" + b"a" * 9000)  # no CRLF yet
        assert status_of(recv_until_closed(sock)) == 414


def test_pipelined_requests_are_answered_in_order(addr: str) -> None:
    raw = (
        b"".join(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            for body in (b"first", b"second", b"third")
        )
        + b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    with connect(addr) as sock:
        sock.sendall(raw)
        reader = Reader(sock)
        bodies = [read_response(reader)[2] for _ in range(4)]
    assert bodies == [b"first", b"second", b"third", b""]


def test_chunked_request_body_is_dechunked(addr: str) -> None:
    raw = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    )
    with connect(addr) as sock:
        sock.sendall(raw)
        status, _, body = read_response(Reader(sock))
    assert (status, body) == (200, b"hello world")


def test_streamed_response_is_chunked_on_http11(addr: str) -> None:
    with connect(addr) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
        status, headers, body = read_response(Reader(sock))
    assert (status, headers["transfer-encoding"], body) == (200, "chunked", b"one two three")


def test_http10_gets_a_close_delimited_response(addr: str) -> None:
    response = exchange(addr, b"GET /stream HTTP/1.0\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"one two three"


def test_keep_alive_serves_several_requests_on_one_connection(addr: str) -> None:
    with httpx.Client(base_url=f"http://{addr}") as client:
        ports = set()
        for i in range(3):
            response = client.post("/", content=b"n%d" % i)
            assert response.content == b"n%d" % i
            ports.add(response.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(ports) == 1


def test_expect_100_continue(addr: str) -> None:
    with connect(addr) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        reader = Reader(sock)
        assert reader.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        assert read_response(reader)[2] == b"body"


def test_head_response_has_no_body(addr: str) -> None:
    with connect(addr) as sock:
        sock.sendall(b"HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        reader = Reader(sock)
        head = reader.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        # The very next bytes are the second response: the HEAD response carried no body.
        assert read_response(reader)[0] == 200


def test_app_exception_before_response_is_a_500(addr: str) -> None:
    assert status_of(exchange(addr, b"GET /crash HTTP/1.1\r\nHost: a\r\n\r\n")) == 500


def test_app_without_response_is_a_500(addr: str) -> None:
    assert status_of(exchange(addr, b"GET /no-response HTTP/1.1\r\nHost: a\r\n\r\n")) == 500


def test_header_value_with_crlf_from_the_app_is_refused(addr: str) -> None:
    response = exchange(addr, b"GET /bad-header HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(response) == 500
    assert b"set-cookie" not in response.lower()


def test_slow_header_client_is_dropped_after_the_handshake_timeout(addr: str) -> None:
    with connect(addr) as sock:
        started = time.monotonic()
        response = b""
        for byte in b"GET / HTTP/1.1\r\nHost: a\r\n":
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            sock.settimeout(0.3)
            try:
                chunk = sock.recv(1024)
            except TimeoutError:
                continue
            response += chunk
            break
        assert time.monotonic() - started < 10  # dropped long before the head was complete
    assert status_of(response) == 408


def test_idle_keep_alive_connection_is_closed(addr: str) -> None:
    with connect(addr) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        reader = Reader(sock)
        assert read_response(reader)[0] == 200
        assert recv_until_closed(sock, timeout=5) == b""  # closed by the server, no bytes


def test_limit_concurrency_answers_503() -> None:
    with serve(
        "wsrun",
        "tests.integration.apps:behaviours",
        args=["--no-access-log", "--limit-concurrency", "1"],
    ) as addr:
        with connect(addr) as first:
            first.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert read_response(Reader(first))[0] == 200
            response = exchange(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(response) == 503


def test_client_half_close_still_gets_its_pipelined_responses(addr: str) -> None:
    with connect(addr) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none"
            b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        sock.shutdown(socket.SHUT_WR)  # like `nc -N`: the request is all there is
        reader = Reader(sock)
        assert read_response(reader)[2] == b"one"
        assert read_response(reader)[2] == b"one two three"
        assert recv_until_closed(sock) == b""


def test_long_poll_app_hears_http_disconnect_when_the_client_closes(addr: str) -> None:
    # TCP cannot tell a half-close from a close: the app waiting for http.disconnect is told
    # at once (uvicorn does the same), and a half-closed client still reads the answer.
    with connect(addr) as sock:
        sock.sendall(b"GET /long-poll HTTP/1.1\r\nHost: a\r\n\r\n")
        started = time.monotonic()
        sock.shutdown(socket.SHUT_WR)
        status, _, body = read_response(Reader(sock))
    assert (status, body) == (200, b"http.disconnect")
    assert time.monotonic() - started < 4  # not the app's 5 s poll timeout


def test_long_poll_app_times_out_while_the_client_stays(addr: str) -> None:
    with connect(addr, timeout=10) as sock:
        sock.sendall(b"GET /long-poll HTTP/1.1\r\nHost: a\r\n\r\n")
        status, _, body = read_response(Reader(sock))
    assert (status, body) == (200, b"timeout")
