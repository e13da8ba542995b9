"""The WebSocket opening handshake, server side (RFC 6455 4.2): check, then accept.

`check_request` validates an upgrade `Request` and returns a `Handshake` (key and offered
subprotocols), raising `HandshakeError` with the answering status; `accept_response` builds
the 101 response, with the permessage-deflate agreement when `accept` negotiates one
(`server.deflate`). Sans-I/O: imports no asyncio, socket or clock, only the stdlib,
`server.errors`, `server.http11`, `server.response` and `server.deflate`.
"""

from __future__ import annotations

import binascii
import hashlib
from base64 import b64decode, b64encode
from collections.abc import Sequence
from dataclasses import dataclass

from server.deflate import DeflateSettings, Offer, PerMessageDeflate, parse_extensions
from server.errors import HandshakeError
from server.http11 import TOKEN_CHARS, Request, tokens
from server.response import validate_header

__all__ = ["GUID", "Handshake", "accept", "accept_key", "accept_response", "check_request"]

# RFC 6455 1.3: the globally unique identifier concatenated to the client's key.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Headers of the 101 that we write ourselves; an app's copies of them are dropped.
_OWN_HEADERS = frozenset(
    [b"upgrade", b"connection", b"sec-websocket-accept", b"content-length",
     b"transfer-encoding"]
)


_ACCEPT_HEAD = (
    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    b"sec-websocket-accept: "
)


@dataclass(frozen=True, slots=True)
class Handshake:
    """A valid opening handshake request; `extensions`: the offers, in order (RFC 6455 9.1)."""

    key: bytes
    subprotocols: list[str]
    extensions: tuple[Offer, ...] = ()


def check_request(request: Request) -> Handshake:
    """Validate a WebSocket upgrade request (`request.websocket_upgrade` is true).

    Returns:
        the client's key, its offered subprotocols and extensions, in order.

    Raises:
        HandshakeError: 400 for a malformed handshake (a ``Sec-WebSocket-Extensions``
            value outside the RFC 6455 9.1 grammar included); 426 with ``Sec-WebSocket-Version: 13``
            for a missing or unsupported version.
    """
    key: bytes | None = None
    keys = 0
    versions: list[bytes] = []
    protocols: list[bytes] = []
    extensions: list[bytes] = []
    connection: list[bytes] = []
    upgrade: list[bytes] = []
    body = False
    for name, value in request.headers:
        if name == b"connection":
            connection.append(value)
        elif name == b"upgrade":
            upgrade.append(value)
        elif name == b"sec-websocket-key":
            key = value
            keys += 1
        elif name == b"sec-websocket-version":
            versions.append(value)
        elif name == b"sec-websocket-protocol":
            protocols.append(value)
        elif name == b"sec-websocket-extensions":
            extensions.append(value)
        elif name == b"content-length":
            body = body or value.strip(b"0, ") != b""  # parser checked the digits
        elif name == b"transfer-encoding":
            body = True
    # RFC 6455 4.2.1 item 4: "A |Connection| header field that includes the token "Upgrade",
    # treated as an ASCII case-insensitive value."
    if b"upgrade" not in tokens(connection):
        raise HandshakeError("missing Connection: upgrade")
    # RFC 6455 4.2.1 item 3: "An |Upgrade| header field containing the value "websocket",
    # treated as an ASCII case-insensitive value." Anything besides it is ambiguous.
    if tokens(upgrade) != [b"websocket"]:
        raise HandshakeError("Upgrade must be websocket")
    # RFC 6455 4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a base64-encoded value
    # that, when decoded, is 16 bytes in length."
    # The wording is websockets' ("missing Sec-WebSocket-Key header"), which clients and
    # uvicorn's suite look for.
    if keys == 0 or key is None:
        raise HandshakeError("missing Sec-WebSocket-Key header")
    if keys > 1:
        raise HandshakeError("repeated Sec-WebSocket-Key header")
    try:
        raw_key = b64decode(key, validate=True)
    except binascii.Error:
        raw_key = b""
    if len(raw_key) != 16:
        raise HandshakeError("invalid Sec-WebSocket-Key")
    # RFC 6455 4.2.2: if the version is not understood, "the server MUST abort the WebSocket
    # handshake described in this section and instead send an appropriate HTTP error code
    # (such as 426 Upgrade Required) and a |Sec-WebSocket-Version| header field indicating
    # the version(s) the server is capable of understanding."
    if versions != [b"13"]:
        raise HandshakeError(
            "unsupported Sec-WebSocket-Version", 426, [(b"sec-websocket-version", b"13")]
        )
    # RFC 9110 9.3.1: a GET body "has no generally defined semantics"; after a 101 those
    # bytes would be read as frames, so a handshake with a body is refused.
    if body:
        raise HandshakeError("handshake request with a body")
    subprotocols: list[str] = []
    for item in (p.strip(b" \t") for v in protocols for p in v.split(b",")) if protocols else ():
        if not item:
            continue
        # RFC 6455 4.1: subprotocol values are tokens (RFC 2616 token).
        if item.translate(None, TOKEN_CHARS):
            raise HandshakeError("invalid Sec-WebSocket-Protocol")
        subprotocols.append(item.decode("ascii"))
    if extensions:
        return Handshake(key, subprotocols, parse_extensions(extensions))
    return Handshake(key, subprotocols)


