"""The ordered pipeline: assign ids, deduplicate refs, commit in batches, then publish.

Strategy: one task (`Hub._run`) owns a queue of operations. Each turn it takes every
operation that is waiting (up to MAX_BATCH), gives the new messages increasing ids,
commits them all in one SQLite transaction, publishes them in id order, and only then
serves the joins of that turn. Because this task is the only publisher of messages and
commits before publishing:
- ids are strictly increasing and every member of a room sees the same order;
- a message is broadcast and acknowledged only after it is on disk;
- a join subscribes and reads its history in one step no publish can interleave with, so
  `joined.history` plus the live stream that follows has no gap and no duplicate.
While a commit runs, new operations queue up: the next commit serves all of them.

This is the ordering half of `LocalBackend` (app/backends/local.py).
This module imports app.store, app.rooms, app.messages and app.backends.base; never `server/`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import Any, Final

from app.backends.base import JOIN_HISTORY, REF_WINDOW, SINCE_LIMIT, JoinResult, refuse_say
from app.messages import Joined, StoredMessage, encode, utc_now
from app.metrics import Metrics
from app.rooms import Broker, Member, NickTaken, PresenceEvent, announced
from app.store import Store

__all__ = ["Hub", "MAX_BATCH"]

log = logging.getLogger("app.hub")

MAX_BATCH: Final = 256  # operations per commit; also bounds one burst into an outbox
MAX_WINDOWS: Final = 1024  # rooms whose recent refs stay in memory (reloaded from SQLite)


@dataclasses.dataclass(slots=True)
class _Say:
    member: Member | None  # None: nobody to acknowledge
    room: str
    nick: str
    text: str
    ref: Any
    done: asyncio.Future[StoredMessage | None]


@dataclasses.dataclass(slots=True)
class _Join:
    member: Member
    room: str
    nick: str
    since: int | None
    unique: bool
    key: str | None  # client key: the same nick with the same key may join again
    welcome: str | None  # the plain-text line others see
    done: asyncio.Future[JoinResult]


class _RefWindow:
    """The last REF_WINDOW messages of one room, and which (nick, ref) they carried."""

    __slots__ = ("entries", "by_key")

    def __init__(self) -> None:
        self.entries: collections.deque[tuple[int, tuple[str, str] | None]] = (
            collections.deque())
        self.by_key: dict[tuple[str, str], StoredMessage] = {}

    def add(self, message: StoredMessage) -> None:
        key = _key(message.nick, message.ref)
        self.entries.append((message.id, key))
        if key is not None:
            self.by_key[key] = message
        if len(self.entries) > REF_WINDOW:
            old_id, old_key = self.entries.popleft()
            if old_key is not None:
                current = self.by_key.get(old_key)
                if current is not None and current.id == old_id:
                    del self.by_key[old_key]


def _fail(ops: list[_Say] | list[_Say | _Join]) -> None:
    """Answer operations that could not be served: nothing was stored or broadcast."""
    for op in ops:
        if op.done.done():
            continue
        if isinstance(op, _Join):
            op.done.set_result(JoinResult("internal"))
            continue
        # Not stored, so not broadcast: tell the author, who may resend with the same ref.
        refuse_say(op.member, "internal", op.ref)
        op.done.set_result(None)


def _key(nick: str, ref: Any) -> tuple[str, str] | None:
    # repr keeps "1" and 1 apart: two different refs to the client.
    return None if ref is None else (nick, repr(ref))


class Hub:
    """Sequencer of one store: every message and join goes through it.

    Args:
        store: an opened Store.
        broker: the room hub to publish into.
        last_id: the last id the store ever assigned (Store.open's result).
    """

    def __init__(self, store: Store, broker: Broker, metrics: Metrics, last_id: int) -> None:
        self.store = store
        self.broker = broker
        self._metrics = metrics
        self._last_id = last_id
        self._queue: asyncio.Queue[_Say | _Join | None] = asyncio.Queue()
        # LRU of rooms' ref windows: bounded memory however many rooms were ever used.
        self._closed = False
        self._windows: collections.OrderedDict[str, _RefWindow] = collections.OrderedDict()
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- API for sessions ---------------------------------------------------------------

    def say(self, member: Member | None, room: str, nick: str, text: str,
            ref: Any = None) -> asyncio.Future[StoredMessage | None]:
        """Queue a message. Its author (if any) gets the committed message (with `ref`) in
        broadcast order; a repeated (nick, ref) gets the original back instead.

        Returns:
            A future set to the stored message once published (None if not stored).
        """
        done: asyncio.Future[StoredMessage | None] = asyncio.get_running_loop().create_future()
        if self._closed:  # shutting down: not stored, so never acknowledged
            done.set_result(None)
        else:
            self._queue.put_nowait(_Say(member, room, nick, text, ref, done))
        return done

    async def join(self, member: Member, room: str, nick: str, since: int | None = None,
                   *, unique: bool = True, welcome: str | None = None,
                   key: str | None = None) -> JoinResult:
        """Subscribe `member` and queue its `joined` reply (v1) before any later message.

        Args:
            unique: refuse a nick already in the room (plain-text nicks need not be unique)
                unless it is held with the same client `key`.
            key: the join's client key (one person in several tabs), or None.
            welcome: the line plain-text members see for this join.
        """
        if self._closed:
            return JoinResult("internal")
        done: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Join(member, room, nick, since, unique, key, welcome, done))
        return await done

    async def close(self) -> None:
        """Serve what is queued, then stop."""
        if self._closed:
            return
        self._queue.put_nowait(None)
        self._closed = True
        await asyncio.gather(self._task, return_exceptions=True)

    # -- the pipeline -------------------------------------------------------------------

    async def _run(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < MAX_BATCH:
                batch.append(queue.get_nowait())
            stop = None in batch
            ops = [op for op in batch if op is not None]
            try:
                await self._serve(ops)
            except Exception:  # a bug: keep serving others rather than wedge every room
                log.exception("chat pipeline failed on a batch")
                self._windows.clear()  # may hold refs of messages that were not stored
                _fail(ops)  # nobody may wait forever for an answer
            if stop:
                self._closed = True
                return

    async def _serve(self, batch: list[_Say | _Join]) -> None:
        says = [op for op in batch if isinstance(op, _Say)]
        if says:
            await self._commit_and_publish(says)
        for op in batch:
            if isinstance(op, _Join):
                await self._join(op)

    async def _window(self, room: str) -> _RefWindow:
        window = self._windows.get(room)
        if window is None:
            window = _RefWindow()
            for message in await self.store.latest(room, REF_WINDOW):
                window.add(message)
            self._windows[room] = window
            if len(self._windows) > MAX_WINDOWS:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(room)
        return window

    async def _commit_and_publish(self, says: list[_Say]) -> None:
        ts = utc_now()
        fresh: list[StoredMessage] = []
        results: list[tuple[_Say, StoredMessage, bool]] = []  # (op, message, is_new)
        for op in says:
            window = await self._window(op.room)
            key = _key(op.nick, op.ref)
            original = window.by_key.get(key) if key is not None else None
            if original is not None:
                results.append((op, original, False))
                continue
            self._last_id += 1
            message = StoredMessage(self._last_id, op.room, op.nick, op.text, ts, op.ref)
            window.add(message)
            fresh.append(message)
            results.append((op, message, True))
        if fresh:
            try:
                await self.store.append(fresh)
            except Exception:
                log.exception("could not store %d chat messages", len(fresh))
                # Forget the refs: a retry of those messages must be stored, not "deduplicated".
                self._windows.clear()
                _fail([op for op, _, _ in results])
                return
            self._metrics.messages.inc(len(fresh))
        burst = len(results) > 1
        for op, message, is_new in results:
            if is_new:
                await self.broker.publish(message.room, message, op.member)
                if burst:
                    # Let writer tasks drain between messages of a batch: a batch bigger
                    # than CHAT_QUEUE_LIMIT must not overflow the outbox of a healthy client.
                    await asyncio.sleep(0)
            elif op.member is not None and not op.member.closing:
                # Idempotent resend: the author gets the original acknowledgement again.
                op.member.put(message.ack())
            if not op.done.done():
                op.done.set_result(message)

    async def _join(self, op: _Join) -> None:
        member = op.member
        if member.closing:
            op.done.set_result(JoinResult("closed"))
            return
        try:
            joined = await self.broker.join(member, op.room, op.nick, op.unique, op.key)
        except NickTaken:
            op.done.set_result(JoinResult("nick_taken"))
            return
        # No await between subscribing and queueing `joined` may let a publish in, except
        # the store read below, during which this task (the only publisher) is waiting.
        try:
            if op.since is None:
                history, truncated = await self.store.latest(op.room, JOIN_HISTORY), False
            else:
                history, truncated = await self.store.since(op.room, op.since, SINCE_LIMIT)
        except Exception:
            log.exception("could not read history of %r", op.room)
            await self.broker.leave(member, op.room)
            op.done.set_result(JoinResult("internal"))
            return
        if member.mode == "v1":
            member.put(encode(Joined(
                room=op.room, nick=op.nick, members=joined.members,
                history=[m.out() for m in history], truncated=truncated,
            )))
        # Another tab of someone already in the room is no news (docs/protocol.md).
        if announced(member, joined.first):
            await self.broker.publish(
                op.room, PresenceEvent(op.room, op.nick, "join", member, op.welcome))
        op.done.set_result(JoinResult(None, joined.members))
