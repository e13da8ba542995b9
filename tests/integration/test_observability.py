"""`--metrics-port` and `--log-format` on a real `wsrun` process.

Known traffic goes to the app's port (HTTP with httpx, WebSocket with the websockets
client, bad bytes from raw sockets); the figures are then scraped from the metrics port
and parsed with prometheus_client's own text parser, and compared exactly. Log lines are
read from the process's stderr once it has stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as plain_connect

from tests.procs import ROOT, free_port, server_command, stop, wait_for_port

ECHO = "tests.integration.apps:echo"
BEHAVIOURS = "tests.integration.apps:behaviours"
MISSING_EXTRA = "Error: --metrics-port needs the metrics extra: pip install 'wsrun[metrics]'"

# Runs the CLI in-process with prometheus_client made unimportable: a real run of `wsrun`
# on an interpreter where the metrics extra is not installed.
BLOCK_PROMETHEUS = """
import sys
from importlib.abc import MetaPathFinder

class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
from server.cli import main
main(sys.argv[1:])
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def ws_connect(uri: str) -> ClientConnection:
    """A websockets client that does not offer permessage-deflate: the byte figures below
    are frame payloads on the wire, so they equal the messages' sizes only uncompressed."""
    return plain_connect(uri, compression=None)


@dataclass
class Running:
    addr: str  # "127.0.0.1:PORT" of the app
    metrics: str  # "127.0.0.1:PORT" of the metrics listener
    proc: subprocess.Popen[bytes]
    log: Path

    def scrape(self) -> Samples:
        response = httpx.get(f"http://{self.metrics}/metrics", timeout=10)
        assert response.status_code == 200
        samples: Samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    def value(self, name: str, **labels: str) -> float | None:
        return self.scrape().get((name, frozenset(labels.items())))

    def wait_for(self, name: str, expected: float, **labels: str) -> Samples:
        """Scrape until `name` reads `expected` (the server ends a connection a moment after
        the client sees it end); returns that scrape, or the last one after 10 s."""
        deadline = time.monotonic() + 10
        while True:
            samples = self.scrape()
            if samples.get((name, frozenset(labels.items()))) == expected:
                return samples
            if time.monotonic() > deadline:
                return samples
            time.sleep(0.02)

    def stop(self) -> list[str]:
        """Stop the server; return its output lines."""
        stop(self.proc)
        return self.log.read_text().splitlines()


@contextlib.contextmanager
def wsrun(
    tmp_path: Path, app: str, args: Sequence[str] = (), *, command: list[str] | None = None,
    metrics: bool = True, env: dict[str, str] | None = None,
) -> Iterator[Running]:
    """Run wsrun on free ports, its stdout and stderr going to a file."""
    port, metrics_port = free_port(), free_port()
    extra = ["--metrics-port", str(metrics_port)] if metrics else []
    cmd = ([*command, app, "--port", str(port), *extra, *args] if command
           else server_command("wsrun", app, port, [*extra, *args]))
    log = tmp_path / f"wsrun-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    try:
        wait_for_port(port, proc)
        yield Running(f"127.0.0.1:{port}", f"127.0.0.1:{metrics_port}", proc, log)
    finally:
        stop(proc)


def raw_exchange(addr: str, request: bytes) -> bytes:
    """Send bytes, read until the server closes."""
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def upgrade_request(path: str, version: bytes = b"13") -> bytes:
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: " + version + b"\r\n\r\n")


def echo_three(addr: str, check: Callable[[], None] | None = None) -> None:
    """One WebSocket: 3 text messages of 5 bytes echoed, then closed with 1000."""
    with ws_connect(f"ws://{addr}/ws") as ws:
        for word in ("alpha", "bravo", "delta"):
            ws.send(word)
            assert ws.recv(timeout=10) == word
        if check is not None:
            check()
        ws.close(1000)


# -- metrics ---------------------------------------------------------------------------------


