"""The chat.v1 wire format: msgspec Structs, tagged unions on "type", one JSON object a frame.

Decoding is msgspec's: field types, required fields, the room pattern, nick length and
character class, `since >= 0`, `limit >= 1` are all declared on the Structs, so a frame
either becomes a typed request or a `BadRequest` carrying msgspec's explanation. Rules that
have their own error code (`empty`, `too_long`, `not_joined`...) are checked by the session.

Encoding is also msgspec's; `StoredMessage` caches its encodings so a message fanned out to
N members is encoded once (plus once more for its author's acknowledgement).

This module imports only msgspec and the standard library; never `server/`.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

__all__ = [
    "SUBPROTOCOL",
    "ROOM_PATTERN",
    "Join",
    "Leave",
    "Say",
    "HistoryRequest",
    "Request",
    "BadRequest",
    "decode_request",
    "StoredMessage",
    "Joined",
    "Left",
    "Presence",
    "HistoryReply",
    "ErrorReply",
    "encode",
    "error_frame",
    "utc_now",
]

SUBPROTOCOL: Final = "chat.v1"

# `\Z`, not `$`: in Python's re `$` also matches before a trailing newline ("lobby\n").
ROOM_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}\Z"

Room = Annotated[str, msgspec.Meta(pattern=ROOM_PATTERN)]
# Nick: 1-32 printable characters. msgspec counts lengths in code points. Control
# characters (C0, DEL, C1) are not printable; a nick must also not be only whitespace.
Nick = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=32, pattern=r"^(?=.*\S)[^\x00-\x1f\x7f-\x9f]*\Z"),
]
MessageId = Annotated[int, msgspec.Meta(ge=0)]
# `ref` is opaque to the server: echoed back and used as an idempotency key.
Ref = Annotated[str, msgspec.Meta(max_length=128)] | int


class _Request(msgspec.Struct, tag_field="type", frozen=True, forbid_unknown_fields=False):
    """Base of client requests; unknown fields are ignored for forward compatibility."""


class Join(_Request, tag="join", frozen=True):
    room: Room
    nick: Nick
    since: MessageId | None = None
    ref: Ref | None = None


class Leave(_Request, tag="leave", frozen=True):
    room: Room
    ref: Ref | None = None


class Say(_Request, tag="say", frozen=True):
    room: Room
    # Length and blankness have their own error codes (`too_long`, `empty`): checked later.
    text: str
    ref: Ref | None = None


class HistoryRequest(_Request, tag="history", frozen=True):
    room: Room
    before: MessageId | None = None
    # Over 200 is clamped (issue), so only the lower bound is a decoding rule.
    limit: Annotated[int, msgspec.Meta(ge=1)] = 50
    ref: Ref | None = None


Request = Join | Leave | Say | HistoryRequest

_request_decoder: Final = msgspec.json.Decoder(Request)
_any_decoder: Final = msgspec.json.Decoder()


class BadRequest(Exception):
    """A frame that is not a valid chat.v1 request.

    Args:
        message: msgspec's explanation (names the field and what was expected).
        ref: the frame's `ref`, when the frame was at least a JSON object carrying one.
    """

    def __init__(self, message: str, ref: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.ref = ref


def decode_request(text: str | bytes) -> Request:
    """Decode one text frame.

    Raises:
        BadRequest: invalid JSON, not an object, unknown `type`, missing or mistyped fields.
    """
    try:
        request: Request = _request_decoder.decode(text)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        ref = None
        try:
            loose = _any_decoder.decode(text)
        except msgspec.DecodeError:
            loose = None
        if isinstance(loose, dict):
            # Issue: "every error answering a request that had a `ref` carries that `ref`".
            ref = loose.get("ref")
        raise BadRequest(str(exc), ref) from None
    return request


# -- server -> client -----------------------------------------------------------------


class _Reply(msgspec.Struct, tag_field="type", omit_defaults=True):
    pass


class MessageOut(_Reply, tag="message"):
    id: int
    room: str
    nick: str
    text: str
    ts: str
    ref: Any = None  # only in the author's copy


class Joined(_Reply, tag="joined"):
    room: str
    nick: str
    members: list[str]
    history: list[MessageOut]
    # Always present, also when false: clients test it, so omit_defaults must not drop it.
    truncated: bool | None = None


class Left(_Reply, tag="left"):
    room: str


class Presence(_Reply, tag="presence"):
    room: str
    nick: str
    event: Literal["join", "leave"]


class HistoryReply(_Reply, tag="history"):
    room: str
    messages: list[MessageOut]


class ErrorReply(_Reply, tag="error"):
    code: str
    message: str
    ref: Any = None


_encoder: Final = msgspec.json.Encoder()


def encode(reply: _Reply) -> str:
    """One reply as the text of one frame."""
    return _encoder.encode(reply).decode()


def error_frame(code: str, message: str, ref: Any = None) -> str:
    return encode(ErrorReply(code=code, message=message, ref=ref))


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds and a "Z", e.g. 2024-05-01T12:00:00.123Z."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return now.isoformat(timespec="milliseconds") + "Z"


class StoredMessage:
    """A committed chat message, with its encodings computed at most once each.

    Args:
        id, room, nick, text, ts: as stored.
        ref: the author's idempotency key, or None.
    """

    __slots__ = ("id", "room", "nick", "text", "ts", "ref", "_v1", "_ack", "_plain")

    def __init__(self, id: int, room: str, nick: str, text: str, ts: str, ref: Any) -> None:
        self.id = id
        self.room = room
        self.nick = nick
        self.text = text
        self.ts = ts
        self.ref = ref
        self._v1: str | None = None
        self._ack: str | None = None
        self._plain: str | None = None

    def out(self, with_ref: bool = False) -> MessageOut:
        return MessageOut(
            id=self.id, room=self.room, nick=self.nick, text=self.text, ts=self.ts,
            ref=self.ref if with_ref else None,
        )

    def v1(self) -> str:
        """The frame every member gets."""
        if self._v1 is None:
            self._v1 = encode(self.out())
        return self._v1

    def ack(self) -> str:
        """The author's copy: the same message plus its `ref`, when it had one."""
        if self.ref is None:
            return self.v1()
        if self._ack is None:
            self._ack = encode(self.out(with_ref=True))
        return self._ack

    def plain(self) -> str:
        """The seed's line: `HH:MM:SS <nick> say: <text>`, in the server's local time."""
        if self._plain is None:
            ts = datetime.datetime.fromisoformat(self.ts.replace("Z", "+00:00"))
            self._plain = f"{ts.astimezone().strftime('%H:%M:%S')} {self.nick} say: {self.text}"
        return self._plain
