"""asyncio glue and ASGI bridge for one WebSocket connection.

Strategy: after the upgrade request, `HttpProtocol` hands the transport to this protocol.
Until the app sends `websocket.accept`, later bytes are only buffered. Then the bytes go
into the sans-I/O `ServerConnection`; its outgoing bytes (pongs) are written at once and
its events become ASGI messages on a small queue that `receive()` drains.

Ordering (RFC 6455 7.1.7 and 5.5.1 leave room for it; Autobahn grades it): a close frame
from the peer or a protocol error is queued *behind* the messages that came before it.
The close frame / failure is only written when the app's `receive()` reaches it, that is,
after the app took every earlier message and its replies went out — or when
`Config.ws_drain_timeout` (2 s) passes first. Pings are answered at once.

Backpressure: reading pauses while `Config.ws_max_queue` (32) messages wait for the app;
`send()` waits while the transport's write buffer is above its high-water mark. Replies
the server owes on its own (pongs, the close echo) have no app to wait: when writing them
leaves the buffer above the mark, reading pauses until it drains (`resume_writing`), so a
peer that floods pings and never reads holds at most one read's worth of pongs. Frames
sent in one loop pass are written together (see `send`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from typing import Any

from server.asgi import ClientDisconnected, build_scope
from server.flow import FlowControl
from server.handshake import Handshake, accept
from server.http11 import Request
from server.logs import client_label, target_label
from server.response import ResponseWriter, error_response, validate_header
from server.state import ServerState, Traffic
from server.types import Message
from server.websocket import (
    BinaryMessage,
    CloseReceived,
    ConnectionFailed,
    PongReceived,
    ServerConnection,
    State,
    TextMessage,
)

__all__ = ["WebSocketProtocol"]

error_log = logging.getLogger("wsrun.error")
access_log = logging.getLogger("wsrun.access")

MAX_PENDING_BEFORE_ACCEPT = 64 * 1024
COALESCE_LIMIT = 64 * 1024  # bytes of frames held back for one write per loop pass


class Phase(enum.Enum):
    """The ASGI side of the connection (the wire side is `ServerConnection.state`)."""

    HANDSHAKE = enum.auto()  # waiting for the app's accept / close / http.response
    RESPONSE = enum.auto()  # the app is sending a denial response
    OPEN = enum.auto()  # accepted
    CLOSED = enum.auto()  # the app closed, or the connection ended


# How the peer ended the connection.
_CLOSE, _FAIL, _LOST = "close", "fail", "lost"
# Queued where the stream ended: receive() answers the peer there, then returns disconnect.
_END = object()


class WebSocketProtocol(asyncio.Protocol):
    # Slots: an idle WebSocket costs the server this object, its ServerConnection, the
    # scope and the app's task; the bench's idle scenario measures the sum per connection.
    __slots__ = (
        "_denial_head", "config", "conn", "connect_sent",
        "disconnect", "flow", "flush_pending", "handshake", "loop",
        "max_queue", "pending", "pending_answer", "phase", "queue", "read_paused",
        "replies_blocked", "request",
        "response_writer", "scope", "started", "state", "stats", "timers",
        "transport", "transport_closed", "unflushed", "waiter", "wire_done", "write_pass",
    )

    def __init__(
        self,
        state: ServerState,
        request: Request,
        handshake: Handshake,
        transport: asyncio.Transport,
        flow: FlowControl,
        read_paused: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        tls: bool,
    ) -> None:
        """Take over an upgraded connection from `HttpProtocol`.

        `transport`, `flow` and `read_paused` are the HTTP connection's: the same socket,
        so its read and write-side state carry over.
        """
        self.state = state
        self.config = state.config
        self.request = request
        self.handshake = handshake
        self.read_paused = read_paused
        self.replies_blocked = False  # reading paused until our pongs/close drain
        self.flow = flow
        self.transport = transport
        self.scope = build_scope(
            state, request, websocket=True, client=client, server=server, tls=tls,
            subprotocols=handshake.subprotocols,
        )
        self.conn: ServerConnection | None = None
        self.phase = Phase.HANDSHAKE
        # Bytes that came before the accept: a bytearray once some do (most never do).
        self.pending: bytes | bytearray = b""
        # A list, not a deque: it holds about Config.ws_max_queue items, and an empty deque
        # costs ~600 bytes per idle connection.
        self.queue: list[Any] = []
        self.waiter: asyncio.Future[Message | None] | None = None
        self.connect_sent = False
        self.disconnect: Message | None = None  # the websocket.disconnect the app will get
        self.wire_done = False  # close/fail written or TCP gone: nothing more to answer
        self.pending_answer: tuple[str, int, str] | None = None
        self.transport_closed = False
        self.response_writer: ResponseWriter | None = None
        self._denial_head: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.loop = state.loop
        self.max_queue = self.config.ws_max_queue
        self.flush_pending = False  # frames wait in `conn` until ServerState ends the pass
        self.write_pass = -1  # the ServerState.write_pass of our last direct write
        self.stats = state.stats
        self.started = time.perf_counter()  # uvloop's loop.time() has only ms resolution
        self.unflushed = 0  # about how many bytes wait there

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections.add(self)
        self.state.spawn(self.run())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport_closed = True
        self.state.connections.discard(self)
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        if self.state.keepalive is not None:
            self.state.keepalive.discard(self)
        self.flow.resume_writing()
        if self.disconnect is None:
            self._mark(_LOST, 1006, "")
        if self.conn is not None:
            # Counted here, in the same callback that drops it from state.connections, so
            # a scrape sees its frames either on the live connection or in Stats, once.
            assert self.disconnect is not None
            self._ended(self.disconnect["code"])

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            pending = self.pending
            if type(pending) is bytes:
                self.pending = pending = bytearray()
            pending += data
            if len(pending) > MAX_PENDING_BEFORE_ACCEPT:
                self.pause_reading()
            return
        conn.receive_data(data)
        out = conn.data_to_send()
        if out:
            self.transport.writelines(out)
            if self.flow.write_paused:
                # Pongs (RFC 6455 5.5.2 "MUST send a Pong") we cannot deliver yet: read no
                # more pings until they drain, or a peer that never reads grows our buffer.
                self.replies_blocked = True
                self.pause_reading()
        for event in conn.events_received():
            # `type(x) is C`, not isinstance: exact and cheapest; mypy narrows it too.
            if type(event) is TextMessage:
                self._deliver({"type": "websocket.receive", "text": event.data})
            elif type(event) is BinaryMessage:
                self._deliver({"type": "websocket.receive", "bytes": event.data})
            elif type(event) is PongReceived:
                self._cancel_timer("pong")
            elif type(event) is CloseReceived:
                self._mark(_CLOSE, event.code, event.reason)
            elif type(event) is ConnectionFailed:
                self._mark(_FAIL, event.code, event.reason)

    def eof_received(self) -> bool | None:
        if self.conn is not None:
            self.conn.receive_eof()
        return None  # close the transport; connection_lost reports 1006 if no close came

    def pause_writing(self) -> None:
        self.stats.write_pauses += 1
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        if self.replies_blocked:
            self.replies_blocked = False
            if len(self.queue) < self.max_queue // 2:  # else receive() resumes, as usual
                self.resume_reading()

    @property
    def frames_in(self) -> int:
        """Data messages received (text/binary)."""
        return self.conn.messages_in if self.conn is not None else 0

    @property
    def frames_out(self) -> int:
        """Data messages sent."""
        return self.conn.messages_out if self.conn is not None else 0

    @property
    def bytes_in(self) -> int:
        """Payload bytes of the data frames received (UTF-8 bytes for text)."""
        return self.conn.bytes_in if self.conn is not None else 0

    @property
    def bytes_out(self) -> int:
        """Payload bytes of the data frames sent."""
        return self.conn.bytes_out if self.conn is not None else 0

    def flush(self) -> None:
        """Write the frames sent since the last write, as one write (see `send`)."""
        self.flush_pending = False
        conn = self.conn
        if conn is not None and not self.transport_closed:
            out = conn.data_to_send()
            if out:
                self.transport.writelines(out)

    # -- queue: what the app's receive() takes, in stream order ----------------------------

    def _deliver(self, message: Message) -> None:
        waiter = self.waiter
        if waiter is not None and not self.queue and not waiter.done():
            self.waiter = None
            waiter.set_result(message)
            return
        self.queue.append(message)
        if len(self.queue) >= self.max_queue:
            self.pause_reading()

    def _mark(self, kind: str, code: int, reason: str) -> None:
        """The peer closed, broke the protocol, or dropped TCP at this point of the stream."""
        if self.disconnect is not None:
            return
        self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        conn = self.conn
        if kind is _LOST or conn is None or conn.state is not State.OPEN:
            # Nothing to wait for: our close is already out (or TCP is gone).
            self._answer(kind, code, reason)
        elif not self.queue and self.waiter is not None:
            self._answer(kind, code, reason)  # the app already took everything before it
        else:
            self.pending_answer = (kind, code, reason)
            self._set_timer("drain", self.config.ws_drain_timeout, self._answer, kind, code, reason)
        self._deliver_end()

    def _deliver_end(self) -> None:
        waiter = self.waiter
        if waiter is not None and not self.queue and not waiter.done():
            self.waiter = None
            waiter.set_result(None)
        else:
            self.queue.append(_END)

    def _answer(self, kind: str, code: int, reason: str) -> None:
        """Write our side of the ending: echo the close, or fail the connection."""
        if self.wire_done:
            return
        self.wire_done = True
        self.pending_answer = None
        self._cancel_timer("drain")
        conn = self.conn
        if conn is not None and not self.transport_closed:
            if conn.state is State.OPEN:
                if kind is _CLOSE:
                    # RFC 6455 5.5.1: "the endpoint typically echos the status code it received"
                    conn.send_close(None if code == 1005 else code)
                else:
                    conn.fail(code, reason)
                out = conn.data_to_send()
                if out:
                    self.transport.writelines(out)
            # RFC 6455 7.1.1: "the server SHOULD close the underlying TCP connection first"
            self._close_transport()

    # -- ASGI -----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.state.app(self.scope, self.receive, self.send)
        except Exception as exc:
            error_log.error("Exception in ASGI application", exc_info=exc)
            if self.phase is Phase.HANDSHAKE:
                self._reject(500, "Internal Server Error")
            elif self.phase is Phase.OPEN:
                self._close(1011, "internal error")
            elif self.phase is Phase.RESPONSE:
                self._end_denial()
        else:
            if self.phase is Phase.HANDSHAKE:
                error_log.error("ASGI callable returned without accepting the WebSocket.")
                self._reject(500, "Internal Server Error")
            elif self.phase is Phase.OPEN:
                self._close(1000, "")
            elif self.phase is Phase.RESPONSE:
                error_log.error("ASGI callable returned without completing the response.")
                self._end_denial()
        finally:
            self.phase = Phase.CLOSED

    async def receive(self) -> Message:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        while True:
            queue = self.queue
            if queue:
                item = queue.pop(0)
                if (self.read_paused and not self.replies_blocked
                        and len(queue) < self.max_queue // 2):
                    self.resume_reading()
                if item is not _END:
                    return item  # type: ignore[no-any-return]
                break
            if self.disconnect is not None:
                break
            waiter: asyncio.Future[Message | None] = self.loop.create_future()
            self.waiter = waiter
            try:
                message = await waiter
            finally:
                if self.waiter is waiter:
                    self.waiter = None
            if message is not None:
                return message
        assert self.disconnect is not None
        if self.pending_answer is not None:
            self._answer(*self.pending_answer)
        return self.disconnect

    async def send(self, message: Message) -> None:
        kind = message["type"]
        phase = self.phase
        if phase is Phase.OPEN:
            if kind == "websocket.send":
                conn = self.conn
                assert conn is not None
                if self.wire_done or conn.state is not State.OPEN:
                    raise ClientDisconnected("the WebSocket is closed")
                text = message.get("text")
                if text is not None:
                    conn.send_text(text)
                    size = len(text)
                else:
                    data = message.get("bytes")
                    if data is None:
                        raise RuntimeError("websocket.send needs 'text' or 'bytes'")
                    conn.send_binary(data)
                    size = len(data)
                state = self.state
                if self.write_pass != state.write_pass:
                    # The first frame of a loop pass goes out at once (lowest latency: a
                    # plain echo never waits and never pays for a flush)...
                    self.write_pass = state.write_pass
                    self.unflushed = 0
                    self.transport.writelines(conn.data_to_send())
                    if not state.pass_end_scheduled:
                        state.end_pass_soon()
                else:
                    # ...later ones wait in `conn` for one write when the pass ends, unless
                    # they add up: then they go now, so the transport's high-water mark (and
                    # drain() below) bounds an app sending in a loop.
                    self.unflushed += size
                    if self.unflushed > COALESCE_LIMIT:
                        self.unflushed = 0
                        self.transport.writelines(conn.data_to_send())
                    elif not self.flush_pending:
                        self.flush_pending = True
                        state.flush_later(self)
                if self.flow.write_paused:
                    await self.flow.drain()
                return
            if kind == "websocket.close":
                self._close(message.get("code") or 1000, message.get("reason") or "")
                return
        elif phase is Phase.HANDSHAKE:
            if kind == "websocket.accept":
                self._accept(message)
                return
            if kind == "websocket.close":
                # asgiref: "close before accept ... the server must respond with HTTP 403"
                self.phase = Phase.CLOSED
                self._reject(403, "Forbidden")
                return
            if kind == "websocket.http.response.start":
                self._start_denial(message)
                return
        elif phase is Phase.RESPONSE:
            if kind == "websocket.http.response.body":
                self._denial_body(message)
                return
            raise RuntimeError(
                f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
            )
        elif phase is Phase.CLOSED:
            if kind == "websocket.close":
                return
            if kind == "websocket.send":
                raise ClientDisconnected("the WebSocket is closed")
        raise RuntimeError(f"Unexpected ASGI message '{kind}' in WebSocket phase {phase.name}.")

    def _accept(self, message: Message) -> None:
        app_headers = message.get("headers")
        response, extension = accept(
            self.handshake,
            message.get("subprotocol"),
            [(bytes(n).lower(), bytes(v)) for n, v in app_headers] if app_headers else (),
            server_headers=self.state.default_header_lines(),
            deflate=self.state.deflate,
        )
        if self.transport_closed:
            self.phase = Phase.CLOSED
            return
        self.transport.write(response)
        self.stats.ws_accepted += 1
        self.phase = Phase.OPEN
        self.conn = ServerConnection(
            self.config.ws_max_size, compressor=extension, decompressor=extension
        )
        self._access("[accepted]", status=101)
        if self.state.keepalive is not None:
            self.state.keepalive.add(self)  # one shared timer, not one per connection
        self.resume_reading()
        if self.pending:
            data = bytes(self.pending)
            self.pending = b""
            self.data_received(data)

    def _start_denial(self, message: Message) -> None:
        """Check the denial's head; it is written with the first body piece.

        Raises:
            RuntimeError: a status outside 200-599 (a 1xx cannot end a handshake) or an
                invalid header. The phase stays HANDSHAKE, so `run()` answers 500.
        """
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 599:
            raise RuntimeError(f"invalid websocket.http.response.start status {status!r}")
        headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
        for name, value in headers:
            validate_header(name, value)
        self.phase = Phase.RESPONSE
        self.stats.ws_rejected[status] += 1
        self.response_writer = ResponseWriter(self.request)
        self._denial_head = (status, headers)

    def _denial_body(self, message: Message) -> None:
        writer = self.response_writer
        assert writer is not None
        body = message.get("body", b"")
        more_body = bool(message.get("more_body", False))
        out = self._denial_start(len(body) if not more_body else None)
        self._denial_head = None
        out += writer.body(body, more_body)
        if not self.transport_closed:
            self.transport.write(out)
        if not more_body:
            self.phase = Phase.CLOSED
            self._close_transport()

    def _denial_start(self, length: int | None) -> bytes:
        """The denial's head, if not written yet; `length`: the whole body's, when known.

        A body given whole gets a Content-Length rather than chunked framing (what
        websockets' server does, and what a handshake client most likely reads).
        """
        if self._denial_head is None:
            return b""
        writer = self.response_writer
        assert writer is not None
        status, headers = self._denial_head
        self._access(str(status), status=status)
        extra = [(b"connection", b"close")]
        if length is not None and all(name != b"content-length" for name, _ in headers):
            extra.append((b"content-length", str(length).encode()))
        return writer.start(status, self.state.default_headers() + headers + extra)

    def _end_denial(self) -> None:
        """The app stopped (returned or raised) in the middle of its denial response.

        A head not written yet still goes out, as the app's status (uvicorn's
        test_server_reject_connection_with_missing_body), with an empty body when the app
        gave no length; a body already under way is cut short.
        """
        if self._denial_head is not None and not self.transport_closed:
            writer = self.response_writer
            assert writer is not None
            out = self._denial_start(0)
            self._denial_head = None
            try:
                out += writer.body(b"", False)
            except RuntimeError:
                pass  # the app announced a length it never sent: the head alone, then close
            self.transport.write(out)
        self._close_transport()

    # -- closing --------------------------------------------------------------------------

    def _close(self, code: int, reason: str) -> None:
        """Start the closing handshake from our side; the peer has --ws-close-timeout to answer."""
        conn = self.conn
        if conn is None or self.transport_closed or conn.state is not State.OPEN:
            self.phase = Phase.CLOSED
            return
        # A code that must not be sent (999, 1006, ...) raises ValueError here, in the app's
        # send(); the phase stays OPEN so that run() then closes with 1011.
        conn.send_close(code, reason)
        self.phase = Phase.CLOSED
        self.transport.writelines(conn.data_to_send())
        self._set_timer("close", self.config.ws_close_timeout, self._abort)

    def _reject(self, status: int, reason: str) -> None:
        if not self.transport_closed:
            self.transport.write(error_response(status, reason))
            self.stats.ws_rejected[status] += 1
            self._access(str(status), status=status)
            self._close_transport()

    def _close_transport(self) -> None:
        if not self.transport_closed:
            transport = self.transport
            transport.close()
            if transport.get_write_buffer_size():
                # Unsent bytes: a peer that never reads would hold the flush forever.
                self._set_timer("abort", self.config.ws_close_timeout, self._abort)

    def _abort(self) -> None:
        if not self.transport_closed:
            self.transport.abort()

    def keepalive(self) -> None:
        """Send the keepalive ping (`state.keepalive` calls this every --ws-ping-interval)."""
        conn = self.conn
        if conn is None or conn.state is not State.OPEN or self.transport_closed:
            return
        conn.send_ping(os.urandom(4))
        self.transport.writelines(conn.data_to_send())
        if self.config.ws_ping_timeout and "pong" not in self.timers:
            # The oldest unanswered ping counts: later pings must not push the deadline back.
            self._set_timer("pong", self.config.ws_ping_timeout, self._ping_timeout)
        assert self.state.keepalive is not None
        self.state.keepalive.add(self)

    def _ping_timeout(self) -> None:
        conn = self.conn
        if conn is not None and conn.state is State.OPEN and not self.transport_closed:
            conn.fail(1011, "keepalive ping timeout")
            self.transport.writelines(conn.data_to_send())
        self._abort()

    def abort(self) -> None:
        """Cut the connection now (the graceful shutdown timed out)."""
        self._abort()

    def traffic(self) -> Traffic:
        """This connection's figures, not yet folded into `Stats` while it is open."""
        return Traffic(self.frames_in, self.frames_out, self.bytes_in, self.bytes_out)

    def shutdown(self) -> None:
        """Graceful shutdown: close with 1001 (RFC 6455 7.4.1 "going away")."""
        if self.phase is Phase.OPEN:
            self._close(1001, "server shutting down")
        elif self.phase is Phase.HANDSHAKE:
            self._reject(503, "Service Unavailable: the server is shutting down")

    # -- helpers --------------------------------------------------------------------------

    def _access(self, outcome: str, **fields: Any) -> None:
        """Log `<client> - "WebSocket <target>" <outcome>`; `fields` go to JSON lines too.

        The target is the request's as received (percent-encoded, with its query), with
        non-printables escaped, like HTTP lines: a peer cannot start a line of its own.
        """
        if not access_log.isEnabledFor(logging.INFO):
            return  # --no-access-log: no line to format, per connection
        client = client_label(self.scope["client"])
        path = target_label(self.request.target)
        access_log.info('%s - "WebSocket %s" %s', client, path, outcome,
                        extra={"client": client, "path": path, **fields})

    def _set_timer(self, name: str, delay: float, callback: Any, *args: Any) -> None:
        self._cancel_timer(name)
        self.timers[name] = self.loop.call_later(delay, callback, *args)

    def _cancel_timer(self, name: str) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _ended(self, code: int) -> None:
        """Count and log how an accepted WebSocket ended (once, when TCP has closed)."""
        stats = self.stats
        stats.close_codes[code] += 1
        conn = self.conn
        if conn is not None:
            stats.frames_in += conn.messages_in
            stats.frames_out += conn.messages_out
            stats.bytes_in += conn.bytes_in
            stats.bytes_out += conn.bytes_out
        if not access_log.isEnabledFor(logging.INFO):
            return  # --no-access-log: no line to format, per connection
        self._access(
            f"closed {code}", close_code=code,
            duration_ms=round((time.perf_counter() - self.started) * 1000, 3),
            bytes_in=self.bytes_in, bytes_out=self.bytes_out,
            frames_in=self.frames_in, frames_out=self.frames_out,
        )

    def pause_reading(self) -> None:
        if not self.read_paused and not self.transport_closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.transport_closed:
            self.read_paused = False
            self.transport.resume_reading()
