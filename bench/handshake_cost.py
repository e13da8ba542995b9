"""What one WebSocket handshake costs in wsrun's own code, without sockets.

Feeds an upgrade request and a close frame through `HttpProtocol` / `WebSocketProtocol`
with a null transport (no syscalls), on uvloop, serving `bench.apps:echo`, and prints
microseconds per handshake (best of 5 runs, minus the driver's own cost).

Wall-clock figures on a shared machine move by ~10 % between runs; for a before/after
comparison, count instructions instead, which valgrind repeats exactly (with a fixed
hash seed):

    export PYTHONHASHSEED=0
    for n in 200 400; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.handshake_cost $n 2>&1 | grep Collected; done

(instructions per handshake = difference / (5 * 200)).

Usage: python -m bench.handshake_cost [N] [PING_INTERVAL]
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from bench.apps import echo
from server.config import Config
from server.main import new_event_loop
from server.protocol import HttpProtocol
from server.state import ServerState

REQUEST = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"User-Agent: bench\r\n\r\n"
)
# A masked close frame with code 1000 (mask 0, so the payload reads as is).
CLOSE = b"\x88\x82\x00\x00\x00\x00\x03\xe8"


class NullTransport(asyncio.Transport):
    """Accepts every write; close() reports connection_lost on the next loop pass."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def write(self, data: Any) -> None:
        pass

    def writelines(self, list_of_data: Any) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


async def measure(n: int, ping_interval: float) -> float:
    state = ServerState(Config(app=echo, ws_ping_interval=ping_interval or None), echo)
    state.sockname = ("127.0.0.1", 8000)
    logging.getLogger("wsrun.access").disabled = True

    async def handshake() -> None:
        transport = NullTransport()
        protocol = HttpProtocol(state)
        transport.protocol = protocol
        protocol.connection_made(transport)
        protocol.data_received(REQUEST)
        await asyncio.sleep(0)  # the app accepts
        await asyncio.sleep(0)
        transport.protocol.data_received(CLOSE)
        await asyncio.sleep(0)  # the app sees the disconnect; connection_lost runs
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def driver_only() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    best = []
    for step in (handshake, driver_only):
        for _ in range(500):
            await step()
        runs = []
        for _ in range(5):
            started = time.process_time()
            for _ in range(n):
                await step()
            runs.append((time.process_time() - started) / n * 1e6)
        best.append(min(runs))
    assert not state.connections and not state.tasks, "a connection or task leaked"
    return best[0] - best[1]


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 5000
    ping = float(argv[2]) if len(argv) > 2 else 20.0
    loop = new_event_loop()
    try:
        cost = loop.run_until_complete(measure(n, ping))
    finally:
        loop.close()
    print(f"{cost:.1f} us per handshake in wsrun's code (no syscalls)")


if __name__ == "__main__":
    main(sys.argv)
