"""docs/embedding.md's FastAPI example, executed: the chat mounted at /chat in a FastAPI
site, served by wsrun and by uvicorn."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.procs import ROOT, serve

DOC = ROOT / "docs" / "embedding.md"


def fastapi_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    (example,) = [b for b in blocks if "from fastapi import FastAPI" in b]
    return example


async def chat(addr: str) -> dict[str, object]:
    async with ws_connect(f"ws://{addr}/chat/ws", subprotocols=["chat.v1"]) as ws:
        await ws.send(json.dumps({"type": "join", "room": "fast", "nick": "api"}))
        assert json.loads(await ws.recv())["type"] == "joined"
        await ws.send(json.dumps({"type": "say", "room": "fast", "text": "hello", "ref": "f1"}))
        return json.loads(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[no-any-return]


@pytest.mark.parametrize("server", ["wsrun", "uvicorn"])
def test_fastapi_example_serves_the_chat_at_chat(server: str, tmp_path: Path) -> None:
    (tmp_path / "fastsite.py").write_text(fastapi_example())
    with serve(server, "fastsite:site", args=["--app-dir", str(tmp_path)],
               env={"CHAT_DB": str(tmp_path / "chat.db")}) as addr:
        page = httpx.get(f"http://{addr}/chat/", trust_env=False)
        assert page.status_code == 200
        assert page.content == (ROOT / "frontend" / "index.html").read_bytes()
        assert httpx.get(f"http://{addr}/chat/healthz", trust_env=False).json()["status"] == "ok"
        message = asyncio.run(chat(addr))
    assert {k: message[k] for k in ("type", "room", "nick", "text", "ref")} == {
        "type": "message", "room": "fast", "nick": "api", "text": "hello", "ref": "f1"}
    assert (tmp_path / "chat.db").is_file()  # the site's lifespan started the chat's store
