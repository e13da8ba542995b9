"""What the HTTP and WebSocket asyncio glue share: `Glue`, the base of both protocols.

One TCP connection's I/O chores, written once: pausing and resuming reading, write
backpressure (`server.flow`), named timers, closing and aborting the transport, running
the app with crash handling, and the access-log lines. The cycles (`server.httpcycle`,
`server.wscycle`) decide; this layer does. It sits above the cycles and below
`server.main`; nothing under it imports it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from server.flow import FlowControl
from server.logs import client_label, target_label
from server.state import ServerState
from server.types import Message, Scope

__all__ = ["Cycle", "Glue"]

error_log = logging.getLogger("wsrun.error")
access_log = logging.getLogger("wsrun.access")


class Cycle(Protocol):
    """One request's ASGI side, as `Glue.run_app` drives it."""

    scope: Scope

    async def receive(self) -> Message: ...

    async def send(self, message: Message) -> None: ...

    def app_failed(self) -> None:
        """The app raised (already logged): answer 500, cut, or close with 1011."""

    def app_returned(self) -> None:
        """The app returned: finish what it left unfinished."""


class Glue(asyncio.Protocol):
    """An asyncio protocol over one transport; `HttpProtocol` and `WebSocketProtocol`.

    `closed`: this object no longer writes to the transport (closed, lost, or handed on).
    """

    __slots__ = ("client", "closed", "flow", "read_paused", "state", "timers", "transport")

    def __init__(self, state: ServerState, flow: FlowControl) -> None:
        self.state = state
        self.flow = flow
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        self.read_paused = False
        self.closed = False
        # Made on the first timer; name -> handle.
        self.timers: dict[str, asyncio.TimerHandle] | None = None

    # -- flow control ---------------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.state.stats.write_pauses += 1
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- timers ---------------------------------------------------------------------------

    def set_timer(self, name: str, delay: float, callback: Callable[..., object],
                  *args: Any) -> None:
        """Call `callback(*args)` in `delay` seconds, replacing the timer of that name."""
        timers = self.timers
        if timers is None:
            self.timers = timers = {}
        else:
            old = timers.get(name)
            if old is not None:
                old.cancel()
        timers[name] = self.state.loop.call_later(delay, callback, *args)

    def cancel_timer(self, name: str) -> None:
        if self.timers:
            timer = self.timers.pop(name, None)
            if timer is not None:
                timer.cancel()

    def cancel_timers(self) -> None:
        timers = self.timers
        if timers:
            for timer in timers.values():
                timer.cancel()
            timers.clear()

    # -- closing --------------------------------------------------------------------------

    def close_transport(self) -> None:
        """Close once the written bytes are flushed; a peer that never reads them is
        aborted after `close_linger` seconds."""
        if not self.closed:
            self.closed = True
            if self.timers:
                self.cancel_timers()
            transport = self.transport
            transport.close()
            if transport.get_write_buffer_size():
                linger = self.close_linger()
                if linger is not None:
                    self.set_timer("abort", linger, transport.abort)

    def close_linger(self) -> float | None:
        """Seconds a closed transport may take to flush before it is aborted (None: no
        limit)."""
        return None

    def abort(self) -> None:
        """Cut the connection now (a timer ran out, or the graceful shutdown timed out)."""
        self.closed = True
        self.transport.abort()

    def lost(self) -> None:
        """The common part of `connection_lost`: forget the connection and its timers."""
        self.closed = True
        self.state.connections.discard(self)
        if self.timers:
            self.cancel_timers()
        self.flow.resume_writing()

    # -- the app --------------------------------------------------------------------------

    async def run_app(self, cycle: Cycle) -> None:
        """Run the app on `cycle`; a crash is logged once and answered by the cycle (500
        before the response / accept, 1011 or a cut after)."""
        try:
            await self.state.app(cycle.scope, cycle.receive, cycle.send)
        except Exception as exc:
            error_log.error("Exception in ASGI application", exc_info=exc)
            cycle.app_failed()
        else:
            cycle.app_returned()

    # -- access log -----------------------------------------------------------------------

    def log_ws(self, client: tuple[str, int] | None, target: bytes, outcome: str,
               **fields: Any) -> None:
        """Log `<client> - "WebSocket <target>" <outcome>`; `fields` go to JSON lines too.

        The target is the request's as received (percent-encoded, with its query), with
        non-printables escaped, like HTTP lines: a peer cannot start a line of its own.
        """
        if not (self.state.config.access_log and access_log.isEnabledFor(logging.INFO)):
            return  # --no-access-log (or the metrics listener): no line to format
        label = client_label(client)
        path = target_label(target)
        access_log.info('%s - "WebSocket %s" %s', label, path, outcome,
                        extra={"client": label, "path": path, **fields})

    def log_refused(self, status: int) -> None:
        """Log `<client> - "-" <status>`: bad input answered before any request."""
        if not (self.state.config.access_log and access_log.isEnabledFor(logging.INFO)):
            return
        label = client_label(self.client)
        access_log.info('%s - "-" %d', label, status, extra={"client": label, "status": status})
