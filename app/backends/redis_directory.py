"""The `rooms` listing of `RedisBackend`: rooms with members or history, by name, paged.

`chat:rooms` (redis_lua.ROOMS) is a sorted set with every score 0, so ZRANGEBYLEX walks it
by name from a cursor. Every join adds its room; nothing removes a room when it empties, so
a listing checks each name it meets (a member, or a history stream) and drops the empty ones
(a room joined again meanwhile is put back). Each request reads at most ROUNDS slices of the
index: an index full of empty rooms costs a few requests to clean, never one long one.

Member counts are the distinct nicks of the room's member hash, so members of a process that
died are counted until a sweep reaps them (within about 1.33 x CHAT_PRESENCE_TTL).

This module imports redis.asyncio and app.backends.redis_lua; never `server/`.
"""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as aioredis

from app.backends import redis_lua as lua

__all__ = ["list_rooms"]

ROUNDS: Final = 4  # index slices read per request


async def list_rooms(client: aioredis.Redis, after: str | None,
                     limit: int) -> list[tuple[str, int]]:
    """The first `limit` rooms named after `after` with members or history, each with its
    number of distinct member nicks.

    Raises:
        redis.exceptions.RedisError, OSError: Redis cannot be reached.
    """
    found: list[tuple[str, int]] = []
    start = b"-" if after is None else b"(" + after.encode()
    for _ in range(ROUNDS):
        names: Any = await client.zrangebylex(lua.ROOMS, start, b"+", start=0,
                                              num=limit - len(found))
        if not names:
            break
        pipe = client.pipeline(transaction=False)
        for name in names:
            keys = lua.room_keys(name.decode())
            pipe.hvals(keys["nicks"])
            pipe.exists(keys["hist"])
        replies: Any = await pipe.execute()
        empty = []
        for n, name in enumerate(names):
            nicks, history = replies[2 * n], replies[2 * n + 1]
            if nicks or history:
                found.append((name.decode(), len(set(nicks))))
            else:
                empty.append(name)
        if empty:
            await _drop_empty(client, empty)
        if len(found) >= limit:
            break
        start = b"(" + names[-1]
    return found


async def _drop_empty(client: aioredis.Redis, names: list[bytes]) -> None:
    """Take rooms found empty out of the index; one joined meanwhile is put back."""
    await client.zrem(lua.ROOMS, *names)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.exists(lua.room_keys(name.decode())["members"])
    for name, occupied in zip(names, await pipe.execute(), strict=True):
        if occupied:
            await client.zadd(lua.ROOMS, {name: 0})
