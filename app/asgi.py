"""`chat`, the ASGI 3 application: routes, lifespan, the WebSocket chat, the page.

Routes (relative to `root_path`, so the app also works mounted at a sub-path):
- WebSocket `/ws` and `/`: chat.v1 when the client offers that subprotocol, else the
  plain-text chat (docs/protocol.md); before accept, a disallowed Origin is refused (HTTP
  403) and an address over `CHAT_ADDRESS_CONNECT_RATE` too (HTTP 429).
- `GET /healthz`: JSON status, with the worker id and pid that answered; `GET /metrics`:
  Prometheus text (all workers' under `wsrun --workers N`); anything else: frontend/.
- With `CHAT_ALLOWED_HOSTS` set, a request whose Host is not listed gets HTTP 400 (a
  WebSocket handshake too), whatever its path (docs/deployment.md "Host allow-list").

Start-up (lifespan, or lazily on first use when the server sends no lifespan, as inside a
Starlette mount) reads the settings and starts the backend (app/backends/).

This module imports the other app/ modules and the standard library; it must never import
`server/`: the app runs under any ASGI server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec

from app.backends import Backend, open_backend
from app.config import Settings
from app.limits import AddressLimiter
from app.messages import SUBPROTOCOL
from app.metrics import CONTENT_TYPE_LATEST, Metrics
from app.rooms import Member
from app.session import PlainSession, Session, V1Session, farewell, plain_nick
from app.static import StaticFiles, frontend_root

__all__ = ["ChatApp", "chat"]

log = logging.getLogger("app")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# RFC 6455 7.4.1: "1003 indicates that an endpoint is terminating the connection because it
# has received a type of data it cannot accept (e.g., an endpoint that understands only
# text data MAY send this if it receives a binary message)."
CLOSE_UNSUPPORTED: Final = 1003
CLOSE_INTERNAL: Final = 1011
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
# Set by `wsrun --workers N` in each worker (1..N); None in a single process.
WORKER_ID: Final = int(os.environ["WSRUN_WORKER_ID"]) if os.environ.get(
    "WSRUN_WORKER_ID", "").isdigit() else None


def route_path(scope: Scope) -> str:
    """The path below `root_path` (ASGI: `path` includes `root_path`), "/" at least."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root):]
    return path or "/"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def origin_allowed(scope: Scope, allowed: tuple[str, ...] | None, v1: bool = True) -> bool:
    """The Origin check of the handshake (RFC 6455 10.2: servers should verify Origin).

    Default rule (`allowed` None): no Origin header (not a browser), localhost / 127.0.0.1 /
    [::1] on any port, the request's own Host, and "null" (RFC 6454 7.3, a file:// or
    sandboxed page) for plain-text clients only: the plain-text page is opened from a file,
    a chat.v1 page is served over HTTP. A configured list allows "null" when it lists it.
    """
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if allowed is not None:
        return "*" in allowed or origin in allowed
    if origin == "null":
        return not v1
    parts = urllib.parse.urlsplit(origin)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        return False
    try:
        hostname = parts.hostname or ""
    except ValueError:
        return False
    if hostname in _LOCAL_HOSTS or f"[{hostname}]" in _LOCAL_HOSTS:
        return True
    host = (_header(scope, b"host") or "").strip().lower()
    return host != "" and parts.netloc == host


def host_allowed(scope: Scope, allowed: tuple[str, ...] | None) -> bool:
    """The Host allow-list (`CHAT_ALLOWED_HOSTS`), against DNS rebinding: a page of another
    site whose name was re-pointed at this server sends that name as Host (RFC 9110 7.2).

    `allowed` None accepts anything. Entries are host names without port: exact,
    "*" (any), ".example.com" (it and its subdomains), "*.example.com" (subdomains only).
    A request without Host is refused when a list is set.
    """
    if allowed is None:
        return True
    if "*" in allowed:
        return True
    value = (_header(scope, b"host") or "").strip().lower()
    if value.startswith("["):  # IPv6 literal, RFC 3986 3.2.2: "[" address "]" [":" port]
        name = value[:value.find("]") + 1] if "]" in value else ""
    else:
        name = value.partition(":")[0]
    name = name.rstrip(".")
    if not name:
        return False
    for entry in allowed:
        if entry.startswith("*."):
            if name.endswith(entry[1:]):
                return True
        elif entry.startswith("."):
            if name == entry[1:] or name.endswith(entry):
                return True
        elif name == entry:
            return True
    return False


