"""HTTP routes: the page from frontend/ (types, ETag/304, HEAD, 405, traversal), /healthz,
/metrics; and the whole chat mounted in Starlette at a sub-path (root_path)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from app import ChatApp
from app.config import Settings
from app.static import frontend_root
from tests.app.conftest import InProcess, Process, server_param
from tests.procs import ROOT, serve

FRONTEND = ROOT / "frontend"


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    app = ChatApp(Settings(db=str(tmp_path / "c.db")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as c:
        yield c


async def asgi_get(app: ChatApp, path: str, method: str = "GET") -> tuple[int, bytes]:
    """One request with a path exactly as given (httpx would normalise dot segments)."""
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "root_path": "", "headers": [], "query_string": b"", "asgi": {"version": "3.0"}}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(e.get("body", b"") for e in sent[1:])


async def test_index_page_with_etag_and_304(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content == (FRONTEND / "index.html").read_bytes()
    assert page.headers["content-length"] == str(len(page.content))
    etag = page.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert (await client.get("/index.html")).headers["etag"] == etag

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = await client.get("/", headers={"if-none-match": header})
        assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", etag)
    assert (await client.get("/", headers={"if-none-match": '"other"'})).status_code == 200

    head = await client.head("/")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(page.content))


@pytest.mark.parametrize("name, content_type", [
    ("style.css", "text/css; charset=utf-8"),
    ("main.js", "text/javascript; charset=utf-8"),
])
async def test_assets_have_their_content_types(client: httpx.AsyncClient, name: str,
                                               content_type: str) -> None:
    if not (FRONTEND / name).is_file():
        pytest.skip(f"frontend/{name} is not there")
    reply = await client.get("/" + name)
    assert (reply.status_code, reply.headers["content-type"]) == (200, content_type)
    assert reply.content == (FRONTEND / name).read_bytes()


async def test_only_get_and_head(client: httpx.AsyncClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        reply = await client.request(method, "/")
        assert (reply.status_code, reply.headers["allow"]) == (405, "GET, HEAD")
        reply = await client.request(method, "/healthz")
        assert (reply.status_code, reply.headers["allow"]) == (405, "GET, HEAD")


async def test_no_path_traversal(tmp_path: Path) -> None:
    app = ChatApp(Settings(db=str(tmp_path / "c.db")))
    for path in ("/../pyproject.toml", "/../../etc/passwd", "/./index.html/../../README.md",
                 "/.hidden", "/nope.html", "/app/asgi.py", "//etc/passwd"):
        assert await asgi_get(app, path) == (404, b"not found\n"), path
    for path in ("/..\\pyproject.toml", "/index.html\x00"):
        assert await asgi_get(app, path) == (400, b"bad path\n"), path


async def test_only_the_page_files_are_served(tmp_path: Path) -> None:
    app = ChatApp(Settings(db=str(tmp_path / "c.db")))
    for path in ("/__init__.py", "/index.html/", "/main.js/", "/index.html//", "/__pycache__/",
                 "/__pycache__/__init__.cpython-311.pyc", "/_private.js", "/sub//index.html"):
        assert await asgi_get(app, path) == (404, b"not found\n"), path
    for path in ("/", "/index.html", "/main.js"):
        assert (await asgi_get(app, path))[0] == 200, path


async def test_healthz_and_metrics(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.headers["content-type"] == "application/json"
    assert health.json() == {"status": "ok", "connections": 0, "rooms": 0, "worker": None,
                             "pid": os.getpid()}
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    for line in ("chat_connections 0.0", "chat_rooms 0.0", "chat_messages_total 0.0",
                 "chat_drops_total 0.0"):
        assert line in metrics.text.splitlines()


def test_frontend_is_found_as_a_package_resource() -> None:
    root = frontend_root()
    assert root.joinpath("index.html").read_bytes() == (FRONTEND / "index.html").read_bytes()


async def test_mounted_in_starlette_at_a_sub_path(tmp_path: Path) -> None:
    chat_app = ChatApp(Settings(db=str(tmp_path / "c.db")))
    host = Starlette(routes=[Mount("/chat", app=chat_app)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host),
                                 base_url="http://testserver") as client:
        page = await client.get("/chat/")
        assert page.status_code == 200 and page.content == (FRONTEND / "index.html").read_bytes()
        assert (await client.get("/chat/healthz")).json()["status"] == "ok"
        assert (await client.get("/healthz")).status_code == 404  # Starlette's, not ours
    # The chat itself, below the mount. Starlette runs no lifespan for mounted apps, so the
    # chat starts itself on first use.
    target = InProcess(Settings(db=str(tmp_path / "m.db")),
                       host=lambda chat: Starlette(routes=[Mount("/chat", app=chat)]))
    await target.start()
    try:
        peer = await target.connect(path="/chat/ws")
        joined = await peer.join("mounted", "m")
        assert joined["members"] == ["m"]
        await peer.send_json({"type": "say", "room": "mounted", "text": "below /chat"})
        assert (await peer.recv_json())["text"] == "below /chat"
        assert (await target.get("/chat/healthz")).json() == {
            "status": "ok", "connections": 1, "rooms": 1, "worker": None, "pid": os.getpid()}
    finally:
        await target.stop()


@pytest.mark.parametrize("name", [server_param("uvicorn"), server_param("wsrun")])
async def test_mounted_under_a_real_server(name: str, tmp_path: Path) -> None:
    with serve(name, "tests.app.mounted:app", env={"CHAT_DB": str(tmp_path / "m.db")}) as addr:
        async with httpx.AsyncClient(base_url=f"http://{addr}", trust_env=False) as client:
            assert (await client.get("/")).text == "host app\n"
            page = await client.get("/chat/")
            assert page.content == (FRONTEND / "index.html").read_bytes()
            etag = page.headers["etag"]
            assert (await client.get("/chat/", headers={"if-none-match": etag})).status_code == 304
        target = Process(name, tmp_path / "unused.db")
        target.addr = addr
        v1 = await target.connect(path="/chat/ws")
        await v1.join("lobby", "vee")
        plain = await target.connect(v1=False, path="/chat/")
        assert await plain.recv() == "Welcome, 127.0.0.1 !"
        assert json.loads(await v1.recv())["event"] == "join"
        await plain.send("hi from the seed page")
        assert (await v1.recv_json())["text"] == "hi from the seed page"
        await target.close_peers()
        await asyncio.sleep(0)
