"""A worker process of `wsrun --workers N` / `--reload`: `python -m server.worker FD`.

FD is the worker's end of its control channel (see server/workers.py for the messages).
The worker reads its settings from it, serves the inherited listening socket with a
`Server` on its own uvloop loop, says `ready`, answers `stats` requests, and shuts down
gracefully on SIGTERM/SIGINT or when the channel ends (its supervisor is gone).
A start-up error is sent to the supervisor as one line, not printed: the supervisor
reports it once, whatever the number of workers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

from server.config import Config
from server.logs import configure_logging
from server.main import Server, new_event_loop
from server.observability import snapshot
from server.workers import describe_error, encode

__all__ = ["main"]


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(1)  # the supervisor went away before sending the settings
        data += chunk
    return data


async def serve(config: Config, channel: socket.socket) -> int:
    """Serve until a signal or the end of the control channel; returns the exit status."""
    reader, writer = await asyncio.open_connection(sock=channel)
    server = Server(config)
    serving = asyncio.ensure_future(server.serve(install_signal_handlers=True))
    started = asyncio.ensure_future(server.started.wait())
    await asyncio.wait([serving, started], return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if serving.done() and serving.exception() is not None:
        exc = serving.exception()
        assert exc is not None
        described = describe_error(exc)
        if described is None:
            raise exc
        message, code = described
        writer.write(encode({"error": message, "code": code}))
        await writer.drain()
        writer.close()
        return code
    writer.write(encode({"ready": True}))
    control = asyncio.ensure_future(_answer(reader, writer, server))
    try:
        await serving
    finally:
        control.cancel()
        writer.close()
    return 0


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  server: Server) -> None:
    while line := await reader.readline():
        request: dict[str, Any] = json.loads(line)
        if "stats" in request and server.state is not None:
            figures = snapshot(server.state.stats, server.state.connections)
            writer.write(encode({"stats": request["stats"], "figures": figures}))
    server.exit()  # the supervisor is gone: nobody would restart or stop this worker


def main() -> None:
    channel = socket.socket(fileno=int(sys.argv[1]))
    spec = json.loads(_read_line(channel))
    config = Config(app=spec["app"], **spec["options"])
    configure_logging(config)
    loop = new_event_loop(config.loop)
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        code = runner.run(serve(config, channel))
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
