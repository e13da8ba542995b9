"""The one interface between the chat protocol (app/session.py) and where the chat's state
lives: ordering and ids, history, idempotent refs, room membership, nick uniqueness,
presence and fan-out to the connections of this process.

Two implementations share it and one behaviour suite (tests/app): `LocalBackend`
(app/backends/local.py: one process, history in SQLite) and `RedisBackend`
(app/backends/redis.py: any number of processes sharing one Redis). The session never
reaches behind it: it owns `Member.rooms`, and asks the backend for everything else.

This module imports app.rooms and app.messages; never `server/`.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from typing import Any, Final

from app.messages import StoredMessage, error_frame
from app.rooms import Member

__all__ = [
    "Backend", "JoinResult", "Unavailable", "refuse_say",
    "REF_WINDOW", "JOIN_HISTORY", "SINCE_LIMIT",
]

REF_WINDOW: Final = 1000  # docs/protocol.md: a ref is an idempotency key in the last 1,000 messages
JOIN_HISTORY: Final = 50  # docs/protocol.md: `joined.history` is the last 50 messages
SINCE_LIMIT: Final = 1000  # docs/protocol.md: with `since`, at most the newest 1,000

# The text of the error a `say` gets when its message was not stored (so not broadcast).
NOT_STORED: Final = {
    "internal": "message not stored, try again",
    "unavailable": "chat storage unavailable, message not stored, try again",
}


class Unavailable(Exception):
    """The backend cannot reach its storage right now (e.g. Redis is down); try later."""


@dataclasses.dataclass(frozen=True, slots=True)
class JoinResult:
    """`error` is None on success, else "nick_taken" / "closed" / "internal" / "unavailable"."""

    error: str | None
    members: list[str] = dataclasses.field(default_factory=list)


def refuse_say(member: Member | None, code: str, ref: Any) -> None:
    """Tell the author its message was not stored: it may resend with the same `ref`."""
    if member is not None:
        member.put(error_frame(code, NOT_STORED[code], ref)
                   if member.mode == "v1" else f"error: {code}")


class Backend(abc.ABC):
    """Sequencer, history and rooms of the chat, shared by every connection of the app.

    Promises every implementation keeps (docs/protocol.md "Ordering and delivery"):
    ids strictly increase within a room and every member sees a room's messages in the same
    order; a message is acknowledged (and broadcast) only once stored; `joined.history`
    followed by the live stream has no gap and no duplicate; a (nick, ref) seen in the
    room's last REF_WINDOW messages gives the original back.
    """

    @abc.abstractmethod
    async def start(self) -> None:
        """Open storage and start background tasks.

        Raises:
            Exception: storage cannot be opened; the app does not start.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Serve what is queued, stop background tasks, close storage."""

    @abc.abstractmethod
    def say(self, member: Member | None, room: str, nick: str, text: str,
            ref: Any = None) -> asyncio.Future[StoredMessage | None]:
        """Store and broadcast a message. The author (if any) gets its acknowledgement (the
        message with `ref`) in broadcast order, the original for a repeated (nick, ref), or
        an error frame ("internal" / "unavailable") when the message was not stored.

        Returns:
            A future set to the stored message once the author's copy is queued
            (None when it was not stored).
        """

    @abc.abstractmethod
    async def join(self, member: Member, room: str, nick: str, since: int | None = None,
                   *, unique: bool = True, welcome: str | None = None,
                   key: str | None = None) -> JoinResult:
        """Add `member` to `room` and queue its `joined` reply (v1) before any live event,
        then tell the room (presence; `welcome` is the line plain-text members see).

        One person, several tabs (docs/protocol.md): a nick held only by members that
        joined with the same client `key` may join again; it is listed once in `members`,
        and presence (and a v1 joiner's `welcome`) goes out only when the nick was not in
        the room before (`app.rooms.announced`).

        Args:
            since: history is every message after this id instead of the last ones.
            unique: refuse a nick another member of the room uses (without this `key`).
            key: the join's client key, or None.
        """

    @abc.abstractmethod
    async def leave(self, member: Member, room: str, plain_line: str | None) -> None:
        """Remove `member` from `room` and tell the others (`plain_line` for plain-text
        members), presence only when its nick left the room with it (its last tab).
        Never raises: a member that cannot be removed from shared state now is removed by
        the backend's own expiry (documented per backend)."""

    @abc.abstractmethod
    async def typing(self, room: str, nick: str) -> None:
        """Tell the room's chat.v1 members but `nick` (and its other tabs) that `nick` is
        typing (`TypingEvent`). Pure fan-out: never stored, never ordered with messages;
        a typing event that cannot be delivered now is dropped."""

    @abc.abstractmethod
    async def rooms(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        """The rooms that have members or history, by name (code points), the first `limit`
        named after `after`, each with its number of distinct member nicks (0: history only).

        Raises:
            Unavailable: storage cannot be reached.
        """

    @abc.abstractmethod
    async def history(self, room: str, before: int | None, limit: int) -> list[StoredMessage]:
        """The newest `limit` messages of `room` with an id below `before`, oldest first.

        Raises:
            Unavailable: storage cannot be reached.
        """

    @abc.abstractmethod
    def room_count(self) -> int:
        """Rooms with at least one member on this process."""
