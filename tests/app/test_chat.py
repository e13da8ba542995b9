"""chat.v1 scenarios, each run in-process and over real sockets under uvicorn, hypercorn, wsrun.

Every test uses rooms of its own (`fresh_room()`), so the servers can be shared by a module.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.app.conftest import Refused, Target


def fresh_room() -> str:
    return "r-" + uuid.uuid4().hex[:12]


def message(id: int, room: str, nick: str, text: str, ts: str, **ref: Any) -> dict[str, Any]:
    return {"type": "message", "id": id, "room": room, "nick": nick, "text": text, "ts": ts, **ref}


TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_two_clients_presence_and_messages(target: Target) -> None:
    room = fresh_room()
    alice = await target.connect()
    assert alice.subprotocol == "chat.v1"
    assert await alice.join(room, "alice") == {
        "type": "joined", "room": room, "nick": "alice", "members": ["alice"],
        "history": [], "truncated": False,
    }
    bob = await target.connect()
    assert await bob.join(room, "bob") == {
        "type": "joined", "room": room, "nick": "bob", "members": ["alice", "bob"],
        "history": [], "truncated": False,
    }
    assert await alice.recv_json() == {
        "type": "presence", "room": room, "nick": "bob", "event": "join"}

    await alice.send_json({"type": "say", "room": room, "text": "hi bob", "ref": "a1"})
    ack = await alice.recv_json()
    assert TS.match(ack["ts"]), ack
    assert ack == message(ack["id"], room, "alice", "hi bob", ack["ts"], ref="a1")
    # Everyone else gets the same message without the author's ref.
    assert await bob.recv_json() == message(ack["id"], room, "alice", "hi bob", ack["ts"])

    await bob.send_json({"type": "say", "room": room, "text": "hi alice"})
    reply = await bob.recv_json()
    assert reply == message(reply["id"], room, "bob", "hi alice", reply["ts"])
    assert reply["id"] > ack["id"]
    assert await alice.recv_json() == reply

    await bob.send_json({"type": "leave", "room": room})
    assert await bob.recv_json() == {"type": "left", "room": room}
    assert await alice.recv_json() == {
        "type": "presence", "room": room, "nick": "bob", "event": "leave"}
    await bob.close()  # bob left the room already: alice hears nothing more about bob

    carol = await target.connect()
    assert (await carol.join(room, "carol"))["members"] == ["alice", "carol"]
    assert await alice.recv_json() == {
        "type": "presence", "room": room, "nick": "carol", "event": "join"}
    await carol.close()
    assert await alice.recv_json() == {
        "type": "presence", "room": room, "nick": "carol", "event": "leave"}


async def test_every_member_sees_the_same_order(target: Target) -> None:
    room = fresh_room()
    peers = [await target.connect() for _ in range(3)]
    for i, peer in enumerate(peers):
        await peer.join(room, f"p{i}")
    for i, peer in enumerate(peers):  # drain presence of later joiners
        for _ in range(len(peers) - 1 - i):
            assert (await peer.recv_json())["type"] == "presence"
    for n in range(5):
        for i, peer in enumerate(peers):
            await peer.send_json({"type": "say", "room": room, "text": f"{i}-{n}"})
    seen = [[await peer.recv_json() for _ in range(15)] for peer in peers]
    ids = [[m["id"] for m in s] for s in seen]
    assert ids[0] == sorted(ids[0]) and len(set(ids[0])) == 15
    assert ids[0] == ids[1] == ids[2]
    assert [m["text"] for m in seen[0]] == [m["text"] for m in seen[2]]


async def test_reconnect_with_since_gets_exactly_the_missed_messages(target: Target) -> None:
    room = fresh_room()
    alice = await target.connect()
    await alice.join(room, "alice")
    bob = await target.connect()
    await bob.join(room, "bob")
    await alice.recv_json()  # presence bob
    await alice.send_json({"type": "say", "room": room, "text": "one"})
    first = await bob.recv_json()
    assert await alice.recv_json() == first
    await bob.close()
    assert (await alice.recv_json())["event"] == "leave"
    texts = ["two", "three", "four"]
    acks = []
    for text in texts:
        await alice.send_json({"type": "say", "room": room, "text": text})
        acks.append(await alice.recv_json())
    bob = await target.connect()
    joined = await bob.join(room, "bob", since=first["id"])
    assert joined["history"] == acks
    assert joined["truncated"] is False
    # since = the newest id: nothing missed.
    bob2 = await target.connect()
    assert (await bob2.join(room, "bob2", since=acks[-1]["id"]))["history"] == []
    # Without since: the last messages, oldest first.
    carol = await target.connect()
    assert [m["text"] for m in (await carol.join(room, "carol"))["history"]] == [
        "one", "two", "three", "four"]


async def test_ref_makes_say_idempotent(target: Target) -> None:
    room = fresh_room()
    alice = await target.connect()
    await alice.join(room, "alice")
    bob = await target.connect()
    await bob.join(room, "bob")
    await alice.recv_json()
    await alice.send_json({"type": "say", "room": room, "text": "once", "ref": 7})
    ack = await alice.recv_json()
    assert ack["ref"] == 7
    assert (await bob.recv_json())["id"] == ack["id"]
    # Resent on another connection after a "reconnect": same nick, same ref.
    await alice.close()
    assert (await bob.recv_json())["event"] == "leave"
    alice = await target.connect()
    await alice.join(room, "alice")
    assert await bob.recv_json() == {
        "type": "presence", "room": room, "nick": "alice", "event": "join"}
    await alice.send_json({"type": "say", "room": room, "text": "once", "ref": 7})
    assert await alice.recv_json() == ack
    # A different ref (or the string "7") is a new message; bob sees only that one.
    await alice.send_json({"type": "say", "room": room, "text": "twice", "ref": "7"})
    second = await alice.recv_json()
    assert second["id"] > ack["id"] and second["ref"] == "7"
    assert (await bob.recv_json())["text"] == "twice"
    history = (await (await target.connect()).join(room, "carol"))["history"]
    assert [m["text"] for m in history] == ["once", "twice"]


BAD_INPUTS: list[tuple[str, str]] = [
    ("not json", "bad_request"),
    ("[1, 2]", "bad_request"),
    ('{"room": "x"}', "bad_request"),
    ('{"type": "shout", "room": "x"}', "bad_request"),
    ('{"type": "join", "room": "x"}', "bad_request"),
    ('{"type": "join", "room": "has space", "nick": "n"}', "bad_request"),
    ('{"type": "join", "room": "' + "r" * 65 + '", "nick": "n"}', "bad_request"),
    ('{"type": "join", "room": "lobby\\n", "nick": "n"}', "bad_request"),
    ('{"type": "join", "room": "ok", "nick": ""}', "bad_request"),
    ('{"type": "join", "room": "ok", "nick": "' + "n" * 33 + '"}', "bad_request"),
    ('{"type": "join", "room": "ok", "nick": "tab\\there"}', "bad_request"),
    ('{"type": "join", "room": "ok", "nick": "   "}', "bad_request"),
    ('{"type": "join", "room": 5, "nick": "n"}', "bad_request"),
    ('{"type": "join", "room": "ok", "nick": "n", "since": "3"}', "bad_request"),
    ('{"type": "join", "room": "ok", "nick": "n", "since": -1}', "bad_request"),
    ('{"type": "say", "room": "ok"}', "bad_request"),
    ('{"type": "say", "room": "ok", "text": 42}', "bad_request"),
    ('{"type": "history", "room": "ok", "limit": 0}', "bad_request"),
    ('{"type": "say", "room": "nowhere", "text": "hi"}', "not_joined"),
    ('{"type": "leave", "room": "nowhere"}', "not_joined"),
    ('{"type": "history", "room": "nowhere"}', "not_joined"),
]


async def test_every_bad_input_gets_its_error_and_the_connection_stays_open(
        target: Target) -> None:
    room = fresh_room()
    peer = await target.connect()
    await peer.join(room, "me")
    for raw, code in BAD_INPUTS:
        await peer.send(raw)
        reply = await peer.recv_json()
        assert reply["type"] == "error" and reply["code"] == code, (raw, reply)
        assert "ref" not in reply and isinstance(reply["message"], str) and reply["message"]
    # The request's ref is echoed in the error, also when the request is malformed.
    await peer.send('{"type": "say", "room": 1, "ref": "x1"}')
    assert (await peer.recv_json())["ref"] == "x1"
    checks: list[tuple[dict[str, Any], str]] = [
        ({"type": "join", "room": room, "nick": "again"}, "already_joined"),
        ({"type": "say", "room": room, "text": ""}, "empty"),
        ({"type": "say", "room": room, "text": " \t\n "}, "empty"),
        ({"type": "say", "room": room, "text": "é" * 4001}, "too_long"),
        ({"type": "say", "room": "elsewhere", "text": "hi"}, "not_joined"),
    ]
    for request, code in checks:
        await peer.send_json({**request, "ref": f"ref-{code}"})
        assert await peer.recv_json() == {
            "type": "error", "code": code, "message": _message(code), "ref": f"ref-{code}"}
    # 4,000 code points (8,000 bytes of UTF-8) is within the limit.
    await peer.send_json({"type": "say", "room": room, "text": "é" * 4000})
    assert (await peer.recv_json())["text"] == "é" * 4000

    other = await target.connect()
    await other.send_json({"type": "join", "room": room, "nick": "me", "ref": 3})
    assert await other.recv_json() == {
        "type": "error", "code": "nick_taken", "message": _message("nick_taken"), "ref": 3}
    assert (await other.join(room, "me2"))["members"] == ["me", "me2"]


def _message(code: str) -> str:
    from app.session import ERROR_MESSAGES

    return ERROR_MESSAGES[code]


async def test_history_request_pages_backwards(target: Target) -> None:
    room = fresh_room()
    peer = await target.connect()
    await peer.join(room, "pager")
    ids = []
    for n in range(5):
        await peer.send_json({"type": "say", "room": room, "text": f"m{n}"})
        ids.append((await peer.recv_json())["id"])
    await peer.send_json({"type": "history", "room": room, "before": ids[3], "limit": 2})
    reply = await peer.recv_json()
    assert reply["type"] == "history" and reply["room"] == room
    assert [m["text"] for m in reply["messages"]] == ["m1", "m2"]
    assert all("ref" not in m for m in reply["messages"])
    await peer.send_json({"type": "history", "room": room, "limit": 100000})  # clamped
    assert [m["id"] for m in (await peer.recv_json())["messages"]] == ids
    await peer.send_json({"type": "history", "room": room, "before": ids[0]})
    assert (await peer.recv_json())["messages"] == []


async def test_rate_limit_answers_rate_limited_and_keeps_the_connection(target: Target) -> None:
    room = fresh_room()
    peer = await target.connect()
    await peer.join(room, "chatty")
    for n in range(20):
        await peer.send_json({"type": "say", "room": room, "text": f"{n}"})
    await peer.send_json({"type": "say", "room": room, "text": "one too many", "ref": "r"})
    replies = [await peer.recv_json() for _ in range(21)]
    assert [r["text"] for r in replies if r["type"] == "message"] == [f"{n}" for n in range(20)]
    assert [r for r in replies if r["type"] == "error"] == [{
        "type": "error", "code": "rate_limited", "message": _message("rate_limited"),
        "ref": "r"}]
    # Not a chat message: not rate limited.
    await peer.send_json({"type": "history", "room": room, "limit": 1})
    assert (await peer.recv_json())["messages"][0]["text"] == "19"


async def test_too_many_rooms(target: Target) -> None:
    peer = await target.connect()
    base = fresh_room()
    for n in range(16):
        await peer.join(f"{base}-{n}", "roamer")
    await peer.send_json({"type": "join", "room": f"{base}-16", "nick": "roamer"})
    assert await peer.recv_json() == {
        "type": "error", "code": "too_many_rooms", "message": _message("too_many_rooms")}
    await peer.send_json({"type": "leave", "room": f"{base}-0"})
    assert await peer.recv_json() == {"type": "left", "room": f"{base}-0"}
    await peer.join(f"{base}-16", "roamer")


async def test_binary_frame_closes_with_1003(target: Target) -> None:
    peer = await target.connect()
    await peer.send(b'{"type": "join"}')
    closed = await peer.expect_close()
    assert (closed.code, closed.reason) == (1003, "binary frames are not supported")


async def test_disallowed_origin_is_refused_with_403(target: Target) -> None:
    with pytest.raises(Refused) as refused:
        await target.connect(origin="http://evil.example")
    assert refused.value.status == 403
    for origin in ("http://localhost:3000", "http://127.0.0.1:1"):
        peer = await target.connect(origin=origin)
        await peer.join(fresh_room(), "ok")
    # "null" (a file:// page) is the plain-text page's Origin; chat.v1 pages are served
    # over HTTP, so for chat.v1 "null" is refused unless CHAT_ALLOWED_ORIGINS lists it.
    with pytest.raises(Refused) as refused:
        await target.connect(origin="null")
    assert refused.value.status == 403
    plain = await target.connect(v1=False, origin="null")
    assert (await plain.recv()).startswith("Welcome, ")


async def test_unknown_websocket_path_is_refused(target: Target) -> None:
    with pytest.raises(Refused) as refused:
        await target.connect(path="/nope")
    assert refused.value.status in (403, 404)


async def test_healthz_counts_connections_and_rooms(target: Target) -> None:
    peer = await target.connect()
    await peer.join(fresh_room(), "h")
    health = (await target.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["connections"] >= 1 and health["rooms"] >= 1
    metrics = (await target.get("/metrics")).text
    assert "chat_connections " in metrics and "chat_messages_total" in metrics
