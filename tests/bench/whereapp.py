"""A probe app for tests/bench/test_revisions.py: answers every HTTP request with the file the
server process imported `server` from and the one `server._speedups` (the C extension) loads
from (JSON), so a test can tell which copy of the server package a real process runs.
Test-only: the apps under benchmark never look at the server."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]


async def app(scope: Message, receive: Callable[[], Awaitable[Message]],
              send: Callable[[Message], Awaitable[None]]) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    speedups = importlib.util.find_spec("server._speedups")
    body = json.dumps({"server": sys.modules["server"].__file__,
                       "server._speedups": speedups and speedups.origin}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
