"""The wheel, installed for real: what `pip install wsrun` (and the image) gives an operator.

The `install` fixture (conftest.py, installed.py) builds the wheel from the Docker build
context and installs it with its dependencies into a fresh virtualenv; the servers run
from that venv in empty directories outside the source tree. Checked here: the wheel's
contents and metadata, imports resolving into the venv, `wsrun --version`, the page and
every asset, /healthz, a chat over a WebSocket with history from CHAT_DB, the image's
HEALTHCHECK command, and SIGTERM -> close 1001 -> exit 0.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.packaging.dockerfile import context_files, parse, stages
from tests.packaging.installed import ROOT, Install, Running, run, serve_installed
from tests.procs import free_port

PACKAGES = ("server", "app", "frontend")
STEP_TIMEOUT = 10.0  # seconds for any one network exchange with the server


@pytest.fixture
def server(install: Install, tmp_path: Path) -> Iterator[Running]:
    """`wsrun app:chat` of the venv, in an empty directory, with CHAT_DB in it."""
    cwd = tmp_path / "run"
    cwd.mkdir()
    with serve_installed(install, "wsrun", "app:chat", cwd) as running:
        yield running


def _expected_files(package: str) -> set[str]:
    """What the wheel must carry of `package`, as the build context has it: the page's
    every file (package-data), the Python packages' modules (not, say, C sources)."""
    return {f for f in context_files(ROOT) if f.startswith(package + "/")
            and (package == "frontend" or f.endswith(".py"))}


# -- the wheel ------------------------------------------------------------------------


def test_wheel_contains_server_app_and_every_page_file(install: Install) -> None:
    with zipfile.ZipFile(install.wheel) as wheel:
        names = set(wheel.namelist())
    for package in PACKAGES:
        expected = _expected_files(package)
        assert expected, package
        assert expected <= names, sorted(expected - names)
    assert {"server/__init__.py", "server/__main__.py", "server/cli.py", "app/__init__.py",
            "frontend/index.html"} <= names
    # Only the three packages and the metadata: no tests, bench or local state.
    name, version = install.wheel.name.split("-")[:2]
    assert {n.split("/", 1)[0] for n in names} == {*PACKAGES, f"{name}-{version}.dist-info"}


