"""What one echoed WebSocket message costs in wsrun's own code, without sockets.

One connection (null transport, see bench/handshake_cost.py) serving `bench.apps:echo`
gets N masked 32-byte text frames, one per loop pass; prints microseconds per message
(frame parsed, delivered to the app, echoed, frame built). For exact before/after
figures, count instructions under callgrind (fixed hash seed) for two N and take the
difference:

    export PYTHONHASHSEED=0
    for n in 2000 4000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.message_cost $n 2>&1 | grep Collected; done

Usage: python -m bench.message_cost [N]
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from bench.apps import echo
from bench.handshake_cost import CLOSE, REQUEST, NullTransport
from server.config import Config
from server.main import new_event_loop
from server.protocol import HttpProtocol
from server.state import ServerState

# A masked (all-zero mask, so the payload reads as is) 32-byte text frame.
FRAME = b"\x81\xa0\x00\x00\x00\x00" + b"x" * 32


async def measure(n: int) -> float:
    state = ServerState(Config(app=echo), echo)
    state.sockname = ("127.0.0.1", 8000)
    logging.getLogger("wsrun.access").disabled = True
    transport = NullTransport()
    protocol = HttpProtocol(state)
    transport.protocol = protocol
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    ws = transport.protocol
    started = time.process_time()
    for _ in range(n):
        ws.data_received(FRAME)
        await asyncio.sleep(0)  # the app echoes
    cost = (time.process_time() - started) / n * 1e6
    assert ws.frames_out == n, "every message was echoed"
    ws.data_received(CLOSE)
    for _ in range(3):
        await asyncio.sleep(0)
    assert not state.connections and not state.tasks, "a connection or task leaked"
    return cost


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 100_000
    loop = new_event_loop()
    try:
        cost = loop.run_until_complete(measure(n))
    finally:
        loop.close()
    print(f"{cost:.2f} us per echoed message in wsrun's code (no syscalls)")


if __name__ == "__main__":
    main(sys.argv)
