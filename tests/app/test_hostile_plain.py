"""Hostile input reaching plain-text clients: HTML in lines, strange addresses as nicks.

Plain-text lines are HTML-escaped by default (the plain-text page inserts them with
innerHTML); `CHAT_PLAIN_ESCAPE_HTML=0` sends them raw. A plain-text client's nick is its
address, kept to the nick rules whatever a proxy header made of it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from app.session import PLAIN_NICK_FALLBACK, plain_nick
from tests.app.conftest import Target
from tests.app.peers import RECV_TIMEOUT
from tests.procs import serve

NICK = "127.0.0.1"
IMG = "<img src=x onerror=alert(1)>"


def said(text: str, nick: str = NICK) -> re.Pattern[str]:
    return re.compile(r"\d\d:\d\d:\d\d " + re.escape(f"{nick} say: {text}"))


async def test_plain_lines_are_html_escaped(target: Target) -> None:
    plain = await target.connect(v1=False)
    assert await plain.recv() == f"Welcome, {NICK} !"
    v1 = await target.connect()
    await v1.join("lobby", "<b>x</b>")
    assert await plain.recv() == "Welcome, &lt;b&gt;x&lt;/b&gt; !"
    await v1.send_json({"type": "say", "room": "lobby", "text": f"{IMG} & \"'"})
    ack = await v1.recv_json()
    assert ack["text"] == f"{IMG} & \"'"  # chat.v1 gets the text as typed
    assert said("&lt;img src=x onerror=alert(1)&gt; &amp; \"'",
                "&lt;b&gt;x&lt;/b&gt;").fullmatch(await plain.recv())
    await plain.send("<i>")
    assert said("&lt;i&gt;").fullmatch(await plain.recv())
    assert (await v1.recv_json())["text"] == "<i>"
    await v1.send_json({"type": "leave", "room": "lobby"})
    assert (await v1.recv_json())["type"] == "left"
    assert said("&lt;b&gt;x&lt;/b&gt; Logout", "&lt;b&gt;x&lt;/b&gt;").fullmatch(
        await plain.recv())


@pytest.mark.parametrize("name", ["inprocess", "wsrun"])
async def test_plain_escaping_can_be_turned_off(own_target: object, name: str) -> None:
    target: Target = await own_target(name, CHAT_PLAIN_ESCAPE_HTML="0")  # type: ignore[operator]
    plain = await target.connect(v1=False)
    assert await plain.recv() == f"Welcome, {NICK} !"
    v1 = await target.connect()
    await v1.join("lobby", "<b>")
    assert await plain.recv() == "Welcome, <b> !"
    await v1.send_json({"type": "say", "room": "lobby", "text": IMG})
    await v1.recv_json()
    assert said(IMG, "<b>").fullmatch(await plain.recv())


async def test_plain_nul_is_refused(target: Target) -> None:
    plain = await target.connect(v1=False)
    assert await plain.recv() == f"Welcome, {NICK} !"
    await plain.send("a\x00b")
    assert await plain.recv() == "error: bad_request"
    await plain.send("ok")
    assert said("ok").fullmatch(await plain.recv())


@pytest.mark.parametrize(("client", "nick"), [
    (("127.0.0.1", 1), "127.0.0.1"),
    (("::1", 1), "::1"),
    (("2001:0DB8:0000:0000:0000:0000:0000:0001", 1), "2001:db8::1"),  # RFC 5952 form
    (("fe80::1%<img>", 1), "fe80::1"),  # the zone is dropped
    (("testclient", 1), "testclient"),
    (("admin x", 1), "admin x"),  # keeps the nick rules: kept
    (("a" * 5000, 1), PLAIN_NICK_FALLBACK),
    (("x\u202e", 1), PLAIN_NICK_FALLBACK),
    (("x\x85y", 1), PLAIN_NICK_FALLBACK),
    (("line\nbreak", 1), PLAIN_NICK_FALLBACK),
    (("   ", 1), PLAIN_NICK_FALLBACK),
    (None, PLAIN_NICK_FALLBACK),
    ((b"127.0.0.1", 1), PLAIN_NICK_FALLBACK),
])
def test_plain_nick_keeps_the_nick_rules(client: object, nick: str) -> None:
    assert plain_nick(client) == nick


async def test_forwarded_address_breaking_the_nick_rules_is_not_a_nick(tmp_path: Path) -> None:
    """uvicorn takes X-Forwarded-For from a trusted proxy as given; the chat does not."""
    args = ["--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
    with serve("uvicorn", "app:chat", args=args, env={"CHAT_DB": str(tmp_path / "c.db")}) as addr:
        for forwarded, nick in [("a" * 5000, PLAIN_NICK_FALLBACK),
                                ("x\x85y", PLAIN_NICK_FALLBACK),
                                ("2001:db8:0:0::7", "2001:db8::7")]:
            async with ws_connect(f"ws://{addr}/ws", open_timeout=RECV_TIMEOUT,
                                  additional_headers={"X-Forwarded-For": forwarded}) as ws:
                assert await ws.recv() == f"Welcome, {nick} !"
