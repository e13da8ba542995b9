"""The --metrics-port listener: `observability.metrics_app` served by `HttpProtocol`.

A scrape is an HTTP request like any other (same parser, limits, keep-alive, pipelining
and response path), on the server's own loop, with a `ServerState` of its own: its
requests count in neither the app's figures nor the access log. This module is glue
(it imports `server.protocol`); `server.main` and `server.workers` start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from server.config import Config
from server.observability import metrics_app
from server.protocol import HttpProtocol
from server.state import ServerState

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = ["start_metrics_server", "stop_metrics_server"]

# The state of each metrics listener, for `stop_metrics_server`: in Python 3.11
# `asyncio.Server.close()` leaves accepted connections open.
_STATES: weakref.WeakKeyDictionary[asyncio.AbstractServer, ServerState] = (
    weakref.WeakKeyDictionary()
)


async def start_metrics_server(
    host: str, port: int, registry: CollectorRegistry, idle_timeout: float,
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> asyncio.Server:
    """Listen on host:port and answer `GET /metrics` with the Prometheus text format.

    Args:
        host, port: where to listen (port 0: any free port).
        registry: what a scrape reports (`registry_for(StatsCollector(...))`).
        idle_timeout: seconds an idle scrape connection is kept (and a request head may
            take to arrive).
        refresh: awaited before each scrape is rendered (see `metrics_app`).

    Returns:
        The listening server; stop it with `stop_metrics_server`.

    Raises:
        MetricsUnavailable: prometheus_client is not installed.
        OSError: the address cannot be bound.
    """
    app = metrics_app(registry, refresh)
    # A scrape has no body and small headers: tighter limits than the app's listener.
    config = Config(
        app=app, host=host, port=port, max_request_line_size=8192, max_header_size=16384,
        timeout_handshake=idle_timeout, timeout_keep_alive=idle_timeout,
        ws_ping_interval=None, ws_per_message_deflate=False, proxy_headers=False,
        access_log=False, lifespan="off", server_header=False, date_header=False,
    )
    state = ServerState(config, app)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(state), host=host, port=port, reuse_address=True)
    _STATES[server] = state
    return server


async def stop_metrics_server(server: asyncio.Server) -> None:
    """Stop listening and close the listener's open connections."""
    server.close()
    state = _STATES.pop(server, None)
    if state is not None:
        state.shutting_down = True
        for connection in list(state.connections):
            connection.abort()
        for task in list(state.tasks):
            task.cancel()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 1.0)
