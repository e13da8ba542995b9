"""The load generator: one process that drives one server for one round of one scenario.

`python -m bench.load '{"scenario": "echo", "host": ..., "port": ..., "pid": ..., ...}'` runs
the scenario and prints one JSON object (its figures) as the last line of stdout. The runner
starts it per round, so the load never shares a process, a GIL or an event loop with a server.

The load process measures its own window: after connecting and a warm-up it samples the
server's CPU time (utime + stime of the server process tree, /proc), counts for `duration`
seconds, samples again. Set-up and tear-down stay outside the window. It also reports its
own CPU use, so a client-bound round is visible (client_busy close to 1.0).

Imports nothing from `server/` or `app/`; `bench.chat_load` (the chat app's load) is optional.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import math
import resource
import sys
import time
from array import array
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from bench import procfs

Params = dict[str, Any]
Result = dict[str, Any]
Connect = Callable[..., Awaitable[Any]]


def pick_client(name: str) -> tuple[str, Connect]:
    """The client implementation: "picows", "raw" or "auto" (picows when installed)."""
    if name == "auto":
        name = "picows" if importlib.util.find_spec("picows") is not None else "raw"
    if name == "picows":
        from bench.client_picows import connect as picows_connect
        return name, picows_connect
    if name == "raw":
        from bench.client_raw import connect as raw_connect
        return name, raw_connect
    raise ValueError(f"unknown client {name!r} (picows, raw, auto)")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: array[float] | list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    # Nearest rank: the smallest value with at least q % of the values at or below it.
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


class Window:
    """Counts, server CPU and own CPU between `start()` and `stop()`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.measuring = False
        self.count = 0
        self.errors = 0
        self.latencies: array[float] = array("d")

    def start(self) -> None:
        self.pids = procfs.process_tree(self.pid)
        self.count0, self.cpu0 = self.count, procfs.cpu_seconds(self.pids)
        self.own0, self.t0 = _own_cpu(), time.perf_counter()
        self.measuring = True

    def stop(self) -> Result:
        self.measuring = False
        elapsed = time.perf_counter() - self.t0
        server_cpu = procfs.cpu_seconds(self.pids) - self.cpu0
        return {"count": self.count - self.count0, "elapsed": elapsed,
                "server_cpu": server_cpu, "client_busy": (_own_cpu() - self.own0) / elapsed,
                "errors": self.errors}


async def _connect_many(connect: Connect, n: int, batch: int, **kwargs: Any) -> list[Any]:
    conns: list[Any] = []
    for start in range(0, n, batch):
        conns += await asyncio.gather(*(connect(**kwargs) for _ in range(min(batch, n - start))))
    return conns


async def _drain_and_close(conns: list[Any], pending: Callable[[], int]) -> None:
    deadline = time.monotonic() + 10.0
    while pending() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for start in range(0, len(conns), 500):
        await asyncio.gather(*(c.close() for c in conns[start:start + 500]))


async def echo(p: Params, connect: Connect, w: Window) -> Result:
    """`conns` connections, each keeping `inflight` messages of `size` bytes in flight."""
    size, inflight, text = p["size"], p["inflight"], not p.get("binary", False)
    message = b"x" * size
    state = {"running": True}
    perf = time.perf_counter

    def on_message(conn: Any, payload: bytes) -> None:
        sent = conn.state
        now = perf()
        started = sent.popleft()
        w.count += 1
        if payload != message:
            w.errors += 1
        if w.measuring:
            w.latencies.append(now - started)
        if state["running"]:
            sent.append(now)
            conn.send(message, text)

    conns = await _connect_many(connect, p["conns"], 100, host=p["host"], port=p["port"],
                                path="/", on_message=on_message)
    for conn in conns:
        conn.state = deque()
        for _ in range(inflight):
            conn.state.append(perf())
            conn.send(message, text)
    await asyncio.sleep(p["warmup"])
    w.start()
    await asyncio.sleep(p["duration"])
    result = w.stop()
    state["running"] = False
    await _drain_and_close(conns, lambda: sum(len(c.state) for c in conns))
    result["p50_ms"] = percentile(w.latencies, 50) * 1e3
    result["p99_ms"] = percentile(w.latencies, 99) * 1e3
    result["bytes"] = result["count"] * size
    return result


