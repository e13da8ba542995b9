"""What every connection of one server shares: `ServerState`, the `Stats` counters, and the
typed `Connection` interface the glue protocols implement.

This module sits below the glue (`server.protocol`, `server.wsprotocol`): it names the
connections only through the `Connection` and `Flushable` protocols and must not import
the glue, `server.main` or `server.cli`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from server.deflate import DeflateSettings
from server.keepalive import Keepalive
from server.proxy import TrustedProxies
from server.types import ASGIApp

if TYPE_CHECKING:
    from server.config import Config

__all__ = ["Connection", "Flushable", "ServerState", "Stats", "Traffic"]

SERVER_HEADER = (b"server", b"wsrun")


class Traffic(NamedTuple):
    """A WebSocket's own figures so far: data messages and their payload bytes."""

    frames_in: int
    frames_out: int
    bytes_in: int
    bytes_out: int


class Connection(Protocol):
    """A live client connection, as the server and the metrics see it."""

    def shutdown(self) -> None:
        """Graceful shutdown: close when idle, or after the response / with 1001."""

    def abort(self) -> None:
        """Cut the TCP connection now (the graceful shutdown timed out)."""

    def traffic(self) -> Traffic | None:
        """A WebSocket's figures not yet folded into `Stats`; None for plain HTTP."""


class Flushable(Protocol):
    """A connection that holds frames back until the loop pass ends (see `flush_later`)."""

    def flush(self) -> None:
        """Write what was held back."""


@dataclass(slots=True)
class Stats:
    """Counters since the server started; the glue increments them, scrapes read them.

    Plain integers and Counters: no locks, no prometheus calls on the per-frame path.
    """

    http_responses: Counter[int] = field(default_factory=Counter)  # status -> count
    ws_accepted: int = 0
    ws_rejected: Counter[int] = field(default_factory=Counter)  # status -> count
    frames_in: int = 0  # WebSocket data messages (text/binary)
    frames_out: int = 0
    bytes_in: int = 0  # payload bytes of those messages
    bytes_out: int = 0
    close_codes: Counter[int] = field(default_factory=Counter)  # how each WebSocket ended
    write_pauses: int = 0


class ServerState:
    """What every connection of one server shares: config, app, live connections, tasks."""

    def __init__(self, config: Config, app: ASGIApp) -> None:
        # Kept here because asyncio.get_running_loop() costs a getpid() syscall each call
        # (CPython's fork check): per-connection and per-frame code uses this instead.
        self.loop = asyncio.get_running_loop()
        self.config = config
        self.app = app
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.lifespan_state: dict[str, Any] = {}
        self.shutting_down = False
        self.trusted_proxies = TrustedProxies(config.trusted_proxies)
        # Every WebSocket's keepalive ping, from one timer (None: --ws-ping-interval 0).
        self.keepalive = (
            Keepalive(self.loop, config.ws_ping_interval) if config.ws_ping_interval else None
        )
        # permessage-deflate: one DeflateSettings per server, so that connections with the same
        # parameters share its compressor (server/deflate.py); None when turned off.
        self.deflate = DeflateSettings(
            window_bits=config.ws_deflate_window_bits,
            mem_level=config.ws_deflate_mem_level,
            level=config.ws_deflate_level,
            threshold=config.ws_deflate_threshold,
            context_takeover=config.ws_deflate_context_takeover,
        ) if config.ws_per_message_deflate else None
        # The server address of every connection, when there is one listening address
        # (set by Server; None: ask each connection).
        self.sockname: tuple[str, int] | None = None
        self.stats = Stats()
        self._date_second = 0
        self._default_headers: list[tuple[bytes, bytes]] = []
        self._default_header_lines = b""
        # Write coalescing. `write_pass` counts loop passes in which frames were written: a
        # connection whose last write was in this pass holds further frames back, and
        # `_end_pass()` (once per pass, not per frame) writes what each of them holds.
        self.write_pass = 0
        self.pass_end_scheduled = False
        self._flush_queue: list[Flushable] = []

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """`server` and `date` headers, the date formatted once per second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            headers = []
            if self.config.server_header:
                headers.append(SERVER_HEADER)
            if self.config.date_header:
                headers.append((b"date", formatdate(now, usegmt=True).encode()))
            self._default_headers = headers
            self._default_header_lines = b"".join(n + b": " + v + b"\r\n" for n, v in headers)
        return self._default_headers

    def default_header_lines(self) -> bytes:
        """`default_headers()` serialized ("name: value\\r\\n" each), for a 101."""
        self.default_headers()
        return self._default_header_lines

    def end_pass_soon(self) -> None:
        """Make this loop pass end (`write_pass` moves on) at the next iteration."""
        if not self.pass_end_scheduled:
            self.pass_end_scheduled = True
            self.loop.call_soon(self._end_pass)

    def flush_later(self, connection: Flushable) -> None:
        """Call `connection.flush()` when this loop pass ends."""
        self._flush_queue.append(connection)
        self.end_pass_soon()

    def _end_pass(self) -> None:
        self.pass_end_scheduled = False
        self.write_pass += 1
        queue, self._flush_queue = self._flush_queue, []
        for connection in queue:
            connection.flush()

    def over_capacity(self) -> bool:
        """Whether --limit-concurrency is reached (new requests get 503)."""
        limit = self.config.limit_concurrency
        return limit is not None and (
            len(self.connections) > limit or len(self.tasks) >= limit
        )

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` as a task the server waits for (and cancels) on shutdown."""
        task: asyncio.Task[None] = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
