"""`python -m bench.soak --minutes N`: the chat under mixed hostile load, then the books.

Runs `wsrun app:chat` as a subprocess on a free loopback port (its own SQLite file in a
temporary directory; every client is 127.0.0.1, so the per-address limits are lifted as for
a load test, docs/deployment.md) and, for N minutes, at once:
- chatters (bench/soak_load.py `Chatter`) saying acknowledged messages in a few rooms and
  reconnecting with `since`, half the time by dropping the TCP connection;
- plain-text clients connecting, saying a line and quitting;
- garbage connections: bad HTTP heads, bad handshakes, bad frames;
- Ping floods that never read (up to `--ping-flood-kib` per connection, one at a time; the
  server stops reading while the Pongs it owes are backed up, so a flood stalls: after 5 s
  without progress the connection is dropped and the next one starts);
- slow readers with a 4 KiB receive buffer in the chatters' rooms.

Then every client stops, the chatters collect what they missed, and it prints: sent,
acknowledged, delivered, lost (acknowledged messages a chatter of the room never got),
duplicated (ids a chatter got twice), the server's peak RSS, RSS and open fds at the end
against the baseline (idle after a warm-up), and tracebacks in the server's log. It exits 1
when lost or duplicated is not 0, a message stays unacknowledged, RSS ends more than
`--rss-slack-mib` above the baseline or peaks more than `--peak-slack-mib` above it, fds
leaked, a garbage connection got no answer, the server logged a traceback or died.

Loopback only; stops by itself (N minutes plus bounded drains). Imports nothing from
`server/` or `app/`: wsrun is started as `python -m server`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from pathlib import Path

from bench.procfs import rss_bytes
from bench.servers import SERVERS, Running, start, stop, workdir
from bench.soak_load import (
    TIMEOUT,
    Chatter,
    Totals,
    garbage,
    ping_flood,
    plain_churn,
    slow_reader,
)

MiB = 1024 * 1024
ENV = {
    "CHAT_DB": "{workdir}/soak.db",
    # Chatters speak faster than a person; every client is 127.0.0.1 (docs/deployment.md
    # "Rate limits per address": load tests from one machine).
    "CHAT_RATE": "1000000/1",
    "CHAT_ADDRESS_RATE": "1000000/1",
    "CHAT_ADDRESS_CONNECT_RATE": "1000000/1",
}


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def http_get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                     .encode())
        async with asyncio.timeout(TIMEOUT):
            return await reader.read()
    finally:
        writer.close()


async def settle(server: Running) -> None:
    """Wait (bounded) until the server holds no WebSocket, then let it free what it can."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30.0):
            while b'"connections":0' not in await http_get(server.port, "/healthz"):
                await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)


