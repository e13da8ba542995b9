"""The `wsrun` command as users run it: options, env vars, one-line errors, signals, TLS."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from tests.procs import ROOT, free_port, serve, stop, wait_for_port

WSRUN = [sys.executable, "-m", "server"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WSRUN, *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ") and text in lines[0]


def test_version() -> None:
    done = run_cli("--version")
    assert (done.returncode, done.stdout.strip()) == (0, "wsrun 0.1.0")


def test_help_lists_uvicorn_style_options() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for option in (
        "--host",
        "--port",
        "--uds",
        "--fd",
        "--ws-max-size",
        "--ws-ping-interval",
        "--timeout-graceful-shutdown",
        "--limit-concurrency",
        "--root-path",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "--ssl-keyfile",
        "--log-config",
        "--lifespan",
        "--app-dir",
        "--factory",
        "--access-log",
    ):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["app:chat", "--port", "abc"], "Invalid value for '--port': 'abc' is not a valid integer"),
        (["app:chat", "--bogus"], "No such option '--bogus'."),
        ([], "Missing argument 'APP'."),
        (["app:chat", "--lifespan", "sometimes"], "'sometimes' is not one of"),
        (["app:chat", "--loop", "trio"], "'trio' is not one of 'auto', 'asyncio', 'uvloop'"),
    ],
)
def test_usage_mistakes_exit_2_with_clicks_usage_lines(args: list[str], text: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[:2] == ["Usage: wsrun [OPTIONS] APP", "Try 'wsrun --help' for help."]
    assert lines[2] == ""
    assert lines[3].startswith("Error: ") and text in lines[3], done.stderr
    assert len(lines) == 4


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["nowhere:app"], 'could not import module "nowhere"'),
        (["app:nothing_here"], 'attribute "nothing_here" not found in module "app"'),
        (["app"], 'app must be given as "module:attribute"'),
    ],
)
def test_app_mistakes_print_one_line_and_exit_1(args: list[str], text: str) -> None:
    assert_one_line_error(run_cli(*args), text)


def test_an_app_failing_in_its_own_import_shows_its_traceback_then_one_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "nested.py").write_text(
        "import helper\n\napp = helper.build()\n", encoding="utf-8")
    (tmp_path / "helper.py").write_text(
        "def build():\n    return undefined_name\n", encoding="utf-8")
    done = run_cli("nested:app", "--app-dir", str(tmp_path))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    frames = [line.strip() for line in lines if line.strip().startswith("File ")]
    # the app's own frames, from its module down to the failing line; none of wsrun's loader
    assert frames == [
        f'File "{tmp_path / "nested.py"}", line 3, in <module>',
        f'File "{tmp_path / "helper.py"}", line 2, in build',
    ]
    assert "NameError: name 'undefined_name' is not defined" in lines
    assert lines[-1].startswith('Error: error importing "nested"')
    assert "NameError" in lines[-1]


@pytest.mark.parametrize(("loop", "expected"), [("asyncio", "_UnixSelectorEventLoop"),
                                                ("uvloop", "Loop"), ("auto", "Loop")])
def test_loop_option_picks_the_event_loop(loop: str, expected: str) -> None:
    with serve("wsrun", "tests.integration.apps:loop_name", args=["--loop", loop]) as addr:
        assert httpx.get(f"http://{addr}/").text == expected


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("tests.integration.apps:echo", "--port", str(port))
    assert_one_line_error(done, "address already in use")


def test_failed_lifespan_startup_exits_with_the_apps_message() -> None:
    done = run_cli("tests.integration.apps:failing_startup", "--port", str(free_port()))
    assert done.returncode == 3
    assert "database unreachable" in done.stderr.strip().splitlines()[-1]


def test_options_come_from_wsrun_environment_variables() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*WSRUN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "WSRUN_APP": "tests.integration.apps:scope_app",
            "WSRUN_PORT": str(port),
            "WSRUN_ROOT_PATH": "/env",
        },
    )
    try:
        wait_for_port(port, proc)
        assert httpx.get(f"http://127.0.0.1:{port}/x").json()["root_path"] == "/env"
    finally:
        assert stop(proc) == 0


def test_sigterm_closes_websockets_with_1001_runs_lifespan_shutdown_and_exits_0(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "lifespan.txt"
    port = free_port()
    proc = subprocess.Popen(
        [*WSRUN, "tests.integration.apps:marker_factory", "--factory", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MARKER": str(marker)},
    )
    wait_for_port(port, proc)

    async def main() -> tuple[int | None, str | None]:
        async with ws_connect(f"ws://127.0.0.1:{port}/record") as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason

    assert asyncio.run(main()) == (1001, "server shutting down")
    assert proc.wait(10) == 0
    assert marker.read_text() == "startup\nshutdown\n"
    output = proc.stdout.read().decode() if proc.stdout else ""
    proc.stdout.close() if proc.stdout else None
    assert "Traceback" not in output


def test_unix_domain_socket(tmp_path: Path) -> None:
    path = tmp_path / "wsrun.sock"
    proc = subprocess.Popen(
        [*WSRUN, "tests.integration.apps:echo", "--uds", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
            assert client.post("http://wsrun/", content=b"over uds").content == b"over uds"
    finally:
        assert stop(proc) == 0


def test_fd_serves_an_inherited_socket() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with sock:
        proc = subprocess.Popen(
            [*WSRUN, "tests.integration.apps:echo", "--fd", str(sock.fileno())],
            cwd=ROOT,
            pass_fds=[sock.fileno()],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc)
        assert httpx.post(f"http://127.0.0.1:{port}/", content=b"fd").content == b"fd"
    finally:
        assert stop(proc) == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def test_tls_serves_https_and_wss(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    context = ssl.create_default_context(cafile=str(cert))
    with serve(
        "wsrun",
        "tests.integration.apps:scope_app",
        args=["--ssl-keyfile", str(key), "--ssl-certfile", str(cert)],
    ) as addr:
        assert httpx.get(f"https://{addr}/", verify=context).json()["scheme"] == "https"

        async def main() -> str:
            async with ws_connect(f"wss://{addr}/", ssl=context) as ws:
                return str(await ws.recv())

        assert '"scheme": "wss"' in asyncio.run(main())


def test_proxy_headers_from_a_trusted_proxy() -> None:
    with serve("wsrun", "tests.integration.apps:scope_app") as addr:
        scope = httpx.get(
            f"http://{addr}/",
            headers={"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "https"},
        ).json()
    assert (scope["client"][0], scope["scheme"]) == ("203.0.113.7", "https")


def test_proxy_headers_ignored_from_an_untrusted_peer() -> None:
    with serve(
        "wsrun", "tests.integration.apps:scope_app", args=["--forwarded-allow-ips", "10.0.0.1"]
    ) as addr:
        scope = httpx.get(f"http://{addr}/", headers={"X-Forwarded-For": "203.0.113.7"}).json()
    assert scope["client"][0] == "127.0.0.1"


@pytest.mark.parametrize(("flag", "logged"), [("--access-log", True), ("--no-access-log", False)])
def test_access_log_lines(flag: str, logged: bool) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*WSRUN, "tests.integration.apps:echo", "--port", str(port), flag],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc)
    httpx.post(f"http://127.0.0.1:{port}/path?q=1", content=b"x")
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert f"wsrun running on http://127.0.0.1:{port}" in output.decode()
    assert (
        "127.0.0.1:" in output.decode() and '"POST /path?q=1 HTTP/1.1" 200' in output.decode()
    ) is logged
