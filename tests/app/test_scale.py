"""Two `wsrun app:chat` processes on two ports sharing one Redis stand for two machines:
they must be one chat — order, history, `since`, refs, nicks and presence across them,
and `joined.history` + live with no gap and no duplicate whichever process serves a join."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.app.conftest import server_param
from tests.app.nodes import Node
from tests.app.writers import Writer
from tests.redisproc import RedisServer

pytestmark = pytest.mark.parametrize("server", [server_param("wsrun")])

TTL = "1"  # CHAT_PRESENCE_TTL: members of a killed process vanish within ~1.33 s


def fresh_room() -> str:
    return "s-" + uuid.uuid4().hex[:10]


@pytest.fixture
async def pair(server: str, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    redis = RedisServer(tmp_path / "redis").start()
    env = {"CHAT_REDIS_URL": redis.url, "CHAT_RATE": "100000/1", "CHAT_PRESENCE_TTL": TTL}
    procs = [Node(server, tmp_path / f"node{n}", env) for n in (1, 2)]
    for proc in procs:
        proc.start()
    try:
        yield procs[0], procs[1]
    finally:
        for proc in procs:
            await proc.close_peers()
            proc.stop()
        redis.stop()


async def test_two_processes_are_one_chat(pair: tuple[Node, Node]) -> None:
    a, b = pair
    room = fresh_room()
    alice = await a.connect()
    assert (await alice.join(room, "alice"))["members"] == ["alice"]
    bob = await b.connect()
    assert (await bob.join(room, "bob"))["members"] == ["alice", "bob"]
    assert await alice.recv_json() == {
        "type": "presence", "room": room, "nick": "bob", "event": "join"}
    await alice.send_json({"type": "say", "room": room, "text": "from a", "ref": 1})
    ack = await alice.recv_json()
    assert await bob.recv_json() == {k: v for k, v in ack.items() if k != "ref"}
    await bob.send_json({"type": "say", "room": room, "text": "from b"})
    reply = await bob.recv_json()
    assert reply["id"] == ack["id"] + 1 and await alice.recv_json() == reply

    # Nick uniqueness spans the processes; so does idempotency of refs.
    other = await b.connect()
    await other.send_json({"type": "join", "room": room, "nick": "alice"})
    assert (await other.recv_json())["code"] == "nick_taken"
    await alice.close()
    assert await bob.recv_json() == {
        "type": "presence", "room": room, "nick": "alice", "event": "leave"}
    alice = await b.connect()  # alice comes back through the other process
    joined = await alice.join(room, "alice", since=ack["id"] - 1)
    assert [m["text"] for m in joined["history"]] == ["from a", "from b"]
    assert (await bob.recv_json())["event"] == "join"
    await alice.send_json({"type": "say", "room": room, "text": "from a", "ref": 1})
    assert await alice.recv_json() == ack  # the original, not a second copy
    await bob.send_json({"type": "history", "room": room})
    assert [m["text"] for m in (await bob.recv_json())["messages"]] == ["from a", "from b"]


async def test_same_order_on_both_processes(pair: tuple[Node, Node]) -> None:
    a, b = pair
    room = fresh_room()
    peers = [await (a if i % 2 else b).connect() for i in range(6)]
    for i, peer in enumerate(peers):
        await peer.join(room, f"p{i}")
    for i, peer in enumerate(peers):  # presence of later joiners
        for _ in range(len(peers) - 1 - i):
            assert (await peer.recv_json())["type"] == "presence"
    for n in range(5):
        for i, peer in enumerate(peers):
            await peer.send_json({"type": "say", "room": room, "text": f"{i}-{n}"})
    seen = [[await peer.recv_json() for _ in range(30)] for peer in peers]
    ids = [[m["id"] for m in s] for s in seen]
    assert ids[0] == list(range(ids[0][0], ids[0][0] + 30))  # a room's ids have no gaps
    assert all(i == ids[0] for i in ids)
    assert all([m["text"] for m in s] == [m["text"] for m in seen[0]] for s in seen)


async def test_joins_during_traffic_have_no_gap_and_no_duplicate(
        pair: tuple[Node, Node]) -> None:
    """Writers on both processes; readers join on either while messages flow. Each reader's
    history + live must be the room's ids, consecutive, each once, up to the last one."""
    a, b = pair
    room = fresh_room()
    addrs = [a.addr, b.addr]
    writers = [Writer([addrs[n % 2]], room, f"w{n}", total=80) for n in range(4)]
    tasks = [asyncio.create_task(w.run()) for w in writers]
    readers: list[tuple[object, list[int]]] = []
    for n in range(8):
        await asyncio.sleep(0.05)
        peer = await (a if n % 2 else b).connect()
        joined = await peer.join(room, f"reader{n}")
        readers.append((peer, [m["id"] for m in joined["history"]]))
    await asyncio.gather(*tasks)
    last = max(i for w in writers for i, _ in w.acked.values())
    for peer, ids in readers:
        while not ids or ids[-1] < last:
            event = await peer.recv_json()  # type: ignore[attr-defined]
            if event["type"] == "message":
                ids.append(event["id"])
        assert ids == list(range(ids[0], last + 1))
    for w in writers:
        assert (w.gaps(), w.duplicates) == ([], [])


async def test_members_of_a_killed_process_vanish(pair: tuple[Node, Node]) -> None:
    a, b = pair
    room = fresh_room()
    doomed = await a.connect()
    await doomed.join(room, "doomed")
    watcher = await b.connect()
    assert (await watcher.join(room, "watcher"))["members"] == ["doomed", "watcher"]
    a.proc_kill()
    # Within the documented bound (about 1.33 x CHAT_PRESENCE_TTL) the others are told...
    assert await watcher.recv_json() == {
        "type": "presence", "room": room, "nick": "doomed", "event": "leave"}
    # ...and the nick is free again.
    back = await b.connect()
    assert (await back.join(room, "doomed"))["members"] == ["watcher", "doomed"]
