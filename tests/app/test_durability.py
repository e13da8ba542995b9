"""Scenarios that need a chat of their own: restarts on one SQLite file, slow consumers,
history caps and `truncated`, and settings from the environment."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from app import ChatApp
from app.config import Settings
from tests.app.conftest import TARGETS, Target, lifespan, server_param

ALL = [server_param(t) for t in TARGETS]
SERVERS_ONLY = [server_param(t) for t in TARGETS if not t.startswith("inprocess")]


@pytest.mark.parametrize("name", ALL)
async def test_history_and_ids_survive_a_restart(name: str, own_target: Any) -> None:
    target: Target = await own_target(name)
    peer = await target.connect()
    await peer.join("keep", "writer")
    acks = []
    for text in ("before", "the", "restart"):
        await peer.send_json({"type": "say", "room": "keep", "text": text, "ref": text})
        acks.append(await peer.recv_json())
    await target.restart()

    peer = await target.connect()
    joined = await peer.join("keep", "writer", since=0)
    assert joined["history"] == [{k: v for k, v in a.items() if k != "ref"} for a in acks]
    # The ref window is rebuilt from SQLite: a resend after the restart is not stored again.
    await peer.send_json({"type": "say", "room": "keep", "text": "the", "ref": "the"})
    assert await peer.recv_json() == acks[1]
    await peer.send_json({"type": "say", "room": "keep", "text": "after"})
    assert (await peer.recv_json())["id"] > acks[-1]["id"]


async def _metric(target: Target, name: str) -> float:
    text = (await target.get("/metrics")).text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


@pytest.mark.parametrize("name", SERVERS_ONLY)
async def test_slow_consumer_is_closed_with_1013(name: str, own_target: Any) -> None:
    target: Target = await own_target(name, CHAT_QUEUE_LIMIT="8", CHAT_RATE="100000/1",
                                      CHAT_MAX_TEXT="60000")
    slow = await target.connect(small_buffer=True)  # joins, then stops reading
    await slow.join("busy", "slow")
    fast = await target.connect()
    await fast.join("busy", "fast")
    text = "x" * 60000
    for _ in range(100):  # at most 30 MB, far more than the socket buffers hold
        for _ in range(5):
            await fast.send_json({"type": "say", "room": "busy", "text": text})
        for _ in range(5):
            assert (await fast.recv_json())["type"] == "message"
        if await _metric(target, "chat_drops_total") >= 1:
            break
    closed = await slow.expect_close()
    assert (closed.code, closed.reason) == (1013, "too slow")
    # The room carries on for everyone else.
    assert await fast.recv_json() == {
        "type": "presence", "room": "busy", "nick": "slow", "event": "leave"}
    await fast.send_json({"type": "say", "room": "busy", "text": "still here"})
    assert (await fast.recv_json())["text"] == "still here"


async def test_slow_consumer_in_process(tmp_path: Any) -> None:
    """The app under a hand-driven ASGI connection whose socket never drains."""
    app = ChatApp(Settings(db=str(tmp_path / "c.db"), queue_limit=3, rate_burst=1000,
                           address_rate=(1000, 1.0)))
    async with lifespan(app):
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[dict[str, Any]] = []
        blocked = asyncio.Event()

        async def send(event: dict[str, Any]) -> None:
            sent.append(event)
            if event["type"] == "websocket.send" and len(sent) >= 3:
                blocked.set()
                await asyncio.Event().wait()  # a peer that never reads

        scope = {"type": "websocket", "path": "/ws", "subprotocols": ["chat.v1"], "headers": [],
                 "client": ("127.0.0.1", 1), "asgi": {"version": "3.0"}}
        await inbox.put({"type": "websocket.connect"})
        await inbox.put({"type": "websocket.receive",
                         "text": '{"type":"join","room":"r","nick":"slow"}'})
        for n in range(8):
            await inbox.put({"type": "websocket.receive",
                             "text": f'{{"type":"say","room":"r","text":"{n}"}}'})
        task = asyncio.create_task(app(scope, inbox.get, send))
        async with asyncio.timeout(10):
            while not sent or sent[-1]["type"] != "websocket.close":
                await asyncio.sleep(0.01)
        assert sent[0] == {"type": "websocket.accept", "subprotocol": "chat.v1"}
        assert sent[-1] == {"type": "websocket.close", "code": 1013, "reason": "too slow"}
        await inbox.put({"type": "websocket.disconnect", "code": 1006})
        await asyncio.wait_for(task, 10)
        assert app.connections == 0


@pytest.mark.parametrize("name", ["inprocess", "inprocess+redis"])
async def test_since_beyond_1000_missed_is_truncated(name: str, own_target: Any) -> None:
    target: Target = await own_target(name, CHAT_RATE="100000/1")
    peer = await target.connect()
    await peer.join("many", "w")
    for n in range(1005):
        await peer.send_json({"type": "say", "room": "many", "text": f"{n}"})
    acks = [await peer.recv_json() for _ in range(1005)]
    reader = await target.connect()
    joined = await reader.join("many", "r", since=acks[2]["id"])
    assert joined["truncated"] is True
    assert [m["text"] for m in joined["history"]] == [f"{n}" for n in range(5, 1005)]
    joined = await (await target.connect()).join("many", "r2", since=acks[4]["id"])
    assert joined["truncated"] is False and len(joined["history"]) == 1000
    assert [m["text"] for m in (await (await target.connect()).join("many", "r3"))["history"]] \
        == [f"{n}" for n in range(955, 1005)]


async def test_history_cap_prunes_and_since_reports_it(own_target: Any) -> None:
    target: Target = await own_target("inprocess", CHAT_HISTORY_LIMIT="3")
    peer = await target.connect()
    await peer.join("capped", "w")
    for n in range(5):
        await peer.send_json({"type": "say", "room": "capped", "text": f"{n}"})
    acks = [await peer.recv_json() for _ in range(5)]
    await peer.send_json({"type": "history", "room": "capped", "limit": 10})
    assert [m["text"] for m in (await peer.recv_json())["messages"]] == ["2", "3", "4"]
    # Message 1 (after since=acks[0]) was pruned: what is left comes back, truncated.
    joined = await (await target.connect()).join("capped", "r", since=acks[0]["id"])
    assert ([m["text"] for m in joined["history"]], joined["truncated"]) == (["2", "3", "4"], True)
    joined = await (await target.connect()).join("capped", "r2", since=acks[1]["id"])
    assert ([m["text"] for m in joined["history"]], joined["truncated"]) == (["2", "3", "4"], False)


@pytest.mark.parametrize("name", ["inprocess", "inprocess+redis"])
async def test_history_cap_keeps_at_least_the_limit(name: str, own_target: Any) -> None:
    """SQLite prunes to the limit exactly; Redis trims whole stream nodes (MAXLEN ~), so it
    may keep more, never fewer. Either way `since` says when it missed pruned messages."""
    target: Target = await own_target(name, CHAT_HISTORY_LIMIT="3", CHAT_RATE="100000/1")
    peer = await target.connect()
    await peer.join("capped", "w")
    for n in range(250):
        await peer.send_json({"type": "say", "room": "capped", "text": f"{n}"})
    acks = [await peer.recv_json() for _ in range(250)]
    await peer.send_json({"type": "history", "room": "capped", "limit": 200})
    kept = (await peer.recv_json())["messages"]
    assert 3 <= len(kept) < 200
    assert kept == [{k: v for k, v in a.items() if k != "ref"} for a in acks[-len(kept):]]
    first = 250 - len(kept)  # index of the oldest kept message
    joined = await (await target.connect()).join("capped", "r", since=acks[first - 2]["id"])
    assert (joined["history"], joined["truncated"]) == (kept, True)
    joined = await (await target.connect()).join("capped", "r2", since=acks[first - 1]["id"])
    assert (joined["history"], joined["truncated"]) == (kept, False)


@pytest.mark.parametrize("name", ALL)
async def test_settings_come_from_the_environment(name: str, own_target: Any) -> None:
    target: Target = await own_target(
        name, CHAT_MAX_TEXT="5", CHAT_MAX_ROOMS="1", CHAT_RATE="2/60",
        CHAT_ALLOWED_ORIGINS="https://chat.example")
    peer = await target.connect(origin="https://chat.example")
    await peer.join("a", "n")
    await peer.send_json({"type": "join", "room": "b", "nick": "n"})
    assert (await peer.recv_json())["code"] == "too_many_rooms"
    await peer.send_json({"type": "say", "room": "a", "text": "123456"})
    assert (await peer.recv_json())["code"] == "too_long"
    for text in ("12345", "ok"):
        await peer.send_json({"type": "say", "room": "a", "text": text})
        assert (await peer.recv_json())["text"] == text
    await peer.send_json({"type": "say", "room": "a", "text": "3rd"})
    assert (await peer.recv_json())["code"] == "rate_limited"
    with pytest.raises(Exception) as refused:
        await target.connect(origin="http://localhost:8000")
    assert getattr(refused.value, "status", None) == 403


async def test_a_message_that_cannot_be_stored_is_not_broadcast(own_target: Any,
                                                                tmp_path: Any) -> None:
    target: Target = await own_target("inprocess")
    alice = await target.connect()
    await alice.join("fragile", "alice")
    bob = await target.connect()
    await bob.join("fragile", "bob")
    assert (await alice.recv_json())["event"] == "join"
    # Break the real database from outside: the next commit fails.
    import sqlite3

    db = sqlite3.connect(tmp_path / "own.db")
    db.execute("ALTER TABLE messages RENAME TO gone")
    db.commit()
    await alice.send_json({"type": "say", "room": "fragile", "text": "lost?", "ref": "L"})
    assert await alice.recv_json() == {
        "type": "error", "code": "internal", "message": "message not stored, try again",
        "ref": "L"}
    db.execute("ALTER TABLE gone RENAME TO messages")
    db.commit()
    db.close()
    # Nothing reached bob; the retry with the same ref is stored (the ref was not kept).
    await alice.send_json({"type": "say", "room": "fragile", "text": "lost?", "ref": "L"})
    ack = await alice.recv_json()
    assert (ack["text"], ack["ref"]) == ("lost?", "L")
    assert await bob.recv_json() == {k: v for k, v in ack.items() if k != "ref"}
