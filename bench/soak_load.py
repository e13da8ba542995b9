"""The soak's clients: chatters that account for every message, and hostile connections.

- `Chatter`: a chat.v1 member of one room that says numbered messages with a `ref`, reads
  everything, reconnects now and then (cleanly or by dropping the TCP connection) with
  `since` set to the last id it saw, and resends what was not acknowledged (same `ref`).
  It records each id it received and how often, so lost and duplicated deliveries can be
  counted against the acknowledged messages (docs/protocol.md "Ordering and delivery").
- `plain_churn`: plain-text clients that connect, say a line and quit.
- `garbage`: connections that send a bad HTTP request head or a bad frame, then read the
  server's answer (bounded wait) and go.
- `ping_flood`: a WebSocket that sends Ping frames and never reads the Pongs.
- `slow_reader`: a chat.v1 member of a busy room with a tiny receive buffer that reads a
  little a second (the server may close it with 1013, docs/protocol.md).

Loopback only, every wait bounded. Imports nothing from `server/` or `app/`.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import random
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import connect

TIMEOUT = 10.0  # any single wait of a client
# A head that never ends (random bytes) is answered when wsrun's --timeout-handshake (10 s)
# runs out: garbage waits longer than that for its answer.
GARBAGE_WAIT = 15.0


@dataclass
class Totals:
    """What the clients did, summed."""

    sent: int = 0  # distinct messages said (resends not counted)
    resent: int = 0  # resends after a reconnect, same ref
    acknowledged: int = 0
    reconnects: int = 0
    plain: int = 0
    garbage: int = 0
    garbage_unanswered: int = 0  # no answer and no close within GARBAGE_WAIT
    ping_bytes: int = 0
    slow_readers: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    acked: dict[str, set[int]] = field(default_factory=lambda: collections.defaultdict(set))


class Chatter:
    """One member of `room` for the whole soak, over as many connections as it takes."""

    def __init__(self, url: str, room: str, nick: str, totals: Totals, rng: random.Random,
                 rate: float) -> None:
        self.url, self.room, self.nick = url, room, nick
        self.totals, self.rng, self.rate = totals, rng, rate
        self.seen: collections.Counter[int] = collections.Counter()
        self.baseline: int | None = None  # newest id of the first join's history
        self.last_id = 0
        self.pending: dict[str, str] = {}  # ref -> text, not acknowledged yet
        self.seq = 0

    def _receive(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "message" or frame.get("room") != self.room:
            if frame.get("type") == "error":
                self.totals.errors[frame.get("code", "?")] += 1
            return
        mid, ref = frame["id"], frame.get("ref")
        if ref is not None and ref in self.pending:
            del self.pending[ref]
            self.totals.acknowledged += 1
            self.totals.acked[self.room].add(mid)
            if mid in self.seen:  # a resend's answer: the original, already received
                return
        self.seen[mid] += 1
        self.last_id = max(self.last_id, mid)

    async def _join(self, ws: Any) -> None:
        request: dict[str, Any] = {"type": "join", "room": self.room, "nick": self.nick}
        if self.baseline is not None:
            request["since"] = self.last_id
        await ws.send(json.dumps(request))
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if reply.get("type") == "joined":
                break
            if reply.get("type") == "error":
                raise RuntimeError(f"join refused: {reply}")
        history = reply["history"]
        if self.baseline is None:
            self.baseline = max((m["id"] for m in history), default=0)
            self.last_id = self.baseline
            return
        for message in history:
            self._receive(message)

    async def _resend(self, ws: Any) -> None:
        """Say again, with the same ref, what the last connection left unacknowledged."""
        for ref, text in list(self.pending.items()):
            self.totals.resent += 1
            await ws.send(json.dumps({"type": "say", "room": self.room, "text": text,
                                      "ref": ref}))

    async def _reader(self, ws: Any) -> None:
        async for raw in ws:
            self._receive(json.loads(raw))

    async def session(self, stop: asyncio.Event) -> None:
        """One connection: join, resend, chat until `stop` or a random reconnect time."""
        async with connect(self.url, subprotocols=["chat.v1"],  # type: ignore[list-item]
                           open_timeout=TIMEOUT, ping_interval=None, max_queue=None) as ws:
            await self._join(ws)
            reader = asyncio.create_task(self._reader(ws))
            try:
                await self._resend(ws)
                until = asyncio.get_running_loop().time() + self.rng.uniform(3.0, 15.0)
                while not stop.is_set() and asyncio.get_running_loop().time() < until:
                    if len(self.pending) < 20:
                        self.seq += 1
                        ref, text = f"{self.nick}-{self.seq}", f"{self.nick} says {self.seq}"
                        self.pending[ref] = text
                        self.totals.sent += 1
                        await ws.send(json.dumps({"type": "say", "room": self.room,
                                                  "text": text, "ref": ref}))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.rng.expovariate(self.rate))
                if stop.is_set():
                    return
                if self.rng.random() < 0.5:
                    ws.transport.abort()  # the network drops: nothing said goodbye
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                    await reader
        self.totals.reconnects += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.session(stop)
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                self.totals.errors[f"chatter {type(exc).__name__}"] += 1
                await asyncio.sleep(0.2)

    async def drain(self, target: int) -> None:
        """After the soak: one more connection, resend what is pending, read up to `target`."""
        async with connect(self.url, subprotocols=["chat.v1"],  # type: ignore[list-item]
                           open_timeout=TIMEOUT, ping_interval=None, max_queue=None) as ws:
            await self._join(ws)
            await self._resend(ws)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TIMEOUT):
                    while self.pending or self.last_id < target:
                        self._receive(json.loads(await ws.recv()))

    def expected(self) -> set[int]:
        return {i for i in self.totals.acked[self.room] if i > (self.baseline or 0)}


# -- raw-socket clients ----------------------------------------------------------------------


def handshake(port: int, path: str = "/ws", protocol: str | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else ""
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def frame(opcode: int, payload: bytes, *, masked: bool = True, fin: bool = True) -> bytes:
    """A client frame (RFC 6455 5.2), payload under 64 KiB."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([bit | length])
    else:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def open_ws(port: int, protocol: str | None = None, rcvbuf: int | None = None
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
    writer.write(handshake(port, protocol=protocol))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    if not head.startswith(b"HTTP/1.1 101 "):
        writer.transport.abort()
        raise RuntimeError(f"handshake refused: {head[:40]!r}")
    return reader, writer


def garbage_requests(port: int) -> list[bytes]:
    ok = handshake(port)
    return [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ok.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 7"),
        ok.replace(b"Sec-WebSocket-Key: ", b"Sec-WebSocket-Key: x"),
        ok + frame(0x1, b"hello", masked=False),  # unmasked client frame: 1002
        ok + frame(0x3, b""),  # reserved opcode: 1002
        ok + frame(0x1, b"\xff\xfe"),  # not UTF-8: 1007
        ok + frame(0x9, b"x" * 126),  # control frame over 125 bytes: 1002
        # chat.v1 frames the chat refuses with an error and stays open for: then a close.
        handshake(port, protocol="chat.v1") + frame(0x1, b'{"a":' * 13_000)
        + frame(0x1, b'{"type":"history","room":"x","before":9223372036854775808}')
        + frame(0x8, b"\x03\xe8"),
        ok + frame(0x8, b"\x03\xe8" + b"\xff"),  # close with a bad reason
        os.urandom(300),
    ]


async def garbage(port: int, totals: Totals, stop: asyncio.Event, rng: random.Random) -> None:
    requests = garbage_requests(port)
    while not stop.is_set():
        request = rng.choice(requests)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            totals.errors["garbage connect"] += 1
            await asyncio.sleep(0.1)
            continue
        totals.garbage += 1
        try:
            writer.write(request)
            async with asyncio.timeout(GARBAGE_WAIT):
                while await reader.read(65536):
                    pass  # the server answers and closes
        except TimeoutError:
            totals.garbage_unanswered += 1
        except OSError:
            pass  # reset by the server: an answer too
        finally:
            writer.transport.abort()
        await asyncio.sleep(rng.uniform(0.02, 0.1))


async def ping_flood(port: int, totals: Totals, stop: asyncio.Event, limit: int) -> None:
    """Pings that are never read back: `limit` bytes per connection, then the next one."""
    ping = frame(0x9, b"p" * 125)
    while not stop.is_set():
        try:
            _, writer = await open_ws(port)
        except (OSError, RuntimeError, TimeoutError):
            totals.errors["ping flood connect"] += 1
            await asyncio.sleep(0.5)
            continue
        sent = 0
        try:
            while sent < limit and not stop.is_set():
                writer.write(ping * 64)
                sent += len(ping) * 64
                # Blocks while the server does not read: that is the backpressure we want.
                await asyncio.wait_for(writer.drain(), 5.0)
        except (OSError, TimeoutError):
            pass
        finally:
            totals.ping_bytes += sent
            writer.transport.abort()
        await asyncio.sleep(0.5)


async def slow_reader(port: int, room: str, totals: Totals, stop: asyncio.Event) -> None:
    """A member of the busy `room` that reads 512 bytes every 100 ms, for 5-10 s at a time."""
    while not stop.is_set():
        try:
            reader, writer = await open_ws(port, "chat.v1", rcvbuf=4096)
        except (OSError, RuntimeError, TimeoutError):
            totals.errors["slow reader connect"] += 1
            await asyncio.sleep(0.5)
            continue
        totals.slow_readers += 1
        join = {"type": "join", "room": room, "nick": f"slow-{totals.slow_readers}"}
        try:
            writer.write(frame(0x1, json.dumps(join).encode()))
            end = asyncio.get_running_loop().time() + random.uniform(5.0, 10.0)
            while not stop.is_set() and asyncio.get_running_loop().time() < end:
                if not await reader.read(512):
                    break  # closed by the server (1013 "too slow" is allowed)
                await asyncio.sleep(0.1)
        except OSError:
            pass
        finally:
            writer.transport.abort()


async def plain_churn(url: str, totals: Totals, stop: asyncio.Event) -> None:
    """Plain-text clients: connect, read the Welcome line, say a line, quit."""
    while not stop.is_set():
        try:
            async with connect(url, open_timeout=TIMEOUT, ping_interval=None) as ws:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
                await ws.send(f"plain line {totals.plain}")
                await ws.send("quit")
                with contextlib.suppress(websockets.ConnectionClosed):
                    async with asyncio.timeout(TIMEOUT):
                        async for _ in ws:
                            pass
            totals.plain += 1
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            totals.errors[f"plain {type(exc).__name__}"] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
