"""Harness for the chat tests: one `Target` API over the in-process app and real servers.

- "inprocess": a fresh `ChatApp` on a SQLite file in tmp_path, its lifespan driven here,
  reached through httpx `ASGITransport` and httpx-ws `ASGIWebSocketTransport`.
- "uvicorn" / "hypercorn" / "wsrun": `tests/procs.serve(server, "app:chat")` processes,
  reached with the `websockets` client over 127.0.0.1. "wsrun" is skipped only while
  `server.cli` does not exist.

Every receive is bounded by RECV_TIMEOUT so a broken server fails a test instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
import wsproto
import wsproto.events
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport
from websockets.asyncio.client import connect as ws_connect

from app import ChatApp
from app.config import Settings
from tests.procs import serve

RECV_TIMEOUT = 10.0
SERVERS = ["uvicorn", "hypercorn", "wsrun"]
TARGETS = ["inprocess", *SERVERS]


def server_param(name: str) -> Any:
    if name == "wsrun":
        return pytest.param(name, marks=pytest.mark.skipif(
            importlib.util.find_spec("server.cli") is None, reason="no python -m server yet"))
    return name


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


class Target:
    """Where the chat runs; `connect()` opens a Peer, `get()` does an HTTP GET."""

    name: str
    client_host = "127.0.0.1"

    async def connect(self, v1: bool = True, *, path: str = "/ws",
                      origin: str | None = None, small_buffer: bool = False) -> Peer:
        raise NotImplementedError

    async def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        raise NotImplementedError

    async def restart(self) -> None:
        """Stop the chat and start it again on the same SQLite file."""
        raise NotImplementedError

    async def idle(self) -> None:
        """Wait until the previous test's connections are gone (bounded)."""
        async with asyncio.timeout(RECV_TIMEOUT):
            while (await self.get("/healthz")).json()["connections"] != 0:
                await asyncio.sleep(0.02)


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


@contextlib.asynccontextmanager
async def lifespan(app: ChatApp) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol of `app`, as a server would."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                   inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task


class InProcess(Target):
    name = "inprocess"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stack = contextlib.AsyncExitStack()
        self.peers: list[Peer] = []

    async def start(self) -> None:
        self.app = ChatApp(self.settings)

        @contextlib.asynccontextmanager
        async def running() -> AsyncIterator[httpx.AsyncClient]:
            async with lifespan(self.app), httpx.AsyncClient(
                    transport=ASGIWebSocketTransport(self.app),
                    base_url="http://testserver") as client:
                yield client

        self.client, self.closer = await hold(running())

    async def stop(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(Exception):
                await peer.close()
        self.peers.clear()
        await self.closer()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def connect(self, v1: bool = True, *, path: str = "/ws",
                      origin: str | None = None, small_buffer: bool = False) -> Peer:
        headers = {"origin": origin} if origin else {}
        try:
            ws, closer = await hold(aconnect_ws(
                "http://testserver" + path, self.client, headers=headers,
                subprotocols=["chat.v1"] if v1 else None, keepalive_ping_interval_seconds=None))
        except WebSocketDisconnect:
            # Closed before accept: what a server answers with HTTP 403.
            raise Refused(403) from None
        except WebSocketUpgradeError as exc:
            raise Refused(exc.response.status_code) from None
        peer = HttpxPeer(ws, closer)
        self.peers.append(peer)
        return peer

    async def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.get(path, headers=headers)


class Process(Target):
    def __init__(self, name: str, db: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = {"CHAT_DB": str(db), **(env or {})}
        self.stack = contextlib.ExitStack()
        self.peers: list[Peer] = []

    def start(self) -> None:
        self.stack = contextlib.ExitStack()
        self.addr = self.stack.enter_context(serve(self.name, "app:chat", env=self.env))

    def stop(self) -> None:
        self.stack.close()

    async def close_peers(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(Exception):
                await peer.close()
        self.peers.clear()

    async def restart(self) -> None:
        await self.close_peers()
        self.stop()
        self.start()

    async def connect(self, v1: bool = True, *, path: str = "/ws",
                      origin: str | None = None, small_buffer: bool = False) -> Peer:
        if small_buffer:
            peer: Peer = await WsprotoPeer.open(self.addr, path, v1)
            self.peers.append(peer)
            return peer
        try:
            ws = await ws_connect(f"ws://{self.addr}{path}", origin=origin,  # type: ignore[arg-type]
                                  subprotocols=["chat.v1"] if v1 else None,  # type: ignore[list-item]
                                  open_timeout=RECV_TIMEOUT, ping_interval=None)
        except websockets.InvalidStatus as exc:
            raise Refused(exc.response.status_code) from None
        peer = WebsocketsPeer(ws)
        self.peers.append(peer)
        return peer

    async def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"http://{self.addr}", trust_env=False) as client:
            return await client.get(path, headers=headers)


@pytest.fixture(scope="module")
def shared_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    """One process per server for a whole module (tests use their own rooms)."""
    started: dict[str, Process] = {}
    yield started
    for proc in started.values():
        proc.stop()


@pytest.fixture(params=[server_param(t) for t in TARGETS])
async def target(request: pytest.FixtureRequest, tmp_path: Path,
                 shared_servers: dict[str, Process]) -> AsyncIterator[Target]:
    name = request.param
    if name == "inprocess":
        inproc = InProcess(Settings(db=str(tmp_path / "chat.db")))
        await inproc.start()
        try:
            yield inproc
        finally:
            await inproc.stop()
        return
    if name not in shared_servers:
        proc = Process(name, tmp_path / "shared.db")
        proc.start()
        shared_servers[name] = proc
    proc = shared_servers[name]
    await proc.idle()
    try:
        yield proc
    finally:
        await proc.close_peers()


@pytest.fixture
async def own_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """Targets with their own env and SQLite file: `await own_target(name, **env)`."""
    made: list[Target] = []

    async def make(name: str, **env: str) -> Target:
        if name == "inprocess":
            settings = Settings.from_env({"CHAT_DB": str(tmp_path / "own.db"), **env})
            inproc = InProcess(settings)
            await inproc.start()
            made.append(inproc)
            return inproc
        proc = Process(name, tmp_path / "own.db", env)
        proc.start()
        made.append(proc)
        return proc

    yield make
    for t in made:
        if isinstance(t, InProcess):
            await t.stop()
        elif isinstance(t, Process):
            await t.close_peers()
            t.stop()
