"""`wsrun --workers N` and `--reload` over real sockets: processes, faults, signals, metrics."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from tests.procs import ROOT, free_port

APPS = "tests.integration.worker_apps"
MAX_TRIES = 300  # connections tried before giving up on reaching every worker


class Supervised:
    """`python -m server ARGS` with its output collected line by line as it comes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 pass_fds: tuple[int, ...] = ()) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", *args], cwd=ROOT, pass_fds=pass_fds,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "WSRUN_PORT": str(self.port),
                 **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def count(self, pattern: str) -> int:
        with self.changed:
            return sum(1 for line in self.lines if re.search(pattern, line))

    def wait_for(self, pattern: str, times: int = 1, timeout: float = 30.0) -> list[str]:
        """Wait until `times` lines match the regex `pattern`; return the matches."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [line for line in self.lines if re.search(pattern, line)]
                if len(found) >= times:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"no {times} line(s) matching {pattern!r} in:\n"
                                         + "\n".join(self.lines))
                self.changed.wait(min(left, 0.5))

    def finish(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.finish(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def supervised() -> Iterator[list[Supervised]]:
    started: list[Supervised] = []
    yield started
    for running in started:
        running.stop()


def start(started: list[Supervised], *args: str, workers: int = 2, **kw: Any) -> Supervised:
    running = Supervised(*args, **kw)
    started.append(running)
    running.wait_for(r"Started server process \[\d+\]", times=workers)
    return running


def whoami(base: str, client: httpx.Client | None = None) -> dict[str, Any]:
    # A new connection each time (no keep-alive): each may land on another worker.
    reply = httpx.get(f"{base}/", headers={"connection": "close"}, timeout=10)
    assert reply.status_code == 200
    return reply.json()  # type: ignore[no-any-return]


def reach_every_worker(base: str, workers: int) -> dict[str, int]:
    """Worker id -> pid, from new connections until each worker has answered one."""
    seen: dict[str, int] = {}
    for _ in range(MAX_TRIES):
        me = whoami(base)
        seen[me["worker"]] = me["pid"]
        if len(seen) == workers:
            break
    return seen


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_each_worker_accepts_connections_and_knows_its_id(supervised: list[Supervised]) -> None:
    running = start(supervised, f"{APPS}:whoami", "--workers", "2")
    seen = reach_every_worker(running.base, 2)
    assert sorted(seen) == ["1", "2"]
    assert len(set(seen.values())) == 2
    for pid in seen.values():
        assert parent_of(pid) == running.proc.pid
    assert whoami(running.base)["workers"] == "2"
    assert running.count(r"wsrun running on http://127\.0\.0\.1:\d+ with 2 worker\(s\)") == 1


def test_killed_worker_is_restarted_and_its_successor_serves(
    supervised: list[Supervised],
) -> None:
    running = start(supervised, f"{APPS}:whoami", "--workers", "2")
    old = reach_every_worker(running.base, 2)["1"]
    os.kill(old, signal.SIGKILL)
    running.wait_for(rf"Worker 1 \[{old}\] died \(killed by SIGKILL\); restarting in 0\.1 s")
    [line] = running.wait_for(r"Worker 1 restarted \[\d+\]")
    new = int(re.findall(r"\[(\d+)\]", line)[0])
    assert new != old and parent_of(new) == running.proc.pid
    assert reach_every_worker(running.base, 2)["1"] == new


async def test_sigterm_closes_every_websocket_with_1001_and_exits_0(
    supervised: list[Supervised],
) -> None:
    running = start(supervised, f"{APPS}:whoami", "--workers", "2")
    url = f"ws://127.0.0.1:{running.port}/"
    clients, holders = [], set()
    for _ in range(MAX_TRIES):
        client = await ws_connect(url)
        clients.append(client)
        holders.add(json.loads(await client.recv())["worker"])
        if holders == {"1", "2"} and len(clients) >= 6:
            break
    assert holders == {"1", "2"}
    running.proc.send_signal(signal.SIGTERM)
    for client in clients:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(client.recv(), 15)
        assert client.close_code == 1001
    assert await asyncio.to_thread(running.finish) == 0
    assert running.count("Shutting down 2 worker") == 1
    assert running.count("Finished server process") == 2
    assert running.count("Traceback") == 0


def test_worker_that_hangs_on_shutdown_is_killed_after_the_timeout(
    supervised: list[Supervised],
) -> None:
    running = start(supervised, f"{APPS}:stuck_on_shutdown", "--workers", "2",
                    "--timeout-graceful-shutdown", "0.2")
    assert running.stop() == 0
    assert running.count(r"Worker [12] \[\d+\] did not stop within 2\.2 s: killed") == 2
    assert running.count("Stopped supervisor process") == 1


def error_lines(running: Supervised) -> list[str]:
    return [line for line in running.lines if "Error" in line or "Traceback" in line]


def test_app_that_cannot_be_imported_fails_once_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    running = Supervised("broken:app", "--workers", "3", "--app-dir", str(tmp_path))
    assert running.finish() == 1
    assert error_lines(running) == [
        """Error: error importing "broken": RuntimeError('boom at import')"""]
    assert running.lines[-1].startswith("Error: ")
    assert running.count("restarting") == 0


def test_worker_that_keeps_dying_at_startup_stops_the_supervisor(tmp_path: Path) -> None:
    (tmp_path / "dies.py").write_text("import os\nos._exit(7)\n")
    running = Supervised("dies:app", "--workers", "2", "--app-dir", str(tmp_path))
    assert running.finish() == 1
    assert running.lines[-1] == (
        "Error: worker 1 died 5 times during start-up (last: exit status 7)")
    assert running.count(r"Worker 1 \[\d+\] died during start-up \(exit status 7\)") == 5


def test_chat_refuses_several_workers_without_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CHAT_REDIS_URL"}
    running = Supervised("app:chat", "--workers", "2",
                         env={**env, "CHAT_DB": str(tmp_path / "chat.db")})
    assert running.finish() == 3
    assert error_lines(running) == [
        "Error: application startup failed: WSRUN_WORKERS=2: the chat's rooms would be split "
        "between 2 processes; set CHAT_REDIS_URL to share them, or run one worker"]
    assert running.count("restarting") == 0


def test_unix_socket_with_workers(supervised: list[Supervised], tmp_path: Path) -> None:
    path = tmp_path / "wsrun.sock"
    running = start(supervised, f"{APPS}:whoami", "--workers", "2", "--uds", str(path))
    seen: set[str] = set()
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        for _ in range(MAX_TRIES):
            seen.add(client.get("http://wsrun/", headers={"connection": "close"}).json()
                     ["worker"])
            if len(seen) == 2:
                break
    assert seen == {"1", "2"}
    assert running.stop() == 0
    assert not path.exists()


def test_inherited_fd_with_workers(supervised: list[Supervised]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        running = start(supervised, f"{APPS}:whoami", "--workers", "2",
                        "--fd", str(sock.fileno()), pass_fds=(sock.fileno(),))
    seen = reach_every_worker(f"http://127.0.0.1:{port}", 2)
    assert sorted(seen) == ["1", "2"]
    assert running.stop() == 0


HOT = """
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({{"type": "http.response.start", "status": 200, "headers": []}})
        await send({{"type": "http.response.body", "body": b"{version}"}})
