"""RFC 9110 5 field syntax shared by the request parser, the handshake and responses.

Tokens (5.6.2), comma-separated lists (5.6.1) and the one shared lowercase object for each
common field name. Imports only the standard library: no asyncio, socket or clock.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["NAMES", "TOKEN_CHARS", "tokens"]

# RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
# "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _spellings(names: Sequence[bytes]) -> dict[bytes, bytes]:
    """Each name as clients write it (lower, Title-Case, WebSocket) -> one lowercase object."""
    table: dict[bytes, bytes] = {}
    for name in names:
        title = name.title()
        for spelling in (name, title, title.replace(b"Websocket", b"WebSocket")):
            table[spelling] = name
    return table


# Common field names, to one shared lowercase object each: the scope keeps the headers of
# every open WebSocket, and a name per header per connection costs ~45 bytes (~200 bytes
# an idle WebSocket, see bench idle). Other names are lowercased as they come.
NAMES = _spellings([
    b"host", b"upgrade", b"connection", b"origin", b"user-agent", b"accept",
    b"accept-encoding", b"accept-language", b"cache-control", b"pragma", b"cookie",
    b"authorization", b"referer", b"content-length", b"content-type", b"transfer-encoding",
    b"expect", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-protocol",
    b"sec-websocket-extensions", b"x-forwarded-for", b"x-forwarded-proto", b"x-real-ip",
])


def tokens(values: Sequence[bytes]) -> list[bytes]:
    """Return the lowercased items of comma-separated field values (RFC 9110 5.6.1)."""
    # `find`, not `in` (here and on the other per-request paths): CPython 3.11's `bytes in
    # bytes` first tries the needle as an integer, raising and clearing a TypeError (~2k
    # instructions each time).
    if len(values) == 1 and values[0].find(b",") == -1:  # the usual case, e.g. "Upgrade"
        item = values[0].strip(b" \t").lower()
        return [item] if item else []
    return [t for v in values for t in (p.strip(b" \t").lower() for p in v.split(b",")) if t]