def accept_key(key: bytes) -> bytes:
    """Return the Sec-WebSocket-Accept value for a client's key (RFC 6455 4.2.2 item 5.4)."""
    return b64encode(hashlib.sha1(key + GUID).digest())


def accept_response(
    handshake: Handshake,
    subprotocol: str | None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    server_headers: bytes = b"",
) -> bytes:
    """Return the complete ``101 Switching Protocols`` response, with no extension.

    See `accept`; this is it without permessage-deflate.
    """
    return accept(handshake, subprotocol, headers, server_headers)[0]


def accept(
    handshake: Handshake,
    subprotocol: str | None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    server_headers: bytes = b"",
    deflate: DeflateSettings | None = None,
) -> tuple[bytes, PerMessageDeflate | None]:
    """Return the complete ``101 Switching Protocols`` response accepting the handshake.

    Args:
        handshake: the checked request.
        subprotocol: the app's choice among the client's offers, or None.
        headers: extra headers from the app (ASGI ``websocket.accept``), validated here.
        server_headers: the server's own header lines (``server``, ``date``), already
            serialized, each ending in CRLF; written as they are.
        deflate: the server's permessage-deflate settings (None: no compression).

    Returns:
        The response bytes, and the connection's permessage-deflate codec when an offer
        was accepted (RFC 7692 5). An app that sends its own ``Sec-WebSocket-Extensions``
        header keeps it: the server then negotiates nothing and compresses nothing
        (README, "permessage-deflate").

    Raises:
        RuntimeError: the subprotocol was not offered, or a header is invalid (the app's bug).
    """
    extra: list[bytes] = []
    app_extensions = False
    for name, value in headers:
        validate_header(name, value)
        lname = name.lower()
        if lname == b"sec-websocket-protocol":
            # ASGI: headers "must not include a header named sec-websocket-protocol; use the
            # subprotocol key instead". Tolerated when it is the only statement of the choice.
            if subprotocol is not None:
                raise RuntimeError("sec-websocket-protocol header given with a subprotocol")
            subprotocol = value.decode("latin-1")
            continue
        if lname not in _OWN_HEADERS:
            app_extensions = app_extensions or lname == b"sec-websocket-extensions"
            extra.append(name + b": " + value + b"\r\n")
    parts = [_ACCEPT_HEAD, accept_key(handshake.key), b"\r\n", server_headers]
    if subprotocol is not None:
        # RFC 6455 4.2.2: the value "MUST be derived from the values received from the
        # client in the handshake".
        if subprotocol not in handshake.subprotocols:
            raise RuntimeError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {handshake.subprotocols!r})"
            )
        parts += [b"sec-websocket-protocol: ", subprotocol.encode("ascii"), b"\r\n"]
    codec = None
    if deflate is not None and handshake.extensions and not app_extensions:
        agreement = deflate.negotiate(handshake.extensions)
        if agreement is not None:
            codec = deflate.codec(agreement)
            parts += [b"sec-websocket-extensions: ", agreement.response, b"\r\n"]
    parts += extra
    parts.append(b"\r\n")
    return b"".join(parts), codec
