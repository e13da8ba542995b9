"""`HTTPCycle` in-process: a request in, the app's messages in, exact response bytes out.

As in test_cycles.py, the glue is a small recorder (`Conn`); the test plays the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from server.asgi import build_scope
from server.config import Config
from server.flow import FlowControl
from server.http11 import Request, RequestParser
from server.httpcycle import HTTPCycle
from server.state import ServerState


class Conn:
    """The glue side of an HTTP cycle under test."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False
        self.aborted = False
        self.completed: list[bool] = []  # keep_alive of each response_complete()
        self.logged: list[tuple[str, int, int]] = []  # (target, status, bytes_out)

    def write(self, data: bytes) -> None:
        self.out += data

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.out += chunk

    def resume_reading(self) -> None:
        pass

    def close_transport(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def response_complete(self, keep_alive: bool) -> None:
        self.completed.append(keep_alive)

    def log_response(self, request: Request, client: tuple[str, int] | None, status: int,
                     bytes_out: int, started: float) -> None:
        self.logged.append((request.target.decode(), status, bytes_out))


async def noop_app(scope: Any, receive: Any, send: Any) -> None:
    """Never run: the test plays the app."""


def make_cycle(head: bytes) -> tuple[HTTPCycle, Conn]:
    state = ServerState(Config(app=noop_app, date_header=False), noop_app)
    parser = RequestParser()
    parser.receive_data(head)
    request = parser.next_event()
    assert isinstance(request, Request)
    scope = build_scope(state, request, websocket=False, client=("127.0.0.1", 5000),
                        server=("127.0.0.1", 8000), tls=False)
    conn = Conn()
    return HTTPCycle(state, request, scope, conn, FlowControl(), conn, 0.0), conn


GET = b"GET /x?a=1 HTTP/1.1\r\nHost: a\r\n\r\n"


async def test_response_head_goes_out_with_the_first_body_piece() -> None:
    cycle, conn = make_cycle(GET)
    cycle.body_received(b"", complete=True)
    assert await cycle.receive() == {"type": "http.request", "body": b"", "more_body": False}
    await cycle.send({"type": "http.response.start", "status": 200,
                      "headers": [(b"Content-Type", b"text/plain")]})
    assert conn.out == b""
    await cycle.send({"type": "http.response.body", "body": b"hi", "more_body": True})
    await cycle.send({"type": "http.response.body", "body": b"!"})
    assert bytes(conn.out) == (
        b"HTTP/1.1 200 OK\r\nserver: wsrun\r\ncontent-type: text/plain\r\n"
        b"transfer-encoding: chunked\r\n\r\n2\r\nhi\r\n1\r\n!\r\n0\r\n\r\n"
    )
    assert conn.logged == [("/x?a=1", 200, 3)] and conn.completed == [True]


async def test_invalid_header_raises_at_start_and_the_crash_answers_500() -> None:
    cycle, conn = make_cycle(GET)
    with pytest.raises(RuntimeError, match="invalid header value"):
        await cycle.send({"type": "http.response.start", "status": 200,
                          "headers": [(b"x-a", b"1\r\nset-cookie: x")]})
    assert conn.out == b"" and cycle.status is None
    cycle.app_failed()
    assert bytes(conn.out) == (
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 22\r\nconnection: close\r\n\r\nInternal Server Error\n"
    )
    # Logged with its request line, then the connection closes.
    assert conn.logged == [("/x?a=1", 500, 0)] and conn.completed == [False]


async def test_crash_after_the_head_cuts_the_connection() -> None:
    cycle, conn = make_cycle(GET)
    await cycle.send({"type": "http.response.start", "status": 200})
    await cycle.send({"type": "http.response.body", "body": b"part", "more_body": True})
    cycle.app_failed()
    assert conn.aborted and conn.logged == []


async def test_unanswered_expect_continue_closes_after_the_response() -> None:
    cycle, conn = make_cycle(
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    # The app answers without reading the body: no 100 went out, so the client may or may
    # not send the body (RFC 9110 10.1.1) and the connection cannot be reused.
    await cycle.send({"type": "http.response.start", "status": 413,
                      "headers": [(b"content-length", b"0")]})
    await cycle.send({"type": "http.response.body", "body": b""})
    assert bytes(conn.out) == (
        b"HTTP/1.1 413 Request Entity Too Large\r\nserver: wsrun\r\ncontent-length: 0\r\n"
        b"connection: close\r\n\r\n"
    )
    assert conn.completed == [False]


async def test_reading_the_body_sends_100_continue_first() -> None:
    cycle, conn = make_cycle(
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    receive = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    assert bytes(conn.out) == b"HTTP/1.1 100 Continue\r\n\r\n"  # asked for, before any body
    cycle.body_received(b"ok", complete=True)
    assert await receive == {"type": "http.request", "body": b"ok", "more_body": False}


async def test_no_100_continue_once_the_body_is_there() -> None:
    cycle, conn = make_cycle(
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    cycle.body_received(b"ok", complete=True)
    assert await cycle.receive() == {"type": "http.request", "body": b"ok", "more_body": False}
    assert conn.out == b""


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "http.response.body"}],
         "Expected ASGI message 'http.response.start', but got 'http.response.body'."),
        ([{"type": "http.response.start", "status": 200},
          {"type": "http.response.start", "status": 200}],
         "Unexpected ASGI message 'http.response.start' sent."),
        ([{"type": "http.response.start", "status": 204}, {"type": "http.response.body"},
          {"type": "http.response.body"}],
         "Unexpected ASGI message 'http.response.body' sent after the response completed."),
    ],
)
async def test_asgi_misuse_raises_runtime_error(messages: list[Any], error: str) -> None:
    cycle, _ = make_cycle(GET)
    for message in messages[:-1]:
        await cycle.send(message)
    with pytest.raises(RuntimeError) as raised:
        await cycle.send(messages[-1])
    assert str(raised.value) == error
