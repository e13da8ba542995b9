"""The ASGI side of one HTTP request, without transport: `HTTPCycle`.

The cycle hands the request body to the app's `receive()` and frames the app's
`http.response.*` messages through `server.response.ResponseWriter` (the one response
path). What it must not do itself it asks of its glue (`HTTPGlue`, implemented by
`server.protocol.HttpProtocol`): refusing, cutting or closing the connection, resuming
reading, taking the next request, the access-log line. Bytes go out through the
transport's own `write` (typed `Writer`); `receive()` waits on a future from `state.loop`
and `send()` on `flow.drain()`. It imports no asyncio, socket or clock.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from server.http11 import Request
from server.response import ResponseWriter, error_response
from server.types import Drainable, HTTPGlue, Message, Scope, Waiter, Writer

if TYPE_CHECKING:
    from server.state import ServerState

__all__ = ["HTTPCycle"]

error_log = logging.getLogger("wsrun.error")

CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HTTPCycle:
    """One request and its response: the ASGI `receive` and `send` of an http scope.

    Args:
        state: the server's shared state; `request`: the request; `scope`: its http scope.
        glue: the asyncio side (`HTTPGlue`); `flow`: write backpressure; `transport`: where
            the response is written; `started`: the glue's clock when the request came.
    """

    __slots__ = ("body", "body_sent", "bytes_out", "continue_sent", "disconnected", "drained",
                 "eof", "flow", "glue", "head", "request", "request_complete",
                 "response_complete", "scope", "started", "state", "status", "transport",
                 "waiter", "writer")

    def __init__(
        self,
        state: ServerState,
        request: Request,
        scope: Scope,
        glue: HTTPGlue,
        flow: Drainable,
        transport: Writer,
        started: float,
    ) -> None:
        self.state = state
        self.request = request
        self.scope = scope
        self.glue = glue
        self.flow = flow
        self.transport = transport
        self.started = started  # the glue's clock, for the access line's duration
        self.writer = ResponseWriter(request)
        self.body = bytearray()
        self.request_complete = False
        self.body_sent = False  # the last http.request message went to the app
        self.disconnected = False
        self.eof = False
        self.waiter: Waiter | None = None
        self.continue_sent = not request.expect_continue
        self.status: int | None = None
        self.head = False  # the response head is checked and waits for the first body piece
        self.response_complete = False
        self.drained = 0  # body bytes dropped after an early response
        self.bytes_out = 0

    # -- from the glue --------------------------------------------------------------------

    def body_received(self, data: bytes, complete: bool = False) -> None:
        if self.response_complete:
            # Answered early: the rest of the body is dropped, up to a bound; a larger rest
            # is cheaper to refuse by closing than to read (the response is already out).
            self.drained += len(data)
            if self.drained > self.state.config.max_buffered_body_size:
                self.glue.close_transport()
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

    def app_failed(self) -> None:
        """The app raised (already logged): 500 before the response, a cut after."""
        self._fail(500, "Internal Server Error")

    def app_returned(self) -> None:
        if self.status is None and not self.response_complete:
            error_log.error("ASGI callable returned without starting a response.")
            self._fail(500, "Internal Server Error")
        elif not self.response_complete:
            error_log.error("ASGI callable returned without completing the response.")
            self._fail(500, "Internal Server Error")

    def _fail(self, status: int, reason: str) -> None:
        glue = self.glue
        if self.disconnected or glue.closed:
            return
        if self.status is None:
            # The app never started its response: ours goes out, logged with the request
            # line like any response (not as input refused before a request was read).
            self.response_complete = True
            self.status = status
            self.transport.write(error_response(status, reason))
            glue.log_response(self.request, self.scope["client"], status, self.bytes_out,
                              self.started)
            glue.response_complete(False)
        else:
            # Headers are out: the only honest signal left is to cut the connection.
            glue.abort()

    async def receive(self) -> Message:
        if not self.continue_sent and not self.request_complete and not self.disconnected:
            self.continue_sent = True
            self.transport.write(CONTINUE_RESPONSE)
        while not self.disconnected and not self.response_complete:
            if self.body or (self.request_complete and not self.body_sent):
                data = bytes(self.body)
                self.body.clear()
                self.glue.resume_reading()
                more_body = not self.request_complete
                self.body_sent = not more_body
                return {"type": "http.request", "body": data, "more_body": more_body}
            if self.body_sent and self.request_complete:
                if self.eof:
                    break  # the client sent all it will and closed its side
                # nothing more will come until the client goes away
            else:
                self.glue.resume_reading()
            self.waiter = self.state.loop.create_future()
            await self.waiter
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.status is None:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{kind}'."
                )
            status = int(message["status"])
            # Checked here, once (ResponseWriter.begin): an invalid header raises in this
            # send(), before anything is written, so the app's crash answers 500.
            self.writer.begin(status, self.state.default_headers() + [
                (bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())])
            self.status = status
            self.head = True
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
        writer = self.writer
        if self.head:
            self.head = False
            # RFC 9110 10.1.1: the client may or may not send the body it announced with
            # "Expect: 100-continue" once it has a final status: nothing after it on this
            # connection can be parsed with certainty.
            out = writer.head(close=not self.continue_sent and not self.request_complete)
            out += writer.body(body, more_body)
        else:
            out = writer.body(body, more_body)
        if out:
            self.transport.write(out)
        self.bytes_out += len(body)
        if not more_body:
            self.response_complete = True
            self.glue.log_response(self.request, self.scope["client"], self.status or 0,
                                   self.bytes_out, self.started)
            self._wake()
            if self.request_complete or not writer.keep_alive:
                self.glue.response_complete(writer.keep_alive)
            # else: the rest of the request body is read and dropped first (the glue).
        elif self.flow.write_paused:
            await self.flow.drain()
