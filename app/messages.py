"""The chat.v1 wire format: msgspec Structs, tagged unions on "type", one JSON object a frame.

Decoding is msgspec's: field types, required fields, the room pattern, nick length and
character class, integer ranges (`since`, `before` in 0..2^63-1, the range SQLite stores)
are all declared on the Structs, so a frame either becomes a typed request or a
`BadRequest` carrying msgspec's explanation; JSON nested deeper than msgspec's recursion
limit is a `BadRequest` too. Rules that have their own error code (`empty`, `too_long`,
`not_joined`...) are checked by the session.

Encoding is also msgspec's; `StoredMessage` caches its encodings so a message fanned out to
N members is encoded once (plus once more for its author's acknowledgement).

This module imports only msgspec and the standard library; never `server/`.
"""

from __future__ import annotations

import datetime
import html
import unicodedata
from typing import Annotated, Any, Final, Literal

import msgspec

__all__ = [
    "SUBPROTOCOL",
    "ROOM_PATTERN",
    "Join",
    "Leave",
    "Say",
    "HistoryRequest",
    "Typing",
    "RoomsRequest",
    "Request",
    "BadRequest",
    "decode_request",
    "nick_problem",
    "NUL_IN_TEXT",
    "StoredMessage",
    "Joined",
    "Left",
    "Presence",
    "HistoryReply",
    "TypingOut",
    "RoomInfo",
    "RoomsReply",
    "ErrorReply",
    "encode",
    "error_frame",
    "utc_now",
    "plain_escape",
]

SUBPROTOCOL: Final = "chat.v1"

# `\Z`, not `$`: in Python's re `$` also matches before a trailing newline ("lobby\n").
ROOM_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}\Z"

# SQLite INTEGER is a signed 64-bit value (sqlite.org/datatype3.html): larger integers
# must be refused while decoding, never reach the store.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
NICK_MAX: Final = 32
# Unicode general categories a nick may not contain (docs/protocol.md "Rules and error
# codes"): controls, format characters (bidi overrides, zero-width), line/paragraph
# separators and surrogates.
_INVISIBLE: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
NUL_IN_TEXT: Final = "text must not contain NUL (U+0000)"

Room = Annotated[str, msgspec.Meta(pattern=ROOM_PATTERN)]
# Nick: 1-32 code points (msgspec counts lengths in code points), not only whitespace;
# the character categories are checked by `nick_problem` (Join.__post_init__).
Nick = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=NICK_MAX, pattern=r"^(?=.*\S)[^\x00-\x1f\x7f-\x9f]*\Z"),
]
MessageId = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
# A browser's random client key (docs/protocol.md, "One person, several tabs"): the same
# nick with the same key may be in a room from several connections.
ClientKey = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{16,64}\Z")]
# `ref` is opaque to the server: echoed back and used as an idempotency key.
Ref = Annotated[str, msgspec.Meta(max_length=128)] | Annotated[
    int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]


def nick_problem(nick: str) -> str | None:
    """Why `nick` breaks the nick rules (docs/protocol.md), or None when it is a valid nick:
    1-32 code points, not only whitespace, no character of category Cc, Cf, Zl, Zp or Cs."""
    if not 1 <= len(nick) <= NICK_MAX:
        return f"nick must be 1 to {NICK_MAX} characters"
    if nick.isspace():
        return "nick must not be only whitespace"
    for char in nick:
        if unicodedata.category(char) in _INVISIBLE:
            return f"nick must not contain control or format characters (U+{ord(char):04X})"
    return None


class _Request(msgspec.Struct, tag_field="type", frozen=True, forbid_unknown_fields=False):
    """Base of client requests; unknown fields are ignored for forward compatibility."""


class Join(_Request, tag="join", frozen=True):
    room: Room
    nick: Nick
    since: MessageId | None = None
    key: ClientKey | None = None
    ref: Ref | None = None

    def __post_init__(self) -> None:
        problem = nick_problem(self.nick)
        if problem is not None:
            raise ValueError(f"{problem} - at `$.nick`")


