"""ASGI type aliases, and the contracts between the cycles and the glue.

`Writer` is the write side of a transport, all a cycle sees of it; `HTTPGlue` and
`WebSocketGlue` are what `server.httpcycle` / `server.wscycle` ask of the
asyncio glue (`server.protocol`, `server.wsprotocol`); `Drainable` and `Waiter` type the
awaitables the glue hands them, so that the cycles need not import asyncio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from server.http11 import Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Writer(Protocol):
    """The write side of a transport (`asyncio.Transport.write` / `writelines`)."""

    def write(self, data: bytes, /) -> None: ...

    def writelines(self, list_of_data: Iterable[bytes], /) -> None: ...


class Drainable(Protocol):
    """Write-side backpressure (`server.flow.FlowControl`)."""

    write_paused: bool

    async def drain(self) -> None: ...


class Waiter(Protocol):
    """A future of the glue's loop, as a cycle's `receive()` waits on it."""

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def __await__(self) -> Any: ...


class HTTPGlue(Protocol):
    """What the cycle asks of the asyncio glue."""

    closed: bool

    def resume_reading(self) -> None: ...

    def close_transport(self) -> None: ...

    def abort(self) -> None: ...

    def response_complete(self, keep_alive: bool) -> None:
        """The last body byte is written: serve the next request, or close."""

    def log_response(self, request: Request, client: tuple[str, int] | None, status: int,
                     bytes_out: int, started: float) -> None:
        """Count and log a response; `client`: the scope's; `started`: the glue's clock."""


class WebSocketGlue(Protocol):
    """What the cycle asks of the asyncio glue: the I/O it does not do itself."""

    read_paused: bool

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close_transport(self) -> None:
        """Close TCP once written bytes are flushed (aborting a peer that never reads)."""

    def abort(self) -> None:
        """Cut TCP now."""

    def set_timer(self, name: str, delay: float, callback: Callable[..., object],
                  *args: Any) -> None: ...

    def cancel_timer(self, name: str) -> None: ...

    def log_ws(self, client: tuple[str, int] | None, target: bytes, outcome: str,
               **fields: Any) -> None:
        """Log `<client> - "WebSocket <target>" <outcome>`."""

    def opened(self) -> None:
        """The 101 is out: start keepalive pings, read frames."""
