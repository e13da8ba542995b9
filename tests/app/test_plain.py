"""The seed's plain-text chat, alone and together with chat.v1 clients in lobby.

Exact strings from the seed (../shared/seed/server_py2.py): `Welcome, <nick> !`,
`HH:MM:SS <nick> say: <text>`, `HH:MM:SS <nick> say: <nick> Logout`. The nick is the
client's address: 127.0.0.1 for every client here.
"""

from __future__ import annotations

import re

from tests.app.conftest import Target

NICK = "127.0.0.1"


def said(text: str, nick: str = NICK) -> re.Pattern[str]:
    return re.compile(r"\d\d:\d\d:\d\d " + re.escape(f"{nick} say: {text}"))


async def test_plain_text_chat_with_the_seed_strings(target: Target) -> None:
    first = await target.connect(v1=False)
    assert first.subprotocol is None
    assert await first.recv() == f"Welcome, {NICK} !"
    await first.send("hello, world")
    assert said("hello, world").fullmatch(await first.recv())

    second = await target.connect(v1=False)
    assert await second.recv() == f"Welcome, {NICK} !"
    assert await first.recv() == f"Welcome, {NICK} !"

    # Over the limit: an error to the sender alone; the next line shows nobody else got it.
    await second.send("x" * 4001)
    assert await second.recv() == "error: too_long"
    await second.send("é" * 4000)
    assert said("é" * 4000).fullmatch(await second.recv())
    assert said("é" * 4000).fullmatch(await first.recv())

    await second.send("quit")
    assert said(f"{NICK} Logout").fullmatch(await second.recv())
    closed = await second.expect_close()
    assert closed.code == 1000
    assert said(f"{NICK} Logout").fullmatch(await first.recv())

    # A binary frame is not a line: 1003, as for chat.v1.
    await first.send(b"bytes")
    assert (await first.expect_close()).code == 1003


async def test_plain_and_v1_clients_share_lobby(target: Target) -> None:
    plain = await target.connect(v1=False)
    assert await plain.recv() == f"Welcome, {NICK} !"

    v1 = await target.connect()
    joined = await v1.join("lobby", "vee")
    assert joined["members"] == [NICK, "vee"]
    assert await plain.recv() == "Welcome, vee !"

    await plain.send("from plain")
    assert said("from plain").fullmatch(await plain.recv())
    line = await v1.recv_json()
    assert line == {"type": "message", "id": line["id"], "room": "lobby", "nick": NICK,
                    "text": "from plain", "ts": line["ts"]}

    await v1.send_json({"type": "say", "room": "lobby", "text": "from v1", "ref": "v"})
    ack = await v1.recv_json()
    assert (ack["text"], ack["ref"]) == ("from v1", "v")
    assert said("from v1", "vee").fullmatch(await plain.recv())

    other = await target.connect(v1=False)
    assert await other.recv() == f"Welcome, {NICK} !"
    assert await plain.recv() == f"Welcome, {NICK} !"
    assert await v1.recv_json() == {
        "type": "presence", "room": "lobby", "nick": NICK, "event": "join"}

    # quit: the Logout line (a stored message for v1 clients), then a presence leave.
    await other.send("quit")
    assert said(f"{NICK} Logout").fullmatch(await other.recv())
    assert said(f"{NICK} Logout").fullmatch(await plain.recv())
    logout = await v1.recv_json()
    assert (logout["type"], logout["nick"], logout["text"]) == ("message", NICK, f"{NICK} Logout")
    assert await v1.recv_json() == {
        "type": "presence", "room": "lobby", "nick": NICK, "event": "leave"}

    # A v1 member leaving lobby is the Logout line for plain clients.
    await v1.send_json({"type": "leave", "room": "lobby"})
    assert await v1.recv_json() == {"type": "left", "room": "lobby"}
    assert said("vee Logout", "vee").fullmatch(await plain.recv())

    # Plain-text lines are history too.
    await v1.send_json({"type": "join", "room": "lobby", "nick": "vee", "since": line["id"] - 1})
    history = (await v1.recv_json())["history"]
    assert [(m["nick"], m["text"]) for m in history] == [
        (NICK, "from plain"), ("vee", "from v1"), (NICK, f"{NICK} Logout")]
    assert await plain.recv() == "Welcome, vee !"


async def test_plain_rate_limit(target: Target) -> None:
    plain = await target.connect(v1=False)
    assert await plain.recv() == f"Welcome, {NICK} !"
    for n in range(20):
        await plain.send(f"line {n}")
    await plain.send("one too many")
    replies = [await plain.recv() for _ in range(21)]
    # The error is immediate; the lines arrive once committed: only their order is fixed.
    assert [r for r in replies if r.startswith("error")] == ["error: rate_limited"]
    lines = [r for r in replies if not r.startswith("error")]
    assert [said(f"line {n}").fullmatch(r) is not None for n, r in enumerate(lines)] == [True] * 20
    # quit is not a chat message: it still works when rate limited.
    await plain.send("quit")
    assert said(f"{NICK} Logout").fullmatch(await plain.recv())
