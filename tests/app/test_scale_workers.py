"""`wsrun --workers 2 app:chat` with Redis: the workers of one server are one chat, and
SIGKILL of a worker under load (the supervisor starts another; its clients reconnect to
the same port and recover with `since`) loses no acknowledged message."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.procfs import process_tree
from tests.app.nodes import Node
from tests.app.writers import Writer, history, lost
from tests.redisproc import RedisServer

pytestmark = pytest.mark.skipif(importlib.util.find_spec("server.supervisor") is None,
                                reason="wsrun --workers is not there yet")

ROOMS = ("work-a", "work-b")


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Node]:
    redis = RedisServer(tmp_path / "redis").start()
    node = Node("wsrun", tmp_path / "node",
                {"CHAT_REDIS_URL": redis.url, "CHAT_RATE": "100000/1", "CHAT_PRESENCE_TTL": "1"},
                args=["--workers", "2"])
    node.start()
    try:
        yield node
    finally:
        await node.close_peers()
        node.stop()
        redis.stop()


def worker_pids(node: Node) -> list[int]:
    assert node.popen is not None
    return process_tree(node.popen.pid)[1:]


def sockets(pid: int) -> int:
    """Open sockets of a process: the worker serving the writers holds the most."""
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


async def test_two_workers_are_one_chat(workers: Node) -> None:
    peers = [await workers.connect() for _ in range(6)]
    for i, peer in enumerate(peers):
        await peer.join("together", f"p{i}")
    for i, peer in enumerate(peers):
        for _ in range(len(peers) - 1 - i):
            assert (await peer.recv_json())["type"] == "presence"
    for i, peer in enumerate(peers):
        await peer.send_json({"type": "say", "room": "together", "text": f"from {i}"})
    seen = [[(await peer.recv_json())["id"] for _ in range(6)] for peer in peers]
    assert all(ids == [1, 2, 3, 4, 5, 6] for ids in seen)


async def test_sigkill_of_a_worker_loses_no_acknowledged_message(workers: Node) -> None:
    writers = [Writer([workers.addr], room, f"{room}-w{n}", 60)
               for room in ROOMS for n in range(4)]
    tasks = [asyncio.create_task(w.run(deadline=90)) for w in writers]
    async with asyncio.timeout(60):
        while sum(len(w.acked) for w in writers) < 150:
            await asyncio.sleep(0.01)
    victim = max(worker_pids(workers), key=sockets)
    os.kill(victim, signal.SIGKILL)
    await asyncio.gather(*tasks)
    stored = {room: await history(workers.addr, room) for room in ROOMS}
    for w in writers:
        assert (w.gaps(), w.duplicates) == ([], []), w.nick
    acked, missing = sum(len(w.acked) for w in writers), lost(writers, stored)
    reconnects = sum(w.connects for w in writers) - len(writers)
    print(f"\nacknowledged: {acked}, acknowledged lost: {missing}, reconnects: {reconnects}")
    assert (acked, missing) == (480, 0)
    assert reconnects > 0  # the killed worker was serving writers
    async with asyncio.timeout(15):  # the supervisor starts a successor (after a backoff)
        while victim in worker_pids(workers) or len(worker_pids(workers)) != 2:
            await asyncio.sleep(0.05)
