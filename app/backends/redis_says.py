"""Storing messages for `RedisBackend`: one task pipelines every `say` that is waiting.

Strategy: `say` only queues a `Say`; the writer task takes everything queued (up to
MAX_BATCH), sends one SAY script call per message in one pipeline (one round trip for the
lot, in queue order, so a connection's messages keep their order), and sorts the answers:
stored (the bus reader delivers it and settles the `Say`), a repeated ref (the original
goes back to the author now), or not stored (`unavailable` when Redis cannot be reached,
`internal` otherwise: the author may resend with the same ref). After a Redis restart
the script cache is empty: NOSCRIPT answers load the script and are sent once more.

This module imports redis.asyncio, msgspec and app/ modules; never `server/`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from app.backends import redis_lua as lua
from app.backends.base import REF_WINDOW, refuse_say
from app.backends.redis_room import Room
from app.messages import StoredMessage
from app.metrics import Metrics
from app.rooms import Member

__all__ = ["Say", "Writer", "stored", "decode_message", "MAX_BATCH"]

log = logging.getLogger("app.redis")

MAX_BATCH: Final = 256  # says per pipeline

Errors = (RedisError, OSError)

decode_message = msgspec.json.Decoder(tuple[str, str, str, Any]).decode


class Say:
    """One `say` on its way: stored, then delivered (which settles `done`)."""

    __slots__ = ("member", "room", "ref", "token", "payload", "refkey", "done")

    def __init__(self, member: Member | None, room: Room, ref: Any, token: bytes,
                 payload: bytes, refkey: bytes, done: asyncio.Future[StoredMessage | None]
                 ) -> None:
        self.member, self.room, self.ref, self.token = member, room, ref, token
        self.payload, self.refkey, self.done = payload, refkey, done


def stored(room: str, raw: bytes) -> StoredMessage:
    """SAY's "<id> <m>" for a repeated ref."""
    ident, _, payload = raw.partition(b" ")
    nick, text, ts, ref = decode_message(payload)
    return StoredMessage(int(ident), room, nick, text, ts, ref)


class Writer:
    """The task that stores says.

    Args:
        redis: the command client.
        history_limit, bus_limit: approximate MAXLEN of a room's history and bus streams.
        settle: called with a `Say` and its outcome when it will not be delivered by the
            bus reader (refused, or a repeated ref).
    """

    def __init__(self, redis: aioredis.Redis, history_limit: int, bus_limit: int,
                 metrics: Metrics, settle: Callable[[Say, StoredMessage | None], None]) -> None:
        self._redis = redis
        self._limits = (history_limit, bus_limit, REF_WINDOW)
        self._metrics = metrics
        self._settle = settle
        self._queue: asyncio.Queue[Say | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._write())

    def put(self, op: Say) -> None:
        self._queue.put_nowait(op)

    async def close(self) -> None:
        """Store what is queued, then stop."""
        self._queue.put_nowait(None)
        await asyncio.gather(self._task, return_exceptions=True)

    async def _write(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < MAX_BATCH:
                batch.append(queue.get_nowait())
            ops = [op for op in batch if op is not None]
            if ops:
                try:
                    await self._store(ops, reload=True)
                except Exception:  # a bug: answer everyone rather than wedge the pipeline
                    log.exception("chat pipeline failed on a batch")
                    for op in ops:
                        if not op.done.done():
                            self._refuse(op, "internal")
            if None in batch:
                return

    def _refuse(self, op: Say, code: str) -> None:
        refuse_say(op.member, code, op.ref)
        self._settle(op, None)

    async def _store(self, ops: list[Say], reload: bool) -> None:
        pipe = self._redis.pipeline(transaction=False)
        limits = self._limits
        for op in ops:
            k = op.room.keys
            pipe.evalsha(lua.SAY.sha, 5, k["hist"], k["bus"], k["refs"], k["reforder"],
                         k["seq"], op.payload, op.refkey, op.token, *limits)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Errors as exc:
            log.warning("Redis unavailable, %d messages not stored: %s", len(ops), exc)
            for op in ops:
                self._refuse(op, "unavailable")
            return
        again = []
        for op, result in zip(ops, results, strict=True):
            if isinstance(result, NoScriptError) and reload:
                again.append(op)
            elif isinstance(result, Exception):
                log.error("could not store a chat message: %s", result)
                self._refuse(op, "internal")
            elif result[0] == 0:  # a ref seen before: the original, not a second copy
                original = stored(op.room.name, result[1])
                if op.member is not None and not op.member.closing:
                    op.member.put(original.ack())
                self._settle(op, original)
            else:  # stored: the reader delivers it (and settles `op`) in the room's order
                self._metrics.messages.inc()
        if again:
            try:
                await self._redis.script_load(lua.SAY.source)
            except Errors:
                for op in again:
                    self._refuse(op, "unavailable")
                return
            await self._store(again, reload=False)

