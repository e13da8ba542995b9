"""asyncio glue for HTTP/1.1: one `HttpProtocol` per TCP connection.

Strategy: bytes go into the sans-I/O `RequestParser`; each `Request` becomes one
`HTTPCycle` that runs the app in a task. Requests are answered strictly in order: while
a response is in flight, the next pipelined request stays parsed-but-unread in the parser,
and reading pauses when too much is buffered. A WebSocket upgrade hands the transport to
`WebSocketProtocol` (server/wsprotocol.py) with the bytes that followed the request.

Timers: the request head must arrive within --timeout-handshake (a client sending one
header byte a second is dropped); an idle keep-alive connection closes after
--timeout-keep-alive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from server.asgi import build_scope
from server.errors import RequestError
from server.flow import FlowControl
from server.handshake import check_request
from server.http11 import Data, EndOfMessage, Request, RequestParser
from server.logs import client_label, target_label
from server.response import ResponseWriter, error_response, validate_header
from server.state import ServerState, Traffic
from server.types import Message, Scope
from server.wsprotocol import WebSocketProtocol

__all__ = ["HTTPCycle", "HttpProtocol", "peer_addresses"]

error_log = logging.getLogger("wsrun.error")
access_log = logging.getLogger("wsrun.access")

CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"


def peer_addresses(
    transport: asyncio.BaseTransport, sockname: tuple[str, int] | None = None
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """(client, server) address pairs for the scope; None on a Unix socket.

    `sockname`: the one listening address, when every connection has it (no wildcard
    bind), which saves a getsockname() call per connection. TCP_NODELAY needs no call
    here: uvloop and asyncio both set it on every TCP transport.
    """
    client = transport.get_extra_info("peername")
    server = sockname or transport.get_extra_info("sockname")
    return _address(client), _address(server)


def _address(address: Any) -> tuple[str, int] | None:
    """(host, port) of a socket address; the tuple itself when it is one already (IPv4),
    as every open WebSocket's scope keeps two of them."""
    if not isinstance(address, tuple):
        return None
    if len(address) == 2 and type(address[0]) is str and type(address[1]) is int:
        return cast("tuple[str, int]", address)
    return str(address[0]), int(address[1])