def test_wheel_metadata_declares_the_command_and_runtime_dependencies(install: Install) -> None:
    with zipfile.ZipFile(install.wheel) as wheel:
        info = next(n.split("/")[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        metadata = wheel.read(f"{info}/METADATA").decode()
    assert re.search(r"^wsrun = server\.cli:main$", entry_points, re.MULTILINE), entry_points
    requires = {re.split(r"[ <>=;\[]", line.removeprefix("Requires-Dist: "))[0].lower()
                for line in metadata.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert {"click", "msgspec", "prometheus-client", "uvloop"} <= requires


def test_installed_packages_are_imported_from_the_venv(install: Install, tmp_path: Path) -> None:
    code = ("import importlib.resources, json, app, server, frontend; "
            "print(json.dumps([app.__file__, server.__file__, "
            "str(importlib.resources.files('frontend').joinpath('index.html'))]))")
    out = run([install.bin / "python", "-c", code], env=install.env, cwd=tmp_path).stdout
    site = (install.venv / "lib").resolve()
    for path in json.loads(out):
        assert Path(path).resolve().is_relative_to(site), path


def test_installed_wsrun_version_is_the_wheels(install: Install, tmp_path: Path) -> None:
    version = install.wheel.name.split("-")[1]
    out = run([install.bin / "wsrun", "--version"], env=install.env, cwd=tmp_path).stdout
    assert out == f"wsrun {version}\n"


# -- the installed server -------------------------------------------------------------


def test_serves_the_page_from_the_installed_wheel(install: Install, server: Running) -> None:
    with httpx.Client(base_url=f"http://{server.base}", trust_env=False,
                      timeout=STEP_TIMEOUT) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].split(";")[0] == "text/html"
        assert page.content == install.wheel_file("frontend/index.html")
        # Every asset of the page is in the wheel and served byte for byte; the package's
        # Python files are in the wheel but not served (app/static.py: the page's files only).
        for rel in sorted(_expected_files("frontend")):
            response = client.get("/" + rel.removeprefix("frontend/"))
            if rel.endswith(".py"):
                assert (response.status_code, response.content) == (404, b"not found\n"), rel
                continue
            assert (response.status_code, response.content) == (
                200, install.wheel_file(rel)), rel


def test_healthz_answers_200_json(server: Running) -> None:
    with httpx.Client(trust_env=False, timeout=STEP_TIMEOUT) as client:
        response = client.get(f"http://{server.base}/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status"] == "ok"


async def _request(ws: ClientConnection, request: dict[str, Any]) -> dict[str, Any]:
    async with asyncio.timeout(STEP_TIMEOUT):
        await ws.send(json.dumps(request))
        reply: dict[str, Any] = json.loads(await ws.recv())
    return reply


async def test_chat_over_websocket_chat_v1(server: Running) -> None:
    uri = f"ws://{server.base}/ws"
    async with asyncio.timeout(STEP_TIMEOUT), connect(uri, subprotocols=["chat.v1"]) as alice:
        assert alice.subprotocol == "chat.v1"
        joined = await _request(alice, {"type": "join", "room": "ops", "nick": "alice"})
        assert {k: joined[k] for k in ("type", "room", "nick", "members", "history")} == {
            "type": "joined", "room": "ops", "nick": "alice", "members": ["alice"],
            "history": []}
        said = await _request(
            alice, {"type": "say", "room": "ops", "text": "hello from the wheel", "ref": "r-1"})
        ts = said.pop("ts")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts), ts
        assert isinstance(said["id"], int) and said["id"] >= 1
        assert said == {"type": "message", "id": said["id"], "room": "ops", "nick": "alice",
                        "text": "hello from the wheel", "ref": "r-1"}
    # The message was stored in CHAT_DB: a later member gets it as history.
    async with asyncio.timeout(STEP_TIMEOUT), connect(uri, subprotocols=["chat.v1"]) as bob:
        joined = await _request(bob, {"type": "join", "room": "ops", "nick": "bob"})
        assert [(m["id"], m["nick"], m["text"]) for m in joined["history"]] == [
            (said["id"], "alice", "hello from the wheel")]
    assert (server.cwd / "chat.db").is_file()


def _healthcheck_argv(install: Install) -> list[str]:
    """The image's HEALTHCHECK command, run with the venv's python."""
    runtime = stages(parse((ROOT / "Dockerfile").read_text()))[-1]
    (check,) = runtime.all("HEALTHCHECK")
    argv = parse(check.args)[0].exec_form()  # "CMD [...]" parses as a CMD instruction
    assert argv is not None and argv[0] == "python"
    return [str(install.bin / "python"), *argv[1:]]


def test_image_healthcheck_passes_while_serving(install: Install, server: Running) -> None:
    env = {**install.env, "HEALTHCHECK_URL": f"http://{server.base}/healthz"}
    result = subprocess.run(_healthcheck_argv(install), env=env, cwd=server.cwd,
                            check=False, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_image_healthcheck_fails_when_nothing_listens(install: Install, tmp_path: Path) -> None:
    env = {**install.env, "HEALTHCHECK_URL": f"http://127.0.0.1:{free_port()}/healthz"}
    result = subprocess.run(_healthcheck_argv(install), env=env, cwd=tmp_path,
                            check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "Connection refused" in result.stderr


async def test_sigterm_closes_websockets_with_1001_and_exits_0(server: Running) -> None:
    uri = f"ws://{server.base}/ws"
    async with asyncio.timeout(STEP_TIMEOUT), connect(uri, subprotocols=["chat.v1"]) as ws:
        joined = await _request(ws, {"type": "join", "room": "ops", "nick": "carol"})
        assert joined["type"] == "joined"
        server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    # RFC 6455 7.4.1: "1001 indicates that an endpoint is "going away", such as a server
    # going down".
    assert closed.value.rcvd.code == 1001
    # The graceful shutdown is bounded by --timeout-graceful-shutdown (5 s by default).
    assert await asyncio.to_thread(server.proc.wait, 15) == 0
