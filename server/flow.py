"""Write-side backpressure shared by the HTTP and WebSocket glue (no I/O of its own)."""

from __future__ import annotations

import asyncio

__all__ = ["FlowControl"]


class FlowControl:
    """`drain()` waits while the transport's write buffer is over its high-water mark.

    The transport calls `pause_writing()` / `resume_writing()` through the protocol.
    """

    __slots__ = ("_drain_waiters", "write_paused")

    def __init__(self) -> None:
        self.write_paused = False
        # Created on first use: most connections never fill their write buffer.
        self._drain_waiters: list[asyncio.Future[None]] | None = None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiters, self._drain_waiters = self._drain_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        if self.write_paused:
            waiter = asyncio.get_running_loop().create_future()
            if self._drain_waiters is None:
                self._drain_waiters = []
            self._drain_waiters.append(waiter)
            await waiter