def test_websocket_session_figures(tmp_path: Path) -> None:
    with wsrun(tmp_path, ECHO) as server:
        before = server.scrape()
        assert before[("wsrun_websocket_handshakes_total",
                       frozenset({("outcome", "accepted"), ("status", "101")}))] == 0

        def while_open() -> None:
            # Live figures: the open session's own counters are read at scrape time.
            samples = server.scrape()
            assert samples[("wsrun_connections_open", frozenset())] == 1
            assert samples[("wsrun_websocket_connections_open", frozenset())] == 1
            assert samples[("wsrun_websocket_received_frames_total", frozenset())] == 3
            assert samples[("wsrun_websocket_received_bytes_total", frozenset())] == 15
            assert not any(name == "wsrun_websocket_closes_total" for name, _ in samples)

        echo_three(server.addr, while_open)
        samples = server.wait_for("wsrun_connections_open", 0)
        figures = {(name, tuple(sorted(labels))): value for (name, labels), value in
                   samples.items() if name.startswith("wsrun_")}
        assert figures == {
            ("wsrun_connections_open", ()): 0,
            ("wsrun_websocket_connections_open", ()): 0,
            ("wsrun_websocket_handshakes_total", (("outcome", "accepted"), ("status", "101"))): 1,
            ("wsrun_websocket_received_frames_total", ()): 3,
            ("wsrun_websocket_sent_frames_total", ()): 3,
            ("wsrun_websocket_received_bytes_total", ()): 15,
            ("wsrun_websocket_sent_bytes_total", ()): 15,
            ("wsrun_websocket_closes_total", (("code", "1000"),)): 1,
            ("wsrun_write_pauses_total", ()): 0,
        }
        # Scraped again: reading the figures changes none of them (no double folding).
        again = server.scrape()
        assert {key: value for key, value in again.items() if key[0].startswith("wsrun_")} \
            == {key: value for key, value in samples.items() if key[0].startswith("wsrun_")}


def test_binary_bytes_and_dropped_connection(tmp_path: Path) -> None:
    with wsrun(tmp_path, ECHO) as server:
        with ws_connect(f"ws://{server.addr}/ws") as ws:
            ws.send(b"\x00" * 1000)
            assert ws.recv(timeout=10) == b"\x00" * 1000
            ws.close(1001)
        # A session whose TCP connection drops without a close frame ends with 1006.
        host, port = server.addr.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(upgrade_request("/ws"))
            assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
        samples = server.wait_for("wsrun_websocket_closes_total", 1, code="1006")
        assert samples[("wsrun_websocket_closes_total", frozenset({("code", "1001")}))] == 1
        assert samples[("wsrun_websocket_closes_total", frozenset({("code", "1006")}))] == 1
        assert samples[("wsrun_websocket_received_bytes_total", frozenset())] == 1000
        assert samples[("wsrun_websocket_sent_bytes_total", frozenset())] == 1000
        assert samples[("wsrun_websocket_handshakes_total",
                        frozenset({("outcome", "accepted"), ("status", "101")}))] == 2


def test_http_responses_by_status(tmp_path: Path) -> None:
    with wsrun(tmp_path, BEHAVIOURS) as server:
        with httpx.Client(base_url=f"http://{server.addr}", timeout=10) as client:
            assert client.get("/sent").status_code == 200
            assert client.post("/echo", content=b"12345").content == b"12345"
            assert client.get("/crash").status_code == 500
        assert raw_exchange(server.addr, b"GET / HTTP/1.1\r\nHost x\r\n\r\n").startswith(
            b"HTTP/1.1 400 ")
        assert raw_exchange(server.addr, b"GET / HTTP/3.0\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 505 ")
        samples = server.wait_for("wsrun_connections_open", 0)
        statuses = {dict(labels)["status"]: value for (name, labels), value in samples.items()
                    if name == "wsrun_http_requests_total"}
        assert statuses == {"200": 2, "500": 1, "400": 1, "505": 1}
        assert samples[("wsrun_websocket_handshakes_total",
                        frozenset({("outcome", "accepted"), ("status", "101")}))] == 0


def test_rejected_handshakes_by_status(tmp_path: Path) -> None:
    with wsrun(tmp_path, BEHAVIOURS) as server:
        # The app closes before accepting: 403.
        assert raw_exchange(server.addr, upgrade_request("/reject")).startswith(
            b"HTTP/1.1 403 ")
        # The app answers with its own response (the denial extension): its status.
        assert raw_exchange(server.addr, upgrade_request("/deny")).startswith(b"HTTP/1.1 401 ")
        assert raw_exchange(server.addr, upgrade_request("/crash-before-accept")).startswith(
            b"HTTP/1.1 500 ")
        # Accepted, then closed by the app with 4000.
        with ws_connect(f"ws://{server.addr}/close-4000") as ws:
            with pytest.raises(Exception):  # noqa: B017 - ConnectionClosedOK: the close code
                ws.recv(timeout=10)
            assert ws.close_code == 4000
        samples = server.wait_for("wsrun_connections_open", 0)
        handshakes = {tuple(sorted(labels)): value for (name, labels), value in samples.items()
                      if name == "wsrun_websocket_handshakes_total"}
        assert handshakes == {
            (("outcome", "accepted"), ("status", "101")): 1,
            (("outcome", "rejected"), ("status", "401")): 1,
            (("outcome", "rejected"), ("status", "403")): 1,
            (("outcome", "rejected"), ("status", "500")): 1,
        }
        closes = {dict(labels)["code"]: value for (name, labels), value in samples.items()
                  if name == "wsrun_websocket_closes_total"}
        assert closes == {"4000": 1}


