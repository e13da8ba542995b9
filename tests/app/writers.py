"""Chat clients for the scale-out and fault tests: each keeps `window` says in flight and
behaves as a real client must across failures.

A `Writer` joins its room, sends `total` messages with refs, and on any failure (its
server killed, `unavailable`, `nick_taken` while a dead process's members expire)
reconnects to the next address, joins with `since` = the last id it saw and resends every
unacknowledged ref. It records every message it receives (history and live), so a test can
check, per client, that the room's ids came with no gap and no duplicate, and, at the end,
that every acknowledged message is in the history: "acknowledged lost" must be 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.client import connect

RECV = 0.2  # poll interval: resends wait for it, never the outcome


class Writer:
    """One client saying `total` messages in `room` as `nick`, over `addrs` in turn."""

    def __init__(self, addrs: list[str], room: str, nick: str, total: int,
                 window: int = 5) -> None:
        self.addrs, self.room, self.nick = addrs, room, nick
        self.total, self.window = total, window
        self.acked: dict[str, tuple[int, str]] = {}  # ref -> (id, text)
        self.seen: list[int] = []  # ids of the room's messages, first arrivals in order
        self.duplicates: list[int] = []  # ids delivered twice (not a reply to a resend)
        self._ids: set[int] = set()
        self._replies: set[int] = set()  # ids that came with our ref
        self.connects = 0
        self.unavailable = 0
        self._resend: set[str] = set()  # refs answered `unavailable`: send again
        self._next = 0
        self._turn = 0

    @property
    def last_id(self) -> int | None:
        """The `since` to rejoin with: the newest id with every id before it received (a
        reply to a resend may bring an id ahead of the live stream)."""
        if not self.seen:
            return None
        mark = self.seen[0]
        while mark + 1 in self._ids:
            mark += 1
        return mark

    def text(self, ref: str) -> str:
        return f"{self.nick} says {ref}"

    async def run(self, deadline: float = 60.0) -> None:
        async with asyncio.timeout(deadline):
            while len(self.acked) < self.total:
                addr = self.addrs[self._turn % len(self.addrs)]
                try:
                    await self._session(addr)
                except AssertionError:
                    raise
                except Exception:  # noqa: BLE001 - connection lost, refused, closed: next
                    self._turn += 1  # that server is gone or going: try the next
                    await asyncio.sleep(0.05)

    async def _session(self, addr: str) -> None:
        async with connect(f"ws://{addr}/ws", subprotocols=["chat.v1"],  # type: ignore[list-item]
                           open_timeout=5, ping_interval=None, max_size=None) as ws:
            self.connects += 1
            while True:
                join: dict[str, Any] = {"type": "join", "room": self.room, "nick": self.nick}
                if self.last_id is not None:
                    join["since"] = self.last_id
                await ws.send(json.dumps(join))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if reply["type"] == "joined":
                    break
                # nick_taken: our old connection's process died and its members have not
                # expired yet; unavailable: Redis is away. Both pass: retry.
                assert reply["code"] in ("nick_taken", "unavailable"), reply
                await asyncio.sleep(0.2)
            assert reply["truncated"] is False, reply
            for message in reply["history"]:
                self._see(message)
            pending = [f"r{n}" for n in range(self._next) if f"r{n}" not in self.acked]
            for ref in pending:  # unacknowledged: maybe stored, maybe not; the ref decides
                await self._say(ws, ref)
            while len(self.acked) < self.total:
                while len(pending) < self.window and self._next < self.total:
                    pending.append(f"r{self._next}")
                    self._next += 1
                    await self._say(ws, pending[-1])
                for ref in [r for r in pending if r not in self.acked and r in self._resend]:
                    self._resend.discard(ref)
                    await self._say(ws, ref)
                try:
                    raw = await asyncio.wait_for(ws.recv(), RECV)
                except TimeoutError:
                    continue
                event = json.loads(raw)
                if event["type"] == "message":
                    self._see(event)
                    if "ref" in event:
                        assert event["text"] == self.text(event["ref"]), event
                        self.acked[event["ref"]] = (event["id"], event["text"])
                        with contextlib.suppress(ValueError):
                            pending.remove(event["ref"])
                elif event["type"] == "error":
                    assert event["code"] == "unavailable", event
                    self.unavailable += 1
                    self._resend.add(event["ref"])
                    await asyncio.sleep(0.05)

    async def _say(self, ws: Any, ref: str) -> None:
        await ws.send(json.dumps(
            {"type": "say", "room": self.room, "text": self.text(ref), "ref": ref}))

    def _see(self, message: dict[str, Any]) -> None:
        # A resend of a ref answers with the original (docs/protocol.md "Idempotency"): that
        # reply may repeat an id the live stream brings too. Any other repeat is a duplicate.
        ident, reply = message["id"], "ref" in message
        if ident in self._ids:
            if not (reply or ident in self._replies):
                self.duplicates.append(ident)
        else:
            self._ids.add(ident)
            self.seen.append(ident)
        if reply:
            self._replies.add(ident)

    def gaps(self) -> list[int]:
        """Ids of the room (1, 2, 3... since the first seen) this client never received."""
        if not self.seen:
            return []
        return sorted(set(range(min(self.seen), max(self.seen) + 1)) - self._ids)


async def history(addr: str, room: str) -> list[dict[str, Any]]:
    """Every message the room holds (up to 1,000), from a fresh connection."""
    async with connect(f"ws://{addr}/ws", subprotocols=["chat.v1"],  # type: ignore[list-item]
                       open_timeout=10, max_size=None) as ws:
        await ws.send(json.dumps({"type": "join", "room": room, "nick": "auditor", "since": 0}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["type"] == "joined" and reply["truncated"] is False, reply
        return list(reply["history"])


def lost(writers: list[Writer], stored: dict[str, list[dict[str, Any]]]) -> int:
    """Acknowledged messages missing from their room's history (must be 0); also checks
    that each ref was stored exactly once."""
    missing = 0
    for w in writers:
        held = {(m["id"], m["text"]) for m in stored[w.room]}
        missing += sum(1 for ack in w.acked.values() if ack not in held)
        texts = [m["text"] for m in stored[w.room] if m["nick"] == w.nick]
        assert len(texts) == len(set(texts)), f"{w.nick}: a message was stored twice"
    return missing
