"""The ASGI side of one WebSocket connection, without transport: `WebSocketCycle`.

The cycle turns `ServerConnection` events into the app's `receive()` messages, and the
app's `send()` messages into frames, the 101 or a denial response: the ASGI phases
(connect -> accept / close / denial -> open -> disconnect), the bounded receive queue and
the close ordering. What it must not do itself it asks of its glue (`WebSocketGlue`, in
`server.wsprotocol`): closing TCP, pausing reading, timers, access-log lines. It imports
no asyncio, socket or clock: bytes go out through the transport's own `write` /
`writelines` (typed `Writer`, no wrapper call per frame); `receive()` waits on a
`state.loop` future and `send()` on `flow.drain()`, awaitables the glue hands in.

The receiving half (queue, close ordering, backpressure on reading) is the base class,
`server.wsinbound.Inbound`; this module holds the phases and the sending half. Frames sent
in one loop pass are written together (see `send`).
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

from server.errors import ClientDisconnected
from server.handshake import Handshake, accept
from server.http11 import Request
from server.response import DenialResponse, error_response
from server.types import Drainable, Message, Scope, WebSocketGlue, Writer
from server.websocket import ServerConnection, State
from server.wsinbound import Inbound

if TYPE_CHECKING:
    from server.state import ServerState

__all__ = ["Phase", "WebSocketCycle"]

error_log = logging.getLogger("wsrun.error")

COALESCE_LIMIT = 64 * 1024  # bytes of frames held back for one write per loop pass


class Phase(enum.Enum):
    """The ASGI side of the connection (the wire side is `ServerConnection.state`)."""

    HANDSHAKE = enum.auto()  # waiting for the app's accept / close / http.response
    RESPONSE = enum.auto()  # the app is sending a denial response
    OPEN = enum.auto()  # accepted
    CLOSED = enum.auto()  # the app closed, or the connection ended


class WebSocketCycle(Inbound):
    """One WebSocket from the upgrade request to its end: the app's `receive` and `send`.

    Args:
        state: the server's shared state (config, counters, write-pass coalescing).
        request: the upgrade request; `handshake`: its checked RFC 6455 fields.
        scope: the ASGI websocket scope given to the app.
        glue: the asyncio side (`WebSocketGlue`).
        flow: write backpressure; `transport`: where bytes are written.
    """

    # Slots: an idle WebSocket costs the server this object, its glue, its
    # ServerConnection, the scope and the app's task (bench idle measures the sum).
    __slots__ = ("denial", "flush_pending", "handshake", "phase", "request", "scope",
                 "unflushed", "write_pass")

    def __init__(
        self,
        state: ServerState,
        request: Request,
        handshake: Handshake,
        scope: Scope,
        glue: WebSocketGlue,
        flow: Drainable,
        transport: Writer,
    ) -> None:
        Inbound.__init__(self, state, glue, flow, transport)  # not super(): cheaper
        self.request = request
        self.handshake: Handshake | None = handshake  # until the accept
        self.scope = scope
        self.phase = Phase.HANDSHAKE
        self.denial: DenialResponse | None = None  # the denial response under way
        self.flush_pending = False  # frames wait in `conn` until ServerState ends the pass
        self.write_pass = -1  # the ServerState.write_pass of our last direct write
        self.unflushed = 0  # about how many bytes wait there

    # -- from the glue --------------------------------------------------------------------

    def flush(self) -> None:
        """Write the frames sent since the last write, as one write (see `send`)."""
        self.flush_pending = False
        conn = self.conn
        if conn is not None and not self.transport_closed:
            out = conn.data_to_send()
            if out:
                self.transport.writelines(out)

    def shutdown(self) -> None:
        """Graceful shutdown: close with 1001 (RFC 6455 7.4.1 "going away"), or 503."""
        if self.phase is Phase.OPEN:
            self._close(1001, "server shutting down")
        elif self.phase is Phase.HANDSHAKE:
            self._reject(503, "Service Unavailable: the server is shutting down")

    # -- ASGI -----------------------------------------------------------------------------

    def app_failed(self) -> None:
        """The app raised (already logged): 500 before the accept, 1011 after it."""
        phase = self.phase
        if phase is Phase.HANDSHAKE:
            self._reject(500, "Internal Server Error")
        elif phase is Phase.OPEN:
            self._close(1011, "internal error")
        elif phase is Phase.RESPONSE:
            self._end_denial()
        self.phase = Phase.CLOSED

    def app_returned(self) -> None:
        """The app returned: an open WebSocket closes with 1000; a missing answer is a 500."""
        phase = self.phase
        if phase is Phase.HANDSHAKE:
            error_log.error("ASGI callable returned without accepting the WebSocket.")
            self._reject(500, "Internal Server Error")
        elif phase is Phase.OPEN:
            self._close(1000, "")
        elif phase is Phase.RESPONSE:
            error_log.error("ASGI callable returned without completing the response.")
            self._end_denial()
        self.phase = Phase.CLOSED

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
        state = self.state
        app_headers = message.get("headers")
        handshake = self.handshake
        assert handshake is not None
        self.handshake = None  # not needed any more: an open WebSocket does not keep it
        response, extension = accept(
            handshake,
            message.get("subprotocol"),
            [(bytes(n).lower(), bytes(v)) for n, v in app_headers] if app_headers else (),
            server_headers=state.default_header_lines(),
            deflate=state.deflate,
        )
        if self.transport_closed:
            self.phase = Phase.CLOSED
            return
        self.transport.write(response)
        state.stats.ws_accepted += 1
        self.phase = Phase.OPEN
        self.conn = ServerConnection(
            state.config.ws_max_size, compressor=extension, decompressor=extension
        )
        self.glue.log_ws(self.scope["client"], self.request.target, "[accepted]", status=101)
        self.glue.opened()
        if self.pending:
            data = bytes(self.pending)
            self.pending = b""
            self.receive_data(data)

    # -- denial (the "websocket.http.response" extension) ---------------------------------

    def _start_denial(self, message: Message) -> None:
        """Check the denial's head; it is written with the first body piece.

        Raises:
            RuntimeError: see `DenialResponse`. The phase stays HANDSHAKE, so the app's
                crash answers 500.
        """
        headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
        denial = DenialResponse(self.request, message["status"],
                                self.state.default_headers() + headers)
        self.phase = Phase.RESPONSE
        self.state.stats.ws_rejected[denial.status] += 1
        self.denial = denial

    def _denial_body(self, message: Message) -> None:
        denial = self.denial
        assert denial is not None
        more_body = bool(message.get("more_body", False))
        if denial.head_pending:
            self.glue.log_ws(self.scope["client"], self.request.target, str(denial.status),
                             status=denial.status)
        out = denial.body(message.get("body", b""), more_body)
        if not self.transport_closed:
            self.transport.write(out)
        if not more_body:
            self.phase = Phase.CLOSED
            self.glue.close_transport()

    def _end_denial(self) -> None:
        """The app stopped (returned or raised) in the middle of its denial response."""
        denial = self.denial
        if denial is not None and denial.head_pending and not self.transport_closed:
            self.glue.log_ws(self.scope["client"], self.request.target, str(denial.status),
                             status=denial.status)
            self.transport.write(denial.end())
        self.glue.close_transport()

    # -- closing --------------------------------------------------------------------------

    def _close(self, code: int, reason: str) -> None:
        """Start the closing handshake from our side; the peer has --ws-close-timeout to answer."""
        conn = self.conn
        if conn is None or self.transport_closed or conn.state is not State.OPEN:
            self.phase = Phase.CLOSED
            return
        # A code that must not be sent (999, 1006, ...) raises ValueError here, in the app's
        # send(); the phase stays OPEN so that the app's crash then closes with 1011.
        conn.send_close(code, reason)
        self.phase = Phase.CLOSED
        self.transport.writelines(conn.data_to_send())
        self.glue.set_timer("close", self.state.config.ws_close_timeout, self.glue.abort)

    def _reject(self, status: int, reason: str) -> None:
        if not self.transport_closed:
            self.transport.write(error_response(status, reason))
            self.state.stats.ws_rejected[status] += 1
            self.glue.log_ws(self.scope["client"], self.request.target, str(status),
                             status=status)
            self.glue.close_transport()
