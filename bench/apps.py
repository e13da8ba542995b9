"""The ASGI apps every server under test runs: plain ASGI, no framework, no server imports.

- `echo`: sends every received message back on the same connection, same type.
- `broadcast`: one room per path; every message a member sends goes to every member of the
  room, the sender included and in join order (the load generator uses the sender's own copy,
  which comes last, as its acknowledgement).

Both apps answer lifespan so that every server runs them the same way. Kept deliberately
minimal: what is measured is the server, not the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _not_found(send: Send) -> None:
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"10")]})
    await send({"type": "http.response.body", "body": b"not found\n"})


async def _accepted(scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer lifespan and plain HTTP; accept a WebSocket. True: a WebSocket is open."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return False
    if scope["type"] != "websocket":
        await _not_found(send)
        return False
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    return True


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echo every WebSocket message back; 404 for plain HTTP."""
    if not await _accepted(scope, receive, send):
        return
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        # Forward exactly the field that is set: text stays text, bytes stay bytes.
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


# room name -> {connection id: send}; a dict keeps join order for the fan-out.
_rooms: dict[str, dict[int, Send]] = {}


async def broadcast(scope: Scope, receive: Receive, send: Send) -> None:
    """Relay every message a member sends to all members of the room named by the path."""
    if not await _accepted(scope, receive, send):
        return
    # Join only once accepted: a broadcast must never reach a connection that cannot send yet.
    room = _rooms.setdefault(scope["path"], {})
    key = id(send)
    room[key] = send
    try:
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            text = message.get("text")
            out: Message = (
                {"type": "websocket.send", "text": text} if text is not None
                else {"type": "websocket.send", "bytes": message.get("bytes") or b""}
            )
            # Sequential awaits, the simplest fan-out every ASGI server supports alike.
            for member_key, member_send in list(room.items()):
                try:
                    await member_send(out)
                except Exception:  # noqa: BLE001 - a member that went away leaves the room
                    room.pop(member_key, None)
    finally:
        room.pop(key, None)
        if not room:
            _rooms.pop(scope["path"], None)
