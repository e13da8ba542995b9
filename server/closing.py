"""RFC 6455 close frames: status codes (7.4) and close payloads (5.5.1).

What a close frame carries, both ways: the registry of status codes, which of them may be
sent, and the payload (2-byte code, UTF-8 reason) built and read. `server.frames`
re-exports these names. Imports only the standard library and `server.errors`: no
asyncio, socket, time or clock.
"""

from __future__ import annotations

import enum
import struct

from server.errors import InvalidUTF8, ProtocolError

__all__ = [
    "MAX_CONTROL_PAYLOAD",
    "CloseCode",
    "is_valid_close_code",
    "parse_close",
    "serialize_close",
]

CLOSE_CODE = struct.Struct("!H")


class CloseCode(enum.IntEnum):
    """RFC 6455 7.4.1 status codes and the IANA registry additions (1012-1014)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


# RFC 6455 5.5: "All control frames MUST have a payload length of 125 bytes or less
# and MUST NOT be fragmented."
MAX_CONTROL_PAYLOAD = 125


def is_valid_close_code(code: int) -> bool:
    """Whether a peer may send `code` in a close frame.

    RFC 6455 7.4.1/7.4.2 and the IANA "WebSocket Close Code Number Registry":
    1000-1003 and 1007-1011 are defined; 1012-1014 were registered later (service
    restart, try again later, bad gateway) and are accepted, as websockets does.
    1004 is reserved, 1005/1006/1015 "MUST NOT be set as a status code in a Close
    control frame", 0-999 are not used, 1016-2999 are reserved for future RFCs,
    3000-3999 are registered by libraries and 4000-4999 are for private use.
    Autobahn 7.7.x sends the valid ones, 7.9.x and 7.13.x the invalid ones.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def serialize_close(code: int | None, reason: str = "") -> bytes:
    """Build a close frame payload: 2-byte code then UTF-8 reason (RFC 6455 5.5.1).

    Args:
        code: the status code, or None for an empty payload (then `reason` must be "").
        reason: the reason; the whole payload must fit in 125 bytes.

    Returns:
        The payload bytes (not the frame).

    Raises:
        ValueError: a reason without a code, a code that must not be sent, or a
            payload over 125 bytes.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} must not be sent")
    payload = CLOSE_CODE.pack(code) + reason.encode()
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError("close reason is longer than 123 bytes")
    return payload


def parse_close(payload: bytes) -> tuple[int, str]:
    """Read a received close frame payload.

    Args:
        payload: the unmasked payload of a close frame.

    Returns:
        (code, reason); (1005, "") for an empty payload (RFC 6455 7.1.5: "If this Close
        control frame contains no status code, _The WebSocket Connection Close Code_ is
        considered to be 1005").

    Raises:
        ProtocolError: a 1-byte payload or an invalid code (1002).
        InvalidUTF8: a reason that is not UTF-8 (1007).
    """
    n = len(payload)
    if n == 0:
        return CloseCode.NO_STATUS_RCVD, ""
    # RFC 6455 5.5.1: "If there is a body, the first two bytes of the body MUST be a
    # 2-byte unsigned integer ... representing a status code."
    if n == 1:
        raise ProtocolError("close frame payload of 1 byte")
    (code,) = CLOSE_CODE.unpack_from(payload)
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid close code {code}")
    try:
        # RFC 6455 5.5.1: "the data ... is not guaranteed to be human readable" but is
        # UTF-8 text; 8.1: invalid UTF-8 fails the connection.
        reason = bytes(payload[2:]).decode()
    except UnicodeDecodeError:
        raise InvalidUTF8("invalid UTF-8 in close reason") from None
    return code, reason
