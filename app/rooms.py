"""The room hub: members, presence, fan-out into bounded per-connection outboxes.

Strategy: everything a connection sends goes through its `Member.outbox`, a bounded deque
drained by exactly one writer task per connection, so replies, history and live messages
leave in the order they were queued and a slow socket never blocks the publisher. When an
outbox would exceed `queue_limit`, the connection is closed with 1013 "too slow" and its
queue is dropped: memory stays bounded and the room does not slow down (docs/protocol.md
"Ordering and delivery": a client that falls that far behind is closed with 1013).

`Member` and `deliver` serve every backend (app/backends/); `Broker` / `LocalBroker` is the
fan-out of the in-process backend. Which rooms a connection is in (`Member.rooms`) is the
session's to keep: no broker edits it.

One person may be in a room from several connections (tabs): joins with the same nick and
the same client key share the nick (docs/protocol.md). The broker reports whether a join
brought the nick into the room (`Membership.first`) and whether a leave took it out: presence
is about people, so only those changes are announced (`announced`).

This module imports app.messages and app.metrics; never `server/`.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import dataclasses
import heapq
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

from app.messages import Presence, StoredMessage, TypingOut, encode
from app.metrics import Metrics

__all__ = ["Member", "PresenceEvent", "TypingEvent", "Event", "Broker", "LocalBroker",
           "NickTaken", "Membership", "announced"]

log = logging.getLogger("app.rooms")

Send = Callable[[dict[str, Any]], Awaitable[None]]
Mode = Literal["v1", "plain"]

# RFC 6455 7.4.1: 1013 is "Try Again Later" (IANA registry); docs/protocol.md uses it for
# slow clients.
CLOSE_TOO_SLOW: Final = 1013


class NickTaken(Exception):
    """`join` with a nick already used in that room."""


class Member:
    """One WebSocket connection as the broker sees it.

    Args:
        send: the ASGI `send` callable of the connection.
        mode: "v1" (chat.v1 JSON) or "plain" (plain-text lines, docs/protocol.md).
        queue_limit: outbound frames buffered before the connection is closed with 1013.
        metrics: where sent frames, bytes and drops are counted.
        escape_html: plain mode only: messages' lines have `&`, `<`, `>` as HTML entities.
    """

    def __init__(self, send: Send, mode: Mode, queue_limit: int, metrics: Metrics,
                 escape_html: bool = False) -> None:
        self.mode: Mode = mode
        self.escape_html = escape_html  # plain mode: `&`, `<`, `>` of lines as HTML entities
        self.rooms: dict[str, str] = {}  # room -> this connection's nick there (session's)
        self.closing = False  # no more frames are queued once set
        self._send = send
        self._limit = queue_limit
        self._metrics = metrics
        self._outbox: collections.deque[str] = collections.deque()
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._writer = asyncio.get_running_loop().create_task(self._write())
        self.done = asyncio.Event()  # set once the writer has sent its last frame

    def put(self, text: str) -> None:
        """Queue one frame; closes the connection with 1013 if the outbox is full."""
        if self.closing:
            return
        if len(self._outbox) >= self._limit:
            self._too_slow()
            return
        self._outbox.append(text)
        self._wake.set()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send what is queued, then a close frame. Idempotent."""
        if self.closing:
            return
        self.closing = True
        self._close = (code, reason)
        self._wake.set()

    def abort(self) -> None:
        """The peer is gone: stop writing, drop the queue."""
        self.closing = True
        self._outbox.clear()
        self._writer.cancel()

    def _too_slow(self) -> None:
        self.closing = True
        self._metrics.drops.inc()
        self._metrics.errors.labels("too_slow").inc()
        self._outbox.clear()
        # The writer may be stuck in `send` awaiting a drain that will not come: cancel it,
        # then send the close from a fresh task. The close frame queues behind what the
        # server already buffered; the server's close timeout ends the TCP connection.
        self._writer.cancel()
        self._writer.add_done_callback(lambda _: self._start_close(CLOSE_TOO_SLOW, "too slow"))

    def _start_close(self, code: int, reason: str) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._send_close(code, reason))

    async def _send_close(self, code: int, reason: str) -> None:
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:  # noqa: BLE001 - any server's "peer gone" error: nothing to close
            log.debug("close after the peer left", exc_info=True)
        finally:
            self.done.set()

    async def _write(self) -> None:
        outbox, send = self._outbox, self._send
        frames_out, bytes_out = self._metrics.frames_out, self._metrics.bytes_out
        try:
            while True:
                while outbox:
                    text = outbox.popleft()
                    await send({"type": "websocket.send", "text": text})
                    frames_out.inc()
                    bytes_out.inc(len(text.encode()))
                if self._close is not None:
                    break
                self._wake.clear()
                await self._wake.wait()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            # The server reports a vanished peer by raising from send (uvicorn's
            # ClientDisconnected, hypercorn's...): the receive side will see the disconnect.
            self.closing = True
            self.done.set()
            return
        code, reason = self._close
        await self._send_close(code, reason)

    async def wait_closed(self) -> None:
        """Wait for the writer (and its close frame, if any) to finish."""
        await asyncio.gather(self._writer, return_exceptions=True)


