"""`Node`: one `wsrun app:chat` process the scale-out tests can SIGKILL, SIGTERM and start
again on the same port (a `Process` target, so `connect()` and `get()` work on it)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.app.conftest import Process
from tests.procs import ROOT, free_port, server_command, wait_for_port

__all__ = ["Node"]


class Node(Process):
    """A chat process logging to `log`; `start()` again reuses its port."""

    def __init__(self, name: str, directory: Path, env: dict[str, str],
                 args: Sequence[str] = ()) -> None:
        super().__init__(name, directory / "unused.db", env)
        self.directory = directory
        self.args = list(args)
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "server.log", "ab") as log:
            self.popen = subprocess.Popen(
                server_command(self.name, "app:chat", self.port,
                               ["--no-access-log", *self.args]),
                cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.popen)

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL after 15 s."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def proc_kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def log(self) -> str:
        return (self.directory / "server.log").read_text(errors="replace")
