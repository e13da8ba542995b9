"""Apps served by `wsrun --workers N` in tests/integration/test_workers.py.

`whoami` says which process answered: HTTP gets {"pid", "worker", "workers"} as JSON;
a WebSocket is accepted, gets that JSON as its first message, then is echoed until it ends.
`stuck_on_shutdown` is `whoami` whose lifespan shutdown never finishes.
`counted` counts requests in app/metrics.py's `Metrics` (prometheus_client multiprocess
mode under --workers): POST /count adds one message, GET /metrics renders every worker's.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from app.metrics import CONTENT_TYPE_LATEST, Metrics

Scope = dict[str, Any]


def identity() -> bytes:
    return json.dumps({
        "pid": os.getpid(),
        "worker": os.environ.get("WSRUN_WORKER_ID"),
        "workers": os.environ.get("WSRUN_WORKERS"),
    }).encode()


async def respond(send: Any, body: bytes, content_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def whoami(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        await respond(send, identity())
    else:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": identity().decode()})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})


async def stuck_on_shutdown(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.Event().wait()  # never answers lifespan.shutdown
    else:
        await whoami(scope, receive, send)


_metrics: Metrics | None = None


async def counted(scope: Scope, receive: Any, send: Any) -> None:
    global _metrics
    if scope["type"] != "http":
        return await whoami(scope, receive, send)
    if _metrics is None:
        _metrics = Metrics(lambda: 0, lambda: 0)
    if scope["path"] == "/count":
        _metrics.messages.inc()
        await respond(send, identity())
    else:
        await respond(send, _metrics.render(), CONTENT_TYPE_LATEST.encode())
