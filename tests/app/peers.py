"""Chat clients for the tests: one `Peer` API over httpx-ws (in-process), the `websockets`
library and a wsproto client that reads only when asked (for slow-consumer tests).

Every receive is bounded by RECV_TIMEOUT so a broken server fails a test instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import websockets
import wsproto
import wsproto.events
from httpx_ws import WebSocketDisconnect

RECV_TIMEOUT = 10.0


class Closed(Exception):
    """The server closed the WebSocket: `code`, `reason` as received."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(code, reason)
        self.code, self.reason = code, reason


class Refused(Exception):
    """The handshake got an HTTP error status (or, in-process, a close before accept)."""

    def __init__(self, status: int | None) -> None:
        super().__init__(status)
        self.status = status


class Peer:
    """One chat client; subclasses adapt httpx-ws and websockets."""

    subprotocol: str | None

    async def send(self, data: str | bytes) -> None:
        raise NotImplementedError

    async def recv(self) -> str:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def send_json(self, obj: Any) -> None:
        await self.send(json.dumps(obj))

    async def recv_json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(await self.recv())
        return value

    async def expect_close(self) -> Closed:
        """Read until the close; returns it (frames before it are discarded)."""
        while True:
            try:
                await self.recv()
            except Closed as closed:
                return closed

    async def join(self, room: str, nick: str, **extra: Any) -> dict[str, Any]:
        await self.send_json({"type": "join", "room": room, "nick": nick, **extra})
        reply = await self.recv_json()
        assert reply["type"] == "joined", reply
        return reply


class WebsocketsPeer(Peer):
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.subprotocol = ws.subprotocol

    async def send(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self) -> str:
        try:
            async with asyncio.timeout(RECV_TIMEOUT):
                data = await self.ws.recv()
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None
        assert isinstance(data, str), data
        return data

    async def close(self) -> None:
        await self.ws.close()


class HttpxPeer(Peer):
    def __init__(self, ws: Any, closer: Any) -> None:
        self.ws, self.closer = ws, closer
        self.subprotocol = ws.subprotocol

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_text(data)

    async def recv(self) -> str:
        try:
            return str(await self.ws.receive_text(timeout=RECV_TIMEOUT))
        except WebSocketDisconnect as exc:
            raise Closed(exc.code, exc.reason or "") from None

    async def close(self) -> None:
        await self.closer()


class WsprotoPeer(Peer):
    """A client that reads only when asked: wsproto over a socket with a small, fixed
    SO_RCVBUF (which turns off autotuning, up to 32 MB on Linux) and a small StreamReader,
    so a peer that stops reading makes the server's sends block after little data."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: wsproto.WSConnection, subprotocol: str | None) -> None:
        self.reader, self.writer, self.conn = reader, writer, conn
        self.subprotocol = subprotocol
        self.events: list[Any] = []
        self.text: list[str] = []

    @classmethod
    async def open(cls, addr: str, path: str, v1: bool) -> WsprotoPeer:
        host, port = addr.split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=8192)
        conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        writer.write(conn.send(wsproto.events.Request(
            host=addr, target=path, subprotocols=["chat.v1"] if v1 else [])))
        peer = cls(reader, writer, conn, None)
        event = await peer._next_event()
        assert isinstance(event, wsproto.events.AcceptConnection), event
        peer.subprotocol = event.subprotocol
        return peer

    async def _next_event(self) -> Any:
        async with asyncio.timeout(RECV_TIMEOUT):
            while not self.events:
                data = await self.reader.read(65536)
                self.conn.receive_data(data or None)
                self.events.extend(self.conn.events())
        return self.events.pop(0)

    async def send(self, data: str | bytes) -> None:
        event = (wsproto.events.BytesMessage(data) if isinstance(data, bytes)
                 else wsproto.events.TextMessage(data))
        self.writer.write(self.conn.send(event))
        await self.writer.drain()

    async def recv(self) -> str:
        while True:
            event = await self._next_event()
            if isinstance(event, wsproto.events.TextMessage):
                self.text.append(event.data)
                if event.message_finished:
                    text, self.text = "".join(self.text), []
                    return text
            elif isinstance(event, wsproto.events.CloseConnection):
                with contextlib.suppress(Exception):
                    self.writer.write(self.conn.send(event.response()))
                raise Closed(event.code, event.reason or "")
            elif isinstance(event, wsproto.events.Ping):
                self.writer.write(self.conn.send(event.response()))
            elif event is None or isinstance(event, wsproto.events.BytesMessage):
                raise AssertionError(f"unexpected {event!r}")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def hold(cm: contextlib.AbstractAsyncContextManager[Any]) -> tuple[Any, Any]:
    """Enter `cm` in a task of its own; returns (value, close coroutine function).

    anyio cancel scopes (httpx-ws, httpx) must be exited by the task that entered them,
    and pytest-asyncio may run a fixture's teardown in another task than its setup.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[Any] = loop.create_future()
    stop = asyncio.Event()

    async def runner() -> None:
        try:
            async with cm as value:
                ready.set_result(value)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                raise

    task = asyncio.create_task(runner())
    value = await ready

    async def close() -> None:
        stop.set()
        with contextlib.suppress(Exception):
            await task

    return value, close