class HttpProtocol(asyncio.Protocol):
    # Slots: thousands of idle connections each hold one of these (see bench idle).
    __slots__ = ("client", "closed", "cycle", "flow", "parser", "read_paused", "received_any",
                 "server", "state", "timer", "tls", "transport")

    def __init__(self, state: ServerState) -> None:
        self.state = state
        config = state.config
        self.parser = RequestParser(
            max_request_line_size=config.max_request_line_size,
            max_header_size=config.max_header_size,
            max_headers=config.max_headers,
        )
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.flow = FlowControl()
        self.cycle: HTTPCycle | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.tls = config.is_ssl
        self.read_paused = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.received_any = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.client, self.server = peer_addresses(transport, self.state.sockname)
        self.state.connections.add(self)
        self._set_timer(self.state.config.timeout_handshake, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        self._cancel_timer()
        if self.cycle is not None:
            self.cycle.disconnect()
        self.flow.resume_writing()

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        self.parser.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        """The client half-closed (e.g. `nc -N`): finish what it asked for, then close."""
        self.parser.receive_eof()
        self._process()
        if self.cycle is not None:
            # TCP cannot tell a half-close from a full close: an app waiting for
            # http.disconnect (long-poll) hears of it now, and the response still goes out.
            self.cycle.client_eof()
        # True keeps the transport open for writing the responses still due; _process()
        # closes it once nothing is left. (TLS transports cannot stay half-open.)
        return not self.tls and not self.closed

    def pause_writing(self) -> None:
        self.state.stats.write_pauses += 1
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- request loop ---------------------------------------------------------------------

    def _process(self) -> None:
        parser = self.parser
        config = self.state.config
        while not self.closed:
            cycle = self.cycle
            if cycle is not None and cycle.request_complete:
                # Answer in order: the next pipelined request waits for this response.
                if parser.buffered() > config.max_buffered_body_size:
                    self.pause_reading()
                return
            try:
                event = parser.next_event()
            except RequestError as exc:
                if cycle is not None and cycle.status is not None:
                    # The app's response has begun: a status line now would land inside
                    # its body (or after it, unasked). Cutting is the only signal left; an
                    # unfinished response is then visibly short of its length or last chunk.
                    self._cut(cycle)
                else:
                    self._reject(exc.status, exc.reason, exc.headers)
                return
            if event is None:
                if parser.at_eof and cycle is None:
                    self.close()
                elif cycle is not None and cycle.body_size() > config.max_buffered_body_size:
                    self.pause_reading()
                return
            if type(event) is Data:
                assert cycle is not None
                cycle.body_received(event.data)
            elif type(event) is EndOfMessage:
                assert cycle is not None
                cycle.body_received(b"", complete=True)
                if cycle.response_complete:
                    # The app answered before the body ended; the rest is now read and
                    # dropped, so the connection can serve the next request.
                    self.response_complete(cycle.writer.keep_alive)
                    return
            else:
                assert isinstance(event, Request)
                self._cancel_timer()
                if event.websocket_upgrade:
                    self._upgrade(event)
                    return
                self._start_cycle(event)

    def _start_cycle(self, request: Request) -> None:
        state = self.state
        if state.shutting_down:
            self._reject(503, "Service Unavailable: the server is shutting down")
            return
        if state.over_capacity():
            self._reject(503, "Service Unavailable")
            return
        scope = build_scope(
            state, request, websocket=False, client=self.client, server=self.server, tls=self.tls
        )
        self.cycle = HTTPCycle(self, request, scope)
        state.spawn(self.cycle.run())

    def _upgrade(self, request: Request) -> None:
        # The upgrade request has no body: consume its EndOfMessage; what follows are frames.
        try:
            end = self.parser.next_event()
        except RequestError as exc:
            self._reject(exc.status, exc.reason, exc.headers, upgrade=request)
            return
        if type(end) is not EndOfMessage:
            self._reject(400, "Bad Request: body on a WebSocket upgrade request", upgrade=request)
            return
        try:
            handshake = check_request(request)
        except RequestError as exc:
            self._reject(exc.status, exc.reason, exc.headers, upgrade=request)
            return
        if self.state.shutting_down or self.state.over_capacity():
            self._reject(503, "Service Unavailable", upgrade=request)
            return
        protocol = WebSocketProtocol(
            self.state, request, handshake, self.transport, self.flow, self.read_paused,
            self.client, self.server, self.tls,
        )
        self.state.connections.discard(self)
        self.closed = True  # this object no longer owns the transport
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        trailing = self.parser.trailing_data()
        if trailing:
            protocol.data_received(trailing)

    def response_complete(self, keep_alive: bool) -> None:
        """Called by the cycle once its last body byte is written."""
        self.cycle = None
        if self.closed:
            return
        if not keep_alive or self.state.shutting_down:
            self.close()
            return
        self.resume_reading()
        self._set_timer(self.state.config.timeout_keep_alive, self.close)
        self._process()

    def _reject(
        self,
        status: int,
        reason: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        upgrade: Request | None = None,
    ) -> None:
        """Answer bad input with its status, then close: the response really goes out first.

        `upgrade`: the WebSocket upgrade request refused, counted as a refused handshake
        and logged with its target.
        """
        if self.closed:
            return
        self.transport.write(error_response(status, reason, headers or []))
        client = client_label(self.client)
        if upgrade is not None:
            self.state.stats.ws_rejected[status] += 1
            path = target_label(upgrade.target)
            access_log.info('%s - "WebSocket %s" %d', client, path, status,
                            extra={"client": client, "path": path, "status": status})
        else:
            self.state.stats.http_responses[status] += 1
            access_log.info('%s - "-" %d', client, status,
                            extra={"client": client, "status": status})
        self.close()

    def _cut(self, cycle: HTTPCycle) -> None:
        if cycle.response_complete:
            self.close()  # the response is whole: let it flush
        elif not self.closed:
            self.closed = True
            self.transport.abort()

    def _head_timeout(self) -> None:
        if self.received_any and self.cycle is None:
            self._reject(408, "Request Timeout")
        else:
            self.close()

    # -- helpers --------------------------------------------------------------------------

    def _set_timer(self, delay: float, callback: Any) -> None:
        self._cancel_timer()
        self.timer = self.state.loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._cancel_timer()
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful shutdown: close idle connections now, busy ones after their response."""
        if self.cycle is None:
            self.close()

    def abort(self) -> None:
        """Cut the connection now (the graceful shutdown timed out)."""
        self.closed = True
        self.transport.abort()

    def traffic(self) -> Traffic | None:
        """Plain HTTP: no WebSocket figures."""
        return None


class HTTPCycle:
    """One request and its response: the ASGI `receive` and `send` of an http scope."""

    __slots__ = ("body", "body_sent", "bytes_out", "continue_sent", "disconnected", "drained",
                 "eof", "headers", "protocol", "request", "request_complete", "response_complete",
                 "scope", "started", "status", "waiter", "writer")

    def __init__(self, protocol: HttpProtocol, request: Request, scope: Scope) -> None:
        self.protocol = protocol
        self.request = request
        self.scope = scope
        self.writer = ResponseWriter(request)
        self.body = bytearray()
        self.request_complete = False
        self.body_sent = False  # the last http.request message went to the app
        self.disconnected = False
        self.eof = False
        self.waiter: asyncio.Future[None] | None = None
        self.continue_sent = not request.expect_continue
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.response_complete = False
        self.drained = 0  # body bytes dropped after an early response
        self.started = time.perf_counter()  # uvloop's loop.time() has only ms resolution
        self.bytes_out = 0

    # -- from the protocol ----------------------------------------------------------------

    def body_received(self, data: bytes, complete: bool = False) -> None:
        if self.response_complete:
            # Answered early: the rest of the body is dropped, up to a bound; a larger rest
            # is cheaper to refuse by closing than to read (the response is already out).
            self.drained += len(data)
            if self.drained > self.protocol.state.config.max_buffered_body_size:
                self.protocol.close()
            if complete:
                self.request_complete = True
            return
        self.body += data
        if complete:
            self.request_complete = True
        self._wake()

    def body_size(self) -> int:
        return len(self.body)

    def disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def client_eof(self) -> None:
        """The client sent EOF: a receive() after the whole body returns http.disconnect."""
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- ASGI -----------------------------------------------------------------------------

    async def run(self) -> None:
        state = self.protocol.state
        try:
            await state.app(self.scope, self.receive, self.send)
        except Exception as exc:
            error_log.error("Exception in ASGI application", exc_info=exc)
            self._fail(500, "Internal Server Error")
        else:
            if self.status is None and not self.response_complete:
                error_log.error("ASGI callable returned without starting a response.")
                self._fail(500, "Internal Server Error")
            elif not self.response_complete:
                error_log.error("ASGI callable returned without completing the response.")
                self._fail(500, "Internal Server Error")

    def _fail(self, status: int, reason: str) -> None:
        protocol = self.protocol
        if self.disconnected or protocol.closed:
            return
        if self.status is None:
            # The app never started its response: ours goes out, logged with the request
            # line like any response (not as input refused before a request was read).
            self.response_complete = True
            self.status = status
            protocol.cycle = None
            protocol.transport.write(error_response(status, reason))
            self._log()
            protocol.close()
        else:
            # Headers are out: the only honest signal left is to cut the connection.
            protocol.closed = True
            protocol.transport.abort()

    def _log(self) -> None:
        request = self.request
        protocol = self.protocol
        protocol.state.stats.http_responses[self.status or 0] += 1
        if not access_log.isEnabledFor(logging.INFO):
            return  # --no-access-log: no line to format, per request
        client = client_label(self.scope["client"])
        target = target_label(request.target)
        duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        access_log.info(
            '%s - "%s %s HTTP/%s" %d', client, request.method, target, request.http_version,
            self.status,
            extra={"client": client, "method": request.method, "path": target,
                   "http_version": request.http_version, "status": self.status,
                   "duration_ms": duration_ms, "bytes_out": self.bytes_out},
        )

    async def receive(self) -> Message:
        protocol = self.protocol
        if not self.continue_sent and not self.request_complete and not self.disconnected:
            self.continue_sent = True
            protocol.transport.write(CONTINUE_RESPONSE)
        while not self.disconnected and not self.response_complete:
            if self.body or (self.request_complete and not self.body_sent):
                data = bytes(self.body)
                self.body.clear()
                protocol.resume_reading()
                more_body = not self.request_complete
                self.body_sent = not more_body
                return {"type": "http.request", "body": data, "more_body": more_body}
            if self.body_sent and self.request_complete:
                if self.eof:
                    break  # the client sent all it will and closed its side
                # nothing more will come until the client goes away
            else:
                protocol.resume_reading()
            self.waiter = protocol.state.loop.create_future()
            await self.waiter
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.status is None:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{kind}'."
                )
            headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
            for name, value in headers:
                validate_header(name, value)
            self.status = int(message["status"])
            self.headers = headers
            return
        if self.response_complete or kind != "http.response.body":
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}' sent"
                + (" after the response completed." if self.response_complete else ".")
            )
        if self.disconnected:
            return
        body = message.get("body", b"")
        more_body = bool(message.get("more_body", False))
        protocol = self.protocol
        writer = self.writer
        if self.headers is not None:
            headers = protocol.state.default_headers() + self.headers
            if not self.continue_sent and not self.request_complete:
                # RFC 9110 10.1.1: the client may or may not send the body it announced
                # with "Expect: 100-continue" once it has a final status: nothing after it
                # on this connection can be parsed with certainty.
                headers.append((b"connection", b"close"))
            head = writer.start(self.status, headers)
            self.headers = None
            out = head + writer.body(body, more_body)
        else:
            out = writer.body(body, more_body)
        if out:
            protocol.transport.write(out)
        self.bytes_out += len(body)
        if not more_body:
            self.response_complete = True
            self._log()
            self._wake()
            if self.request_complete or not writer.keep_alive:
                protocol.response_complete(writer.keep_alive)
            # else: the rest of the request body is read and dropped first (_process).
        elif protocol.flow.write_paused:
            await protocol.flow.drain()
