"""`RedisBackend`: every process that shares one Redis is one chat (`CHAT_REDIS_URL`).

Strategy (keys and scripts: app/backends/redis_lua.py):
- One order per room: a `say` runs one Lua script that takes the next id from `chat:seq` and
  appends the message to the room's history stream and to its bus stream, with the same
  id. Joins and leaves append presence entries to the same bus. Redis runs scripts one at
  a time, so the bus is the room's single order, whichever process wrote to it.
- One reader per process: a task blocks in XREAD on the bus of every room that has a
  member here (plus this process's wake stream, so a new room is read at once), from the
  last id it delivered, and puts each entry in the outbox of the local members: fan-out
  crosses Redis once per process per entry, however many members. After a lost connection
  it reads on from the same id: nothing is skipped, nothing is delivered twice.
- Acknowledged = in Redis: the author's copy (with its `ref`) is one of the reader's
  deliveries, so it comes after Redis stored the message, in the room's order.
- Join without gap or duplicate: the joiner is added to the room's local members with a
  pending buffer at the moment the reader has delivered up to bus id B; its history is
  read up to B (SNAPSHOT), everything after B reaches the buffer, which is flushed right
  after `joined`.
- Sends go through one writer task that pipelines every `say` waiting (one round trip for
  many), in the order they were made. Redis unreachable: each waiting `say` is answered
  `unavailable` at once (never dropped); the loops retry with a capped backoff.
- Presence across processes: `chat:proc:<id>` (PX = CHAT_PRESENCE_TTL) is refreshed every
  third of the TTL; each process sweeps the rooms it reads, removing members whose process
  key expired and telling the room, so a dead process's members vanish within about
  1.33 x TTL.

This module imports redis.asyncio, msgspec and app/ modules; never `server/`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoScriptError, RedisError, ResponseError

from app.backends import redis_lua as lua
from app.backends.base import (
    JOIN_HISTORY,
    SINCE_LIMIT,
    Backend,
    JoinResult,
    Unavailable,
)
from app.backends.redis_directory import list_rooms
from app.backends.redis_room import Room, Seat, parse_id
from app.backends.redis_says import Say, Writer, decode_message, stored
from app.messages import Joined, StoredMessage, encode, utc_now
from app.metrics import Metrics
from app.rooms import Member

__all__ = ["RedisBackend"]

log = logging.getLogger("app.redis")

BUS_LIMIT: Final = 10_000  # bus entries kept per room: how far a reader may fall behind
BLOCK_MS: Final = 5000  # XREAD BLOCK; the reader's socket timeout is longer
COMMAND_TIMEOUT: Final = 5.0
CONNECT_TIMEOUT: Final = 2.0
BACKOFF_MAX: Final = 2.0
CLOSE_WAIT: Final = 2.0  # at shutdown, how long acknowledgements may take to come back
MAX_ID: Final = 2**63 - 1  # Redis stream ids are 64-bit

Errors = (RedisError, OSError)



class RedisBackend(Backend):
    """The chat's state in Redis; this process keeps only its own connections.

    Args:
        url: `CHAT_REDIS_URL` (redis://, rediss:// or unix://; credentials in the URL).
        history_limit: `CHAT_HISTORY_LIMIT`, the approximate MAXLEN of history streams.
        presence_ttl: `CHAT_PRESENCE_TTL` seconds.
        farewell: the plain-text line for a member that vanished with its process.
    """

    def __init__(self, url: str, history_limit: int, presence_ttl: float, metrics: Metrics,
                 farewell: Callable[[str, str], str | None]) -> None:
        self._url = url
        self._history_limit = history_limit
        self._ttl_ms = int(presence_ttl * 1000)
        self._metrics = metrics
        self._farewell = farewell
        self.proc = uuid.uuid4().hex[:16]
        self._proc_key = (lua.PROC + self.proc).encode()
        self._wake_key = (lua.WAKE + self.proc).encode()
        self._serial = itertools.count(1)
        self._rooms: dict[str, Room] = {}
        self._by_bus: dict[bytes, Room] = {}
        self._ops: dict[bytes, Say] = {}  # author token -> say awaiting its delivery
        # leaves Redis has not seen yet: (room, member key, presence, mode)
        self._orphans: list[tuple[str, bytes, bytes, str]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._registered = False

    # -- lifecycle ----------------------------------------------------------------------

    def _client(self, socket_timeout: float) -> aioredis.Redis:
        # No retries inside redis-py: a failed `say` is answered `unavailable` at once and
        # our loops retry with their own backoff.
        return aioredis.Redis.from_url(
            self._url, retry=Retry(NoBackoff(), 0), socket_timeout=socket_timeout,
            socket_connect_timeout=CONNECT_TIMEOUT, client_name=f"chat-{self.proc}")

    async def start(self) -> None:
        self._redis = self._client(COMMAND_TIMEOUT)
        self._reader = self._client(BLOCK_MS / 1000 + COMMAND_TIMEOUT)
        try:
            await self._beat()
        except AuthenticationError:
            raise  # a wrong password will not get better: refuse to start
        except Errors as exc:
            # Redis may come up after the app (containers): serve, answer `unavailable`.
            log.warning("Redis unreachable at start-up (%s); retrying", type(exc).__name__)
        loop = asyncio.get_running_loop()
        self._writer = Writer(self._redis, self._history_limit, BUS_LIMIT, self._metrics,
                              self._settle)
        self._tasks = [loop.create_task(self._read()), loop.create_task(self._heartbeat())]

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        await self._writer.close()  # serves every say queued before
        others = self._tasks
        # Stored messages come back through the reader: let their acknowledgements out.
        try:
            async with asyncio.timeout(CLOSE_WAIT):
                while self._ops:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning("%d messages stored but not delivered before shutdown", len(self._ops))
        # Not cancelled in the middle of a blocking XREAD (redis-py would wait it out): the
        # reader's connection is closed under it, and the loops see `_closing`.
        await self._reader.connection_pool.disconnect()
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=CLOSE_WAIT)
        for op in list(self._ops.values()):
            self._settle(op, None)
        try:
            await self._redis.delete(self._proc_key, self._wake_key)
        except Errors:
            pass  # the key expires by itself
        await self._redis.aclose()
        await self._reader.aclose()

    # -- helpers ------------------------------------------------------------------------

    async def _eval(self, script: lua.Script, keys: list[bytes], *args: Any) -> Any:
        try:
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted (its script cache is empty)
            await self._redis.script_load(script.source)
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)

    def _membership(self, room: str) -> list[bytes]:
        k = lua.room_keys(room)
        return [k["members"], k["nicks"], k["bus"], k["seq"], k["ckeys"]]

    def _presence(self, event: str, seat: Seat, line: str | None) -> bytes:
        return msgspec.json.encode({"e": event, "n": seat.nick, "k": seat.key, "l": line})

    def _settle(self, op: Say, message: StoredMessage | None) -> None:
        self._ops.pop(op.token, None)
        if not op.done.done():
            op.done.set_result(message)
        op.room.ops -= 1
        self._forget_if_empty(op.room)

    def _forget_if_empty(self, room: Room) -> None:
        if not room.members and room.ops == 0 and self._rooms.get(room.name) is room:
            del self._rooms[room.name]
            del self._by_bus[room.bus]

    # -- say ------------------------------------------------------------------------------

    def say(self, member: Member | None, room: str, nick: str, text: str,
            ref: Any = None) -> asyncio.Future[StoredMessage | None]:
        done: asyncio.Future[StoredMessage | None] = asyncio.get_running_loop().create_future()
        state = self._rooms.get(room)
        if self._closing or state is None:  # shutting down, or not a member: not stored
            done.set_result(None)
            return done
        token = f"{self.proc}:{next(self._serial)}".encode()
        refkey = b"" if ref is None else msgspec.json.encode([nick, ref])
        op = Say(member, state, ref, token,
                  msgspec.json.encode([nick, text, utc_now(), ref]), refkey, done)
        state.ops += 1
        self._ops[token] = op
        self._writer.put(op)
        return done

    # -- join / leave -----------------------------------------------------------------------

    async def _room(self, name: str) -> Room:
        """This process's view of `name`, read from the bus's current end when new."""
        room = self._rooms.get(name)
        if room is not None:
            await room.ready
            return room
        room = Room(name, lua.room_keys(name))
        self._rooms[name] = room
        self._by_bus[room.bus] = room
        try:
            newest: Any = await self._redis.xrevrange(room.bus, count=1)
            room.follow(newest[0][0] if newest else b"0-0")
            # Wake the reader so it reads this bus too (its XREAD names the streams).
            await self._redis.xadd(self._wake_key, {b"r": name.encode()}, maxlen=16)
            await self._redis.pexpire(self._wake_key, max(self._ttl_ms, 60_000))
        except Errors as exc:
            room.ready.set_exception(exc)
            room.ready.exception()  # marked retrieved: waiting joiners get it from `await`
            self._forget_if_empty(room)
            raise
        except BaseException:
            room.ready.cancel()
            self._forget_if_empty(room)
            raise
        return room

    async def join(self, member: Member, room: str, nick: str, since: int | None = None,
                   *, unique: bool = True, welcome: str | None = None,
                   key: str | None = None) -> JoinResult:
        if member.closing or self._closing:
            return JoinResult("closed")
        seat = Seat(f"{self.proc}:{next(self._serial)}", nick, key)
        keys = [*self._membership(room), lua.room_keys(room)["joins"]]
        try:
            reply = await self._eval(lua.JOIN, keys, seat.key, nick,
                                     "unique" if unique else "shared",
                                     self._presence("join", seat, welcome), BUS_LIMIT, lua.PROC,
                                     key or "")
            # The `rooms` listing's index (its own key: outside the room's hash slot).
            await self._redis.zadd(lua.ROOMS, {room.encode(): 0})
        except Errors as exc:
            log.warning("join %r: Redis unavailable: %s", room, exc)
            return JoinResult("unavailable")
        if reply[0] == 0:
            return JoinResult("nick_taken")
        try:
            state = await self._room(room)
        except Errors:
            await self._unregister(room, seat, None, member.mode)
            return JoinResult("unavailable")
        # From here on the reader buffers this member's events; history ends where they begin.
        upto, upto_raw = state.last, state.last_raw
        state.seat(member, seat)
        try:
            nicks, flat, truncated = await self._eval(
                lua.SNAPSHOT, [*self._membership(room), state.keys["hist"]], lua.PROC,
                BUS_LIMIT, upto_raw, "" if since is None else min(since, MAX_ID),
                JOIN_HISTORY if since is None else SINCE_LIMIT)
        except Errors as exc:
            log.warning("join %r: Redis unavailable: %s", room, exc)
            state.unseat(member)
            self._forget_if_empty(state)
            await self._unregister(room, seat, None, member.mode)
            return JoinResult("unavailable")
        members = [n.decode() for n in nicks]
        if member.mode == "v1":
            history = [stored(room, flat[i].partition(b"-")[0] + b" " + flat[i + 1]).out()
                       for i in range(0, len(flat), 2)]
            member.put(encode(Joined(room=room, nick=nick, members=members, history=history,
                                     truncated=bool(truncated))))
        elif welcome is not None and reply[1] and parse_id(reply[1]) <= upto:
            member.put(welcome)  # the reader passed our own join before we sat down
        state.flush(member)
        return JoinResult(None, members)

    async def _unregister(self, room: str, seat: Seat, line: str | None, mode: str) -> None:
        """Remove the seat from Redis; the room is told unless another tab keeps the nick
        there (LEAVE's mode: a plain-text client's leave is always told)."""
        payload = self._presence("leave", seat, line)
        try:
            await self._eval(lua.LEAVE, self._membership(room), seat.key, payload, BUS_LIMIT,
                             mode)
        except Errors as exc:
            # Retried by the heartbeat; were this process to die first, the sweep of the
            # others removes the member when the process key expires.
            log.warning("leave %r: Redis unavailable (%s), retrying later", room, exc)
            self._orphans.append((room, seat.key.encode(), payload, mode))

    async def leave(self, member: Member, room: str, plain_line: str | None) -> None:
        state = self._rooms.get(room)
        seat = state.unseat(member) if state is not None else None
        if state is None or seat is None:
            return
        self._forget_if_empty(state)
        await self._unregister(room, seat, plain_line, member.mode)

    async def typing(self, room: str, nick: str) -> None:
        k = lua.room_keys(room)
        try:
            await self._eval(lua.TYPING, [k["bus"], k["seq"]], nick, BUS_LIMIT)
        except Errors as exc:  # a typing hint is not worth a retry
            log.debug("typing in %r dropped: %s", room, exc)

    async def rooms(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        try:
            return await list_rooms(self._redis, after, limit)
        except Errors as exc:
            raise Unavailable(str(exc)) from exc

    async def history(self, room: str, before: int | None, limit: int) -> list[StoredMessage]:
        end = b"+" if before is None else f"({min(before, MAX_ID)}-0".encode()
        try:
            entries: Any = await self._redis.xrevrange(lua.room_keys(room)["hist"], end, b"-",
                                                       count=limit)
        except Errors as exc:
            raise Unavailable(str(exc)) from exc
        entries.reverse()
        return [stored(room, ident.partition(b"-")[0] + b" " + fields[b"m"])
                for ident, fields in entries]

    def room_count(self) -> int:
        return sum(1 for room in self._rooms.values() if room.members)

    # -- the reader -----------------------------------------------------------------------

    def _deliver(self, room: Room, ident: bytes, fields: dict[bytes, bytes]) -> None:
        """Hand one bus entry to the room's local members (called in bus order)."""
        raw = fields.get(b"m")
        if raw is not None:
            nick, text, ts, ref = decode_message(raw)
            op = self._ops.get(fields.get(b"a", b""))
            message = StoredMessage(parse_id(ident)[0], room.name, nick, text, ts, ref)
            room.publish(message, op.member if op is not None else None)
            if op is not None:
                self._settle(op, message)
            return
        typing = fields.get(b"t")
        if typing is not None:
            room.typing(typing.decode())
            return
        p = msgspec.json.decode(fields[b"p"])
        line = p.get("l")
        if p.get("g"):
            line = self._farewell(room.name, p["n"])
        room.presence(p["e"], p["n"], p["k"], line)

    async def _read(self) -> None:
        wake_last = b"0-0"
        failures = 0
        while not self._closing:
            streams: dict[Any, Any] = {room.bus: room.last_raw for room in self._rooms.values()
                                       if room.following}
            streams[self._wake_key] = wake_last
            try:
                reply: Any = await self._reader.xread(streams, count=1000, block=BLOCK_MS)
                if failures:
                    failures = 0
                    await self._check_gaps()
                for key, entries in reply or ():
                    if key == self._wake_key:
                        wake_last = entries[-1][0]
                        continue
                    room = self._by_bus.get(key)
                    if room is not None:
                        room.receive(entries, self._deliver)
            except Exception as exc:
                if self._closing:
                    return
                failures += 1
                if isinstance(exc, Errors):
                    log.warning("Redis read failed (%s); retrying", type(exc).__name__)
                else:  # a bug, or an entry not written by this app: skip it, keep reading
                    log.exception("chat reader failed")
                await asyncio.sleep(min(BACKOFF_MAX, 0.05 * 2 ** min(failures, 6)))

    async def _check_gaps(self) -> None:
        """After a lost connection: if a bus lost entries this process had not read (trimmed
        past us, or Redis came back without them), the room's members here missed events.
        Close them with 1012 (RFC 6455 7.4.1, IANA "Service Restart"): they reconnect with
        `since` and get the messages from history."""
        for room in list(self._rooms.values()):
            try:
                info = await self._redis.xinfo_stream(room.bus)
            except ResponseError:  # no such key: Redis lost the stream
                info = {"last-generated-id": b"0-0", "max-deleted-entry-id": b"0-0"}
            except Errors:
                return
            newest = parse_id(info["last-generated-id"])
            pruned = parse_id(info.get("max-deleted-entry-id", b"0-0"))
            if newest < room.last or pruned > room.last:
                log.warning("room %r lost bus entries; its members here reconnect", room.name)
                room.close_members(1012, "service restart")

    # -- liveness ---------------------------------------------------------------------------

    async def _beat(self) -> None:
        old = await self._redis.set(self._proc_key, b"1", px=self._ttl_ms, get=True)
        if old is None and self._registered:
            # Our key expired (Redis was out of reach longer than the TTL): other processes
            # may have reaped our members. Add back those that are missing.
            log.warning("presence key had expired; registering local members again")
            for state in list(self._rooms.values()):
                for seat in list(state.members.values()):
                    await self._eval(lua.JOIN, [*self._membership(state.name),
                                                state.keys["joins"]], seat.key, seat.nick,
                                     "again", self._presence("join", seat, None), BUS_LIMIT,
                                     lua.PROC, seat.client or "")
        self._registered = True
        while self._orphans:
            room, key, payload, mode = self._orphans[0]
            await self._eval(lua.LEAVE, self._membership(room), key, payload, BUS_LIMIT, mode)
            self._orphans.pop(0)
        for state in list(self._rooms.values()):
            await self._eval(lua.SWEEP, self._membership(state.name), lua.PROC, BUS_LIMIT)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self._beat()
            except Errors as exc:
                log.warning("Redis heartbeat failed: %s", type(exc).__name__)
            except Exception:
                log.exception("chat heartbeat failed")
