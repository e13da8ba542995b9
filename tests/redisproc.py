"""A real `redis-server` for the tests: a free loopback port, a temporary directory, AOF on.

`RedisServer(dir).start()` runs Debian's redis-server with `appendonly yes` and
`appendfsync always` (what docs/deployment.md asks for "acknowledged = durable"), no RDB
snapshots, bound to 127.0.0.1 only; `stop()` shuts it down (SIGTERM), `kill()` SIGKILLs
it, `start()` again on the same directory replays the AOF.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

from tests.procs import free_port

__all__ = ["RedisServer", "redis_server_binary"]


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed: run `make system-deps`")
    return path


class RedisServer:
    """One redis-server process on 127.0.0.1:`port` keeping its files in `directory`."""

    def __init__(self, directory: Path, port: int | None = None,
                 appendfsync: str = "always", password: str | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        """`password`: requirepass; `tls`: (key, certificate) to serve TLS only."""
        self.directory = directory
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.password = password
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls is not None:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls[1]}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        options = ["--port", str(self.port)]
        if self.tls is not None:
            key, cert = self.tls
            options = ["--port", "0", "--tls-port", str(self.port), "--tls-key-file", str(key),
                       "--tls-cert-file", str(cert), "--tls-auth-clients", "no"]
        if self.password:
            options += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            [redis_server_binary(), *options, "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", self.appendfsync,
             "--save", "", "--protected-mode", "yes", "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not self.ping():
            if self.proc.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server not answering on port {self.port}")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        """True once the server answers PING (and has loaded its AOF)."""
        try:
            with contextlib.ExitStack() as stack:
                sock = stack.enter_context(
                    socket.create_connection(("127.0.0.1", self.port), timeout=1))
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls[1]))
                    sock = stack.enter_context(
                        context.wrap_socket(sock, server_hostname="127.0.0.1"))
                # Unauthenticated, a password-protected server answers -NOAUTH: it is up.
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM: redis-server flushes the AOF and exits)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: what is acknowledged must already be in the AOF."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
