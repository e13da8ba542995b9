"""chat.v1's `typing`, `rooms` and client keys (docs/protocol.md), in-process and over real
sockets under uvicorn, hypercorn and wsrun, on the SQLite and the Redis backends.

"Nothing else arrived" is shown with a sentinel: a message said afterwards must be the very
next frame, so an unwanted frame in between fails the test instead of being waited for.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest

from app.config import Settings
from app.session import ROOMS_MAX, TYPING_INTERVAL
from tests.app.conftest import REDIS, SERVERS, InProcess, Peer, Target, server_param
from tests.app.test_chat import fresh_room
from tests.app.test_plain import NICK, said
from tests.redisproc import RedisServer

KEY = "k" * 16
OTHER_KEY = "0123456789abcdef-_XYZ"


async def next_is_message(peer: Peer, room: str, text: str) -> None:
    """The next frame `peer` gets is the message `text` in `room` (nothing came before)."""
    frame = await peer.recv_json()
    assert (frame["type"], frame["room"], frame["text"]) == ("message", room, text), frame


async def say(peer: Peer, room: str, text: str) -> None:
    """`peer` says `text` and reads its acknowledgement."""
    await peer.send_json({"type": "say", "room": room, "text": text})
    await next_is_message(peer, room, text)


async def test_typing_reaches_the_other_members_only_and_is_throttled(target: Target) -> None:
    room = fresh_room()
    alice = await target.connect()
    await alice.join(room, "alice", key=KEY)
    alice_tab = await target.connect()  # the same person in a second tab
    await alice_tab.join(room, "alice", key=KEY)
    bob = await target.connect()
    await bob.join(room, "bob")
    assert await alice.recv_json() == {
        "type": "presence", "room": room, "nick": "bob", "event": "join"}
    assert await alice_tab.recv_json() == {
        "type": "presence", "room": room, "nick": "bob", "event": "join"}
    elsewhere = await target.connect()
    await elsewhere.join(fresh_room(), "carol")

    await alice.send_json({"type": "typing", "room": room})
    assert await bob.recv_json() == {"type": "typing", "room": room, "nick": "alice"}
    # Throttled: a second `typing` at once is dropped, without a reply.
    await alice.send_json({"type": "typing", "room": room, "ref": 1})
    await say(alice, room, "sentinel 1")
    await next_is_message(bob, room, "sentinel 1")
    # Neither alice's own tabs nor other rooms heard it; nothing was stored.
    await next_is_message(alice_tab, room, "sentinel 1")
    await elsewhere.send_json({"type": "history", "room": room})
    assert (await elsewhere.recv_json())["code"] == "not_joined"
    await bob.send_json({"type": "history", "room": room})
    assert [m["text"] for m in (await bob.recv_json())["messages"]] == ["sentinel 1"]

    # alice's message restarted her interval: her next `typing` goes out at once.
    await alice.send_json({"type": "typing", "room": room})
    assert await bob.recv_json() == {"type": "typing", "room": room, "nick": "alice"}
    await alice.send_json({"type": "typing", "room": room})  # and the next is dropped again
    await say(bob, room, "sentinel 2")
    await next_is_message(alice, room, "sentinel 2")
    await next_is_message(alice_tab, room, "sentinel 2")

    # The throttle is per connection and per room: bob's own typing goes out.
    await bob.send_json({"type": "typing", "room": room})
    assert await alice.recv_json() == {"type": "typing", "room": room, "nick": "bob"}
    assert await alice_tab.recv_json() == {"type": "typing", "room": room, "nick": "bob"}
    # Once the interval is over, alice's next `typing` is forwarded again.
    await asyncio.sleep(TYPING_INTERVAL + 0.1)
    await alice.send_json({"type": "typing", "room": room})
    assert await bob.recv_json() == {"type": "typing", "room": room, "nick": "alice"}


async def test_typing_errors_and_plain_text_clients(target: Target) -> None:
    alice = await target.connect()
    await alice.send_json({"type": "typing", "room": "not-mine", "ref": "t1"})
    assert await alice.recv_json() == {"type": "error", "code": "not_joined",
                                       "message": "join the room first", "ref": "t1"}
    await alice.send_json({"type": "typing", "ref": "t2"})
    reply = await alice.recv_json()
    assert (reply["code"], reply["ref"]) == ("bad_request", "t2")
    assert "room" in reply["message"]
    await alice.send_json({"type": "typing", "room": "bad room!", "ref": "t3"})
    assert (await alice.recv_json())["code"] == "bad_request"

    # Plain-text clients in lobby never see `typing`: the next line is the message.
    plain = await target.connect(v1=False)
    assert await plain.recv() == f"Welcome, {NICK} !"
    await alice.join("lobby", "alice")
    assert await plain.recv() == "Welcome, alice !"
    await alice.send_json({"type": "typing", "room": "lobby"})
    await say(alice, "lobby", "typed")
    assert said("typed", "alice").fullmatch(await plain.recv())


async def test_one_person_in_several_tabs_with_a_client_key(target: Target) -> None:
    room = fresh_room()
    bob = await target.connect()
    await bob.join(room, "bob")
    first = await target.connect()
    assert (await first.join(room, "alice", key=KEY))["members"] == ["bob", "alice"]
    assert await bob.recv_json() == {
        "type": "presence", "room": room, "nick": "alice", "event": "join"}

    # Same nick, same key: joins, listed once, and bob hears no second "join".
    second = await target.connect()
    assert await second.join(room, "alice", key=KEY) == {
        "type": "joined", "room": room, "nick": "alice", "members": ["bob", "alice"],
        "history": [], "truncated": False}
    # Another key, or none, is someone else: nick_taken.
    for extra in ({"key": OTHER_KEY}, {}):
        other = await target.connect()
        await other.send_json({"type": "join", "room": room, "nick": "alice", "ref": 5, **extra})
        assert await other.recv_json() == {
            "type": "error", "code": "nick_taken",
            "message": "this nick is already used in this room", "ref": 5}

    # Both tabs get the room's messages; the author's tab alone gets the ref.
    await first.send_json({"type": "say", "room": room, "text": "from tab 1", "ref": "r"})
    ack = await first.recv_json()
    assert ack["ref"] == "r"
    copy = await second.recv_json()
    assert "ref" not in copy and copy["id"] == ack["id"]
    assert await bob.recv_json() == copy

    # The first tab leaves: alice is still there, so no presence for bob.
    await first.send_json({"type": "leave", "room": room})
    assert await first.recv_json() == {"type": "left", "room": room}
    await say(bob, room, "still here?")
    await next_is_message(second, room, "still here?")
    late = await target.connect()
    assert (await late.join(room, "carol"))["members"] == ["bob", "alice", "carol"]
    assert (await bob.recv_json())["nick"] == "carol"
    assert (await second.recv_json())["nick"] == "carol"
    # The last tab goes: now alice left.
    await second.close()
    assert await bob.recv_json() == {
        "type": "presence", "room": room, "nick": "alice", "event": "leave"}
    # The nick is free again, for any key.
    other = await target.connect()
    await other.join(room, "alice", key=OTHER_KEY)


async def test_a_nick_held_without_a_key_is_not_shared(target: Target) -> None:
    room = fresh_room()
    first = await target.connect()
    await first.join(room, "dave")
    second = await target.connect()
    await second.send_json({"type": "join", "room": room, "nick": "dave", "key": KEY})
    assert (await second.recv_json())["code"] == "nick_taken"
    # Plain-text clients' nicks (their address, in lobby) have no key either.
    plain = await target.connect(v1=False)
    assert await plain.recv() == f"Welcome, {NICK} !"
    await second.send_json({"type": "join", "room": "lobby", "nick": NICK, "key": KEY})
    assert (await second.recv_json())["code"] == "nick_taken"


@pytest.mark.parametrize("key", ["short", "k" * 65, "spaces are not ok!", "é" * 16, 12345678])
async def test_a_bad_client_key_is_a_bad_request(target: Target, key: Any) -> None:
    peer = await target.connect()
    await peer.send_json({"type": "join", "room": fresh_room(), "nick": "x", "key": key,
                          "ref": "k"})
    reply = await peer.recv_json()
    assert (reply["type"], reply["code"], reply["ref"]) == ("error", "bad_request", "k")
    assert "key" in reply["message"]


async def test_tabs_in_lobby_greet_and_log_out_plain_clients_once(target: Target) -> None:
    plain = await target.connect(v1=False)
    assert await plain.recv() == f"Welcome, {NICK} !"
    first = await target.connect()
    await first.join("lobby", "erin", key=KEY)
    assert await plain.recv() == "Welcome, erin !"
    second = await target.connect()
    await second.join("lobby", "erin", key=KEY)
    await first.send_json({"type": "leave", "room": "lobby"})
    assert await first.recv_json() == {"type": "left", "room": "lobby"}
    # No second Welcome, no Logout while a tab stays: the next line is plain's own.
    await plain.send("between")
    assert said("between").fullmatch(await plain.recv())
    await second.close()
    assert said("erin Logout", "erin").fullmatch(await plain.recv())


# -- rooms: a fresh database each, so the listing is exactly this test's rooms ----------

TARGET_NAMES = ["inprocess", *[server_param(s) for s in SERVERS], "inprocess" + REDIS,
                server_param("wsrun" + REDIS)]


async def rooms_page(peer: Peer, **request: Any) -> dict[str, Any]:
    await peer.send_json({"type": "rooms", **request})
    reply = await peer.recv_json()
    assert reply["type"] == "rooms", reply
    return reply


@pytest.mark.parametrize("name", TARGET_NAMES)
async def test_rooms_lists_rooms_with_members_or_history_in_pages(name: str,
                                                                  own_target: Any) -> None:
    target: Target = await own_target(name)
    writer = await target.connect()
    await writer.join("a-history", "writer")
    await say(writer, "a-history", "kept")
    await writer.send_json({"type": "leave", "room": "a-history"})
    assert await writer.recv_json() == {"type": "left", "room": "a-history"}
    await writer.join("z-empty", "writer")  # joined and left without a word: not a room
    await writer.send_json({"type": "leave", "room": "z-empty"})
    assert await writer.recv_json() == {"type": "left", "room": "z-empty"}
    people = [await target.connect() for _ in range(4)]
    await people[0].join("b-busy", "bob", key=KEY)
    await people[1].join("b-busy", "bob", key=KEY)  # one person, two tabs: counted once
    await people[2].join("b-busy", "carol")
    for peer in people[:2]:
        assert (await peer.recv_json())["event"] == "join"
    await people[3].join("c-quiet", "dave")

    # Anyone may ask, joined or not; no fields: the first page of 50.
    assert await rooms_page(writer) == {"type": "rooms", "rooms": [
        {"room": "a-history", "members": 0},
        {"room": "b-busy", "members": 2},
        {"room": "c-quiet", "members": 1},
    ], "next": None}
    first = await rooms_page(writer, limit=2)
    assert first == {"type": "rooms", "rooms": [
        {"room": "a-history", "members": 0}, {"room": "b-busy", "members": 2}],
        "next": "b-busy"}
    assert await rooms_page(writer, cursor=first["next"], limit=2) == {
        "type": "rooms", "rooms": [{"room": "c-quiet", "members": 1}], "next": None}
    assert await rooms_page(writer, cursor="c-quiet") == {
        "type": "rooms", "rooms": [], "next": None}

    # Counts follow the people: carol leaves, the room with only history stays listed.
    await people[2].close()
    await people[3].send_json({"type": "leave", "room": "c-quiet"})
    assert await people[3].recv_json() == {"type": "left", "room": "c-quiet"}
    for peer in people[:2]:
        assert (await peer.recv_json())["event"] == "leave"
    assert (await rooms_page(writer))["rooms"] == [
        {"room": "a-history", "members": 0}, {"room": "b-busy", "members": 1}]

    for bad in ({"cursor": "no spaces"}, {"cursor": 7}, {"limit": 0}, {"limit": "9"}):
        await writer.send_json({"type": "rooms", "ref": "bad", **bad})
        reply = await writer.recv_json()
        assert (reply["code"], reply["ref"]) == ("bad_request", "bad"), (bad, reply)


@pytest.mark.parametrize("name", ["inprocess", server_param("wsrun"), "inprocess" + REDIS])
async def test_rooms_pages_are_bounded_and_rate_limited(name: str, own_target: Any) -> None:
    target: Target = await own_target(name, CHAT_RATE="500/60")
    writer = await target.connect()
    names = [f"room-{n:03d}" for n in range(ROOMS_MAX + 5)]
    for room in names:
        await writer.send_json({"type": "join", "room": room, "nick": "w"})
        await writer.send_json({"type": "say", "room": room, "text": "x"})
        await writer.send_json({"type": "leave", "room": room})
    # An acknowledgement may come after the `left` (or a later `joined`): count them.
    frames = [(await writer.recv_json())["type"] for _ in range(3 * len(names))]
    assert collections.Counter(frames) == {t: len(names) for t in ("joined", "message", "left")}
    page = await rooms_page(writer, limit=10_000)  # clamped to ROOMS_MAX
    assert [r["room"] for r in page["rooms"]] == names[:ROOMS_MAX]
    assert page["next"] == names[ROOMS_MAX - 1]
    rest = await rooms_page(writer, cursor=page["next"], limit=10_000)
    assert [r["room"] for r in rest["rooms"]] == names[ROOMS_MAX:]
    assert rest["next"] is None



@pytest.mark.parametrize("name", ["inprocess", "inprocess" + REDIS])
async def test_rooms_requests_are_rate_limited_apart_from_messages(name: str,
                                                                   own_target: Any) -> None:
    target: Target = await own_target(name, CHAT_RATE="2/60")
    peer = await target.connect()
    await peer.join("talk", "p")
    replies = []
    for n in range(4):
        await peer.send_json({"type": "rooms", "ref": n})
        replies.append(await peer.recv_json())
    assert [r["type"] for r in replies] == ["rooms", "rooms", "error", "error"]
    assert replies[2] == {"type": "error", "code": "rate_limited",
                          "message": "too many messages, slow down", "ref": 2}
    # A bucket of its own: listing did not use up the messages' budget.
    await say(peer, "talk", "still allowed")


async def test_tabs_typing_and_rooms_across_two_processes_sharing_redis(tmp_path: Any) -> None:
    """Two apps on one Redis (two processes' worth of state): the client key, typing and
    the directory work across them."""
    redis = RedisServer(tmp_path / "redis").start()
    one, two = (InProcess(Settings(db=str(tmp_path / f"{n}.db"), redis_url=redis.url))
                for n in ("one", "two"))
    await one.start()
    await two.start()
    try:
        room = fresh_room()
        bob = await one.connect()
        await bob.join(room, "bob")
        tab1 = await one.connect()
        await tab1.join(room, "alice", key=KEY)
        assert (await bob.recv_json())["event"] == "join"
        tab2 = await two.connect()  # alice's second tab reached the other process
        assert (await tab2.join(room, "alice", key=KEY))["members"] == ["bob", "alice"]
        thief = await two.connect()
        await thief.send_json({"type": "join", "room": room, "nick": "alice", "key": OTHER_KEY})
        assert (await thief.recv_json())["code"] == "nick_taken"

        await tab2.send_json({"type": "typing", "room": room})
        assert await bob.recv_json() == {"type": "typing", "room": room, "nick": "alice"}
        await say(bob, room, "sentinel")  # tab1 did not get alice's own typing
        await next_is_message(tab1, room, "sentinel")
        await next_is_message(tab2, room, "sentinel")
        assert await rooms_page(thief, cursor=room[:-1]) == {
            "type": "rooms", "rooms": [{"room": room, "members": 2}], "next": None}

        await tab1.close()  # alice is still there through process two
        await say(bob, room, "still there")
        await next_is_message(tab2, room, "still there")
        await tab2.close()
        assert await bob.recv_json() == {
            "type": "presence", "room": room, "nick": "alice", "event": "leave"}
    finally:
        await one.stop()
        await two.stop()
        redis.stop()
