"""Limits per client address and the Host allow-list, over real sockets and in-process.

Every client here is 127.0.0.1, so every connection of a test is "one address". The
limits are tested with the default bursts over an hour instead of their default periods, so
no token comes back during a test however slow the machine (the defaults themselves are
tested in test_parts.py); the harness's loopback override is what the other tests run with.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from tests.app.conftest import Refused, Target
from tests.app.peers import RECV_TIMEOUT
from tests.app.test_chat import fresh_room

HOURLY = {"CHAT_ADDRESS_RATE": "100/3600", "CHAT_ADDRESS_CONNECT_RATE": "60/3600"}
RATE_LIMITED = {"type": "error", "code": "rate_limited", "message": "too many messages, slow down"}


async def raw_exchange(addr: str, request: bytes) -> bytes:
    """Send `request` on a fresh TCP connection; everything read until the server closes."""
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        async with asyncio.timeout(RECV_TIMEOUT):
            return await reader.read(65536)
    finally:
        writer.close()


def handshake(host: str = "127.0.0.1", path: str = "/ws") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat.v1\r\n\r\n").encode()


def head_and_body(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


@pytest.mark.parametrize("name", ["inprocess", "wsrun"])
async def test_messages_count_per_address_across_reconnects(own_target: Any, name: str) -> None:
    target: Target = await own_target(name, **HOURLY, CHAT_RATE="1000/1")
    room = fresh_room()
    # 100 messages for the address, whatever the connection: five connections of
    # 20 messages each use them up; a sixth connection is limited at once.
    for n in range(5):
        peer = await target.connect()
        await peer.join(room, f"n{n}")
        for m in range(20):
            await peer.send_json({"type": "say", "room": room, "text": f"{n}.{m}"})
        replies = [await peer.recv_json() for _ in range(20)]
        assert {r["type"] for r in replies} == {"message"}, replies
        await peer.close()
    peer = await target.connect()
    await peer.join(room, "late")
    await peer.send_json({"type": "say", "room": room, "text": "one too many", "ref": 1})
    assert await peer.recv_json() == {**RATE_LIMITED, "ref": 1}
    plain = await target.connect(v1=False)
    assert (await plain.recv()).startswith("Welcome, ")
    await plain.send("plain too")
    assert await plain.recv() == "error: rate_limited"
    await peer.send_json({"type": "history", "room": room, "limit": 200})
    assert len((await peer.recv_json())["messages"]) == 100  # nothing more was stored


@pytest.mark.parametrize("name", ["wsrun", "uvicorn", "hypercorn"])
async def test_connections_per_address_get_429_before_the_upgrade(
        own_target: Any, name: str) -> None:
    target: Target = await own_target(name, **HOURLY)
    for _ in range(60):  # 60 new connections
        peer = await target.connect()
        await peer.close()
    with pytest.raises(websockets.InvalidStatus) as refused:
        await ws_connect(f"ws://{target.addr}/ws",  # type: ignore[attr-defined]
                         subprotocols=["chat.v1"],  # type: ignore[list-item]
                         open_timeout=RECV_TIMEOUT)
    response = refused.value.response
    assert (response.status_code, response.body) == (429, b"too many connections\n")
    # One connection a minute comes back: at most 60 s from now (less as the test ran).
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert (await target.get("/healthz")).status_code == 200  # HTTP is not limited


async def test_connections_per_address_exact_429_response(own_target: Any) -> None:
    target: Target = await own_target("wsrun", CHAT_ADDRESS_CONNECT_RATE="1/3600")
    first = await target.connect()
    status, headers, body = head_and_body(
        await raw_exchange(target.addr, handshake()))  # type: ignore[attr-defined]
    assert status == "HTTP/1.1 429 Too Many Requests"
    assert (headers["content-type"], body) == ("text/plain; charset=utf-8",
                                               b"too many connections\n")
    # The token comes back 3600 s after the first connection: less the seconds since.
    assert 3500 <= int(headers["retry-after"]) <= 3600
    await first.join(fresh_room(), "still-fine")


async def test_connections_per_address_in_process_close_before_accept(own_target: Any) -> None:
    """Without the denial-response extension the handshake is closed before accept (403)."""
    target: Target = await own_target("inprocess", CHAT_ADDRESS_CONNECT_RATE="2/3600")
    await target.connect()
    await target.connect(v1=False)
    with pytest.raises(Refused) as refused:
        await target.connect()
    assert refused.value.status == 403


@pytest.mark.parametrize("name", ["inprocess", "wsrun"])
async def test_host_allow_list(own_target: Any, name: str) -> None:
    target: Target = await own_target(name, CHAT_ALLOWED_HOSTS="chat.example,127.0.0.1")
    reply = await target.get("/healthz", headers={"host": "rebound.evil.example"})
    assert (reply.status_code, reply.text) == (400, "invalid host header\n")
    reply = await target.get("/", headers={"host": "chat.example:8000"})
    assert reply.status_code == 200
    if name == "inprocess":
        assert (await target.get("/healthz", headers={"host": "testserver"})).status_code == 400
        return
    status, _, body = head_and_body(
        await raw_exchange(target.addr, handshake("evil.example")))  # type: ignore[attr-defined]
    assert (status, body) == ("HTTP/1.1 400 Bad Request", b"invalid host header\n")
    assert (await raw_exchange(target.addr, handshake("127.0.0.1"))).startswith(  # type: ignore[attr-defined]
        b"HTTP/1.1 101 Switching Protocols\r\n")


async def test_without_allow_list_any_host_is_served(target: Target) -> None:
    reply = await target.get("/healthz", headers={"host": "rebound.evil.example"})
    assert reply.status_code == 200