def test_handshake_refused_by_the_server_counts_as_rejected(tmp_path: Path) -> None:
    with wsrun(tmp_path, ECHO) as server:
        # RFC 6455 4.2.2: a version the server does not speak gets 426 Upgrade Required.
        assert raw_exchange(server.addr, upgrade_request("/ws", b"8")).startswith(
            b"HTTP/1.1 426 ")
        samples = server.wait_for("wsrun_connections_open", 0)
        assert samples.get(("wsrun_websocket_handshakes_total",
                            frozenset({("outcome", "rejected"), ("status", "426")}))) == 1


def test_text_payload_counted_in_bytes(tmp_path: Path) -> None:
    with wsrun(tmp_path, ECHO) as server:
        with ws_connect(f"ws://{server.addr}/ws") as ws:
            ws.send("\u00e9" * 5)  # 5 characters, 10 bytes of UTF-8 payload
            assert ws.recv(timeout=10) == "\u00e9" * 5
            ws.close(1000)
        samples = server.wait_for("wsrun_connections_open", 0)
        assert samples[("wsrun_websocket_received_bytes_total", frozenset())] == 10
        assert samples[("wsrun_websocket_sent_bytes_total", frozenset())] == 10


def test_write_pauses_counted(tmp_path: Path) -> None:
    with wsrun(tmp_path, BEHAVIOURS) as server:
        assert server.value("wsrun_write_pauses_total") == 0
        host, port = server.addr.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            # /flood sends until the socket's buffers fill: nothing here reads them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(upgrade_request("/flood"))
            # At least one pause: the kernel may drain the first buffers into ours and let
            # writing resume (and pause again) before everything is full.
            deadline = time.monotonic() + 10
            while (pauses := server.value("wsrun_write_pauses_total")) == 0:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        assert pauses is not None and pauses >= 1


