"""RFC 6455 9.1 extension headers and RFC 7692 5 permessage-deflate negotiation, sans-I/O.

`parse_extensions` reads ``Sec-WebSocket-Extensions`` offers; `accept_offer` turns one
permessage-deflate offer into an `Agreement` (the response value and the parameters in
force) or declines it. `server.deflate` (the codec, and `DeflateSettings.negotiate` that
calls these) re-exports the names. Imports only the standard library and
`server.errors`: no asyncio, socket, time or clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from server.errors import HandshakeError

__all__ = ["CACHE_SIZE", "NAME", "Agreement", "Offer", "accept_offer", "parse_extensions"]

NAME = b"permessage-deflate"
# RFC 7692 7.1.2.1: "a decimal integer value without leading zeroes between 8 to 15".
_WINDOW_VALUES = {str(bits).encode(): bits for bits in range(8, 16)}

# One extension offer: its name and its parameters in order, a value being None when the
# parameter has none (quoted values are unquoted).
Offer = tuple[bytes, tuple[tuple[bytes, bytes | None], ...]]

# RFC 6455 9.1: extension-list = 1#extension; extension = extension-token *( ";"
# extension-param ); extension-param = token [ "=" (token | quoted-string) ], and "When
# using the quoted-string syntax variant, the value after quoted-string unescaping MUST
# conform to the 'token' ABNF." RFC 9110 5.6.1: empty list elements are allowed (and
# ignored); 5.6.3: OWS is spaces and tabs.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_OWS = rb"[ \t]*"
_PARAM = re.compile(_OWS + rb";" + _OWS + rb"(" + _TOKEN + rb")" + rb"(?:" + _OWS + rb"=" + _OWS
                    + rb"(?:(" + _TOKEN + rb")|\"((?:[^\"\\]|\\.)*)\"))?")
_NAME = re.compile(rb"[ \t,]*(" + _TOKEN + rb")")
_NEXT = re.compile(_OWS + rb"(?:,|$)")
_TOKEN_ONLY = re.compile(_TOKEN + rb"\Z")
_UNESCAPE = re.compile(rb"\\(.)")

# Parsed header values and negotiation results are memoised: browsers send the same
# header on every connection. Bounded, so that varied hostile headers cannot grow them.
CACHE_SIZE = 64
_parsed: dict[tuple[bytes, ...], tuple[Offer, ...]] = {}


def parse_extensions(values: Sequence[bytes]) -> tuple[Offer, ...]:
    """Parse the ``Sec-WebSocket-Extensions`` header values of a request, in order.

    Args:
        values: every value of the header (it may be repeated, RFC 6455 9.1).

    Returns:
        The offers, in the client's order of preference.

    Raises:
        HandshakeError: 400 for a value that breaks the RFC 6455 9.1 grammar.
    """
    key = tuple(values)
    cached = _parsed.get(key)
    if cached is not None:
        return cached
    offers: list[Offer] = []
    for value in values:
        pos = 0
        end = len(value)
        while True:
            match = _NAME.match(value, pos)
            if match is None:
                if value[pos:].strip(b" \t,"):
                    raise HandshakeError("invalid Sec-WebSocket-Extensions header")
                break
            name = match.group(1)
            pos = match.end()
            params: list[tuple[bytes, bytes | None]] = []
            while (param := _PARAM.match(value, pos)) is not None:
                token, quoted = param.group(2), param.group(3)
                if quoted is not None:
                    token = _UNESCAPE.sub(rb"\1", quoted)
                    if not _TOKEN_ONLY.match(token):
                        raise HandshakeError("invalid Sec-WebSocket-Extensions header")
                params.append((param.group(1), token))
                pos = param.end()
            after = _NEXT.match(value, pos)
            if after is None:
                raise HandshakeError("invalid Sec-WebSocket-Extensions header")
            offers.append((name, tuple(params)))
            pos = after.end()
            if pos >= end:
                break
    result = tuple(offers)
    if len(_parsed) >= CACHE_SIZE:
        _parsed.clear()
    _parsed[key] = result
    return result


@dataclass(frozen=True, slots=True)
class Agreement:
    """An accepted permessage-deflate offer.

    Attributes:
        response: the ``Sec-WebSocket-Extensions`` value of the 101 response.
        server_no_context_takeover: each message we send is compressed on its own.
        client_no_context_takeover: each message the client sends starts afresh.
        server_window_bits: the LZ77 window we compress with (8: Huffman coding only).
        client_window_bits: the window we inflate the client's messages with.
    """

    response: bytes
    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_window_bits: int
    client_window_bits: int


def accept_offer(
    params: Sequence[tuple[bytes, bytes | None]], window_bits: int, context_takeover: bool
) -> Agreement | None:
    """One permessage-deflate offer's parameters -> an agreement, or None to decline it.

    `window_bits` and `context_takeover` are the server's settings (`DeflateSettings`).

    RFC 7692 5: "A server MUST decline an extension negotiation offer for this
    extension if any of the following conditions are met: The negotiation offer
    contains an extension parameter not defined for use in an offer. The negotiation
    offer contains an extension parameter with an invalid value. The negotiation offer
    contains multiple extension parameters with the same name. The server doesn't
    support the offered configuration."
    """
    server_nct = client_nct = False
    server_bits: int | None = None
    client_bits: int | None = None  # 0: offered without a value
    seen: set[bytes] = set()
    for name, value in params:
        if name in seen:
            return None
        seen.add(name)
        if name == b"server_no_context_takeover" or name == b"client_no_context_takeover":
            if value is not None:
                return None
            if name == b"server_no_context_takeover":
                server_nct = True
            else:
                client_nct = True
        elif name == b"server_max_window_bits":
            # RFC 7692 7.1.2.1: this parameter has a value in an offer.
            if value is None or value not in _WINDOW_VALUES:
                return None
            server_bits = _WINDOW_VALUES[value]
        elif name == b"client_max_window_bits":
            # RFC 7692 7.1.2.2: "This parameter has no value or a decimal integer value
            # without leading zeroes between 8 to 15 inclusive".
            if value is None:
                client_bits = 0
            elif value in _WINDOW_VALUES:
                client_bits = _WINDOW_VALUES[value]
            else:
                return None
        else:
            return None
    response = [NAME]
    # RFC 7692 7.1.1.1/7.1.1.2: a server may add either no_context_takeover parameter
    # even when the offer did not include it.
    if not context_takeover:
        server_nct = client_nct = True
    if server_nct:
        response.append(b"server_no_context_takeover")
    if client_nct:
        response.append(b"client_no_context_takeover")
    # RFC 7692 7.1.2.1: our window must not exceed the one asked for; a server may
    # also announce a smaller one unasked.
    server_window = min(window_bits, server_bits or 15)
    if server_bits is not None or server_window < 15:
        response.append(b"server_max_window_bits=%d" % server_window)
    # RFC 7692 7.1.2.2: "If a received extension negotiation offer doesn't have the
    # client_max_window_bits extension parameter, the corresponding extension
    # negotiation response to the offer MUST NOT include" it.
    client_window = 15
    if client_bits is not None:
        client_window = min(window_bits, client_bits or 15)
        if client_window < 15 or client_bits:
            response.append(b"client_max_window_bits=%d" % client_window)
    return Agreement(
        b"; ".join(response), server_nct, client_nct, server_window,
        # zlib never deflates with a 256-byte window (it uses 512 instead), so a
        # peer that was told 8 may send 9-bit distances: inflate with at least 9.
        max(client_window, 9),
    )
