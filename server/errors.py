"""Typed errors: each carries the HTTP status or WebSocket close code that answers it.

Parsers raise these; the connection objects catch them in one place and turn them into
an HTTP error response or a close frame. This module imports nothing from the project.
"""

from __future__ import annotations

__all__ = [
    "ClientDisconnected",
    "HandshakeError",
    "InvalidState",
    "InvalidUTF8",
    "PayloadTooBig",
    "ProtocolError",
    "RequestError",
    "WsrunError",
]


class WsrunError(Exception):
    """Base class of every error raised by wsrun."""


class RequestError(WsrunError):
    """A request that gets an HTTP error status (400, 414, 431, 501, 505...).

    Args:
        reason: short text for the response body and the log; never echoes peer input.
        status: the HTTP status code that answers the request.
        headers: extra response headers (e.g. ``Sec-WebSocket-Version`` on a 426).
    """

    def __init__(
        self,
        reason: str,
        status: int = 400,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = headers or []


class HandshakeError(RequestError):
    """An opening handshake that cannot become a WebSocket (RFC 6455 4.2.1)."""


class ProtocolError(WsrunError):
    """A peer that breaks RFC 6455: the connection is failed with ``close_code``.

    Args:
        reason: short close reason (<= 123 bytes of UTF-8).
        close_code: the close code sent to the peer.
    """

    close_code_default = 1002

    def __init__(self, reason: str, close_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = self.close_code_default if close_code is None else close_code


class PayloadTooBig(ProtocolError):
    """A message larger than ``max_message_size``: 1009."""

    close_code_default = 1009


class InvalidUTF8(ProtocolError):
    """A text message or close reason that is not UTF-8: 1007."""

    close_code_default = 1007


class InvalidState(WsrunError):
    """Our own misuse: sending in a state that does not allow it. A bug, not bad input."""


class ClientDisconnected(OSError):
    """`send()` on a connection the client already closed (ASGI spec 2.4: an `OSError`)."""
