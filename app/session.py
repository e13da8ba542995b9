"""One chat connection: chat.v1 requests or plain-text lines -> Backend calls.

The session turns each received text frame into at most one reply or one queued message;
bad input becomes an error reply (chat.v1 `{"type":"error",...}`, plain `error: <code>`)
and the connection stays open. Everything it sends goes through `Member.put`, so replies
keep their order relative to the messages and presence the connection receives.
The session keeps `Member.rooms` (which rooms this connection is in, with its nick there);
everything shared (ids, history, membership, presence) is the backend's (app/backends/).

This module imports the other app/ modules; never `server/`.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from app.backends import Backend, Unavailable
from app.config import Settings
from app.messages import (
    BadRequest,
    HistoryReply,
    HistoryRequest,
    Join,
    Leave,
    Left,
    RoomInfo,
    RoomsReply,
    RoomsRequest,
    Say,
    Typing,
    decode_request,
    encode,
    error_frame,
    nick_problem,
    plain_escape,
)
from app.metrics import Metrics
from app.rooms import Member

__all__ = ["Session", "V1Session", "PlainSession", "TokenBucket", "LOBBY", "HISTORY_MAX",
           "farewell", "plain_nick", "PLAIN_NICK_FALLBACK", "ROOMS_MAX", "TYPING_INTERVAL"]

log = logging.getLogger("app.session")

LOBBY: Final = "lobby"  # the room plain-text clients chat in (docs/protocol.md "Plain text")
HISTORY_MAX: Final = 200  # docs/protocol.md "Server -> client": `limit` above 200 is clamped
# The nick of a plain-text client whose address is not an IP address and breaks the nick
# rules (docs/protocol.md "Plain text").
PLAIN_NICK_FALLBACK: Final = "unknown"
ROOMS_MAX: Final = 100  # docs/protocol.md: a `rooms` page has at most 100 rooms
TYPING_INTERVAL: Final = 2.0  # docs/protocol.md: one `typing` per room every 2 s is forwarded

ERROR_MESSAGES: Final = {
    "already_joined": "you are already in this room",
    "too_many_rooms": "too many rooms joined on this connection",
    "nick_taken": "this nick is already used in this room",
    "not_joined": "join the room first",
    "empty": "message text is empty",
    "too_long": "message text is too long",
    "rate_limited": "too many messages, slow down",
    "internal": "internal error, try again",
    "unavailable": "the chat cannot reach its storage, try again",
}


class TokenBucket:
    """`burst` tokens, refilled at burst/period per second; one per chat message."""

    def __init__(self, burst: int, period: float) -> None:
        self.capacity = float(burst)
        self.rate = burst / period
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def plain_nick(client: Any) -> str:
    """A plain-text client's nick from the ASGI scope's `client` (docs/protocol.md "Plain
    text"): an IP address in its canonical form (RFC 5952 for IPv6, no zone), else the host
    if it keeps the nick rules, else PLAIN_NICK_FALLBACK. Whatever a server (or a proxy
    header it trusts) put there, the nick is printable, short and one line."""
    host = client[0] if isinstance(client, (list, tuple)) and client else None
    if not isinstance(host, str):
        return PLAIN_NICK_FALLBACK
    try:
        return str(ipaddress.ip_address(host.partition("%")[0]))
    except ValueError:
        pass
    return host if nick_problem(host) is None else PLAIN_NICK_FALLBACK


def logout_line(nick: str, escape_html: bool = False) -> str:
    """The plain-text Logout line, `HH:MM:SS <nick> say: <nick> Logout` (server local time)."""
    line = f"{time.strftime('%H:%M:%S')} {nick} say: {nick} Logout"
    return plain_escape(line) if escape_html else line


def farewell(room: str, nick: str, escape_html: bool = False) -> str | None:
    """What plain-text members see when `nick` leaves `room` without a word."""
    return logout_line(nick, escape_html) if room == LOBBY else None


def _unlimited() -> bool:
    return True


class Session:
    """State shared by both modes: the member, its rate limits, leaving on disconnect.

    `address_take` spends one chat message of the client's address (`CHAT_ADDRESS_RATE`,
    app/limits.py) and says whether it had one; the app sets it, the default never limits.
    """

    def __init__(self, member: Member, backend: Backend, settings: Settings,
                 metrics: Metrics) -> None:
        self.member = member
        self.backend = backend
        self.settings = settings
        self.metrics = metrics
        self.bucket = TokenBucket(settings.rate_burst, settings.rate_period)
        self.address_take: Callable[[], bool] = _unlimited

    async def start(self) -> None:
        """Called once after accept."""

    async def receive_text(self, text: str) -> None:
        raise NotImplementedError

    def text_error(self, text: str) -> str | None:
        """`empty` / `too_long` for a chat message's text (lengths in code points)."""
        if len(text) > self.settings.max_text:
            return "too_long"
        if not text.strip():
            return "empty"
        return None

    def welcome_line(self, nick: str) -> str:
        """What plain-text members of lobby see when `nick` joins it."""
        line = f"Welcome, {nick} !"
        return plain_escape(line) if self.settings.plain_escape_html else line

    async def leave(self, room: str, plain_line: str | None) -> None:
        if self.member.rooms.pop(room, None) is None:
            return
        await self.backend.leave(self.member, room, plain_line)

    async def finish(self) -> None:
        """The connection is gone: leave every room, telling the others."""
        escape = self.settings.plain_escape_html
        for room, nick in list(self.member.rooms.items()):
            await self.leave(room, farewell(room, nick, escape))


