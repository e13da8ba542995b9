"""ASGI pieces shared by the HTTP and WebSocket glue: scopes, lifespan (and, from
`server.errors`, `ClientDisconnected`).

Scopes follow the asgiref "HTTP and WebSocket" spec (version 2.4); lifespan follows the
"Lifespan" spec with `state`. This module does no socket I/O of its own and must not
import the glue (`server.protocol`, `server.wsprotocol`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING, Any

from server.errors import ClientDisconnected
from server.proxy import forwarded_client, forwarded_scheme
from server.types import Message, Scope

if TYPE_CHECKING:
    from server.http11 import Request
    from server.state import ServerState

__all__ = ["ClientDisconnected", "Lifespan", "LifespanError", "build_scope"]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}

error_log = logging.getLogger("wsrun.error")


def build_scope(
    state: ServerState,
    request: Request,
    *,
    websocket: bool,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    tls: bool,
    subprotocols: list[str] | None = None,
) -> Scope:
    """The ASGI scope of a request, with --root-path and trusted proxy headers applied.

    `subprotocols`: for a WebSocket, the ones the client offered (from the handshake check).
    """
    config = state.config
    scheme = ("wss" if tls else "ws") if websocket else ("https" if tls else "http")
    headers = request.headers
    if config.proxy_headers and client is not None and client[0] in state.trusted_proxies:
        scheme, client = _apply_proxy_headers(state, headers, scheme, client, websocket)
    root_path = config.root_path
    scope: dict[str, Any] = {
        "type": "websocket" if websocket else "http",
        "asgi": ASGI_VERSION,
        "http_version": request.http_version,
        "scheme": scheme,
        "path": root_path + request.path,
        "raw_path": root_path.encode() + request.raw_path,
        "query_string": request.query_string,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "state": state.lifespan_state.copy(),
    }
    if websocket:
        scope["subprotocols"] = subprotocols if subprotocols is not None else []
        scope["extensions"] = {"websocket.http.response": {}}
    else:
        scope["method"] = request.method
    return scope


def _apply_proxy_headers(
    state: ServerState,
    headers: list[tuple[bytes, bytes]],
    scheme: str,
    client: tuple[str, int],
    websocket: bool,
) -> tuple[str, tuple[str, int]]:
    forwarded_for: list[str] = []
    proto: bytes | None = None
    for name, value in headers:
        if name == b"x-forwarded-proto":
            proto = value  # the last line counts, as in uvicorn
        elif name == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin-1"))
    if proto is not None:
        scheme = forwarded_scheme(proto.decode("latin-1"), websocket) or scheme
    if forwarded_for:
        client = forwarded_client(state.trusted_proxies, forwarded_for) or client
    return scheme, client


class LifespanError(Exception):
    """Startup failed (the app sent `lifespan.startup.failed` or raised with --lifespan on)."""


class _Phase(enum.Enum):
    IDLE = enum.auto()
    STARTUP = enum.auto()
    RUNNING = enum.auto()
    SHUTDOWN = enum.auto()
    DONE = enum.auto()


class Lifespan:
    """Runs the app's lifespan scope: startup before serving, shutdown after."""

    def __init__(self, state: ServerState, mode: str) -> None:
        self.state = state
        self.mode = mode
        self.phase = _Phase.IDLE
        self.unsupported = False
        self.receive_queue: asyncio.Queue[Message] = asyncio.Queue()
        self.startup_done = asyncio.Event()
        self.shutdown_done = asyncio.Event()
        self.failure: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Raises: LifespanError when the app reports a failed startup."""
        if self.mode == "off":
            return
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state.lifespan_state}
        self.task = asyncio.get_running_loop().create_task(self._main(scope))
        self.phase = _Phase.STARTUP
        await self.receive_queue.put({"type": "lifespan.startup"})
        await self.startup_done.wait()
        if self.failure is not None:
            raise LifespanError(self.failure)
        self.phase = _Phase.RUNNING

    async def shutdown(self) -> None:
        if self.mode == "off" or self.unsupported or self.task is None or self.task.done():
            return
        self.phase = _Phase.SHUTDOWN
        await self.receive_queue.put({"type": "lifespan.shutdown"})
        await self.shutdown_done.wait()
        if self.failure is not None:
            error_log.error("Application shutdown failed: %s", self.failure)

    async def _main(self, scope: Scope) -> None:
        try:
            await self.state.app(scope, self.receive_queue.get, self._send)
        except BaseException as exc:
            if self.phase is _Phase.STARTUP and self.mode == "auto":
                self.unsupported = True
                error_log.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                self.failure = self.failure or f"{type(exc).__name__}: {exc}"
                error_log.error("Exception in 'lifespan' protocol", exc_info=exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if self.phase is _Phase.STARTUP and self.mode == "auto":
                self.unsupported = True
            elif self.phase is _Phase.STARTUP:
                self.failure = "the app returned before completing lifespan startup"
        finally:
            self.startup_done.set()
            self.shutdown_done.set()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if self.phase is _Phase.STARTUP and kind == "lifespan.startup.complete":
            self.startup_done.set()
        elif self.phase is _Phase.STARTUP and kind == "lifespan.startup.failed":
            self.failure = message.get("message") or "lifespan startup failed"
            self.startup_done.set()
        elif self.phase is _Phase.SHUTDOWN and kind == "lifespan.shutdown.complete":
            self.shutdown_done.set()
        elif self.phase is _Phase.SHUTDOWN and kind == "lifespan.shutdown.failed":
            self.failure = message.get("message") or "lifespan shutdown failed"
            self.shutdown_done.set()
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}' in lifespan phase {self.phase.name}"
            )
