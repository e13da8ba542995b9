"""`LocalBackend`: the chat in one process, history in SQLite (the default).

It composes three parts: `Store` (app/store.py: SQLite history), `Hub` (app/hub.py: the
ordered pipeline that assigns ids, deduplicates refs, commits, then publishes) and
`LocalBroker` (app/rooms.py: who is in which room, fan-out into outboxes). Everything runs
on the event loop of one process, so several processes would each be a chat of their own:
for more than one process use `RedisBackend`.

This module imports app.store, app.hub, app.rooms and app.backends.base; never `server/`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.backends.base import Backend, JoinResult
from app.hub import Hub
from app.messages import StoredMessage
from app.metrics import Metrics
from app.rooms import LocalBroker, Member, PresenceEvent, TypingEvent, announced
from app.store import Store

__all__ = ["LocalBackend"]


class LocalBackend(Backend):
    """One process: `Hub` + `LocalBroker` over a SQLite `Store`.

    Args:
        path: SQLite file (`CHAT_DB`), or ":memory:".
        history_limit: messages kept per room (`CHAT_HISTORY_LIMIT`).
    """

    def __init__(self, path: str, history_limit: int, metrics: Metrics) -> None:
        self.store = Store(path, history_limit)
        self.broker = LocalBroker()
        self._metrics = metrics
        self._hub: Hub | None = None

    async def start(self) -> None:
        last_id = await self.store.open()
        self._hub = Hub(self.store, self.broker, self._metrics, last_id)

    async def close(self) -> None:
        if self._hub is not None:
            await self._hub.close()
        await self.store.close()

    def _running(self) -> Hub:
        if self._hub is None:
            raise RuntimeError("LocalBackend used before start()")
        return self._hub

    def say(self, member: Member | None, room: str, nick: str, text: str,
            ref: Any = None) -> asyncio.Future[StoredMessage | None]:
        return self._running().say(member, room, nick, text, ref)

    async def join(self, member: Member, room: str, nick: str, since: int | None = None,
                   *, unique: bool = True, welcome: str | None = None,
                   key: str | None = None) -> JoinResult:
        return await self._running().join(member, room, nick, since,
                                          unique=unique, welcome=welcome, key=key)

    async def leave(self, member: Member, room: str, plain_line: str | None) -> None:
        # LocalBroker never awaits inside: the leave and its presence event are one step.
        nick = self.broker.nick(member, room)
        if nick is None:
            return
        # The last tab of a person leaving is news; an earlier one is not (docs/protocol.md).
        if announced(member, await self.broker.leave(member, room)):
            await self.broker.publish(room, PresenceEvent(room, nick, "leave", member, plain_line))

    async def typing(self, room: str, nick: str) -> None:
        await self.broker.publish(room, TypingEvent(room, nick))

    async def rooms(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        # Both sources are sorted by name: merge the first `limit` of each.
        occupied = dict(self.broker.occupied(after, limit))
        stored = await self.store.rooms(after, limit)
        names = sorted(occupied.keys() | set(stored))[:limit]
        return [(name, occupied.get(name, 0)) for name in names]

    async def history(self, room: str, before: int | None, limit: int) -> list[StoredMessage]:
        return await self.store.before(room, before, limit)

    def room_count(self) -> int:
        return self.broker.room_count()