async def fanout(p: Params, connect: Connect, w: Window) -> Result:
    """`receivers` members and one sender in one room; the sender keeps `window` broadcasts of
    `size` bytes in flight. `gate` says when a broadcast stops being in flight:

    - "ack": when the sender has its own copy, which the broadcast app sends last;
    - "all": when every receiver and the sender have their copy. With a window of 1 the server
      then has exactly one broadcast to deliver at a time: nothing can coalesce.

    Join pings are one byte shorter than the measured messages, so a receiver's n-th message
    of full size is broadcast n (each connection receives in order)."""
    size, window = p["size"], p["window"]
    message, ping = b"m" * size, b"p" * (size - 1)
    strict = p.get("gate", "ack") == "all"
    # Per broadcast (slot n % len), how many connections have their copy; window < len.
    ring = [0] * (1 << window.bit_length())
    slot_mask, total = len(ring) - 1, p["receivers"] + 1
    state = {"running": True, "ready": 0, "pings": 0, "inflight": 0}

    def joined(conn: Any, payload: bytes) -> None:
        if len(payload) != len(ping):
            w.errors += 1
        elif conn.state is None:  # the first ping: this receiver is in the room
            conn.state = 0
            state["ready"] += 1

    def send() -> None:
        state["inflight"] += 1
        sender.send(message, True)

    def completed(n: int) -> None:
        """One more connection has broadcast `n`; the last one frees its place."""
        slot = n & slot_mask
        count = ring[slot] + 1
        if count < total:
            ring[slot] = count
            return
        ring[slot] = 0
        state["inflight"] -= 1
        if state["running"]:
            send()

    def on_receive(conn: Any, payload: bytes) -> None:
        if len(payload) != size:
            joined(conn, payload)
            return
        w.count += 1
        if strict:
            conn.state += 1
            completed(conn.state)

    def on_ack(conn: Any, payload: bytes) -> None:
        if len(payload) != size:
            state["pings"] -= 1
        elif strict:
            conn.state += 1
            completed(conn.state)
        else:
            state["inflight"] -= 1
            if state["running"]:
                send()

    receivers = await _connect_many(connect, p["receivers"], 100, host=p["host"],
                                    port=p["port"], path="/fanout", on_message=on_receive)
    sender = await connect(host=p["host"], port=p["port"], path="/fanout", on_message=on_ack)
    sender.state = 0
    # Membership is only certain once every receiver has seen a message: ping until then.
    deadline = time.monotonic() + 15.0
    while state["ready"] < len(receivers):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {state['ready']}/{len(receivers)} receivers joined")
        state["pings"] += 1
        sender.send(ping, True)
        await asyncio.sleep(0.02)
    for _ in range(window):
        send()
    await asyncio.sleep(p["warmup"])
    w.start()
    await asyncio.sleep(p["duration"])
    result = w.stop()
    state["running"] = False
    await _drain_and_close([*receivers, sender], lambda: state["inflight"] + state["pings"])
    # Broadcasts still unfinished after the drain: a copy lost, or (ack gate) its ack.
    result["unfinished"] = state["inflight"]
    return result


async def connect_close(p: Params, connect: Connect, w: Window) -> Result:
    """`concurrency` workers, each looping connect + handshake + close handshake."""
    state = {"running": True}

    async def worker() -> None:
        while state["running"]:
            try:
                conn = await connect(host=p["host"], port=p["port"], path="/",
                                     on_message=lambda c, m: None)
                await conn.close()
            except Exception:  # noqa: BLE001 - a failed handshake is counted, not fatal
                w.errors += 1
                await asyncio.sleep(0.01)
                continue
            w.count += 1

    workers = [asyncio.create_task(worker()) for _ in range(p["concurrency"])]
    await asyncio.sleep(p["warmup"])
    w.start()
    await asyncio.sleep(p["duration"])
    result = w.stop()
    state["running"] = False
    await asyncio.wait_for(asyncio.gather(*workers), 15.0)
    return result