def client_address(scope: Scope) -> str:
    """The key of per-address limits: the scope's `client` host (the forwarded one behind a
    trusted proxy), "" when the server gives none (a Unix socket)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


class _Runtime:
    """What exists between start-up and shutdown."""

    def __init__(self, settings: Settings, backend: Backend) -> None:
        self.settings, self.backend = settings, backend


class ChatApp:
    """The chat as an ASGI 3 application.

    Args:
        settings: fixed settings; None reads `CHAT_*` from the environment at start-up.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._runtime: _Runtime | None = None
        self._starting: asyncio.Lock | None = None
        self._static: StaticFiles | None = None
        self.connections = 0
        self._limiters: tuple[AddressLimiter, AddressLimiter] | None = None
        self.metrics = Metrics(lambda: self.connections, self._room_count)

    def _room_count(self) -> int:
        return self._runtime.backend.room_count() if self._runtime else 0

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    @property
    def limiters(self) -> tuple[AddressLimiter, AddressLimiter]:
        """(messages, connections) per client address, made from the settings on first use."""
        if self._limiters is None:
            settings = self.settings
            self._limiters = (AddressLimiter(*settings.address_rate),
                              AddressLimiter(*settings.address_connect_rate))
        return self._limiters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise RuntimeError(f"unsupported ASGI scope type {kind!r}")

    # -- lifespan -----------------------------------------------------------------------

    async def startup(self) -> _Runtime:
        """Start the backend (once; later calls return the same)."""
        if self._runtime is not None:
            return self._runtime
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._runtime is None:
                settings = self.settings
                escape = settings.plain_escape_html
                backend = open_backend(settings, self.metrics,
                                       lambda room, nick: farewell(room, nick, escape))
                await backend.start()
                self._runtime = _Runtime(settings, backend)
        return self._runtime

    async def shutdown(self) -> None:
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await runtime.backend.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except ValueError as exc:  # a setting (app/config.py): its message says all
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                except Exception as exc:
                    log.exception("chat start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- http -----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        method = scope.get("method", "GET")
        if not host_allowed(scope, self.settings.allowed_hosts):
            self.metrics.errors.labels("host").inc()
            body = b"invalid host header\n"
            status, headers = 400, [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]
        elif path in ("/healthz", "/metrics"):
            if method not in ("GET", "HEAD"):
                status, headers, body = 405, [(b"allow", b"GET, HEAD")], b"method not allowed\n"
                headers.append((b"content-type", b"text/plain; charset=utf-8"))
            elif path == "/healthz":
                body = msgspec.json.encode({
                    "status": "ok",
                    "connections": self.connections,
                    "rooms": self._room_count(),
                    # Which process answered (docs/deployment.md, --workers).
                    "worker": WORKER_ID,
                    "pid": os.getpid(),
                })
                status, headers = 200, [(b"content-type", b"application/json")]
            else:
                body = self.metrics.render()
                status, headers = 200, [(b"content-type", CONTENT_TYPE_LATEST.encode())]
            headers.append((b"content-length", str(len(body)).encode()))
            if method == "HEAD":
                body = b""
        else:
            if self._static is None:
                self._static = StaticFiles(frontend_root(self.settings.static_dir))
            status, headers, body = self._static.respond(
                method, path, _header(scope, b"if-none-match"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # -- websocket ------------------------------------------------------------------------

    async def _refuse(self, scope: Scope, send: Send, status: int, text: str,
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Refuse a handshake before accept: the denial response when the server has the
        extension (ASGI "Websocket Denial Response"), else websocket.close, which servers
        answer with HTTP 403."""
        if "websocket.http.response" in (scope.get("extensions") or {}):
            body = text.encode()
            await send({"type": "websocket.http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode()),
                                    *(extra or [])]})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        settings = self.settings
        if not host_allowed(scope, settings.allowed_hosts):
            self.metrics.errors.labels("host").inc()
            return await self._refuse(scope, send, 400, "invalid host header\n")
        if route_path(scope) not in ("/", "/ws"):
            return await self._refuse(scope, send, 404, "not found\n")
        v1 = SUBPROTOCOL in [p.strip() for p in scope.get("subprotocols", [])]
        if not origin_allowed(scope, settings.allowed_origins, v1):
            self.metrics.errors.labels("origin").inc()
            return await self._refuse(scope, send, 403, "origin not allowed\n")
        address = client_address(scope)
        message_limiter, connect_limiter = self.limiters
        if not connect_limiter.take(address):
            # RFC 6585 4: 429 Too Many Requests, with a Retry-After (RFC 9110 10.2.3).
            self.metrics.errors.labels("connect_rate").inc()
            retry = str(connect_limiter.retry_after(address)).encode()
            return await self._refuse(scope, send, 429, "too many connections\n",
                                      [(b"retry-after", retry)])
        try:
            runtime = await self.startup()
        except Exception:
            log.exception("chat start-up failed")
            return await send({"type": "websocket.close", "code": CLOSE_INTERNAL})
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL if v1 else None})
        member = Member(send, "v1" if v1 else "plain", settings.queue_limit, self.metrics,
                        settings.plain_escape_html)
        args = (member, runtime.backend, settings, self.metrics)
        session: Session
        if v1:
            session = V1Session(*args)
        else:
            session = PlainSession(plain_nick(scope.get("client")), *args)
        # Chat messages count against the address too (`CHAT_ADDRESS_RATE`).
        session.address_take = lambda: message_limiter.take(address)
        self.connections += 1
        self.metrics.connections_changed()
        try:
            await session.start()
            await self._receive_loop(session, receive)
        finally:
            member.closing = True
            try:
                await session.finish()
            finally:
                member.abort()
                self.connections -= 1
                self.metrics.connections_changed()

    async def _receive_loop(self, session: Session, receive: Receive) -> None:
        member, metrics = session.member, self.metrics
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] != "websocket.receive" or member.closing:
                continue
            text = message.get("text")
            if text is None:
                metrics.errors.labels("binary").inc()
                member.close(CLOSE_UNSUPPORTED, "binary frames are not supported")
                continue
            metrics.frames_in.inc()
            metrics.bytes_in.inc(len(text.encode()))
            try:
                await session.receive_text(text)
            except Exception:
                # A bug of ours: this connection ends with 1011, everyone else carries on.
                log.exception("chat session failed")
                metrics.errors.labels("internal").inc()
                member.close(CLOSE_INTERNAL, "internal error")


chat = ChatApp()
