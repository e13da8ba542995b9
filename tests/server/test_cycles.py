"""`WebSocketCycle` in-process: client bytes and app messages in, exact bytes and events out.

The cycle does no I/O of its own: here its glue is `Wire`, which keeps what the cycle
writes and the timers it asks for (a timer "fires" when a test calls it), so close
ordering is tested without sockets or clock. The app is the test itself, calling the
cycle's `receive` / `send` as an ASGI app would; `app_failed` / `app_returned` are what
the glue calls when the app raises or returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from server.asgi import build_scope
from server.config import Config
from server.errors import ClientDisconnected
from server.flow import FlowControl
from server.frames import Opcode
from server.handshake import accept_key, check_request
from server.http11 import Request, RequestParser
from server.state import ServerState
from server.types import Message
from server.wscycle import Phase, WebSocketCycle
from tests.helpers import client_frame, close_payload

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = (
    b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"
)
HEAD_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    b"sec-websocket-accept: " + accept_key(KEY) + b"\r\nserver: wsrun\r\n"
)
ERROR_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 22\r\nconnection: close\r\n\r\nInternal Server Error\n"
)


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked server frame with a short payload (RFC 6455 5.2)."""
    assert len(payload) < 126
    return bytes((0x80 | opcode, len(payload))) + payload


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return server_frame(Opcode.CLOSE, close_payload(code, reason))


