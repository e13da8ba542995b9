"""Faults under load with the Redis backend, each reporting how many acknowledged messages
were lost (must be 0): SIGKILL of one of two processes (its clients reconnect to the other
and recover with `since`), SIGTERM of the whole server (then started again), and Redis
killed and restarted mid-traffic (AOF on, appendfsync always).

Writers (tests/app/writers.py) keep 5 says in flight each, in two rooms, on both
processes; every writer also checks that the ids it received (history and live, across
reconnects) have no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.app.conftest import server_param
from tests.app.nodes import Node
from tests.app.writers import Writer, history, lost
from tests.redisproc import RedisServer

pytestmark = pytest.mark.parametrize("server", [server_param("wsrun")])

ROOMS = ("fault-a", "fault-b")
PER_ROOM = 4  # writers per room, half on each process
TOTAL = 60  # messages per writer


class Cluster:
    def __init__(self, server: str, tmp_path: Path) -> None:
        self.redis = RedisServer(tmp_path / "redis").start()
        env = {"CHAT_REDIS_URL": self.redis.url, "CHAT_RATE": "100000/1",
               "CHAT_PRESENCE_TTL": "1"}
        self.nodes = [Node(server, tmp_path / f"node{n}", env) for n in (1, 2)]
        for node in self.nodes:
            node.start()

    def writers(self) -> list[Writer]:
        a, b = (node.addr for node in self.nodes)
        return [Writer([a, b] if n % 2 else [b, a], room, f"{room}-w{n}", TOTAL)
                for room in ROOMS for n in range(PER_ROOM)]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.redis.stop()


@pytest.fixture
async def cluster(server: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(server, tmp_path)
    try:
        yield c
    finally:
        c.stop()


async def run_with_fault(cluster: Cluster, after: int,
                         fault: Callable[[], Awaitable[None]]) -> tuple[int, int]:
    """Run the writers; call `fault` once `after` messages are acknowledged.

    Returns:
        (acknowledged, acknowledged but lost).
    """
    writers = cluster.writers()
    tasks = [asyncio.create_task(w.run(deadline=90)) for w in writers]
    async with asyncio.timeout(60):
        while sum(len(w.acked) for w in writers) < after:
            await asyncio.sleep(0.01)
    await fault()
    await asyncio.gather(*tasks)
    addr = cluster.nodes[-1].addr
    stored = {room: await history(addr, room) for room in ROOMS}
    for w in writers:
        assert (w.gaps(), w.duplicates) == ([], []), w.nick
    acked = sum(len(w.acked) for w in writers)
    missing = lost(writers, stored)
    print(f"\nacknowledged: {acked}, acknowledged lost: {missing}, reconnects: "
          f"{sum(w.connects for w in writers) - len(writers)}, unavailable answers: "
          f"{sum(w.unavailable for w in writers)}")
    return acked, missing


async def test_sigkill_of_one_process_loses_no_acknowledged_message(cluster: Cluster) -> None:
    killed = cluster.nodes[0]

    async def fault() -> None:
        killed.proc_kill()

    acked, missing = await run_with_fault(cluster, 150, fault)
    assert killed.popen is not None and killed.popen.returncode == -9
    assert (acked, missing) == (len(ROOMS) * PER_ROOM * TOTAL, 0)


async def test_sigterm_of_the_whole_server_loses_no_acknowledged_message(
        cluster: Cluster) -> None:
    async def fault() -> None:
        for node in cluster.nodes:
            node.stop()
        for node in cluster.nodes:
            assert node.popen is not None and node.popen.returncode == 0, node.log()
            node.start()

    acked, missing = await run_with_fault(cluster, 150, fault)
    assert (acked, missing) == (len(ROOMS) * PER_ROOM * TOTAL, 0)


async def test_redis_restart_mid_traffic_loses_no_acknowledged_message(
        cluster: Cluster) -> None:
    async def fault() -> None:
        cluster.redis.kill()  # SIGKILL: only what the AOF holds comes back
        await asyncio.sleep(0.3)
        cluster.redis.start()

    acked, missing = await run_with_fault(cluster, 150, fault)
    assert (acked, missing) == (len(ROOMS) * PER_ROOM * TOTAL, 0)
