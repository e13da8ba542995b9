"""Idle WebSockets over real sockets: what each costs the server, and keepalive at scale.

The memory figure is the wsrun process's RSS growth (/proc/PID/status) per open idle
WebSocket, the same figure as `python -m bench --scenarios idle`; no timing is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.integration.rawclient import UPGRADE_HEADERS
from tests.procs import ROOT, free_port, server_command, stop, wait_for_port

ECHO = "tests.integration.apps:echo"
CONNS = 3000
MAX_KIB_PER_CONN = 6.0
REQUEST = f"GET / HTTP/1.1\r\n{UPGRADE_HEADERS}\r\n".encode()


@contextlib.contextmanager
def wsrun(log: Path, *args: str) -> Iterator[tuple[int, int]]:
    """wsrun on the echo app; yields (port, pid)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(server_command("wsrun", ECHO, port, ["--no-access-log", *args]),
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, proc)
            yield port, proc.pid
        finally:
            assert stop(proc) == 0
    assert "Traceback" not in log.read_text()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_websockets(port: int, count: int) -> list[Conn]:
    async def one() -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        return reader, writer

    conns: list[Conn] = []
    for start in range(0, count, 100):
        conns += await asyncio.gather(*(one() for _ in range(min(100, count - start))))
    return conns


@contextlib.asynccontextmanager
async def websockets(port: int, count: int) -> AsyncIterator[list[Conn]]:
    conns = await open_websockets(port, count)
    try:
        yield conns
    finally:
        for _, writer in conns:
            writer.transport.abort()


def test_an_idle_websocket_costs_at_most_6_kib(tmp_path: Path) -> None:
    async def measure(port: int, pid: int) -> float:
        async with websockets(port, 60):  # warm up: imports, first allocations
            pass
        await asyncio.sleep(0.5)
        before = rss_kib(pid)
        async with websockets(port, CONNS):
            await asyncio.sleep(1)
            after = rss_kib(pid)
        return (after - before) / CONNS

    with wsrun(tmp_path / "wsrun.log") as (port, pid):
        per_conn = asyncio.run(measure(port, pid))
    assert per_conn <= MAX_KIB_PER_CONN, per_conn


async def read_ping(reader: asyncio.StreamReader) -> bytes:
    """The next server frame, which must be a ping; returns its payload."""
    b0, b1 = await reader.readexactly(2)
    assert (b0, b1 & 0x80) == (0x89, 0)  # FIN + ping, unmasked (RFC 6455 5.1)
    return await reader.readexactly(b1)


def pong(payload: bytes) -> bytes:
    return bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload  # zero mask


@pytest.mark.parametrize("closing", [0, 10])
def test_every_idle_websocket_gets_its_keepalive_pings(tmp_path: Path, closing: int) -> None:
    """50 connections, `closing` of them dropped after the first ping: the rest keep
    getting pings, answered, with none closed (one shared timer serves them all)."""
    async def run(port: int) -> None:
        async with websockets(port, 50) as conns:
            for i, (reader, writer) in enumerate(conns):
                writer.write(pong(await read_ping(reader)))
                if i < closing:
                    writer.transport.abort()
            for _ in range(3):
                for reader, writer in conns[closing:]:
                    writer.write(pong(await asyncio.wait_for(read_ping(reader), 10)))

    with wsrun(tmp_path / "wsrun.log", "--ws-ping-interval", "0.2",
               "--ws-ping-timeout", "5") as (port, _):
        asyncio.run(run(port))
