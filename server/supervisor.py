"""`Supervisor`: --workers N and --reload. Binds the listening socket, runs worker processes.

Strategy: the supervisor binds the listening socket once (TCP, --uds, or takes --fd) and
starts each worker as a fresh interpreter (`python -m server.worker`) that inherits that one
socket: every worker accepts from the same queue, so an idle worker takes the next
connection and a worker that dies loses nothing queued (with SO_REUSEPORT each worker has
its own queue, picked by a hash of the 4-tuple; docs/deployment.md has the measurement).
A fresh interpreter rather than fork(): nothing of the supervisor (its event loop, signal
handlers, the metrics listener) leaks into a worker, each worker builds its own uvloop
loop, and --reload re-imports the app from scratch.

Restart policy: a worker that dies is restarted after an exponential backoff (0.1 s,
doubling up to 10 s; back to 0.1 s once a worker has served for 10 s). A worker that reports
a start-up error (app not importable, lifespan startup failed) stops the supervisor with
that one line: the next worker would fail the same way. One that dies before it is ready
without saying why is retried up to `MAX_START_FAILURES` times, then the supervisor gives up.
The first worker starts alone, so a broken app fails once, not N times.
SIGTERM/SIGINT are forwarded as SIGTERM (a second one makes workers cut their wait short);
a worker still running --timeout-graceful-shutdown + `STOP_MARGIN` seconds later is SIGKILLed.

This module must not import the protocol layers: workers run them, not the supervisor.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass
from typing import Any

from server.reloader import Reload
from server.workers import StartupFailed, Worker, WorkerFigures

__all__ = ["MAX_START_FAILURES", "STOP_MARGIN", "Supervisor"]

error_log = logging.getLogger("wsrun.error")

MAX_START_FAILURES = 5
STOP_MARGIN = 2.0  # seconds a worker gets after the graceful timeout for lifespan shutdown
BACKOFF_FIRST, BACKOFF_MAX, BACKOFF_RESET = 0.1, 10.0, 10.0


@dataclass(slots=True)
class Slot:
    """One worker position: its id (WSRUN_WORKER_ID) stays the same across restarts."""

    id: int
    worker: Worker | None = None
    deaths: int = 0  # consecutive deaths after ready, for the backoff
    start_failures: int = 0  # consecutive deaths before ready


class Supervisor:
    """Run `app` in worker processes until SIGTERM/SIGINT.

    Args:
        app: "module:attribute", imported by each worker.
        options: `Config` fields as the CLI gives them (plain JSON-able values).
        workers: number of worker processes (1 with `reload`).
        reload: restart the worker when a file it names changes.
        reuse_port: give each worker its own SO_REUSEPORT socket instead of sharing one
            (TCP only; kept for the measurement in docs/deployment.md).
    """

    def __init__(
        self, app: str, options: dict[str, Any], workers: int = 1,
        reload: Reload | None = None, reuse_port: bool = False,
    ) -> None:
        self.app = app
        self.options = dict(options)
        self.count = 1 if reload is not None else workers
        self.reload = reload
        self.reuse_port = reuse_port
        self.timeout = float(options.get("timeout_graceful_shutdown", 5.0))
        self.slots = [Slot(i + 1) for i in range(self.count)]
        self.sock: socket.socket | None = None
        self.metrics_dir = ""
        self.figures = WorkerFigures()
        self.restarts = 0
        self.stopping = asyncio.Event()
        self._signals = 0
        self._fatal: StartupFailed | None = None

    @property
    def live(self) -> list[Worker]:
        return [s.worker for s in self.slots if s.worker is not None and s.worker.running]

    def run(self) -> None:
        """Serve until a signal.

        Raises:
            StartupFailed: workers cannot start (the message is one line).
            OSError: the address cannot be bound.
        """
        from server.config import Config
        from server.logs import configure_logging

        configure_logging(Config(app=self.app, **self.options))
        # The stdlib loop: the supervisor only waits on children (uvloop is for workers).
        with asyncio.Runner() as runner:
            runner.run(self.serve())

    def stop(self) -> None:
        """Start a graceful shutdown of every worker; a second call makes it quick."""
        self._signals += 1
        if self._signals == 1:
            error_log.info("Shutting down %d worker(s)", len(self.live))
            self.stopping.set()
        else:
            for worker in self.live:
                worker.signal(signal.SIGTERM)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        self.sock = self._bind()
        # prometheus_client's multiprocess mode for the app's own /metrics: the directory
        # the user gave, else a fresh one for this run, removed at exit.
        self.metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or ""
        own_dir = not self.metrics_dir
        if own_dir:
            self.metrics_dir = tempfile.mkdtemp(prefix="wsrun-prometheus-")
        metrics = None
        try:
            if self.options.get("metrics_port") is not None:
                from server.workers import start_metrics

                metrics = await start_metrics(
                    self.options, self.figures, lambda: self.live, lambda: self.restarts)
            error_log.info("Started supervisor process [%d]", os.getpid())
            self._log_listening()
            if self.reload is not None:
                await self._run_reloading()
            else:
                await self._run_workers()
        finally:
            await self.stop_workers(self.live)
            if metrics is not None:
                from server.metrics import stop_metrics_server

                await stop_metrics_server(metrics)
            self._close(own_dir)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        if self._fatal is not None:
            raise self._fatal
        error_log.info("Stopped supervisor process [%d]", os.getpid())

    # -- sockets -------------------------------------------------------------------------

    def _bind(self) -> socket.socket | None:
        options = self.options
        backlog = int(options.get("backlog", 2048))
        if options.get("fd") is not None:
            return None  # workers inherit the descriptor as it is
        uds = options.get("uds")
        if uds:
            if os.path.exists(uds) and not os.path.isfile(uds):
                os.unlink(uds)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(uds)
            os.chmod(uds, 0o666)
            sock.listen(backlog)
            return sock
        host, port = options.get("host", "127.0.0.1"), int(options.get("port", 8000))
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:
            # Bound, never listening: it holds the port (port 0 picks one) for the workers,
            # which each bind and listen on their own SO_REUSEPORT socket.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            return sock
        sock.bind(address)
        sock.listen(backlog)
        return sock

    def _log_listening(self) -> None:
        if self.sock is None:
            where = f"the socket of file descriptor {self.options['fd']}"
        else:
            scheme = "https" if self.options.get("ssl_certfile") else "http"
            name = self.sock.getsockname()
            if self.sock.family == socket.AF_UNIX:
                where = f"{scheme}+unix://{name}"
            elif self.sock.family == socket.AF_INET6:
                where = f"{scheme}://[{name[0]}]:{name[1]}"
            else:
                where = f"{scheme}://{name[0]}:{name[1]}"
        error_log.info("wsrun running on %s with %d worker(s) (Press CTRL+C to quit)",
                       where, self.count)

    def _close(self, own_dir: bool) -> None:
        if self.sock is not None:
            self.sock.close()
        uds = self.options.get("uds")
        if uds and self.options.get("fd") is None and os.path.exists(uds):
            os.unlink(uds)
        if own_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    # -- workers -------------------------------------------------------------------------

    async def start(self, slot: Slot) -> bool:
        """Start the slot's worker and wait until it is ready (True) or has died (False).

        A death before ready goes through `_failed_start`, which may stop the supervisor.
        """
        options = dict(self.options, metrics_port=None)
        fds = []
        if self.sock is not None and self.reuse_port:
            host, port = self.sock.getsockname()[:2]
            options.update(host=host, port=port, reuse_port=True)
        elif self.sock is not None:
            options.update(fd=self.sock.fileno(), uds=None)
            fds.append(self.sock.fileno())
        else:
            fds.append(int(options["fd"]))
        env = {
            "WSRUN_WORKER_ID": str(slot.id),
            "WSRUN_WORKERS": str(self.count),
            "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir,
        }
        worker = slot.worker = Worker(slot.id, {"app": self.app, "options": options}, env, fds)
        await worker.start()
        if await worker.wait_ready():
            slot.start_failures = 0
            return True
        await worker.wait()
        self._worker_gone(worker)
        self._failed_start(slot, worker)
        return False

    def _failed_start(self, slot: Slot, worker: Worker) -> None:
        if self.stopping.is_set():
            return
        if worker.error is not None:
            failure = StartupFailed(*worker.error)
        else:
            slot.start_failures += 1
            error_log.warning("Worker %d [%d] died during start-up (%s)",
                              slot.id, worker.pid, worker.describe_exit())
            if slot.start_failures < MAX_START_FAILURES:
                return
            failure = StartupFailed(
                f"worker {slot.id} died {slot.start_failures} times during start-up "
                f"(last: {worker.describe_exit()})")
        if self.reload is not None:
            # While developing, a broken edit is fixed by the next one: keep watching.
            error_log.error("%s; waiting for a file change", failure)
            return
        self._fatal = failure
        self.stopping.set()

    def _worker_gone(self, worker: Worker) -> None:
        self.figures.retire(worker.id, worker.pid)
        # prometheus_client.multiprocess.mark_process_dead: a dead process's live gauges
        # (files gauge_live*_PID.db) must not count any more.
        for path in glob.glob(os.path.join(self.metrics_dir, f"gauge_live*_{worker.pid}.db")):
            os.remove(path)

    async def _run_workers(self) -> None:
        # The first worker starts alone, until it serves: an app that cannot start says so
        # once, and does not fail in N processes at a time.
        first = self.slots[0]
        while not await self.start(first):
            if self.stopping.is_set() or await self._pause(backoff(first.start_failures)):
                return
        starts = [asyncio.ensure_future(self.start(slot)) for slot in self.slots[1:]]
        await asyncio.gather(*starts)
        keepers = [asyncio.ensure_future(self._keep(slot)) for slot in self.slots]
        try:
            await self.stopping.wait()
        finally:
            for task in keepers:
                task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)

    async def _keep(self, slot: Slot) -> None:
        """Restart the slot's worker whenever it dies, with backoff."""
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            worker = slot.worker
            assert worker is not None
            if worker.was_ready:
                await worker.wait()
                if self.stopping.is_set():
                    return
                self._worker_gone(worker)
                if loop.time() - worker.ready_at >= BACKOFF_RESET:
                    slot.deaths = 0
                slot.deaths += 1
                what, count = "died", slot.deaths
            else:
                what, count = "could not start", slot.start_failures
            delay = backoff(count)
            error_log.warning("Worker %d [%d] %s (%s); restarting in %.1f s",
                              slot.id, worker.pid, what, worker.describe_exit(), delay)
            if await self._pause(delay):
                return
            self.restarts += 1
            if await self.start(slot) and slot.worker is not None:
                error_log.info("Worker %d restarted [%d]", slot.id, slot.worker.pid)

    async def _pause(self, delay: float) -> bool:
        """Wait `delay` seconds; True if the supervisor is stopping (at once, then)."""
        try:
            await asyncio.wait_for(self.stopping.wait(), delay)
            return True
        except TimeoutError:
            return False

    async def _run_reloading(self) -> None:
        """One worker, replaced on each change of a watched file (server/reloader.py)."""
        from server.reloader import changes

        slot, settings = self.slots[0], self.reload
        assert settings is not None
        error_log.info("Watching for file changes in %s",
                       ", ".join(repr(str(d)) for d in settings.dirs))
        await self.start(slot)
        async for names in changes(settings, self.stopping):
            error_log.warning("Changes detected in %s: reloading", names)
            if slot.worker is not None:
                await self.stop_workers([slot.worker])
            await self.start(slot)

    async def stop_workers(self, workers: list[Worker]) -> None:
        """SIGTERM `workers`; SIGKILL those still running after the graceful timeout."""
        for worker in workers:
            worker.signal(signal.SIGTERM)
        deadline = self.timeout + STOP_MARGIN
        waits = [asyncio.ensure_future(w.wait()) for w in workers]
        if waits:
            await asyncio.wait(waits, timeout=deadline)
        for worker in workers:
            if worker.running:
                error_log.warning("Worker %d [%d] did not stop within %.1f s: killed",
                                  worker.id, worker.pid, deadline)
                worker.signal(signal.SIGKILL)
        if waits:
            await asyncio.gather(*waits)
        for worker in workers:
            self._worker_gone(worker)


def backoff(count: int) -> float:
    """Seconds before the restart that follows the `count`-th death in a row."""
    return min(BACKOFF_FIRST * 2.0 ** (max(count, 1) - 1), BACKOFF_MAX)