def test_metrics_listener_speaks_http(tmp_path: Path) -> None:
    with wsrun(tmp_path, ECHO) as server:
        with httpx.Client(base_url=f"http://{server.metrics}", timeout=10) as client:
            first = client.get("/metrics")
            assert first.status_code == 200
            assert first.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            # A scraper asking for OpenMetrics gets it (prometheus_client's negotiation).
            open_metrics = client.get(
                "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
            assert open_metrics.headers["content-type"].startswith(
                "application/openmetrics-text; version=1.0.0")
            assert open_metrics.text.endswith("# EOF\n")
            assert "# TYPE wsrun_http_requests_total counter" in first.text
            head = client.head("/metrics?x=1")
            assert (head.status_code, head.content) == (200, b"")
            assert client.get("/").status_code == 404
            post = client.post("/metrics", content=b"x")
            assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")
            # One keep-alive connection served all of them, and none counts as the app's.
            assert client.get("/metrics").status_code == 200
        assert raw_exchange(server.metrics, b"GET /metrics HTTP/1.1\r\nHost x\r\n\r\n") \
            .startswith(b"HTTP/1.1 400 ")
        assert raw_exchange(server.metrics, b"GET /metrics HTTP/1.0\r\n\r\n").startswith(
            b"HTTP/1.1 200 ")
        # Pipelined requests are answered in order; "connection: close" ends the connection.
        pipelined = raw_exchange(server.metrics, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert re.findall(rb"HTTP/1\.1 \d+ [A-Za-z ]+\r\n", pipelined) == [
            b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 404 Not Found\r\n"]
        samples = server.scrape()
        assert samples[("wsrun_connections_open", frozenset())] == 0
        assert not any(name == "wsrun_http_requests_total" for name, _ in samples)
        assert samples[("process_open_fds", frozenset())] > 0
        metrics_port = int(server.metrics.split(":")[1])
        lines = server.stop()
    assert f"INFO      Metrics at http://127.0.0.1:{metrics_port}/metrics" in lines
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", metrics_port), timeout=5).close()


def test_metrics_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*server_command("wsrun", ECHO, free_port()), "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "address already in use" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_missing_metrics_extra_is_a_one_line_error() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_PROMETHEUS, ECHO, "--port", str(free_port()),
         "--metrics-port", str(free_port())],
        capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", MISSING_EXTRA + "\n")


def test_server_runs_without_the_metrics_extra(tmp_path: Path) -> None:
    command = [sys.executable, "-c", BLOCK_PROMETHEUS]
    with wsrun(tmp_path, ECHO, command=command, metrics=False) as server:
        response = httpx.post(f"http://{server.addr}/", content=b"hi", timeout=10)
        assert (response.status_code, response.content) == (200, b"hi")
        echo_three(server.addr)
        assert server.stop()[-1] == f"INFO      Finished server process [{server.proc.pid}]"


# -- logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "env"])
def test_json_log_lines(tmp_path: Path, how: str) -> None:
    args = ["--log-format", "json"] if how == "option" else []
    env = {"WSRUN_LOG_FORMAT": "json"} if how == "env" else {}
    with wsrun(tmp_path, ECHO, args, metrics=False, env=env) as server:
        response = httpx.post(f"http://{server.addr}/up?room=1", content=b"s3cr3t-body",
                              timeout=10)
        assert response.status_code == 200
        with ws_connect(f"ws://{server.addr}/ws?room=2") as ws:
            for word in ("alpha", "s3cr3"):
                ws.send(word)
                assert ws.recv(timeout=10) == word
            ws.close(1000)
        lines = server.stop()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert set(record) >= {"ts", "level", "logger", "message"}
        assert record["ts"].endswith("Z")
        ts = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
        assert ts.utcoffset() == timedelta(0)
        assert record["logger"] in ("wsrun.error", "wsrun.access")
    assert [r["message"] for r in records if r["logger"] == "wsrun.error"][-1].startswith(
        "Finished server process")
    access = [r for r in records if r["logger"] == "wsrun.access"]
    assert [r["message"].split(" - ", 1)[1] for r in access] == [
        '"POST /up?room=1 HTTP/1.1" 200',
        '"WebSocket /ws?room=2" [accepted]',
        '"WebSocket /ws?room=2" closed 1000',
    ]
    http, _, closed = access
    client = http["client"]
    assert client.startswith("127.0.0.1:") and http["message"].startswith(client + " - ")
    assert isinstance(http["duration_ms"], (int, float)) and http["duration_ms"] >= 0
    del http["ts"], http["duration_ms"]
    assert http == {"level": "INFO", "logger": "wsrun.access", "message": http["message"],
                    "client": client, "method": "POST", "path": "/up?room=1",
                    "http_version": "1.1", "status": 200, "bytes_out": 11}
    assert isinstance(closed["duration_ms"], (int, float)) and closed["duration_ms"] >= 0
    del closed["ts"], closed["duration_ms"], closed["client"]
    assert closed == {"level": "INFO", "logger": "wsrun.access", "message": closed["message"],
                      "path": "/ws?room=2", "close_code": 1000, "bytes_in": 10, "bytes_out": 10,
                      "frames_in": 2, "frames_out": 2}
    # No message or body text at info level.
    assert not any("s3cr3" in line for line in lines)


def test_json_log_of_an_app_crash_is_one_line(tmp_path: Path) -> None:
    with wsrun(tmp_path, BEHAVIOURS, ["--log-format", "json"], metrics=False) as server:
        assert httpx.get(f"http://{server.addr}/crash", timeout=10).status_code == 500
        lines = server.stop()
    records = [json.loads(line) for line in lines]
    crash = [r for r in records if r["level"] == "ERROR"]
    assert len(crash) == 1
    assert (crash[0]["logger"], crash[0]["message"]) == (
        "wsrun.error", "Exception in ASGI application")
    assert crash[0]["exc_info"].startswith("Traceback (most recent call last):\n")
    assert crash[0]["exc_info"].endswith("\nRuntimeError: boom")
    assert [r["status"] for r in records if r["logger"] == "wsrun.access"] == [500]


def test_text_log_lines_are_the_default(tmp_path: Path) -> None:
    with wsrun(tmp_path, ECHO, metrics=False) as server:
        assert httpx.get(f"http://{server.addr}/x?q=1", timeout=10).status_code == 200
        lines = server.stop()
    access = [line for line in lines if '"GET /x?q=1 HTTP/1.1" 200' in line]
    assert len(access) == 1
    assert access[0].startswith("INFO      127.0.0.1:")
    assert not any(line.startswith("{") for line in lines)


def test_bad_log_format_is_a_usage_error() -> None:
    done = subprocess.run([*server_command("wsrun", ECHO, free_port()), "--log-format", "xml"],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("Usage: wsrun [OPTIONS] APP\nTry 'wsrun --help' for help.\n\n"
                           "Error: Invalid value for '--log-format': "
                           "'xml' is not one of 'text', 'json'.\n")
