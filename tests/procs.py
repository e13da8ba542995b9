"""Start real server processes on free loopback ports for tests.

`serve("wsrun", "app:chat")` runs `wsrun app:chat --port N` in a subprocess, waits until
it accepts TCP connections, yields "127.0.0.1:N", then stops it with SIGTERM.
The same call with "uvicorn" or "hypercorn" runs the reference servers on the same app,
so one scenario can be parametrized over servers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Every test client comes from 127.0.0.1: the chat's per-address limits (defaults 100
# messages / 10 s, 60 connections / 60 s) would throttle whole test modules as one abusive
# client. Scenarios that test those limits set their own.
LOOPBACK_CHAT_LIMITS: dict[str, str] = {
    "CHAT_ADDRESS_RATE": "1000000/1", "CHAT_ADDRESS_CONNECT_RATE": "1000000/1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def server_command(server: str, app: str, port: int, args: Sequence[str] = ()) -> list[str]:
    if server == "wsrun":
        return [sys.executable, "-m", "server", app, "--port", str(port), *args]
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--no-access-log", *args]
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}", *args]
    raise ValueError(f"unknown server {server!r}")


@contextlib.contextmanager
def serve(
    server: str,
    app: str,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: Path | str = ROOT,
    port: int | None = None,
) -> Iterator[str]:
    """Run `server` on `app` on a free port; yield "127.0.0.1:PORT"; stop it on exit."""
    port = port or free_port()
    proc_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        server_command(server, app, port, args),
        cwd=cwd,
        env=proc_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()
    return proc.returncode
