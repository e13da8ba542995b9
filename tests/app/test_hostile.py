"""Hostile chat.v1 input: every frame gets a bounded `bad_request` and the connection stays.

Run in-process and over real sockets under uvicorn, hypercorn and wsrun (the `target`
fixture). Each case was found by attacking a running chat; before the fix the nested
frames closed the connection with 1011 and integers of 2^63 and more reached SQLite.
"""

from __future__ import annotations

import json
from typing import Any

from tests.app.conftest import Target
from tests.app.test_chat import fresh_room

TOO_BIG = 2**63


def frame(**fields: Any) -> str:
    """A request as JSON; Python ints of any size are written as JSON numbers."""
    return json.dumps(fields)


async def expect_bad_request(peer: Any, raw: str, message: str, ref: Any = None) -> None:
    await peer.send(raw)
    expected = {"type": "error", "code": "bad_request", "message": message}
    if ref is not None:
        expected["ref"] = ref
    assert await peer.recv_json() == expected


async def still_open(peer: Any, room: str) -> None:
    await peer.send_json({"type": "say", "room": room, "text": "still here"})
    assert (await peer.recv_json())["text"] == "still here"


async def test_deeply_nested_json_is_bad_request(target: Target) -> None:
    room = fresh_room()
    peer = await target.connect()
    await peer.join(room, "nester")
    await expect_bad_request(peer, "[" * 100_000, "Expected `object`, got `array`")
    await expect_bad_request(peer, '{"a":' * 50_000, "JSON is nested too deeply")
    # Deep nesting in an ignored field, after a valid ref: too deep to trust, no ref echoed.
    await expect_bad_request(
        peer, '{"type":"say","room":"' + room + '","ref":"n","x":' + "[" * 100_000,
        "JSON is nested too deeply")
    await still_open(peer, room)


async def test_integers_out_of_range_are_bad_request(target: Target) -> None:
    room = fresh_room()
    peer = await target.connect()
    await peer.join(room, "counter")
    await expect_bad_request(
        peer, frame(type="history", room=room, before=TOO_BIG, ref=1),
        "Expected `int` <= 9223372036854775807 - at `$.before`", ref=1)
    await expect_bad_request(
        peer, frame(type="join", room=fresh_room(), nick="n", since=TOO_BIG, ref=2),
        "Expected `int` <= 9223372036854775807 - at `$.since`", ref=2)
    await expect_bad_request(
        peer, frame(type="history", room=room, limit=TOO_BIG),
        "Expected `int` <= 9223372036854775807 - at `$.limit`")
    await expect_bad_request(
        peer, frame(type="history", room=room, before=-1),
        "Expected `int` >= 0 - at `$.before`")
    await expect_bad_request(
        peer, frame(type="say", room=room, text="x", ref=TOO_BIG),
        "Expected `int` <= 9223372036854775807 - at `$.ref`")
    await expect_bad_request(
        peer, frame(type="say", room=room, text="x", ref=-TOO_BIG - 1),
        "Expected `int` >= -9223372036854775808 - at `$.ref`")
    # The largest values are accepted.
    await peer.send(frame(type="history", room=room, before=TOO_BIG - 1))
    assert (await peer.recv_json())["type"] == "history"
    other = await target.connect()
    await other.join(room, "since-max", since=TOO_BIG - 1)
    assert (await peer.recv_json())["type"] == "presence"
    await still_open(peer, room)


async def test_invisible_nicks_are_bad_request(target: Target) -> None:
    room = fresh_room()
    peer = await target.connect()
    cases = [
        ("\u202e", "U+202E"),  # RIGHT-TO-LEFT OVERRIDE (Cf)
        ("\u200b", "U+200B"),  # ZERO WIDTH SPACE (Cf)
        ("a\u200db", "U+200D"),  # ZERO WIDTH JOINER inside a visible nick
        ("x\u2028", "U+2028"),  # LINE SEPARATOR (Zl)
        ("p\u2029", "U+2029"),  # PARAGRAPH SEPARATOR (Zp)
        ("\ufeffbom", "U+FEFF"),  # BYTE ORDER MARK (Cf)
        ("\U000e0041", "U+E0041"),  # TAG LATIN CAPITAL LETTER A (Cf)
    ]
    for nick, code_point in cases:
        await peer.send_json({"type": "join", "room": room, "nick": nick, "ref": code_point})
        assert await peer.recv_json() == {
            "type": "error", "code": "bad_request", "ref": code_point,
            "message": f"nick must not contain control or format characters ({code_point})"
                       " - at `$.nick`"}
    # Letters of any script, marks and emoji are fine.
    assert (await peer.join(room, "Zoë 李 🙂"))["nick"] == "Zoë 李 🙂"


async def test_nul_in_text_is_bad_request(target: Target) -> None:
    room = fresh_room()
    peer = await target.connect()
    await peer.join(room, "nul")
    await peer.send_json({"type": "say", "room": room, "text": "a\x00b", "ref": "z"})
    assert await peer.recv_json() == {
        "type": "error", "code": "bad_request", "ref": "z",
        "message": "text must not contain NUL (U+0000) - at `$.text`"}
    await still_open(peer, room)


async def test_invalid_ref_is_not_echoed(target: Target) -> None:
    room = fresh_room()
    peer = await target.connect()
    await peer.join(room, "refs")
    await expect_bad_request(
        peer, frame(type="say", room=room, text="x", ref="<" * 129),
        "Expected `str` of length <= 128 - at `$.ref`")
    await expect_bad_request(
        peer, frame(type="say", room=room, text="x", ref=[1]),
        "Expected `int | str | null`, got `array` - at `$.ref`")
    # A valid ref is still echoed when something else is wrong.
    await expect_bad_request(peer, '{"type":"say","room":1,"ref":"ok"}',
                             "Expected `str`, got `int` - at `$.room`", ref="ok")
