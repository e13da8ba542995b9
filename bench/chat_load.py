"""End-to-end chat load: N chat.v1 clients in M rooms; messages/s and p99 latencies.

    python -m bench.chat_load 127.0.0.1:8000              # a chat that is already running
    python -m bench.chat_load --servers wsrun,uvicorn     # start each, print side by side

Each client joins room `i % M` and keeps `--window` messages in flight (closed loop): it
sends a `say` whose text is the send time, and sends the next when its own acknowledgement
(the copy with its `ref`) comes back. Measured, after `--warmup` seconds, for `--duration`:
- acked/s: messages stored and acknowledged to their author, per second;
- delivered/s: copies received by the other members of the room, per second;
- p50/p99 ack latency: send -> own acknowledgement (commit included);
- p50/p99 delivery latency: send -> arrival at another member.
The clients run in this process (uvloop when available) on the same machine as the server,
so the figures are end-to-end for one machine, client cost included. A server started by
`--servers` gets `CHAT_RATE=1000000/1` and the same per-address limits (the defaults would
be the bottleneck: every client is 127.0.0.1) and a fresh SQLite file in a temporary
directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stats:
    measuring: bool = False
    acked: int = 0
    delivered: int = 0
    errors: int = 0
    ack_latency: list[float] = field(default_factory=list)
    delivery_latency: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def client(addr: str, index: int, rooms: int, window: int, stats: Stats,
                 stop: asyncio.Event, ready: asyncio.Barrier,
                 compression: str | None = "deflate") -> None:
    room = f"bench-{index % rooms}"
    async with connect(f"ws://{addr}/ws", subprotocols=["chat.v1"],  # type: ignore[list-item]
                       ping_interval=None, max_queue=None, open_timeout=30,
                       compression=compression) as ws:
        if compression and "permessage-deflate" not in (
                ws.response.headers.get("sec-websocket-extensions") or ""):
            raise RuntimeError("the server did not accept permessage-deflate")
        await ws.send(json.dumps({"type": "join", "room": room, "nick": f"c{index}"}))
        while json.loads(await ws.recv())["type"] != "joined":
            pass
        await ready.wait()  # everyone joined: no presence traffic while measuring
        seq = 0

        async def say() -> None:
            nonlocal seq
            seq += 1
            await ws.send(json.dumps({"type": "say", "room": room,
                                      "text": repr(time.perf_counter()), "ref": seq}))

        for _ in range(window):
            await say()
        async for raw in ws:
            now = time.perf_counter()
            event = json.loads(raw)
            kind = event["type"]
            if kind == "message":
                latency = now - float(event["text"])
                if "ref" in event:
                    if stats.measuring:
                        stats.acked += 1
                        stats.ack_latency.append(latency)
                    if stop.is_set():
                        break
                    await say()
                elif stats.measuring:
                    stats.delivered += 1
                    stats.delivery_latency.append(latency)
            elif kind == "error":
                stats.errors += 1
                if stop.is_set():
                    break
                await say()


async def run(addr: str | Sequence[str], clients: int, rooms: int, window: int, warmup: float,
              duration: float, on_window: Callable[[bool], None] | None = None,
              compression: str | None = "deflate") -> dict[str, Any]:
    """Measure one chat; with several addresses (processes of one chat sharing Redis), client
    i connects to address (i // rooms) % N, so every room has members on every process.
    `on_window(True/False)` is called when the measured window opens and closes.
    `compression`: the websockets client's ("deflate", as browsers offer it, or None)."""
    addrs = [addr] if isinstance(addr, str) else list(addr)
    stats, stop = Stats(), asyncio.Event()
    ready = asyncio.Barrier(clients + 1)
    tasks = [asyncio.create_task(client(addrs[(i // rooms) % len(addrs)], i, rooms, window,
                                        stats, stop, ready, compression))
             for i in range(clients)]
    async with asyncio.timeout(60):
        await ready.wait()
    await asyncio.sleep(warmup)
    stats.measuring = True
    if on_window is not None:
        on_window(True)
    started = time.perf_counter()
    await asyncio.sleep(duration)
    stats.measuring = False
    elapsed = time.perf_counter() - started
    if on_window is not None:
        on_window(False)
    stop.set()
    done, pending = await asyncio.wait(tasks, timeout=10)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return {
        "clients": clients, "rooms": rooms, "window": window, "seconds": round(elapsed, 2),
        "acked_per_s": round(stats.acked / elapsed),
        "delivered_per_s": round(stats.delivered / elapsed),
        "ack_p50_ms": round(1000 * percentile(stats.ack_latency, 0.50), 2),
        "ack_p99_ms": round(1000 * percentile(stats.ack_latency, 0.99), 2),
        "delivery_p50_ms": round(1000 * percentile(stats.delivery_latency, 0.50), 2),
        "delivery_p99_ms": round(1000 * percentile(stats.delivery_latency, 0.99), 2),
        "errors": stats.errors,
        "mean_ack_ms": round(1000 * statistics.fmean(stats.ack_latency), 2)
        if stats.ack_latency else None,
    }


ROWS = ["acked_per_s", "delivered_per_s", "ack_p50_ms", "ack_p99_ms", "delivery_p50_ms",
        "delivery_p99_ms", "errors"]


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    lines = [f"{'':<18}" + "".join(f"{n:>14}" for n in names)]
    for row in ROWS:
        lines.append(f"{row:<18}" + "".join(f"{results[n][row]:>14}" for n in names))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("addr", nargs="?", help="HOST:PORT of a running chat")
    parser.add_argument("--servers", help="comma-separated: start each of wsrun,uvicorn,hypercorn")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--window", type=int, default=1, help="messages in flight per client")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if bool(args.addr) == bool(args.servers):
        parser.error("give either HOST:PORT or --servers")
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    options = (args.clients, args.rooms, args.window, args.warmup, args.duration)
    results: dict[str, dict[str, Any]] = {}
    if args.addr:
        results[args.addr] = asyncio.run(run(args.addr, *options))
    else:
        sys.path.insert(0, str(ROOT))
        from tests.procs import serve

        for name in args.servers.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                env = {"CHAT_DB": str(Path(tmp) / "bench.db"), "CHAT_RATE": "1000000/1",
                       "CHAT_ADDRESS_RATE": "1000000/1",
                       "CHAT_ADDRESS_CONNECT_RATE": "1000000/1"}
                extra = ["--no-access-log"] if name == "wsrun" else []
                with serve(name, "app:chat", env=env, args=extra) as addr:
                    results[name] = asyncio.run(run(addr, *options))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        first = next(iter(results.values()))
        print(f"{first['clients']} clients, {first['rooms']} rooms, window {first['window']}, "
              f"{first['seconds']} s measured")
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