class PresenceEvent:
    """Someone joined or left a room, rendered per member mode (v1 JSON / plain line).

    Args:
        member: who joined/left (a v1 member gets no presence event about itself); None
            for a member of another process.
        plain_line: what plain-text members see ("Welcome, n !" / the Logout line), or None.
    """

    __slots__ = ("room", "nick", "event", "member", "plain_line", "_v1")

    def __init__(self, room: str, nick: str, event: Literal["join", "leave"],
                 member: Member | None, plain_line: str | None) -> None:
        self.room, self.nick, self.event = room, nick, event
        self.member, self.plain_line = member, plain_line
        self._v1: str | None = None

    def v1(self) -> str:
        if self._v1 is None:
            self._v1 = encode(Presence(room=self.room, nick=self.nick, event=self.event))
        return self._v1


class TypingEvent:
    """`nick` is typing in `room`: for the room's chat.v1 members other than `nick` itself
    (its other tabs included). Never stored; plain-text members never see it."""

    __slots__ = ("room", "nick", "_v1")

    def __init__(self, room: str, nick: str) -> None:
        self.room, self.nick = room, nick
        self._v1: str | None = None

    def v1(self) -> str:
        if self._v1 is None:
            self._v1 = encode(TypingOut(room=self.room, nick=self.nick))
        return self._v1


Event = StoredMessage | PresenceEvent | TypingEvent


def deliver(member: Member, event: Event, author: Member | None) -> None:
    """Queue `event` for `member` in its own format."""
    if isinstance(event, StoredMessage):  # the per-message path: tested first
        if member.mode == "plain":
            member.put(event.plain(member.escape_html))
        else:
            member.put(event.ack() if member is author else event.v1())
    elif isinstance(event, TypingEvent):
        if member.mode == "v1" and member.rooms.get(event.room) != event.nick:
            member.put(event.v1())
    elif member.mode == "plain":
        if event.plain_line is not None:
            member.put(event.plain_line)
    elif event.member is not member:
        member.put(event.v1())


def announced(member: Member, changed: bool) -> bool:
    """Whether a join/leave of `member` is told to the room (presence, plain-text lines):
    always for a plain-text client (the seed greets every connection), for a chat.v1
    member only when its nick came into or left the room (not for a second tab)."""
    return changed or member.mode == "plain"


@dataclasses.dataclass(frozen=True, slots=True)
class Membership:
    """What `Broker.join` reports: the room's nicks after the join (join order, joiner
    included, each nick once) and whether this join brought `nick` into the room."""

    members: list[str]
    first: bool


class Broker(abc.ABC):
    """Who is in which room, and fan-out. The only state the protocol code shares."""

    @abc.abstractmethod
    async def join(self, member: Member, room: str, nick: str, unique: bool = True,
                   key: str | None = None) -> Membership:
        """Add `member` to `room` as `nick`.

        Args:
            unique: refuse a nick another member of the room uses, unless every member
                using it joined with the same client `key` (not None).
            key: the join's client key, or None.
        Raises:
            NickTaken: `unique` and the nick is used without this key.
        """

    @abc.abstractmethod
    async def leave(self, member: Member, room: str) -> bool:
        """Remove `member` from `room` (no-op when not a member).

        Returns:
            True when the member was there and no other member of the room uses its nick.
        """

    @abc.abstractmethod
    async def publish(self, room: str, event: Event, author: Member | None = None) -> None:
        """Deliver `event` to every member of `room`, in publish order for everyone.

        Args:
            author: gets the acknowledgement copy of a message (and gets it even when it
                left the room meanwhile).
        """

    @abc.abstractmethod
    def room_count(self) -> int:
        """Rooms with at least one member."""


class LocalBroker(Broker):
    """The in-process broker: dicts, no awaits inside, so each call is atomic on the loop."""

    def __init__(self) -> None:
        # room -> member -> (nick, client key); dicts keep join order.
        self._rooms: dict[str, dict[Member, tuple[str, str | None]]] = {}

    async def join(self, member: Member, room: str, nick: str, unique: bool = True,
                   key: str | None = None) -> Membership:
        members = self._rooms.setdefault(room, {})
        held = [held_key for held_nick, held_key in members.values() if held_nick == nick]
        if unique and any(key is None or held_key != key for held_key in held):
            if not members:
                del self._rooms[room]
            raise NickTaken(nick)
        members[member] = (nick, key)
        # A nick used twice (tabs, plain-text clients) is listed once.
        return Membership(list(dict.fromkeys(n for n, _ in members.values())), not held)

    def nick(self, member: Member, room: str) -> str | None:
        """`member`'s nick in `room`, None when not a member."""
        entry = self._rooms.get(room, {}).get(member)
        return None if entry is None else entry[0]

    async def leave(self, member: Member, room: str) -> bool:
        members = self._rooms.get(room)
        if members is None:
            return False
        gone = members.pop(member, None)
        if not members:
            del self._rooms[room]
        return gone is not None and all(n != gone[0] for n, _ in members.values())

    async def publish(self, room: str, event: Event, author: Member | None = None) -> None:
        members = self._rooms.get(room, {})
        # A member closed for slowness inside this loop is removed later by its session.
        for member in list(members):
            deliver(member, event, author)
        if author is not None and author not in members and not author.closing:
            deliver(author, event, author)

    def room_count(self) -> int:
        return len(self._rooms)

    def occupied(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        """Rooms with members named after `after`, the first `limit` by name, each with
        its number of distinct nicks."""
        names = heapq.nsmallest(
            limit, (name for name in self._rooms if after is None or name > after))
        return [(name, len({n for n, _ in self._rooms[name].values()})) for name in names]
