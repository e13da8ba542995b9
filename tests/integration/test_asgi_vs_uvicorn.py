"""ASGI scopes and events side by side with uvicorn serving the same app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.procs import serve

APP = "tests.integration.apps:scope_app"
COMMON = ["--root-path", "/mount"]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    with serve("wsrun", APP, args=COMMON) as ours, serve("uvicorn", APP, args=COMMON) as theirs:
        yield {"wsrun": ours, "uvicorn": theirs}


def http_scope(addr: str) -> dict[str, Any]:
    response = httpx.get(f"http://{addr}/a%20b/c?x=1&y=%20", headers={"X-Custom": "yes"})
    return response.json()  # type: ignore[no-any-return]


def ws_scope(addr: str) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with ws_connect(f"ws://{addr}/sock%2Fet?q=1", subprotocols=["one", "two"]) as ws:
            return json.loads(await ws.recv())  # type: ignore[no-any-return]

    return asyncio.run(main())


def comparable(scope: dict[str, Any], port: str) -> dict[str, Any]:
    scope = dict(scope)
    scope["server"] = [scope["server"][0], "port"]
    scope["headers"] = [
        [name, value.replace(port, "PORT")]
        for name, value in scope["headers"]
        if name not in ("user-agent", "sec-websocket-key", "sec-websocket-extensions")
    ]
    scope["asgi"] = {"version": scope["asgi"]["version"]}
    # uvicorn leaves the "state" of connections empty when the app has no lifespan state;
    # both must at least carry what startup put there.
    return scope


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_scope_matches_uvicorn(servers: dict[str, str], kind: str) -> None:
    get = http_scope if kind == "http" else ws_scope
    ours = comparable(get(servers["wsrun"]), servers["wsrun"].split(":")[1])
    theirs = comparable(get(servers["uvicorn"]), servers["uvicorn"].split(":")[1])
    assert ours.pop("extensions", None) in ({"websocket.http.response": {}}, None)
    theirs.pop("extensions", None)
    assert ours == theirs
    assert ours["state"] == {"started": True}
    assert ours["root_path"] == "/mount"
    if kind == "http":
        assert (ours["path"], ours["raw_path"], ours["query_string"]) == (
            "/mount/a b/c", "/mount/a%20b/c", "x=1&y=%20")
        assert ours["method"] == "GET" and ours["scheme"] == "http"
    else:
        assert ours["subprotocols"] == ["one", "two"]
        assert ours["scheme"] == "ws" and ours["path"] == "/mount/sock/et"
