"""`Server`: listening sockets, lifespan, signals and graceful shutdown; `run()` for scripts.

Shutdown (SIGTERM/SIGINT, or `Server.exit()`): stop accepting, close every WebSocket with
1001, let in-flight HTTP responses finish, wait up to --timeout-graceful-shutdown for
connections to end, cut the rest, run lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Coroutine
from typing import Any

from server.asgi import Lifespan, LifespanError
from server.config import Config
from server.loader import LoopUnavailable, load_app, new_event_loop
from server.logs import configure_logging
from server.metrics import start_metrics_server, stop_metrics_server
from server.observability import StatsCollector, registry_for, snapshot
from server.protocol import HttpProtocol
from server.state import ServerState
from server.types import ASGIApp

__all__ = ["LoopUnavailable", "Server", "new_event_loop", "run"]

error_log = logging.getLogger("wsrun.error")


def make_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The TLS context of --ssl-certfile / --ssl-keyfile (None: plain TCP)."""
    if not config.ssl_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password)
    context.set_alpn_protocols(["http/1.1"])
    return context




class Server:
    """An ASGI server usable inside a running event loop.

    Example:
        server = Server(Config(app=my_app, port=0))
        task = asyncio.create_task(server.serve())
        await server.started.wait(); ...; server.exit(); await task
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = asyncio.Event()
        self.servers: list[asyncio.base_events.Server] = []
        self.metrics_server: asyncio.Server | None = None  # --metrics-port
        self.state: ServerState | None = None
        self._exit = asyncio.Event()
        self._force_exit = False

    @property
    def sockets(self) -> list[socket.socket]:
        return [sock for server in self.servers for sock in server.sockets]

    def exit(self) -> None:
        """Start a graceful shutdown; a second call cuts the wait short."""
        if self._exit.is_set():
            self._force_exit = True
        self._exit.set()

    async def serve(self, install_signal_handlers: bool = False) -> None:
        """Serve until `exit()` or a signal.

        Raises:
            AppLoadError: the app cannot be imported.
            LifespanError: the app's startup failed.
            OSError: the address cannot be bound.
        """
        config = self.config
        app: ASGIApp = load_app(config)
        state = self.state = ServerState(config, app)
        lifespan = Lifespan(state, config.lifespan)
        await lifespan.startup()
        try:
            # Metrics first: once the app's port accepts connections, so does /metrics.
            await self._listen_metrics(state)
            await self._listen(state)
        except BaseException:
            await self._stop_metrics()
            await lifespan.shutdown()
            raise
        if install_signal_handlers:
            self._install_signal_handlers()
        self._log_started()
        self.started.set()
        await self._exit.wait()
        await self._shutdown(state)
        await lifespan.shutdown()
        error_log.info("Finished server process [%d]", os.getpid())

    async def _listen(self, state: ServerState) -> None:
        config = self.config
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.BaseProtocol:
            return HttpProtocol(state)

        ssl_context = make_ssl_context(config)
        if config.fd is not None:
            # With `fileno`, socket() reads the family from the descriptor (fromfd() would
            # take the one it is given); a duplicate, so closing ours leaves the caller's.
            sock = socket.socket(fileno=os.dup(config.fd))
            server = await loop.create_server(
                factory, sock=sock, ssl=ssl_context, backlog=config.backlog
            )
        elif config.uds is not None:
            if os.path.exists(config.uds) and not os.path.isfile(config.uds):
                os.unlink(config.uds)
            server = await loop.create_unix_server(
                factory, path=config.uds, ssl=ssl_context, backlog=config.backlog
            )
            os.chmod(config.uds, 0o666)
        else:
            server = await loop.create_server(
                factory, host=config.host, port=config.port, ssl=ssl_context,
                backlog=config.backlog, reuse_address=True, reuse_port=config.reuse_port or None,
            )
        self.servers.append(server)
        names = [sock.getsockname() for sock in server.sockets]
        if (
            len(names) == 1
            and isinstance(names[0], tuple)
            and names[0][0] not in ("0.0.0.0", "::")
        ):
            state.sockname = (str(names[0][0]), int(names[0][1]))

    async def _listen_metrics(self, state: ServerState) -> None:
        config = self.config
        if config.metrics_port is None:
            return
        registry = registry_for(StatsCollector(lambda: snapshot(state.stats, state.connections)))
        server = await start_metrics_server(
            config.metrics_host, config.metrics_port, registry, config.timeout_keep_alive)
        self.metrics_server = server
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            where = f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"
            error_log.info("Metrics at http://%s/metrics", where)

    async def _stop_metrics(self) -> None:
        if self.metrics_server is not None:
            server, self.metrics_server = self.metrics_server, None
            await stop_metrics_server(server)

    def _log_started(self) -> None:
        config = self.config
        scheme = "https" if config.is_ssl else "http"
        error_log.info("Started server process [%d]", os.getpid())
        for sock in self.sockets:
            name = sock.getsockname()
            if sock.family == socket.AF_UNIX:
                where = f"{scheme}+unix://{name}"
            elif sock.family == socket.AF_INET6:
                where = f"{scheme}://[{name[0]}]:{name[1]}"
            else:
                where = f"{scheme}://{name[0]}:{name[1]}"
            error_log.info("wsrun running on %s (Press CTRL+C to quit)", where)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.exit)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(self.exit))

    async def _shutdown(self, state: ServerState) -> None:
        error_log.info("Shutting down")
        state.shutting_down = True
        for server in self.servers:
            server.close()
        for connection in list(state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_graceful_shutdown
        while (
            (state.connections or state.tasks)
            and loop.time() < deadline
            and not self._force_exit
        ):
            await asyncio.sleep(0.05)
        if state.connections or state.tasks:
            error_log.warning(
                "Graceful shutdown timed out: cutting %d connection(s)", len(state.connections)
            )
        for connection in list(state.connections):
            connection.abort()
        for task in list(state.tasks):
            task.cancel()
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=1.0)
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except TimeoutError:
                pass
        if self.config.uds and os.path.exists(self.config.uds):
            os.unlink(self.config.uds)
        # Last: the figures stay readable while connections drain.
        await self._stop_metrics()


def _run(main: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> None:
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        runner.run(main)


def run(app: ASGIApp | str, **options: Any) -> None:
    """Serve `app` until SIGINT/SIGTERM; `options` are `Config` fields (e.g. port=8000).

    Raises:
        AppLoadError, LifespanError, OSError: see `Server.serve`.
    """
    config = Config(app=app, **options)
    configure_logging(config)
    server = Server(config)
    try:
        loop = new_event_loop(config.loop)  # before the coroutine: it may raise
        _run(server.serve(install_signal_handlers=True), loop)
    except LifespanError as exc:
        error_log.error("Application startup failed: %s", exc)
        raise
    finally:
        sys.stdout.flush()
