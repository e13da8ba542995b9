"""How `wsrun --workers N` spreads connections: one shared listening socket vs SO_REUSEPORT.

    python -m bench.worker_balance [--workers 2,4] [--short 2000] [--long 400]

For each mode (`shared`: the supervisor's one socket, inherited by every worker, what
wsrun does; `reuseport`: each worker listens on its own SO_REUSEPORT socket) and worker
count, a supervisor serves `app` below on 127.0.0.1 and a loopback client counts which
worker answered:
- short, one at a time: new connection, one request, close — `--short` times;
- short, 16 at a time: the same from 16 concurrent clients;
- long: `--long` keep-alive connections opened 16 at a time and held open together;
- one worker busy: a request blocks one worker's loop for 1 s; meanwhile 40 requests on
  new connections: how many waited for the busy worker (answered after > 0.5 s).
Prints one Markdown table. Everything is on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import click

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP: answer the worker id; /block first blocks this worker's loop for 1 s."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/block":
        time.sleep(1.0)  # a slow synchronous handler: the whole worker waits
    body = os.environ.get("WSRUN_WORKER_ID", "0").encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


SUPERVISE = """
import sys
from server.supervisor import Supervisor
options = dict(port=int(sys.argv[1]), access_log=False, log_level="warning")
Supervisor("bench.worker_balance:app", options, workers=int(sys.argv[2]),
           reuse_port=sys.argv[3] == "reuseport").run()
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def request(port: int, path: str = "/", keep: list[Any] | None = None) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    close = b"" if keep is not None else b"connection: close\r\n"
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nhost: x\r\n" + close + b"\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    if keep is not None:
        keep.append(writer)
    else:
        writer.close()
    return body.decode()


async def bounded(count: int, concurrency: int, one: Any) -> list[str]:
    gate = asyncio.Semaphore(concurrency)

    async def run() -> str:
        async with gate:
            return await one()  # type: ignore[no-any-return]

    return list(await asyncio.gather(*(run() for _ in range(count))))


async def busy(port: int) -> tuple[int, int]:
    """(requests that waited for the busy worker, requests) while one worker blocks."""
    blocker = asyncio.ensure_future(request(port, "/block"))
    await asyncio.sleep(0.1)

    async def timed() -> float:
        start = time.monotonic()
        await request(port)
        return time.monotonic() - start

    waits = await asyncio.gather(*(timed() for _ in range(40)))
    await blocker
    return sum(1 for w in waits if w > 0.5), len(waits)


async def measure(port: int, short: int, long: int) -> dict[str, Any]:
    seq = Counter([await request(port) for _ in range(short)])
    conc = Counter(await bounded(short, 16, lambda: request(port)))
    keep: list[Any] = []
    held = Counter(await bounded(long, 16, lambda: request(port, keep=keep)))
    for writer in keep:
        writer.close()
    waited = await busy(port)
    return {"seq": seq, "conc": conc, "long": held, "busy": waited}


def run_one(mode: str, workers: int, short: int, long: int) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISE, str(port), str(workers), mode],
                            cwd=HERE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):  # until every worker answers
            try:
                seen = asyncio.run(bounded(40, 8, lambda: request(port)))
            except OSError:
                time.sleep(0.1)
                continue
            if len(set(seen)) == workers:
                break
        return asyncio.run(measure(port, short, long))
    finally:
        proc.terminate()
        proc.wait(30)


def spread(counts: Counter[str], workers: int) -> str:
    return " / ".join(str(counts.get(str(i), 0)) for i in range(1, workers + 1))


@click.command()
@click.option("--workers", "worker_counts", default="2,4", show_default=True)
@click.option("--short", default=2000, show_default=True, help="Short connections per run.")
@click.option("--long", default=400, show_default=True, help="Long connections held at once.")
def main(worker_counts: str, short: int, long: int) -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print("| workers | socket | short, 1 at a time | short, 16 at a time | long, held |"
          " waited for the busy worker |")
    print("|---|---|---|---|---|---|")
    for workers in (int(n) for n in worker_counts.split(",")):
        for mode in ("shared", "reuseport"):
            r = run_one(mode, workers, short, long)
            waited, total = r["busy"]
            print(f"| {workers} | {mode} | {spread(r['seq'], workers)} | "
                  f"{spread(r['conc'], workers)} | {spread(r['long'], workers)} | "
                  f"{waited} of {total} |", flush=True)
    print(json.dumps({"load_average_after": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