class Leave(_Request, tag="leave", frozen=True):
    room: Room
    ref: Ref | None = None


class Say(_Request, tag="say", frozen=True):
    room: Room
    # Length and blankness have their own error codes (`too_long`, `empty`): checked later.
    text: str
    ref: Ref | None = None

    def __post_init__(self) -> None:
        if "\x00" in self.text:
            raise ValueError(f"{NUL_IN_TEXT} - at `$.text`")


class HistoryRequest(_Request, tag="history", frozen=True):
    room: Room
    before: MessageId | None = None
    # Over 200 is clamped (docs/protocol.md "Server -> client"); the upper bound is SQLite's.
    limit: Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)] = 50
    ref: Ref | None = None


class Typing(_Request, tag="typing", frozen=True):
    room: Room
    ref: Ref | None = None


class RoomsRequest(_Request, tag="rooms", frozen=True):
    # The `next` of the previous page: the last room name it listed.
    cursor: Room | None = None
    # Over ROOMS_MAX is clamped, like `history`'s limit.
    limit: Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)] = 50
    ref: Ref | None = None


Request = Join | Leave | Say | HistoryRequest | Typing | RoomsRequest



class _RefProbe(msgspec.Struct, forbid_unknown_fields=False):
    """Reads only `ref` from a frame that failed to decode; other fields are skipped."""

    ref: Ref | None = None


_request_decoder: Final = msgspec.json.Decoder(Request)
_ref_decoder: Final = msgspec.json.Decoder(_RefProbe)
TOO_DEEP: Final = "JSON is nested too deeply"


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
        BadRequest: invalid JSON, not an object, unknown `type`, missing or mistyped fields,
            integers out of range, nesting deeper than msgspec's recursion limit (about
            1,000 levels: msgspec stops there, so any nesting costs a bounded amount).
    """
    try:
        request: Request = _request_decoder.decode(text)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise BadRequest(str(exc), _valid_ref(text)) from None
    except RecursionError:
        raise BadRequest(TOO_DEEP) from None
    return request


def _valid_ref(text: str | bytes) -> Any:
    """The frame's `ref` when it is an object whose `ref` is itself valid, else None:
    every error answering a request carries its `ref` (docs/protocol.md), but a ref that
    breaks the rules is not echoed."""
    try:
        return _ref_decoder.decode(text).ref
    except (msgspec.DecodeError, RecursionError):
        return None


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


class TypingOut(_Reply, tag="typing"):
    room: str
    nick: str


class RoomInfo(msgspec.Struct):
    room: str
    members: int


class RoomsReply(_Reply, tag="rooms"):
    rooms: list[RoomInfo]
    next: str | None  # no default: `null` on the last page, never omitted


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

    __slots__ = ("id", "room", "nick", "text", "ts", "ref", "_v1", "_ack", "_plain", "_html")

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
        self._html: str | None = None

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

    def plain(self, escape_html: bool = False) -> str:
        """The plain-text line `HH:MM:SS <nick> say: <text>` in the server's local time
        (docs/protocol.md "Plain text"), with `&`, `<`, `>` as HTML entities if asked."""
        if self._plain is None:
            ts = datetime.datetime.fromisoformat(self.ts.replace("Z", "+00:00"))
            self._plain = f"{ts.astimezone().strftime('%H:%M:%S')} {self.nick} say: {self.text}"
        if not escape_html:
            return self._plain
        if self._html is None:
            self._html = plain_escape(self._plain)
        return self._html


def plain_escape(line: str) -> str:
    """`&`, `<`, `>` as HTML entities: a page that inserts plain-text lines with innerHTML
    (the plain-text page docs/protocol.md describes) then shows them as typed."""
    return html.escape(line, quote=False)
