"""Small ASGI apps the integration tests serve with wsrun (and uvicorn, as an oracle)."""

from __future__ import annotations

import json
from typing import Any


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo every WebSocket message back as is (the Autobahn target); HTTP: echo the body."""
    if scope["type"] == "websocket":
        message = await receive()
        assert message["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "bytes": message.get("bytes"),
                        "text": message.get("text")})
    elif scope["type"] == "http":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def scope_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer with the scope as JSON: over HTTP as the body, over WebSocket as a text message."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = True
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    view = {
        key: (value.decode("latin-1") if isinstance(value, bytes) else value)
        for key, value in scope.items()
        if key not in ("headers", "state", "asgi", "extensions")
    }
    view["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
    view["state"] = dict(scope.get("state") or {})
    view["asgi"] = scope["asgi"]
    view["extensions"] = scope.get("extensions")
    if isinstance(view.get("client"), (list, tuple)):
        view["client"] = [view["client"][0], "port"]
    body = json.dumps(view, sort_keys=True, default=list)
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body})
        await send({"type": "websocket.close", "code": 1000})
    else:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body.encode()})
