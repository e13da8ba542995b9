"""Small ASGI apps the integration tests serve with wsrun (and uvicorn, as an oracle)."""

from __future__ import annotations

import json
from typing import Any


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo every WebSocket message back as is (the Autobahn target); HTTP: echo the body."""
    if scope["type"] == "websocket":
        message = await receive()
        assert message["type"] == "websocket.connect"
        await echo_after_connect(send, receive)
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
    await answer_json(scope, receive, send, json.dumps(view, sort_keys=True, default=list))


async def answer_json(scope: dict[str, Any], receive: Any, send: Any, body: str) -> None:
    """Send `body`: over HTTP as the response, over WebSocket as one text message."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body})
        await send({"type": "websocket.close", "code": 1000})
    else:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body.encode()})


# -- behaviour apps: one per path, all in one callable so one server serves them all ----------

RECORDED: list[dict[str, Any]] = []  # websocket.disconnect messages the app received
SENT = {"count": 0}


async def behaviours(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """WebSocket behaviours by path; HTTP GET /recorded and /sent report what happened."""
    path = scope["path"]
    if scope["type"] == "http":
        if path == "/recorded":
            body = json.dumps(RECORDED).encode()
        elif path == "/sent":
            body = json.dumps(SENT["count"]).encode()
        elif path == "/crash":
            raise RuntimeError("boom")
        elif path == "/bad-header":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"x-evil", b"a\r\nset-cookie: x=1")]})
            return
        elif path == "/no-response":
            return
        elif path == "/long-poll":
            # Reads the request, then waits for the client to go away (or a 5 s poll timeout).
            import asyncio

            await receive()
            try:
                message = await asyncio.wait_for(receive(), 5)
            except TimeoutError:
                message = {"type": "timeout"}
            body = message["type"].encode()
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"one ", b"two ", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        else:
            await echo(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] != "websocket":
        return
    connect = await receive()
    assert connect["type"] == "websocket.connect"
    if path == "/reject":
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
    elif path == "/crash-before-accept":
        raise RuntimeError("boom before accept")
    elif path == "/crash-after-accept":
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("boom after accept")
    elif path == "/subprotocol":
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept", "subprotocol": offered[-1] if offered else None,
                    "headers": [(b"x-chosen", (offered[-1] if offered else "none").encode())]})
        await send({"type": "websocket.send", "text": ",".join(offered)})
        await receive()
    elif path == "/bad-accept-header":
        await send({"type": "websocket.accept", "headers": [(b"x-evil", b"a\r\nb: c")]})
    elif path == "/record":
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                RECORDED.append(message)
                return
            await send({"type": "websocket.send", "text": message.get("text"),
                        "bytes": message.get("bytes")})
    elif path == "/close-4000":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000, "reason": "bye now"})
        RECORDED.append(await receive())
    elif path == "/flood":
        # Sends until the client's unread bytes push back: send() must then wait.
        await send({"type": "websocket.accept"})
        payload = b"x" * 65536
        while True:
            await send({"type": "websocket.send", "bytes": payload})
            SENT["count"] += 1
    elif path == "/lazy":
        # Does not receive for a while: the server must stop reading the socket meanwhile.
        await send({"type": "websocket.accept"})
        first = await receive()
        import asyncio

        await asyncio.sleep(float(first["text"]))
        count = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            count += 1
            if message.get("text") == "done":
                await send({"type": "websocket.send", "text": str(count)})
    elif path == "/returns":
        await send({"type": "websocket.accept"})
    else:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": scope.get("root_path", "")})


