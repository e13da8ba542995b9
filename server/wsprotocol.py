"""asyncio glue for one WebSocket connection: bytes in, `WebSocketCycle` decides.

After the upgrade request, `HttpProtocol` hands the transport to `WebSocketProtocol`.
Its `data_received` feeds the cycle (`server.wscycle`), which owns the ASGI phases, the
receive queue, close ordering and the denial response; this layer does the I/O the cycle
asks for (pausing reading, timers, closing TCP), the keepalive pings, and counts and logs
how the connection ended.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from server.asgi import build_scope
from server.flow import FlowControl
from server.glue import Glue, access_log
from server.handshake import Handshake
from server.http11 import Request
from server.state import ServerState, Traffic
from server.websocket import ServerConnection, State
from server.wscycle import WebSocketCycle

__all__ = ["WebSocketProtocol"]


class WebSocketProtocol(Glue):
    # Slots: see WebSocketCycle (idle memory per connection). `data_received` is a slot
    # holding the cycle's `receive_data`: the transport calls the cycle directly, with no
    # forwarding call per read (uvloop even caches the bound method at set_protocol()).
    __slots__ = ("cycle", "data_received", "request", "started")

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
        Glue.__init__(self, state, flow)  # not super(): cheaper, per connection
        self.transport = transport
        self.read_paused = read_paused
        self.client = client
        self.request = request
        scope = build_scope(
            state, request, websocket=True, client=client, server=server, tls=tls,
            subprotocols=handshake.subprotocols,
        )
        self.cycle = WebSocketCycle(
            state, request, handshake, scope, self, flow, transport
        )
        self.data_received = self.cycle.receive_data  # type: ignore[method-assign]
        self.started = time.perf_counter()  # uvloop's loop.time() has only ms resolution

    def close_linger(self) -> float | None:
        """A peer that never reads our close frame is cut after --ws-close-timeout."""
        return self.state.config.ws_close_timeout

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections.add(self)
        self.state.spawn(self.run_app(self.cycle))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost()
        if self.state.keepalive is not None:
            self.state.keepalive.discard(self)
        cycle = self.cycle
        disconnect = cycle.connection_lost()
        if cycle.conn is not None:
            # Counted here, in the same callback that drops it from state.connections, so
            # a scrape sees its frames either on the live connection or in Stats, once.
            self._ended(cycle, cycle.conn, disconnect["code"])
        # The transport is done with us: drop our references to the cycle (which still
        # holds us), so that no reference cycle waits for the garbage collector.
        del self.data_received, self.cycle

    def eof_received(self) -> bool | None:
        self.cycle.receive_eof()
        return None  # close the transport; connection_lost reports 1006 if no close came

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        self.cycle.writing_resumed()

    # -- what the cycle asks for (server.wscycle.WebSocketGlue) ---------------------------

    def opened(self) -> None:
        if self.state.keepalive is not None:
            self.state.keepalive.add(self)  # one shared timer, not one per connection
        self.resume_reading()

    # -- keepalive ------------------------------------------------------------------------

    def keepalive(self) -> None:
        """Send the keepalive ping (`state.keepalive` calls this every --ws-ping-interval)."""
        conn = self.cycle.conn
        if conn is None or conn.state is not State.OPEN or self.cycle.transport_closed:
            return
        conn.send_ping(os.urandom(4))
        self.transport.writelines(conn.data_to_send())
        config = self.state.config
        if config.ws_ping_timeout and not (self.timers and "pong" in self.timers):
            # The oldest unanswered ping counts: later pings must not push the deadline back.
            self.set_timer("pong", config.ws_ping_timeout, self._ping_timeout)
        assert self.state.keepalive is not None
        self.state.keepalive.add(self)

    def _ping_timeout(self) -> None:
        conn = self.cycle.conn
        if conn is not None and conn.state is State.OPEN and not self.cycle.transport_closed:
            conn.fail(1011, "keepalive ping timeout")
            self.transport.writelines(conn.data_to_send())
        self.abort()

    # -- figures --------------------------------------------------------------------------

    @property
    def frames_out(self) -> int:
        """Data messages sent."""
        return self.traffic().frames_out

    def traffic(self) -> Traffic:
        """This connection's figures, not yet folded into `Stats` while it is open."""
        conn = self.cycle.conn
        if conn is None:
            return Traffic(0, 0, 0, 0)
        return Traffic(conn.messages_in, conn.messages_out, conn.bytes_in, conn.bytes_out)

    def shutdown(self) -> None:
        """Graceful shutdown: close with 1001, or refuse a handshake still pending."""
        self.cycle.shutdown()

    def _ended(self, cycle: WebSocketCycle, conn: ServerConnection, code: int) -> None:
        """Count and log how an accepted WebSocket ended (once, when TCP has closed)."""
        stats = self.state.stats
        stats.close_codes[code] += 1
        stats.frames_in += conn.messages_in
        stats.frames_out += conn.messages_out
        stats.bytes_in += conn.bytes_in
        stats.bytes_out += conn.bytes_out
        if self.state.config.access_log and access_log.isEnabledFor(logging.INFO):
            self.log_ws(
                cycle.scope["client"], self.request.target, f"closed {code}", close_code=code,
                duration_ms=round((time.perf_counter() - self.started) * 1000, 3),
                bytes_in=conn.bytes_in, bytes_out=conn.bytes_out,
                frames_in=conn.messages_in, frames_out=conn.messages_out,
            )