class V1Session(Session):
    """chat.v1: one JSON request per text frame (docs/protocol.md)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.typing_sent: dict[str, float] = {}  # room -> when our last `typing` went out
        # `rooms` requests have a bucket of their own, so listing never costs a message.
        self.listing = TokenBucket(self.settings.rate_burst, self.settings.rate_period)

    def error(self, code: str, ref: Any = None, message: str | None = None) -> None:
        self.metrics.errors.labels(code).inc()
        self.member.put(error_frame(code, message or ERROR_MESSAGES[code], ref))

    async def receive_text(self, text: str) -> None:
        try:
            request = decode_request(text)
        except BadRequest as exc:
            self.error("bad_request", exc.ref, exc.message)
            return
        if isinstance(request, Say):
            self.say(request)
        elif isinstance(request, Typing):
            await self.typing(request)
        elif isinstance(request, Join):
            await self.join(request)
        elif isinstance(request, Leave):
            await self.leave_request(request)
        elif isinstance(request, RoomsRequest):
            await self.rooms(request)
        else:
            await self.history(request)

    def say(self, request: Say) -> None:
        nick = self.member.rooms.get(request.room)
        if nick is None:
            return self.error("not_joined", request.ref)
        problem = self.text_error(request.text)
        if problem is not None:
            return self.error(problem, request.ref)
        # The rate limit counts chat messages only, after validation (docs/protocol.md).
        if not (self.bucket.take() and self.address_take()):
            return self.error("rate_limited", request.ref)
        # A message ends "typing" for its readers: the next `typing` is news again.
        self.typing_sent.pop(request.room, None)
        # Not awaited: the acknowledgement arrives through the outbox after the commit,
        # so one connection can have several messages in flight.
        self.backend.say(self.member, request.room, nick, request.text, request.ref)

    async def join(self, request: Join) -> None:
        if request.room in self.member.rooms:
            return self.error("already_joined", request.ref)
        if len(self.member.rooms) >= self.settings.max_rooms:
            return self.error("too_many_rooms", request.ref)
        welcome = self.welcome_line(request.nick) if request.room == LOBBY else None
        result = await self.backend.join(
            self.member, request.room, request.nick, request.since, welcome=welcome,
            key=request.key)
        if result.error is None:
            self.member.rooms[request.room] = request.nick
        elif result.error != "closed":
            self.error(result.error, request.ref)

    async def typing(self, request: Typing) -> None:
        nick = self.member.rooms.get(request.room)
        if nick is None:
            return self.error("not_joined", request.ref)
        # At most one forwarded per room every TYPING_INTERVAL; the rest are dropped
        # without a reply: a client sends these while a key is held, errors would be noise.
        now = time.monotonic()
        last = self.typing_sent.get(request.room)
        if last is not None and now - last < TYPING_INTERVAL:
            return
        self.typing_sent[request.room] = now
        await self.backend.typing(request.room, nick)

    async def rooms(self, request: RoomsRequest) -> None:
        if not self.listing.take():
            return self.error("rate_limited", request.ref)
        limit = min(request.limit, ROOMS_MAX)
        try:
            # One more than asked for tells whether another page follows.
            found = await self.backend.rooms(request.cursor, limit + 1)
        except Unavailable:
            return self.error("unavailable", request.ref)
        page = found[:limit]
        self.member.put(encode(RoomsReply(
            rooms=[RoomInfo(room=name, members=count) for name, count in page],
            next=page[-1][0] if len(found) > limit else None)))

    async def leave_request(self, request: Leave) -> None:
        if request.room not in self.member.rooms:
            return self.error("not_joined", request.ref)
        self.typing_sent.pop(request.room, None)
        nick = self.member.rooms[request.room]
        # Plain-text clients in lobby see a v1 member leave as the Logout line.
        escape = self.settings.plain_escape_html
        await self.leave(request.room, farewell(request.room, nick, escape))
        self.member.put(encode(Left(room=request.room)))

    async def history(self, request: HistoryRequest) -> None:
        if request.room not in self.member.rooms:
            return self.error("not_joined", request.ref)
        try:
            messages = await self.backend.history(
                request.room, request.before, min(request.limit, HISTORY_MAX))
        except Unavailable:
            return self.error("unavailable", request.ref)
        reply = HistoryReply(room=request.room, messages=[m.out() for m in messages])
        self.member.put(encode(reply))


class PlainSession(Session):
    """Plain text (docs/protocol.md): every text frame is a line said in lobby; `quit` logs out."""

    def __init__(self, nick: str, *args: Any) -> None:
        super().__init__(*args)
        self.nick = nick

    async def start(self) -> None:
        # When anyone joins lobby, plain-text clients get `Welcome, <nick> !`, the joiner
        # included (docs/protocol.md "Plain text").
        result = await self.backend.join(self.member, LOBBY, self.nick, unique=False,
                                         welcome=self.welcome_line(self.nick))
        if result.error is None:
            self.member.rooms[LOBBY] = self.nick
        elif result.error != "closed":
            # Not in lobby, so every line would go nowhere: say why, and close (RFC 6455
            # 7.4.1: 1013 "Try Again Later").
            self.error(result.error)
            self.member.close(1013, "try again later")

    def error(self, code: str) -> None:
        self.metrics.errors.labels(code).inc()
        self.member.put(f"error: {code}")

    async def receive_text(self, text: str) -> None:
        if LOBBY not in self.member.rooms:
            return  # logging out
        if text == "quit":
            # `HH:MM:SS <nick> say: <nick> Logout` to everyone, itself included, then close
            # (docs/protocol.md). It is a stored message, so v1 members and history see it.
            await self.backend.say(self.member, LOBBY, self.nick, f"{self.nick} Logout")
            # The Logout line already told plain clients; v1 members get a presence leave.
            await self.leave(LOBBY, None)
            self.member.close(1000)
            return
        if "\x00" in text:
            return self.error("bad_request")
        problem = self.text_error(text)
        if problem is not None:
            return self.error(problem)
        if not (self.bucket.take() and self.address_take()):
            return self.error("rate_limited")
        self.backend.say(self.member, LOBBY, self.nick, text)
