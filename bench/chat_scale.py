"""The chat scaled out: in-process default vs Redis with 1 process vs Redis with 2 processes.

    python -m bench.chat_scale                                # the three setups, one run
    python -m bench.chat_scale --duration 10 --appendfsync everysec --json

Each setup gets fresh servers: `in-process` is one `wsrun app:chat` on a SQLite file;
`redis-1` is one `wsrun app:chat` with `CHAT_REDIS_URL`; `redis-2` is two, on two ports,
sharing one redis-server; `redis-workers2` (where `wsrun --workers` exists) is one
`wsrun --workers 2` on one port, its workers sharing the listening socket. Redis runs in
a temporary directory, AOF on, `--appendfsync` (default `always`: acknowledged = on disk,
as SQLite's synchronous=FULL in-process). The load is
`bench.chat_load` (closed loop, `--window` says in flight per client); with two processes
client i connects to process (i // rooms) % 2, so every room has members on both and every
message crosses Redis to the other process. Reported per setup: acked/s, delivered/s, ack
p50/p99 and, over the measured window, the CPU seconds per second of the wsrun processes,
redis-server and this load generator, to show what the limit was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import procfs
from bench.chat_load import run

ROOT = Path(__file__).resolve().parent.parent
SETUPS = ("in-process", "redis-1", "redis-2", "redis-workers2")


def default_setups() -> str:
    """Every setup this checkout can run (`--workers` came later than the others)."""
    workers = (ROOT / "server" / "supervisor.py").exists()
    return ",".join(s for s in SETUPS if workers or s != "redis-workers2")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def chat_servers(setup: str, tmp: Path, appendfsync: str
                 ) -> Iterator[tuple[list[str], dict[str, list[int]]]]:
    """Start the setup; yield (addresses, pids by role)."""
    sys.path.insert(0, str(ROOT))
    from tests.procs import free_port, stop, wait_for_port
    from tests.redisproc import RedisServer

    # Every client is 127.0.0.1: the per-address limits are lifted too (docs/deployment.md).
    env = {**os.environ, "CHAT_RATE": "1000000/1", "CHAT_ADDRESS_RATE": "1000000/1",
           "CHAT_ADDRESS_CONNECT_RATE": "1000000/1", "CHAT_DB": str(tmp / "bench.db")}
    redis = None
    pids: dict[str, list[int]] = {"wsrun": [], "redis": []}
    if setup != "in-process":
        redis = RedisServer(tmp / "redis", appendfsync=appendfsync).start()
        env["CHAT_REDIS_URL"] = redis.url
        assert redis.proc is not None
        pids["redis"] = [redis.proc.pid]
    count = 2 if setup == "redis-2" else 1
    extra = ["--workers", "2"] if setup == "redis-workers2" else []
    procs, addrs = [], []
    log = open(tmp / "server.log", "ab")  # noqa: SIM115 - closed below
    try:
        for _ in range(count):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "server", "app:chat", "--port", str(port),
                 "--no-access-log", *extra],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            procs.append(proc)
            wait_for_port(port, proc)
            addrs.append(f"127.0.0.1:{port}")
            pids["wsrun"].append(proc.pid)
        yield addrs, pids
    finally:
        for proc in procs:
            stop(proc)
        if redis is not None:
            redis.stop()
        log.close()


async def measure(addrs: list[str], pids: dict[str, list[int]], args: argparse.Namespace
                  ) -> dict[str, Any]:
    marks: dict[str, dict[str, float]] = {}

    def on_window(opening: bool) -> None:
        marks["start" if opening else "end"] = {
            **{role: procfs.cpu_seconds([p for root in roots for p in procfs.process_tree(root)])
               for role, roots in pids.items()}, "load": own_cpu()}  # workers included

    out = await run(addrs, args.clients, args.rooms, args.window, args.warmup, args.duration,
                    on_window=on_window)
    for role in (*pids, "load"):
        out[f"cpu_{role}"] = round((marks["end"][role] - marks["start"][role]) / out["seconds"], 2)
    # Per CPU-second of the chat's processes: the figure other runs on the machine disturb least.
    out["acked_per_wsrun_cpu"] = (round(out["acked_per_s"] / out["cpu_wsrun"])
                                  if out["cpu_wsrun"] else None)
    return out


ROWS = ["acked_per_s", "delivered_per_s", "ack_p50_ms", "ack_p99_ms", "cpu_wsrun", "cpu_redis",
        "cpu_load", "acked_per_wsrun_cpu", "errors"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setups", default=default_setups())
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--window", type=int, default=1, help="says in flight per client")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--appendfsync", default="always", choices=["always", "everysec"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    results: dict[str, dict[str, Any]] = {}
    for setup in args.setups.split(","):
        if setup not in SETUPS:
            parser.error(f"unknown setup {setup!r}: choose from {', '.join(SETUPS)}")
        with tempfile.TemporaryDirectory() as tmp, \
                chat_servers(setup, Path(tmp), args.appendfsync) as (addrs, pids):
            results[setup] = asyncio.run(measure(addrs, pids, args))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{args.clients} clients, {args.rooms} rooms, window {args.window}, "
          f"{args.duration} s measured, appendfsync {args.appendfsync}, {os.cpu_count()} CPUs")
    print(f"{'':<20}" + "".join(f"{name:>16}" for name in results))
    for row in ROWS:
        print(f"{row:<20}" + "".join(f"{r.get(row, '-')!s:>16}" for r in results.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
