"""Harness for the chat tests: one `Target` API over the in-process app and real servers.

- "inprocess": a fresh `ChatApp` on a SQLite file in tmp_path, its lifespan driven here,
  reached through httpx `ASGITransport` and httpx-ws `ASGIWebSocketTransport`.
- "uvicorn" / "hypercorn" / "wsrun": `tests/procs.serve(server, "app:chat")` processes,
  reached with the `websockets` client over 127.0.0.1. "wsrun" is skipped only while
  `server.cli` does not exist.
- "inprocess+redis" / "wsrun+redis": the same with the Redis backend (`CHAT_REDIS_URL`) on
  a real redis-server (tests/redisproc.py), so one behaviour suite covers both backends.

Every receive is bounded by RECV_TIMEOUT so a broken server fails a test instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport
from websockets.asyncio.client import connect as ws_connect

from app import ChatApp
from app.config import Settings
from tests.app.peers import (
    RECV_TIMEOUT,
    Closed,
    HttpxPeer,
    Peer,
    Refused,
    WebsocketsPeer,
    WsprotoPeer,
    hold,
)
from tests.procs import LOOPBACK_CHAT_LIMITS, serve
from tests.redisproc import RedisServer

__all__ = ["Closed", "Peer", "Refused", "Target", "hold", "lifespan"]

SERVERS = ["uvicorn", "hypercorn", "wsrun"]
REDIS = "+redis"  # suffix of a target name: the Redis backend instead of SQLite
TARGETS = ["inprocess", *SERVERS, "inprocess" + REDIS, "wsrun" + REDIS]


def server_param(name: str) -> Any:
    if name.removesuffix(REDIS) == "wsrun":
        return pytest.param(name, marks=pytest.mark.skipif(
            importlib.util.find_spec("server.cli") is None, reason="no python -m server yet"))
    return name


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

    def __init__(self, settings: Settings, host: Callable[[ChatApp], Any] | None = None) -> None:
        """`host` wraps the chat in another ASGI app (e.g. a Starlette mount)."""
        self.settings = settings
        self.host = host
        self.peers: list[Peer] = []

    async def start(self) -> None:
        self.app = ChatApp(self.settings)
        asgi = self.host(self.app) if self.host else self.app

        @contextlib.asynccontextmanager
        async def running() -> AsyncIterator[httpx.AsyncClient]:
            if self.host is None:
                async with lifespan(self.app), httpx.AsyncClient(
                        transport=ASGIWebSocketTransport(self.app),
                        base_url="http://testserver") as client:
                    yield client
            else:  # a host may not run the chat's lifespan (Starlette mounts do not)
                async with httpx.AsyncClient(transport=ASGIWebSocketTransport(asgi),
                                             base_url="http://testserver") as client:
                    yield client
                await self.app.shutdown()

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
        self.name = name.removesuffix(REDIS)
        self.env = {"CHAT_DB": str(db), **LOOPBACK_CHAT_LIMITS, **(env or {})}
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


def redis_env(request: pytest.FixtureRequest, name: str) -> dict[str, str]:
    """CHAT_REDIS_URL of the module's redis-server for `name`, if it asks for Redis."""
    if not name.endswith(REDIS):
        return {}
    return {"CHAT_REDIS_URL": request.getfixturevalue("shared_redis")(name).url}


@pytest.fixture(params=[server_param(t) for t in TARGETS])
async def target(request: pytest.FixtureRequest, tmp_path: Path,
                 shared_servers: dict[str, Process]) -> AsyncIterator[Target]:
    name = request.param
    env = redis_env(request, name)
    if name.startswith("inprocess"):
        inproc = InProcess(Settings.from_env(
            {"CHAT_DB": str(tmp_path / "chat.db"), **LOOPBACK_CHAT_LIMITS, **env}))
        await inproc.start()
        try:
            yield inproc
        finally:
            await inproc.stop()
        return
    if name not in shared_servers:
        proc = Process(name, tmp_path / "shared.db", env)
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
    """Targets with their own env, SQLite file and Redis: `await own_target(name, **env)`."""
    made: list[Target] = []
    redis: list[RedisServer] = []  # stopped after the targets that use them

    async def make(name: str, **env: str) -> Target:
        if name.endswith(REDIS):
            redis.append(RedisServer(tmp_path / f"redis{len(redis)}").start())
            env = {"CHAT_REDIS_URL": redis[-1].url, **env}
        if name.startswith("inprocess"):
            settings = Settings.from_env(
                {"CHAT_DB": str(tmp_path / "own.db"), **LOOPBACK_CHAT_LIMITS, **env})
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
    for server in redis:
        server.stop()