class Wire:
    """The glue side of a cycle under test: what a transport and its timers would see."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.read_paused = False
        self.timers: dict[str, tuple[float, Callable[..., object], tuple[Any, ...]]] = {}
        self.closed = False  # close_transport() was called
        self.aborted = False
        self.access: list[str] = []
        self.keepalive = False

    def take(self) -> bytes:
        out, self.out = bytes(self.out), bytearray()
        return out

    def write(self, data: bytes) -> None:
        self.out += data

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.out += chunk

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False

    def close_transport(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def set_timer(self, name: str, delay: float, callback: Callable[..., object],
                  *args: Any) -> None:
        self.timers[name] = (delay, callback, args)

    def cancel_timer(self, name: str) -> None:
        self.timers.pop(name, None)

    def fire(self, name: str) -> None:
        _, callback, args = self.timers.pop(name)
        callback(*args)

    def log_ws(self, client: tuple[str, int] | None, target: bytes, outcome: str,
               **fields: object) -> None:
        assert (client, target) == (("127.0.0.1", 5000), b"/chat?room=1")
        self.access.append(outcome)

    def opened(self) -> None:
        self.keepalive = True
        self.resume_reading()


async def noop_app(scope: Any, receive: Any, send: Any) -> None:
    """Never run: the test plays the app."""


def make_cycle(**config: Any) -> tuple[WebSocketCycle, Wire, ServerState]:
    state = ServerState(Config(app=noop_app, date_header=False, **config), noop_app)
    parser = RequestParser()
    parser.receive_data(UPGRADE)
    request = parser.next_event()
    assert isinstance(request, Request)
    handshake = check_request(request)
    scope = build_scope(state, request, websocket=True, client=("127.0.0.1", 5000),
                        server=("127.0.0.1", 8000), tls=False,
                        subprotocols=handshake.subprotocols)
    wire = Wire()
    cycle = WebSocketCycle(state, request, handshake, scope, wire, FlowControl(), wire)
    return cycle, wire, state


async def opened(**config: Any) -> tuple[WebSocketCycle, Wire, ServerState]:
    """A cycle whose app took websocket.connect and accepted; the 101 already taken."""
    cycle, wire, state = make_cycle(**config)
    assert await cycle.receive() == {"type": "websocket.connect"}
    await cycle.send({"type": "websocket.accept"})
    assert wire.take() == HEAD_101 + b"\r\n"
    return cycle, wire, state


def text(data: str) -> bytes:
    return client_frame(Opcode.TEXT, data.encode())


def client_close(code: int, reason: bytes = b"") -> bytes:
    return client_frame(Opcode.CLOSE, close_payload(code, reason))


def disconnect(code: int, reason: str = "") -> Message:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


# -- accept ------------------------------------------------------------------------------


async def test_accept_with_subprotocol_and_headers_writes_the_exact_101() -> None:
    cycle, wire, state = make_cycle()
    assert cycle.scope["subprotocols"] == ["chat", "superchat"]
    assert await cycle.receive() == {"type": "websocket.connect"}
    assert wire.out == b""  # nothing goes out before the app answers
    await cycle.send({"type": "websocket.accept", "subprotocol": "chat",
                      "headers": [(b"X-Room", b"1")]})
    assert wire.take() == (
        HEAD_101 + b"sec-websocket-protocol: chat\r\nx-room: 1\r\n\r\n"
    )
    assert cycle.phase is Phase.OPEN
    assert (wire.access, wire.keepalive, state.stats.ws_accepted) == (["[accepted]"], True, 1)


async def test_frames_sent_before_the_accept_are_delivered_after_it_in_order() -> None:
    cycle, wire, _ = make_cycle()
    cycle.receive_data(text("one") + text("two")[:3])
    cycle.receive_data(text("two")[3:])
    assert await cycle.receive() == {"type": "websocket.connect"}
    await cycle.send({"type": "websocket.accept"})
    wire.take()
    assert await cycle.receive() == {"type": "websocket.receive", "text": "one"}
    assert await cycle.receive() == {"type": "websocket.receive", "text": "two"}


async def test_echo_writes_one_unmasked_frame_per_send() -> None:
    cycle, wire, _ = await opened()
    cycle.receive_data(client_frame(Opcode.BINARY, b"\x00\xff"))
    message = await cycle.receive()
    assert message == {"type": "websocket.receive", "bytes": b"\x00\xff"}
    await cycle.send({"type": "websocket.send", "bytes": message["bytes"]})
    assert wire.take() == server_frame(Opcode.BINARY, b"\x00\xff")


# -- close ordering ----------------------------------------------------------------------


async def test_client_closes_first_echo_waits_for_the_app_to_take_earlier_messages() -> None:
    cycle, wire, _ = await opened()
    cycle.receive_data(text("last words") + client_close(1001, b"bye"))
    # RFC 6455 5.5.1 allows the echo to wait: the app has not read "last words" yet.
    assert (wire.out, wire.closed) == (b"", False)
    assert wire.timers["drain"][0] == 2.0
    assert await cycle.receive() == {"type": "websocket.receive", "text": "last words"}
    await cycle.send({"type": "websocket.send", "text": "reply"})
    assert await cycle.receive() == disconnect(1001, "bye")
    # The reply, then the echoed code, then TCP closes (server first, RFC 6455 7.1.1).
    assert wire.take() == server_frame(Opcode.TEXT, b"reply") + close_frame(1001)
    assert wire.closed and "drain" not in wire.timers
    with pytest.raises(ClientDisconnected):
        await cycle.send({"type": "websocket.send", "text": "too late"})
    cycle.connection_lost()
    assert await cycle.receive() == disconnect(1001, "bye")
    assert wire.out == b""  # one echo, however often the app asks


async def test_client_close_is_echoed_when_the_drain_timer_fires_first() -> None:
    cycle, wire, _ = await opened()
    cycle.receive_data(text("unread") + client_close(1000))
    wire.fire("drain")
    assert wire.take() == close_frame(1000)
    assert wire.closed
    assert await cycle.receive() == {"type": "websocket.receive", "text": "unread"}
    assert await cycle.receive() == disconnect(1000)
    assert wire.out == b""


async def test_close_without_code_is_echoed_without_code() -> None:
    cycle, wire, _ = await opened()
    receive = cycle.receive()
    cycle.receive_data(client_frame(Opcode.CLOSE, b""))
    assert await receive == disconnect(1005)
    assert wire.take() == server_frame(Opcode.CLOSE, b"")  # RFC 6455 7.4.1: no 1005 sent


async def test_app_closes_first_then_the_client_answers() -> None:
    cycle, wire, _ = await opened(ws_close_timeout=3.0)
    await cycle.send({"type": "websocket.close", "code": 4000, "reason": "done"})
    assert wire.take() == close_frame(4000, b"done")
    assert wire.timers["close"][0] == 3.0 and not wire.closed
    assert cycle.phase is Phase.CLOSED
    await cycle.send({"type": "websocket.close"})  # a second close is ignored
    with pytest.raises(ClientDisconnected):
        await cycle.send({"type": "websocket.send", "text": "after close"})
    cycle.receive_data(client_close(4000, b"done"))
    assert wire.out == b""  # the peer's close answers ours: nothing to echo
    assert wire.closed
    assert await cycle.receive() == disconnect(4000, "done")


async def test_app_closes_first_and_the_client_never_answers() -> None:
    cycle, wire, _ = await opened()
    await cycle.send({"type": "websocket.close", "code": 1000})
    wire.take()
    wire.fire("close")
    assert wire.aborted
    cycle.connection_lost()  # what the abort leads to
    assert await cycle.receive() == disconnect(1006)


async def test_both_close_at_once_one_close_frame_goes_out() -> None:
    cycle, wire, _ = await opened()
    cycle.receive_data(text("queued") + client_close(1001))
    # The app closes without reading: its close crosses the client's on the wire.
    await cycle.send({"type": "websocket.close", "code": 1000})
    assert wire.take() == close_frame(1000)
    assert await cycle.receive() == {"type": "websocket.receive", "text": "queued"}
    assert await cycle.receive() == disconnect(1001)
    assert wire.out == b""  # no echo after our own close
    assert wire.closed


async def test_protocol_error_mid_message_fails_with_1002_after_earlier_messages() -> None:
    cycle, wire, _ = await opened()
    # A text fragment, then a new text frame where a continuation must come (RFC 6455 5.4).
    cycle.receive_data(text("whole") + client_frame(Opcode.TEXT, b"par", fin=False)
                       + text("again"))
    assert wire.out == b""
    assert await cycle.receive() == {"type": "websocket.receive", "text": "whole"}
    message = await cycle.receive()
    assert message["type"] == "websocket.disconnect" and message["code"] == 1002
    assert wire.take() == close_frame(1002, message["reason"].encode())
    assert wire.closed
    cycle.receive_data(text("ignored"))
    assert wire.out == b""


async def test_invalid_utf8_fails_with_1007() -> None:
    cycle, wire, _ = await opened()
    receive = cycle.receive()
    cycle.receive_data(client_frame(Opcode.TEXT, b"\xff"))
    message = await receive
    assert message["code"] == 1007
    assert wire.take().startswith(b"\x88") and wire.closed


async def test_dropped_socket_gives_1006_after_queued_messages_and_writes_nothing() -> None:
    cycle, wire, _ = await opened()
    cycle.receive_data(text("before the drop"))
    assert cycle.connection_lost() == disconnect(1006)
    assert wire.timers == {}  # no drain timer: there is nobody left to answer
    assert await cycle.receive() == {"type": "websocket.receive", "text": "before the drop"}
    assert await cycle.receive() == disconnect(1006)
    assert await cycle.receive() == disconnect(1006)
    assert (wire.out, wire.closed) == (b"", False)  # TCP is gone: nothing to write or close
    with pytest.raises(ClientDisconnected):
        await cycle.send({"type": "websocket.send", "text": "x"})


async def test_waiting_receive_wakes_on_a_dropped_socket() -> None:
    cycle, _, state = await opened()
    task = state.loop.create_task(cycle.receive())
    await asyncio.sleep(0)
    cycle.connection_lost()
    assert await task == disconnect(1006)


async def test_app_returning_without_closing_closes_with_1000() -> None:
    cycle, wire, _ = await opened()
    cycle.app_returned()
    assert wire.take() == close_frame(1000)
    assert "close" in wire.timers and cycle.phase is Phase.CLOSED


async def test_app_raising_after_accept_closes_with_1011() -> None:
    cycle, wire, _ = await opened()
    cycle.app_failed()
    assert wire.take() == close_frame(1011, b"internal error")


async def test_app_raising_before_accept_answers_500() -> None:
    cycle, wire, state = make_cycle()
    await cycle.receive()
    cycle.app_failed()
    assert wire.take() == ERROR_500
    assert wire.closed and wire.access == ["500"] and state.stats.ws_rejected[500] == 1


async def test_app_returning_before_accept_answers_500() -> None:
    cycle, wire, _ = make_cycle()
    cycle.app_returned()
    assert wire.take() == ERROR_500


async def test_unsendable_close_code_raises_and_the_crash_closes_with_1011() -> None:
    cycle, wire, _ = await opened()
    with pytest.raises(ValueError):
        await cycle.send({"type": "websocket.close", "code": 1006})
    assert cycle.phase is Phase.OPEN and wire.out == b""
    cycle.app_failed()
    assert wire.take() == close_frame(1011, b"internal error")


async def test_close_before_accept_answers_403() -> None:
    cycle, wire, state = make_cycle()
    await cycle.receive()
    await cycle.send({"type": "websocket.close"})
    assert wire.take().startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert wire.closed and state.stats.ws_rejected == {403: 1}
    cycle.app_returned()
    assert wire.out == b""  # answered once


# -- denial response ---------------------------------------------------------------------


async def test_denial_with_body_is_one_response_with_its_length() -> None:
    cycle, wire, state = make_cycle()
    await cycle.receive()
    await cycle.send({"type": "websocket.http.response.start", "status": 401,
                      "headers": [(b"Content-Type", b"text/plain")]})
    assert wire.out == b""  # the head waits for the body
    await cycle.send({"type": "websocket.http.response.body", "body": b"who are you?"})
    assert wire.take() == (
        b"HTTP/1.1 401 Unauthorized\r\nserver: wsrun\r\ncontent-type: text/plain\r\n"
        b"content-length: 12\r\nconnection: close\r\n\r\nwho are you?"
    )
    assert wire.closed and wire.access == ["401"] and state.stats.ws_rejected == {401: 1}


async def test_denial_in_pieces_is_chunked() -> None:
    cycle, wire, _ = make_cycle()
    await cycle.send({"type": "websocket.http.response.start", "status": 403})
    await cycle.send({"type": "websocket.http.response.body", "body": b"no",
                      "more_body": True})
    assert wire.take() == (
        b"HTTP/1.1 403 Forbidden\r\nserver: wsrun\r\ntransfer-encoding: chunked\r\n"
        b"connection: close\r\n\r\n2\r\nno\r\n"
    )
    assert not wire.closed
    await cycle.send({"type": "websocket.http.response.body", "body": b""})
    assert wire.take() == b"0\r\n\r\n" and wire.closed


async def test_app_returning_in_the_middle_of_a_denial_sends_its_head() -> None:
    cycle, wire, _ = make_cycle()
    await cycle.send({"type": "websocket.http.response.start", "status": 404})
    cycle.app_returned()
    assert wire.take() == (
        b"HTTP/1.1 404 Not Found\r\nserver: wsrun\r\ncontent-length: 0\r\n"
        b"connection: close\r\n\r\n"
    )
    assert wire.closed


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "websocket.send", "text": "x"}],
         "Unexpected ASGI message 'websocket.send' in WebSocket phase HANDSHAKE."),
        ([{"type": "websocket.http.response.start", "status": 101}],
         "invalid websocket.http.response.start status 101"),
        ([{"type": "websocket.http.response.start", "status": 403,
           "headers": [(b"x-bad", b"a\r\nb")]}],
         "invalid header value for b'x-bad': CR, LF or NUL"),
        ([{"type": "websocket.http.response.start", "status": 403},
          {"type": "websocket.send", "text": "x"}],
         "Expected ASGI message 'websocket.http.response.body' but got 'websocket.send'."),
        ([{"type": "websocket.accept"}, {"type": "websocket.accept"}],
         "Unexpected ASGI message 'websocket.accept' in WebSocket phase OPEN."),
    ],
)
async def test_asgi_misuse_raises_runtime_error(messages: list[Message], error: str) -> None:
    cycle, wire, _ = make_cycle()
    for message in messages[:-1]:
        await cycle.send(message)
    with pytest.raises(RuntimeError) as raised:
        await cycle.send(messages[-1])
    assert str(raised.value) == error


async def test_invalid_denial_header_leaves_the_handshake_to_answer_500() -> None:
    cycle, wire, _ = make_cycle()
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "websocket.http.response.start", "status": 403,
                          "headers": [(b"bad name", b"v")]})
    cycle.app_failed()
    assert wire.take() == ERROR_500


# -- backpressure, shutdown ----------------------------------------------------------------


async def test_reading_pauses_at_max_queue_and_resumes_below_half() -> None:
    cycle, wire, _ = await opened(ws_max_queue=4)
    cycle.receive_data(b"".join(text(str(i)) for i in range(4)))
    assert wire.read_paused
    assert (await cycle.receive())["text"] == "0"
    assert (await cycle.receive())["text"] == "1"
    assert wire.read_paused  # 2 left: not yet below half
    assert (await cycle.receive())["text"] == "2"
    assert not wire.read_paused


async def test_shutdown_closes_open_websockets_with_1001() -> None:
    cycle, wire, _ = await opened()
    cycle.shutdown()
    assert wire.take() == close_frame(1001, b"server shutting down")


async def test_shutdown_refuses_a_pending_handshake_with_503() -> None:
    cycle, wire, _ = make_cycle()
    cycle.shutdown()
    assert wire.take().startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert wire.closed