class Sampler:
    """Peak RSS of the server, sampled every 100 ms while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes([self.pid]))
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def soak(server: Running, args: argparse.Namespace) -> tuple[dict[str, object], bool]:
    port, pid = server.port, server.pid
    url = f"ws://127.0.0.1:{port}/ws"
    rng = random.Random(args.seed)

    # Warm-up: imports, SQLite, first connections of every kind; then the idle baseline.
    warm, warm_stop = Totals(), asyncio.Event()
    warm_tasks = [asyncio.create_task(c.run(warm_stop)) for c in (
        Chatter(url, "soak-warmup", f"warm{n}", warm, rng, 20.0) for n in range(4))]
    warm_tasks += [asyncio.create_task(garbage(port, warm, warm_stop, rng)),
                   asyncio.create_task(plain_churn(url, warm, warm_stop))]
    await asyncio.sleep(5.0)
    warm_stop.set()
    await asyncio.gather(*warm_tasks)
    await settle(server)
    baseline_rss, baseline_fds = rss_bytes([pid]), open_fds(pid)

    totals, stop_event = Totals(), asyncio.Event()
    sampler = Sampler(pid)
    rooms = [f"soak-{n}" for n in range(args.rooms)]
    chatters = [Chatter(url, rooms[n % len(rooms)], f"c{n}", totals, rng, args.rate)
                for n in range(args.chatters)]
    tasks = [asyncio.create_task(c.run(stop_event)) for c in chatters]
    tasks += [asyncio.create_task(plain_churn(url, totals, stop_event))]
    tasks += [asyncio.create_task(garbage(port, totals, stop_event, rng)) for _ in range(2)]
    tasks += [asyncio.create_task(ping_flood(port, totals, stop_event, args.ping_flood_kib * 1024))]
    tasks += [asyncio.create_task(slow_reader(port, room, totals, stop_event)) for room in rooms]
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), args.minutes * 60)
    stop_event.set()
    async with asyncio.timeout(60.0):
        await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started

    # Every chatter comes back once more, resends what is pending and reads up to the
    # newest acknowledged id of its room; then nothing may be missing or doubled.
    for chatter in chatters:
        with contextlib.suppress(OSError, TimeoutError):
            await chatter.drain(max(totals.acked[chatter.room], default=0))
    await settle(server)
    await sampler.stop()
    end_rss, end_fds = rss_bytes([pid]), open_fds(pid)

    lost = sum(len(c.expected() - c.seen.keys()) for c in chatters)
    duplicated = sum(n - 1 for c in chatters for n in c.seen.values() if n > 1)
    pending = sum(len(c.pending) for c in chatters)
    log = server.log.read_text(errors="replace")
    tracebacks = log.count("Traceback")
    figures: dict[str, object] = {
        "minutes": round(elapsed / 60, 2),
        "sent": totals.sent,
        "resent": totals.resent,
        "acknowledged": totals.acknowledged,
        "unacknowledged": pending,
        "delivered": sum(len(c.seen) for c in chatters),
        "lost": lost,
        "duplicated": duplicated,
        "reconnects": totals.reconnects,
        "plain clients": totals.plain,
        "garbage connections": totals.garbage,
        "garbage unanswered": totals.garbage_unanswered,
        "ping flood MiB": round(totals.ping_bytes / MiB, 1),
        "slow readers": totals.slow_readers,
        "client errors": dict(totals.errors),
        "baseline RSS MiB": round(baseline_rss / MiB, 1),
        "peak RSS MiB": round(sampler.peak / MiB, 1),
        "end RSS MiB": round(end_rss / MiB, 1),
        "open fds (baseline, end)": (baseline_fds, end_fds),
        "server tracebacks": tracebacks,
    }
    ok = (lost == 0 and duplicated == 0 and pending == 0 and totals.acknowledged > 0
          and end_rss - baseline_rss <= args.rss_slack_mib * MiB
          and sampler.peak - baseline_rss <= args.peak_slack_mib * MiB
          and end_fds <= baseline_fds and tracebacks == 0 and server.proc.poll() is None
          and totals.garbage_unanswered == 0)
    return figures, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="load duration (5)")
    parser.add_argument("--chatters", type=int, default=12, help="chat.v1 members (12)")
    parser.add_argument("--rooms", type=int, default=3, help="rooms they share (3)")
    parser.add_argument("--rate", type=float, default=5.0, help="messages/s per chatter (5)")
    parser.add_argument("--ping-flood-kib", type=int, default=65536,
                        help="Ping bytes per flooding connection at most (65536)")
    parser.add_argument("--rss-slack-mib", type=float, default=16.0,
                        help="how far above the baseline RSS may end (16)")
    parser.add_argument("--peak-slack-mib", type=float, default=64.0,
                        help="how far above the baseline RSS may peak (64)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.chatters < 1 or args.rooms < 1 or args.rate <= 0:
        parser.error("--minutes, --chatters, --rooms and --rate must be positive")
    with workdir() as tmp:
        server = start(SERVERS["wsrun"], "app:chat", Path(tmp), ENV)
        try:
            figures, ok = asyncio.run(soak(server, args))
        finally:
            stop(server)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print("soak: OK" if ok else "soak: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
