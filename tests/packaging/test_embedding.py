"""docs/embedding.md, executed: the chat mounted at /chat in Starlette, under three servers.

The Starlette example is taken verbatim from the doc (the one python block whose docstring
starts with "mysite.py"), written to an empty directory and served by wsrun, uvicorn and
hypercorn, all from a fresh venv holding the installed wheel, Starlette and the servers.
The chat must answer at /chat/ as it does at / on its own: the page, /healthz, and a
chat.v1 conversation on /chat/ws. Also `app:chat` itself under the two
reference servers, as the doc's first section says it runs.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.packaging.installed import ROOT, Install, serve_installed

DOC = ROOT / "docs" / "embedding.md"
STEP_TIMEOUT = 10.0
SERVERS = ["wsrun", "uvicorn", "hypercorn"]


def doc_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    (example,) = [b for b in blocks if b.startswith('"""mysite.py')]
    return example


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    (tmp_path / "mysite.py").write_text(doc_example())
    return tmp_path


async def _request(ws: ClientConnection, request: dict[str, Any]) -> dict[str, Any]:
    async with asyncio.timeout(STEP_TIMEOUT):
        await ws.send(json.dumps(request))
        reply: dict[str, Any] = json.loads(await ws.recv())
    return reply


async def _chat(uri: str, room: str) -> None:
    """Join `room`, say something with a ref, get the message back with that ref."""
    async with asyncio.timeout(STEP_TIMEOUT), connect(uri, subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
        joined = await _request(ws, {"type": "join", "room": room, "nick": "dana"})
        assert (joined["type"], joined["room"], joined["nick"], joined["members"]) == (
            "joined", room, "dana", ["dana"])
        said = await _request(ws, {"type": "say", "room": room, "text": "hi", "ref": 7})
        assert {k: said[k] for k in ("type", "room", "nick", "text", "ref")} == {
            "type": "message", "room": room, "nick": "dana", "text": "hi", "ref": 7}


@pytest.mark.parametrize("server", SERVERS)
async def test_doc_example_serves_the_chat_at_chat(
    server: str, site_dir: Path, install_with_hosts: Install,
) -> None:
    install = install_with_hosts
    with serve_installed(install, server, "mysite:site", site_dir) as running:
        base = running.base
        async with httpx.AsyncClient(base_url=f"http://{base}", trust_env=False,
                                     timeout=STEP_TIMEOUT) as client:
            home = await client.get("/")
            assert (home.status_code, home.text) == (200, "my site; the chat is at /chat/\n")
            bare = await client.get("/chat")
            assert (bare.status_code, bare.headers["location"]) == (307, f"http://{base}/chat/")
            page = await client.get("/chat/")
            assert page.status_code == 200
            assert page.headers["content-type"].split(";")[0] == "text/html"
            assert page.content == install.wheel_file("frontend/index.html")
            style = await client.get("/chat/style.css")
            assert (style.status_code, style.content) == (
                200, install.wheel_file("frontend/style.css"))
            health = await client.get("/chat/healthz")
            assert (health.status_code, health.json()["status"]) == (200, "ok")
        await _chat(f"ws://{base}/chat/ws", "mounted")
    # The host's lifespan started the chat with CHAT_DB from the environment.
    assert (site_dir / "chat.db").is_file()


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
async def test_chat_runs_under_reference_servers(
    server: str, tmp_path: Path, install_with_hosts: Install,
) -> None:
    install = install_with_hosts
    with serve_installed(install, server, "app:chat", tmp_path) as running:
        base = running.base
        async with httpx.AsyncClient(base_url=f"http://{base}", trust_env=False,
                                     timeout=STEP_TIMEOUT) as client:
            page = await client.get("/")
            assert (page.status_code, page.content) == (
                200, install.wheel_file("frontend/index.html"))
            health = await client.get("/healthz")
            assert (health.status_code, health.json()["status"]) == (200, "ok")
        await _chat(f"ws://{base}/ws", "direct")
    assert (tmp_path / "chat.db").is_file()


async def test_root_path_behind_a_stripping_proxy(tmp_path: Path, install: Install) -> None:
    # docs/embedding.md: a proxy forwards /chat/ws as /ws; `--root-path /chat` tells the
    # server. The chat then answers the stripped paths (what such a proxy sends).
    with serve_installed(install, "wsrun", "app:chat", tmp_path,
                         args=["--root-path", "/chat"]) as running:
        base = running.base
        async with httpx.AsyncClient(base_url=f"http://{base}", trust_env=False,
                                     timeout=STEP_TIMEOUT) as client:
            health = await client.get("/healthz")
            assert (health.status_code, health.json()["status"]) == (200, "ok")
            page = await client.get("/")
            assert (page.status_code, page.content) == (
                200, install.wheel_file("frontend/index.html"))
        await _chat(f"ws://{base}/ws", "proxied")
