"""One room as a process of the Redis backend sees it: its local members, where its bus
reader stands, and the pending buffers of members whose `joined` is not sent yet.

Everything here is synchronous: an entry read from the bus is delivered to every local
member before anything else runs on the loop, so all members here see one order.
This module imports app.rooms and app.messages; never `server/`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from app.messages import StoredMessage
from app.rooms import Event, Member, PresenceEvent, TypingEvent, deliver

__all__ = ["Room", "Seat", "parse_id"]

Entry = tuple[bytes, dict[bytes, bytes]]


def parse_id(ident: bytes | str) -> tuple[int, int]:
    """A stream id "<ms>-<seq>" as a tuple that sorts like Redis orders ids."""
    raw = ident.decode() if isinstance(ident, bytes) else ident
    ms, _, seq = raw.partition("-")
    return int(ms), int(seq or 0)


class Seat:
    """A local member's place in a room: its member key in Redis, its nick, the client key
    it joined with (or None), and the events that arrived between sitting down and its
    `joined` reply (None once flushed)."""

    __slots__ = ("key", "nick", "client", "pending")

    def __init__(self, key: str, nick: str, client: str | None = None) -> None:
        self.key, self.nick, self.client = key, nick, client
        self.pending: list[tuple[Event, Member | None]] | None = None


class Room:
    """Local members of one room and the bus position delivered to them.

    Args:
        name: the room.
        keys: its Redis keys by role (redis_lua.room_keys).
    """

    __slots__ = ("name", "keys", "bus", "last", "last_raw", "members", "by_key", "ops",
                 "ready", "following")

    def __init__(self, name: str, keys: dict[str, bytes]) -> None:
        self.name, self.keys, self.bus = name, keys, keys["bus"]
        self.last, self.last_raw = (0, 0), b"0-0"
        self.members: dict[Member, Seat] = {}
        self.by_key: dict[str, Member] = {}
        self.ops = 0  # says awaiting delivery: the room is read until they are delivered
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.following = False

    def follow(self, ident: bytes) -> None:
        """Start reading the bus after `ident` (its newest entry when the room was opened)."""
        self.last, self.last_raw = parse_id(ident), ident
        self.following = True
        self.ready.set_result(None)

    def seat(self, member: Member, seat: Seat) -> None:
        """Add `member`: events from now on wait in its buffer until `flush`."""
        seat.pending = []
        self.members[member] = seat
        self.by_key[seat.key] = member

    def unseat(self, member: Member) -> Seat | None:
        seat = self.members.pop(member, None)
        if seat is not None:
            self.by_key.pop(seat.key, None)
        return seat

    def flush(self, member: Member) -> None:
        """`joined` is queued: hand `member` what arrived meanwhile, then deliver live."""
        seat = self.members.get(member)
        if seat is None or seat.pending is None:
            return
        pending, seat.pending = seat.pending, None
        for event, author in pending:
            deliver(member, event, author)

    def receive(self, entries: list[Entry],
                handle: Callable[[Room, bytes, dict[bytes, bytes]], None]) -> None:
        """Entries read from the bus, oldest first; those already delivered are skipped."""
        for ident, fields in entries:
            position = parse_id(ident)
            if position <= self.last:
                continue
            self.last, self.last_raw = position, ident
            handle(self, ident, fields)

    def _fan_out(self, event: Event, author: Member | None) -> None:
        for member, seat in list(self.members.items()):
            if seat.pending is not None:
                seat.pending.append((event, author))
            else:
                deliver(member, event, author)

    def publish(self, message: StoredMessage, author: Member | None) -> None:
        """A message: every member's copy; the author's acknowledgement even if it left."""
        self._fan_out(message, author)
        if author is not None and author not in self.members and not author.closing:
            deliver(author, message, author)

    def presence(self, event: Literal["join", "leave"], nick: str, key: str,
                 line: str | None) -> None:
        self._fan_out(PresenceEvent(self.name, nick, event, self.by_key.get(key), line), None)

    def typing(self, nick: str) -> None:
        self._fan_out(TypingEvent(self.name, nick), None)

    def close_members(self, code: int, reason: str) -> None:
        for member in list(self.members):
            member.close(code, reason)
