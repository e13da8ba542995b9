"""Keepalive pings for every WebSocket of a server, from one loop timer.

Strategy: a `loop.call_later()` per connection costs about 0.8 KiB of RSS for as long as
the connection lives (uvloop's TimerHandle, its libuv timer, a bound method): 7.7 MiB for
10,000 idle WebSockets. Every connection pings at the same interval, so the order in which
connections are (re)scheduled is the order in which they fall due: an insertion-ordered
dict, connection -> due time, is the queue (~100 bytes an entry), and a single timer is
armed for its head. Removing a connection is one dict deletion, so a closed connection is
not held until its ping would have been due.

This module imports only asyncio; connections are anything with a `keepalive()` method.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

__all__ = ["Keepalive", "Pinged"]

error_log = logging.getLogger("wsrun.error")

# uvloop's clock and timers have millisecond resolution: entries due within this much of
# the timer's firing go in the same pass rather than re-arming for a fraction of a ms.
_SLACK = 0.001


class Pinged(Protocol):
    """A connection that sends its keepalive ping when called (and may `add()` itself again)."""

    def keepalive(self) -> None: ...


class Keepalive:
    """Calls each added connection's `keepalive()` `interval` seconds after its `add()`.

    Args:
        loop: the server's loop.
        interval: seconds between a connection's pings (> 0).
    """

    __slots__ = ("_due", "_firing", "_timer", "interval", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self._due: dict[Pinged, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._firing = False  # in _fire(), which arms the timer for the head when done

    def __len__(self) -> int:
        return len(self._due)

    def add(self, conn: Pinged) -> None:
        """(Re)schedule `conn`'s next ping `interval` seconds from now."""
        due = self.loop.time() + self.interval
        due_map = self._due
        if conn in due_map:
            del due_map[conn]  # re-inserted at the end: the dict stays in due order
        due_map[conn] = due
        if self._timer is None and not self._firing:
            self._timer = self.loop.call_at(due, self._fire)

    def discard(self, conn: Pinged) -> None:
        """Forget `conn` (it closed); the shared timer stays armed for the others."""
        self._due.pop(conn, None)

    def close(self) -> None:
        """Stop: cancel the timer and forget every connection."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()

    def _fire(self) -> None:
        self._timer = None
        due_map = self._due
        limit = self.loop.time() + _SLACK
        expired = []
        for conn, due in due_map.items():
            if due > limit:
                break
            expired.append(conn)
        for conn in expired:
            del due_map[conn]
        self._firing = True
        try:
            for conn in expired:
                try:
                    conn.keepalive()  # usually add()s itself back, at the end
                except Exception:  # noqa: BLE001 - one connection's bug must not stop the rest
                    error_log.exception("Exception in keepalive ping")
        finally:
            self._firing = False
        if due_map and self._timer is None:
            self._timer = self.loop.call_at(next(iter(due_map.values())), self._fire)
