"""The supervisor's side of a worker: `Worker` (process + control channel), summed metrics.

Each worker gets a socketpair, its control channel, carrying one JSON object per line:
- supervisor -> worker: the worker's settings first (`{"app": ..., "options": {...}}`),
  then `{"stats": N}` requests;
- worker -> supervisor: `{"ready": true}` once it serves, `{"error": LINE, "code": C}` if
  its start-up failed, `{"stats": N, "figures": {...}}` answers (an `observability.snapshot`).
The channel's end tells a worker that its supervisor is gone: it shuts down.

`WorkerFigures` sums the workers' figures for --metrics-port: counters of workers that died
stay in the sum (as last collected), gauges count live workers only.
This module must not import the protocol layers.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from server.asgi import LifespanError
from server.loader import AppLoadError, LoopUnavailable
from server.observability import MetricsUnavailable

__all__ = [
    "StartupFailed", "Worker", "WorkerFigures", "describe_error", "describe_exit", "encode",
    "start_metrics",
]

error_log = logging.getLogger("wsrun.error")

STATS_TIMEOUT = 1.0  # a worker too busy to answer a scrape in time is reported as last seen


class StartupFailed(Exception):
    """Workers cannot start; `str(exc)` is the one-line reason, `code` the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def describe_error(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit status of a start-up error; None: not one (a bug)."""
    if isinstance(exc, (AppLoadError, LoopUnavailable, MetricsUnavailable)):
        return str(exc), 1
    if isinstance(exc, StartupFailed):
        return str(exc), exc.code
    if isinstance(exc, LifespanError):
        return f"application startup failed: {exc}", 3
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return f"cannot listen: address already in use ({exc})", 1
        return f"cannot start: {exc}", 1
    return None


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def describe_exit(returncode: int | None) -> str:
    """'exit status 3' or 'killed by SIGKILL', from a process's return code."""
    if returncode is None:
        return "running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class Worker:
    """One worker process, started by `start()`; `id` is its WSRUN_WORKER_ID.

    Args:
        id: the slot number (1..N).
        spec: settings sent as the first line of the control channel.
        env: variables added to the supervisor's environment for this worker.
        fds: descriptors the worker inherits (the listening socket).
    """

    def __init__(self, id: int, spec: dict[str, Any], env: dict[str, str],
                 fds: list[int]) -> None:
        self.id = id
        self.spec = spec
        self.env = env
        self.fds = fds
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.was_ready = False
        self.ready_at = 0.0
        self.error: tuple[str, int] | None = None  # (one-line message, exit status)
        self._answered = asyncio.Event()  # ready, or the channel ended
        self._reader: asyncio.Task[None] | None = None
        self._stats: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.worker", str(theirs.fileno()),
                env={**os.environ, **self.env},
                pass_fds=(theirs.fileno(), *self.fds),
                # Its own process group: a terminal's Ctrl+C reaches the supervisor only,
                # which forwards one SIGTERM (two would cut the graceful shutdown short).
                process_group=0,
            )
        finally:
            theirs.close()
        reader, self.writer = await asyncio.open_connection(sock=ours)
        self.writer.write(encode(self.spec))
        self._reader = asyncio.ensure_future(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        try:
            while line := await reader.readline():
                message = json.loads(line)
                if message.get("ready"):
                    self.was_ready, self.ready_at = True, loop.time()
                    self._answered.set()
                elif "error" in message:
                    self.error = (str(message["error"]), int(message.get("code", 1)))
                elif "stats" in message:
                    future = self._stats.pop(message["stats"], None)
                    if future is not None and not future.done():
                        future.set_result(message["figures"])
        except (OSError, ValueError) as exc:
            error_log.warning("Worker %d [%d]: control channel failed: %s", self.id, self.pid,
                              exc)
        finally:
            self._answered.set()
            for future in self._stats.values():
                future.cancel()

    async def wait_ready(self) -> bool:
        """True once the worker serves; False if it ended first."""
        await self._answered.wait()
        return self.was_ready

    async def wait(self) -> int:
        """Wait for the process to end; returns its return code."""
        assert self.proc is not None
        code = await self.proc.wait()
        if self._reader is not None:
            await self._reader
        if self.writer is not None:
            self.writer.close()
        return code

    def describe_exit(self) -> str:
        return describe_exit(self.proc.returncode if self.proc else None)

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:  # exited since `running` was read
                pass

    async def stats(self) -> dict[str, Any]:
        """Ask the worker for its figures (an `observability.snapshot`)."""
        if self.writer is None or not self.was_ready or not self.running:
            raise ConnectionError("worker not serving")
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._stats[self._next] = future
        self.writer.write(encode({"stats": self._next}))
        return await future


class WorkerFigures:
    """The workers' figures, summed: live workers as last collected, plus the dead ones'."""

    def __init__(self) -> None:
        self.latest: dict[tuple[int, int], dict[str, Any]] = {}  # (id, pid) -> figures
        self.retired: dict[str, Any] = {}  # counters of workers that ended

    def retire(self, id: int, pid: int) -> None:
        from server.observability import add_figures

        figures = self.latest.pop((id, pid), None)
        if figures is not None:
            add_figures(self.retired, figures, gauges=False)

    def total(self) -> dict[str, Any]:
        from server.observability import add_figures

        total: dict[str, Any] = {}
        add_figures(total, self.retired, gauges=False)
        for figures in self.latest.values():
            add_figures(total, figures)
        return total

    async def refresh(self, workers: list[Worker]) -> None:
        async def one(worker: Worker) -> None:
            try:
                figures = await asyncio.wait_for(worker.stats(), STATS_TIMEOUT)
            except (TimeoutError, ConnectionError, asyncio.CancelledError):
                return
            self.latest[(worker.id, worker.pid)] = figures

        await asyncio.gather(*(one(worker) for worker in workers))


async def start_metrics(
    options: dict[str, Any], figures: WorkerFigures, live: Callable[[], list[Worker]],
    restarts: Callable[[], int],
) -> asyncio.Server:
    """Serve --metrics-port from the supervisor: the sum of every worker's figures.

    Args:
        options: the CLI's options (metrics_host, metrics_port, timeout_keep_alive).
        figures: where the workers' figures are kept.
        live: returns the running workers; restarts: how many were restarted.
    """
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from server.metrics import start_metrics_server
    from server.observability import StatsCollector, registry_for

    class Supervision:
        def collect(self) -> Any:
            yield GaugeMetricFamily("wsrun_workers", "Worker processes running.",
                                    value=len(live()))
            yield CounterMetricFamily("wsrun_worker_restarts",
                                      "Workers restarted after they died.", value=restarts())

    registry = registry_for(StatsCollector(figures.total), Supervision())
    server = await start_metrics_server(
        options.get("metrics_host", "127.0.0.1"), int(options["metrics_port"]), registry,
        float(options.get("timeout_keep_alive", 5.0)), refresh=lambda: figures.refresh(live()))
    for sock in server.sockets:
        host, port = sock.getsockname()[:2]
        error_log.info("Metrics of all workers at http://%s:%s/metrics", host, port)
    return server
