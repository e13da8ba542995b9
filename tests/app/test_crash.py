"""No acknowledged message is lost when the server dies mid-stream (SIGKILL, not a
graceful stop): the chat acknowledges a message only after SQLite committed it.

A writer keeps 20 `say`s in flight; after 150 acknowledgements the wsrun process is
killed. A new process on the same database must hold every acknowledged message with
its id and text, ids increasing, and a resend of every ref — acknowledged or not — must
give back the stored message instead of a second copy.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect as ws_connect

from tests.procs import LOOPBACK_CHAT_LIMITS, ROOT, free_port, stop, wait_for_port

TOTAL = 400
IN_FLIGHT = 20
KILL_AFTER = 150


def start(port: int, db: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "app:chat", "--port", str(port), "--no-access-log"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "CHAT_DB": str(db), "CHAT_RATE": "100000/1", **LOOPBACK_CHAT_LIMITS},
    )
    wait_for_port(port, proc)
    return proc


async def write_until_killed(url: str, proc: subprocess.Popen[bytes]) -> dict[str, dict[str, Any]]:
    """Send TOTAL says, IN_FLIGHT at a time; kill the server after KILL_AFTER acks."""
    acked: dict[str, dict[str, Any]] = {}
    async with ws_connect(url, subprotocols=["chat.v1"]) as ws:
        await ws.send(json.dumps({"type": "join", "room": "crash", "nick": "writer"}))
        assert json.loads(await ws.recv())["type"] == "joined"
        sent = 0
        try:
            while sent < TOTAL:
                while sent - len(acked) < IN_FLIGHT and sent < TOTAL:
                    await ws.send(json.dumps(
                        {"type": "say", "room": "crash", "text": f"m{sent}", "ref": f"r{sent}"}))
                    sent += 1
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert message["type"] == "message" and message.get("ref"), message
                acked[message["ref"]] = message
                if len(acked) == KILL_AFTER:
                    proc.kill()
        except Exception:  # noqa: BLE001 - the connection dies with the server: expected
            pass
    return acked


async def history_and_resends(url: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    async with ws_connect(url, subprotocols=["chat.v1"], max_size=None) as ws:
        await ws.send(json.dumps({"type": "join", "room": "crash", "nick": "writer", "since": 0}))
        joined = json.loads(await ws.recv())
        resent: dict[str, int] = {}
        for i in range(TOTAL):
            ref = f"r{i}"
            await ws.send(json.dumps({"type": "say", "room": "crash", "text": f"m{i}", "ref": ref}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["ref"] == ref, reply
            resent[ref] = reply["id"]
        return joined["history"], resent


def test_no_acknowledged_message_is_lost_when_the_server_is_killed(tmp_path: Path) -> None:
    db, port = tmp_path / "chat.db", free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    proc = start(port, db)
    acked = asyncio.run(write_until_killed(url, proc))
    assert proc.wait(10) == -9  # really killed, no graceful shutdown ran
    proc.stdout.close() if proc.stdout else None
    assert KILL_AFTER <= len(acked) < TOTAL  # killed mid-stream, with says in flight

    proc = start(port, db)
    try:
        history, resent = asyncio.run(history_and_resends(url))
    finally:
        assert stop(proc) == 0

    stored = {(m["id"], m["text"]) for m in history}
    for ref, message in acked.items():
        assert (message["id"], message["text"]) in stored, f"acknowledged {ref} was lost"
        assert resent[ref] == message["id"]  # a resend returns the original, not a copy
    ids = [m["id"] for m in history]
    assert ids == sorted(set(ids))  # increasing, no duplicates
    # Every ref ends up stored exactly once: resent refs that were never acked are new now.
    assert len(set(resent.values())) == TOTAL