def lifespan_marker_app(marker_path: str) -> Any:
    """A factory: an echo app whose lifespan writes "startup"/"shutdown" lines to a file."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                phase = message["type"].split(".")[-1]
                with open(marker_path, "a", encoding="utf-8") as file:
                    file.write(phase + "\n")
                await send({"type": f"lifespan.{phase}.complete"})
                if phase == "shutdown":
                    return
        await behaviours(scope, receive, send)

    return app


def marker_factory() -> Any:
    import os

    return lifespan_marker_app(os.environ["MARKER"])


async def failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


# -- conformance and hostile-input apps (tests/integration/test_conformance_*.py,
#    test_hostile.py): one callable, behaviour by path ------------------------------------


HTTP_RECEIVED: list[dict[str, Any]] = []
WS_RECORDED: list[str] = []


async def conformance(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP and WebSocket edge cases ported from uvicorn's, h11's and websockets' suites."""
    import asyncio

    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    if scope["type"] == "http":
        if path == "/early":
            # Answers before reading the request body (uvicorn test_early_response).
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"5")]})
            await send({"type": "http.response.body", "body": b"early"})
        elif path == "/stream-slow":
            # Starts a streamed response, then waits for more of the request body.
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"head", "more_body": True})
            while (await receive())["type"] != "http.disconnect":
                pass
        elif path == "/start-only":
            await send({"type": "http.response.start", "status": 200, "headers": []})
        elif path == "/crash-after-body":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"1", "more_body": True})
            raise RuntimeError("boom after the headers")
        elif path == "/status":
            status = int(scope["query_string"] or b"200")
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-length", b"4")]})
            await send({"type": "http.response.body", "body": b"body"})
        elif path == "/sleep":
            await asyncio.sleep(float(scope["query_string"] or b"0.2"))
            await echo(scope, receive, send)
        elif path == "/scope":
            await scope_app(scope, receive, send)
        elif path == "/receive-all":
            # Records every message until http.disconnect (read with GET /received).
            while True:
                message = await receive()
                HTTP_RECEIVED.append(message)
                if message["type"] == "http.disconnect":
                    return
        elif path in ("/received", "/ws-recorded"):
            got = [m["type"] for m in HTTP_RECEIVED] if path == "/received" else WS_RECORDED
            body = json.dumps(got).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        elif path == "/after-complete":
            # uvicorn test_message_after_body_complete: a body message after the last one.
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})
            await send({"type": "http.response.body", "body": b"more"})
        elif path == "/header-values":
            # uvicorn test_iterator_headers / test_header_value_allowed_characters.
            headers = iter([(b"x-iter", b"test value"), (b"x-chars", "<\t µ>".encode())])
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        else:
            await echo(scope, receive, send)
        return
    if scope["type"] != "websocket":
        return
    if path == "/scope":
        await scope_app(scope, receive, send)
        return
    await receive()
    if path == "/deny-start-only":
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
    elif path == "/deny-invalid-status":
        await send({"type": "websocket.http.response.start", "status": 700,
                    "headers": [(b"content-length", b"0")]})
    elif path == "/deny-twice":
        # uvicorn test_server_multiple_websocket_http_response_start_events
        start = {"type": "websocket.http.response.start", "status": 404,
                 "headers": [(b"content-length", b"0"), (b"content-type", b"text/plain")]}
        await send(start)
        try:
            await send(start)
        except RuntimeError as exc:
            WS_RECORDED.append(str(exc))
    elif path == "/deny-twice-crash":
        start = {"type": "websocket.http.response.start", "status": 404, "headers": []}
        await send(start)
        await send(start)
    elif path == "/deny-no-length":
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"hardbody"})
        WS_RECORDED.append(json.dumps(await receive()))
    elif path == "/close-code":
        # websocket.close with the code given in the query string (possibly invalid).
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": int(scope["query_string"])})
        await receive()
    elif path == "/flood":
        # Sends 64 KiB messages until the client is gone: send() must wait meanwhile.
        await send({"type": "websocket.accept"})
        payload = b"x" * 65536
        try:
            while True:
                await send({"type": "websocket.send", "bytes": payload})
        except OSError:
            return
    elif path == "/close-long-reason":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000, "reason": "é" * 100})
        await receive()
    else:
        await echo_after_connect(send, receive)


async def echo_after_connect(send: Any, receive: Any) -> None:
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "bytes": message.get("bytes"),
                    "text": message.get("text")})


async def client_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer with `{"client": scope["client"], "scheme": scope["scheme"]}` exactly (JSON)."""
    if scope["type"] == "lifespan":
        return
    await answer_json(scope, receive, send,
                      json.dumps({"client": scope["client"], "scheme": scope["scheme"]}))


async def loop_name(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every HTTP request with the class name of the running event loop."""
    import asyncio

    if scope["type"] != "http":
        return
    body = type(asyncio.get_running_loop()).__name__.encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