async def idle(p: Params, connect: Connect, w: Window) -> Result:
    """Server RSS growth per open idle connection (VmRSS of the server process tree)."""
    kwargs = {"host": p["host"], "port": p["port"], "path": "/", "on_message": lambda c, m: None}
    # Warm the server up first (lazy imports, first-connection allocations), then measure.
    warm = await _connect_many(connect, max(1, p["conns"] // 50), 100, **kwargs)
    await asyncio.gather(*(c.close() for c in warm))
    await asyncio.sleep(0.2)
    pids = procfs.process_tree(w.pid)
    before = procfs.rss_bytes(pids)
    conns = await _connect_many(connect, p["conns"], 100, **kwargs)
    await asyncio.sleep(p["duration"])
    after = procfs.rss_bytes(pids)
    for conn in conns:
        conn.abort()
    await asyncio.sleep(0.1)
    return {"count": len(conns), "rss_before": before, "rss_after": after,
            "rss_per_conn": (after - before) / len(conns), "errors": 0}


async def chat(p: Params, connect: Connect, w: Window) -> Result:
    """The real app:chat, driven by the app's own load, `bench.chat_load`.

    Preferred contract: `async measure(host, port, *, clients, rooms, duration, on_window)`
    returning "messages", "elapsed", "p99_ms", calling `on_window(True)` / `on_window(False)`
    around its measured window. Also understood: chat_load's `run(addr, clients, rooms, window,
    warmup, duration)`; it has no window hook, so the server CPU of the whole call (connects,
    joins and warm-up included) is charged, which lowers both servers' per-CPU figure alike.
    """
    if importlib.util.find_spec("bench.chat_load") is None:
        return {"skipped": "bench/chat_load.py is not there yet"}
    from bench import chat_load
    pids = procfs.process_tree(w.pid)
    cpu: dict[str, float] = {}

    def on_window(opening: bool) -> None:
        cpu["start" if opening else "end"] = procfs.cpu_seconds(pids)

    measure = getattr(chat_load, "measure", None)
    if measure is not None and "on_window" in inspect.signature(measure).parameters:
        out = await measure(p["host"], p["port"], clients=p["clients"], rooms=p["rooms"],
                            duration=p["duration"], on_window=on_window)
        count, elapsed, p99, scope = out["messages"], out["elapsed"], out["p99_ms"], "window"
    elif hasattr(chat_load, "run"):
        on_window(True)
        out = await chat_load.run(f"{p['host']}:{p['port']}", p["clients"], p["rooms"], 1,
                                  p["warmup"], p["duration"],
                                  compression="deflate" if p.get("deflate") else None)
        on_window(False)
        elapsed = out["seconds"]
        count, p99, scope = round(out["acked_per_s"] * elapsed), out["ack_p99_ms"], "call"
        w.errors += out.get("errors") or 0
    else:
        return {"skipped": "bench/chat_load.py has neither measure(...) nor run(...)"}
    return {"count": count, "elapsed": elapsed, "p99_ms": p99, "cpu_scope": scope,
            "server_cpu": cpu["end"] - cpu["start"], "client_busy": None, "errors": w.errors}


SCENARIOS: dict[str, Callable[[Params, Connect, Window], Awaitable[Result]]] = {
    "echo": echo, "fanout": fanout, "connect": connect_close, "idle": idle, "chat": chat,
}


def with_deflate(connect: Connect) -> Connect:
    """`connect` offering permessage-deflate; a server that declines it fails the round."""

    async def connect_deflate(**kwargs: Any) -> Any:
        conn = await connect(deflate=True, **kwargs)
        if not conn.deflate:
            conn.abort()
            raise RuntimeError("the server did not accept permessage-deflate")
        return conn

    return connect_deflate


async def run(p: Params) -> Result:
    """Run one round as described by `p`; the figures come back as a dict."""
    if p.get("deflate"):
        # Only the raw client speaks permessage-deflate (RFC 7692).
        client, connect = pick_client("raw")
        connect = with_deflate(connect)
    else:
        client, connect = pick_client(p.get("client", "auto"))
    window = Window(p["pid"])
    result = await asyncio.wait_for(SCENARIOS[p["kind"]](p, connect, window), p["timeout"])
    result["client"] = client
    return result


def main(argv: list[str]) -> int:
    params = json.loads(argv[1])
    procfs.raise_nofile()
    try:
        import uvloop
        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(run(params))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
