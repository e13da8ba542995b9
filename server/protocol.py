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
from server.glue import Glue, access_log
from server.handshake import check_request
from server.http11 import Data, EndOfMessage, Request, RequestParser
from server.httpcycle import HTTPCycle
from server.logs import client_label, target_label
from server.response import error_response
from server.state import ServerState, Traffic
from server.wsprotocol import WebSocketProtocol

__all__ = ["HttpProtocol", "peer_addresses"]


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


class HttpProtocol(Glue):
    # Slots: thousands of idle connections each hold one of these (see bench idle).
    __slots__ = ("cycle", "parser", "received_any", "server", "tls")

    def __init__(self, state: ServerState) -> None:
        Glue.__init__(self, state, FlowControl())  # not super(): cheaper, per connection
        config = state.config
        self.parser = RequestParser(
            max_request_line_size=config.max_request_line_size,
            max_header_size=config.max_header_size,
            max_headers=config.max_headers,
        )
        self.cycle: HTTPCycle | None = None
        self.server: tuple[str, int] | None = None
        self.tls = config.is_ssl
        self.received_any = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.client, self.server = peer_addresses(transport, self.state.sockname)
        self.state.connections.add(self)
        self.set_timer("idle", self.state.config.timeout_handshake, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost()
        if self.cycle is not None:
            self.cycle.disconnect()

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
                    self.refuse(exc.status, exc.reason, exc.headers)
                return
            if event is None:
                if parser.at_eof and cycle is None:
                    self.close_transport()
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
                self.cancel_timer("idle")
                if event.websocket_upgrade:
                    self._upgrade(event)
                    return
                self._start_cycle(event)

    def _start_cycle(self, request: Request) -> None:
        state = self.state
        if state.shutting_down:
            self.refuse(503, "Service Unavailable: the server is shutting down")
            return
        if state.over_capacity():
            self.refuse(503, "Service Unavailable")
            return
        scope = build_scope(
            state, request, websocket=False, client=self.client, server=self.server, tls=self.tls
        )
        self.cycle = cycle = HTTPCycle(
            state, request, scope, self, self.flow, self.transport, time.perf_counter()
        )
        state.spawn(self.run_app(cycle))

    def _upgrade(self, request: Request) -> None:
        # The upgrade request has no body: consume its EndOfMessage; what follows are frames.
        try:
            end = self.parser.next_event()
        except RequestError as exc:
            self.refuse(exc.status, exc.reason, exc.headers, upgrade=request)
            return
        if type(end) is not EndOfMessage:
            self.refuse(400, "Bad Request: body on a WebSocket upgrade request", upgrade=request)
            return
        try:
            handshake = check_request(request)
        except RequestError as exc:
            self.refuse(exc.status, exc.reason, exc.headers, upgrade=request)
            return
        if self.state.shutting_down or self.state.over_capacity():
            self.refuse(503, "Service Unavailable", upgrade=request)
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
            self.close_transport()
            return
        self.resume_reading()
        self.set_timer("idle", self.state.config.timeout_keep_alive, self.close_transport)
        self._process()

    def refuse(
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
        if upgrade is not None:
            self.state.stats.ws_rejected[status] += 1
            self.log_ws(self.client, upgrade.target, str(status), status=status)
        else:
            self.state.stats.http_responses[status] += 1
            self.log_refused(status)
        self.close_transport()

    def _cut(self, cycle: HTTPCycle) -> None:
        if cycle.response_complete:
            self.close_transport()  # the response is whole: let it flush
        elif not self.closed:
            self.abort()

    def _head_timeout(self) -> None:
        if self.received_any and self.cycle is None:
            self.refuse(408, "Request Timeout")
        else:
            self.close_transport()

    # -- what the cycle asks for (server.httpcycle.HTTPGlue) -----------------------------

    def log_response(self, request: Request, client: tuple[str, int] | None, status: int,
                     bytes_out: int, started: float) -> None:
        """Count the response; log `<client> - "<method> <target> HTTP/<v>" <status>`."""
        self.state.stats.http_responses[status] += 1
        if not (self.state.config.access_log and access_log.isEnabledFor(logging.INFO)):
            return  # --no-access-log (or the metrics listener): no line to format
        label = client_label(client)
        target = target_label(request.target)
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        access_log.info(
            '%s - "%s %s HTTP/%s" %d', label, request.method, target, request.http_version,
            status,
            extra={"client": label, "method": request.method, "path": target,
                   "http_version": request.http_version, "status": status,
                   "duration_ms": duration_ms, "bytes_out": bytes_out},
        )

    def shutdown(self) -> None:
        """Graceful shutdown: close idle connections now, busy ones after their response."""
        if self.cycle is None:
            self.close_transport()

    def traffic(self) -> Traffic | None:
        """Plain HTTP: no WebSocket figures."""
        return None