"""


def test_reload_restarts_the_worker_when_a_file_changes(
    supervised: list[Supervised], tmp_path: Path,
) -> None:
    module = tmp_path / "hot.py"
    module.write_text(HOT.format(version="v1"))
    running = start(supervised, "hot:app", "--reload", "--reload-dir", str(tmp_path),
                    "--app-dir", str(tmp_path), workers=1)
    assert httpx.get(running.base).text == "v1"
    (tmp_path / "notes.txt").write_text("not a *.py file: ignored")
    module.write_text(HOT.format(version="v2"))
    running.wait_for(r"Changes detected in '.*hot\.py': reloading")
    running.wait_for(r"Started server process", times=2)
    assert httpx.get(running.base).text == "v2"
    assert running.count("notes.txt") == 0
    assert running.stop() == 0


def test_reload_with_workers_is_a_usage_error() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "server", "app:chat", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)

    done = run("--reload", "--workers", "2")
    assert done.returncode == run("--bogus").returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Usage: wsrun [OPTIONS] APP", "Try 'wsrun --help' for help.", "",
        "Error: --reload and --workers cannot be used together"]


def scrape(url: str) -> dict[str, float]:
    samples = {}
    for line in httpx.get(url).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_are_summed_across_workers(supervised: list[Supervised]) -> None:
    metrics_port = free_port()
    running = start(supervised, f"{APPS}:counted", "--workers", "2",
                    "--metrics-port", str(metrics_port))
    seen, requests = set(), 0
    while len(seen) < 2 or requests < 10:
        assert requests < MAX_TRIES
        reply = httpx.post(f"{running.base}/count", headers={"connection": "close"})
        seen.add(reply.json()["worker"])
        requests += 1
    server = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    assert server['wsrun_http_requests_total{status="200"}'] == requests
    assert server["wsrun_workers"] == 2
    assert server["wsrun_connections_open"] == 0
    app = scrape(f"{running.base}/metrics")
    assert app["chat_messages_total"] == requests


def test_reload_without_watchfiles_is_one_line() -> None:
    # The reload extra not installed: watchfiles cannot be imported.
    code = ("import sys; sys.modules['watchfiles'] = None; sys.argv[0] = 'wsrun'; "
            "from server.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code, "app:chat", "--reload"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: --reload needs the reload extra: pip install 'wsrun[reload]'"]


def test_help_lists_the_worker_options() -> None:
    done = subprocess.run([sys.executable, "-m", "server", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    for option in ("--workers", "--reload", "--reload-dir", "--reload-include",
                   "--reload-exclude"):
        assert option in done.stdout


def test_workers_shut_down_when_their_supervisor_is_killed(
    supervised: list[Supervised],
) -> None:
    running = start(supervised, f"{APPS}:whoami", "--workers", "2")
    pids = reach_every_worker(running.base, 2).values()
    running.proc.kill()  # no chance to stop its workers: they see their channel end
    running.proc.wait(30)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "Z" not in state(pid) for pid in pids):
        assert time.monotonic() < deadline, "orphaned workers still running"
        time.sleep(0.1)
    running.wait_for("Finished server process", times=2)


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


async def test_chat_with_redis_on_two_workers_reports_every_worker(
    supervised: list[Supervised], redis_server: Any, tmp_path: Path,
) -> None:
    running = start(supervised, "app:chat", "--workers", "2", "--no-access-log",
                    env={"CHAT_REDIS_URL": redis_server.url, "CHAT_DB": str(tmp_path / "c.db")})
    clients = [await ws_connect(f"ws://127.0.0.1:{running.port}/ws") for _ in range(6)]
    try:
        health: dict[int, dict[str, Any]] = {}
        async with httpx.AsyncClient() as http:
            for _ in range(MAX_TRIES):
                reply = (await http.get(f"{running.base}/healthz",
                                        headers={"connection": "close"})).json()
                health[reply["worker"]] = reply
                if len(health) == 2:
                    break
            assert sorted(health) == [1, 2]
            assert {parent_of(h["pid"]) for h in health.values()} == {running.proc.pid}
            assert sum(h["connections"] for h in health.values()) == 6
            for _ in range(4):  # whichever worker answers, it reports both
                text = (await http.get(f"{running.base}/metrics",
                                       headers={"connection": "close"})).text
                assert "chat_connections 6.0" in text.splitlines()
    finally:
        for client in clients:
            await client.close()
