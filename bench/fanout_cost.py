"""What one fan-out delivery costs in wsrun's own code, without sockets.

RECEIVERS connections (null transport, see bench/handshake_cost.py) join one room of
`bench.apps:broadcast`; one of them sends N masked 100-byte text frames, ONE in flight: each
is broadcast to every member (the sender included) before the next is fed, so nothing can
coalesce across broadcasts (the fan-out scenario with a window of 1). Prints microseconds
per delivery (a frame parsed once, then one ASGI send and one write per member). For exact
before/after figures, count instructions under callgrind (fixed hash seed) for two N and
take the difference:

    export PYTHONHASHSEED=0
    for n in 20 40; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.fanout_cost $n 2>&1 | grep Collected; done

(instructions per delivery = difference / (20 * RECEIVERS)). `deflate` as a third argument
negotiates permessage-deflate (RFC 7692) on every connection.

Usage: python -m bench.fanout_cost [N] [RECEIVERS] [deflate]
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from typing import Any

from bench.apps import broadcast
from bench.handshake_cost import CLOSE, NullTransport
from server.config import Config
from server.main import new_event_loop
from server.protocol import HttpProtocol
from server.state import ServerState

# A masked (all-zero mask, so the payload reads as is) 100-byte text frame.
FRAME = b"\x81\xe4\x00\x00\x00\x00" + b"x" * 100


def upgrade_request(deflate: bool) -> bytes:
    """The opening handshake of one member of the room `/room`."""
    offer = b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else b""
    return (
        b"GET /room HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + offer + b"\r\n"
    )


async def measure(n: int, receivers: int = 1000, deflate: bool = False) -> float:
    # Threshold 0: every broadcast is compressed when deflate is negotiated. No keepalive:
    # under callgrind a run lasts long enough for a round of 1,000 pings to land in it.
    config = Config(app=broadcast, ws_per_message_deflate=deflate, ws_deflate_threshold=0,
                    ws_ping_interval=0)
    state = ServerState(config, broadcast)
    state.sockname = ("127.0.0.1", 8000)
    logging.getLogger("wsrun.access").disabled = True
    request = upgrade_request(deflate)
    members: list[Any] = []
    for _ in range(receivers):
        transport = NullTransport()
        protocol = HttpProtocol(state)
        transport.protocol = protocol
        protocol.connection_made(transport)
        protocol.data_received(request)
        members.append(transport)
    for _ in range(3):
        await asyncio.sleep(0)  # every app accepts and joins the room
    sockets = [transport.protocol for transport in members]
    sender, last = sockets[0], sockets[-1]
    # The 1,000 connections' objects are long-lived: out of the collector's way, so that
    # when a full collection happens to run does not move the per-delivery count.
    gc.collect()
    gc.freeze()
    started = time.process_time()
    for i in range(1, n + 1):
        sender.data_received(FRAME)
        while last.frames_out < i:
            await asyncio.sleep(0)  # the sender's app task broadcasts
    cost = (time.process_time() - started) / (n * receivers) * 1e6
    gc.unfreeze()
    assert all(ws.frames_out == n for ws in sockets), "every member got every broadcast"
    for ws in sockets:
        ws.data_received(CLOSE)
    for _ in range(4):
        await asyncio.sleep(0)
    assert not state.connections and not state.tasks, "a connection or task leaked"
    return cost


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 200
    receivers = int(argv[2]) if len(argv) > 2 else 1000
    deflate = len(argv) > 3 and argv[3] == "deflate"
    loop = new_event_loop()
    try:
        cost = loop.run_until_complete(measure(n, receivers, deflate))
    finally:
        loop.close()
    print(f"{cost:.2f} us per fan-out delivery in wsrun's code (no syscalls)")


if __name__ == "__main__":
    main(sys.argv)
