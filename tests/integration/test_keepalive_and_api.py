"""Keepalive pings, the close timeout, and the programmatic API (`Server`, `Config`)."""

from __future__ import annotations

import asyncio
import time

import httpx
from websockets.asyncio.client import connect as ws_connect

from server import Config, Server
from tests.integration import apps
from tests.integration.rawclient import client_frame, read_frame, recv_until_closed, upgrade
from tests.procs import serve

PING, PONG, CLOSE = 9, 10, 8


def test_peer_that_never_answers_pings_is_closed_with_1011() -> None:
    with serve(
        "wsrun",
        "tests.integration.apps:behaviours",
        args=["--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.3"],
    ) as addr:
        sock, reader, _, _ = upgrade(addr, "/record")
        with sock:
            opcode, _, payload = read_frame(reader)
            assert (opcode, len(payload)) == (PING, 4)
            pings = 1
            while (frame := read_frame(reader))[0] == PING:
                pings += 1
            opcode, _, payload = frame
            assert (
                pings <= 3
            )  # the first unanswered ping's deadline holds; later pings don't move it
            assert (opcode, payload[:2]) == (CLOSE, (1011).to_bytes(2, "big"))
            assert payload[2:] == b"keepalive ping timeout"
            assert recv_until_closed(sock) == b""


def test_peer_that_answers_pings_stays_connected() -> None:
    with serve(
        "wsrun",
        "tests.integration.apps:behaviours",
        args=["--ws-ping-interval", "0.1", "--ws-ping-timeout", "0.2"],
    ) as addr:
        sock, reader, _, _ = upgrade(addr, "/record")
        with sock:
            for _ in range(4):
                opcode, _, payload = read_frame(reader)
                assert opcode == PING
                sock.sendall(client_frame(PONG, payload))
            sock.sendall(client_frame(1, b"still here"))
            while (frame := read_frame(reader))[0] == PING:
                sock.sendall(client_frame(PONG, frame[2]))
            assert frame == (1, True, b"still here")


def test_peer_that_never_answers_our_close_is_cut_after_the_close_timeout() -> None:
    with serve(
        "wsrun", "tests.integration.apps:behaviours", args=["--ws-close-timeout", "0.5"]
    ) as addr:
        sock, reader, _, _ = upgrade(addr, "/close-4000")
        with sock:
            started = time.monotonic()
            opcode, _, _ = read_frame(reader)
            assert opcode == CLOSE
            assert recv_until_closed(sock, timeout=5) == b""  # we never answer; the server cuts
            assert time.monotonic() - started < 4


async def test_server_runs_inside_a_running_event_loop() -> None:
    server = Server(Config(app=apps.echo, port=0, lifespan="off"))
    task = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.started.wait(), 5)
    host, port = server.sockets[0].getsockname()[:2]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://{host}:{port}/", content=b"in-process")
    async with ws_connect(f"ws://{host}:{port}/") as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
    server.exit()
    await asyncio.wait_for(task, 10)
    assert response.content == b"in-process"
