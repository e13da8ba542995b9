"""RSS growth of a wsrun process under a ping flood from a client that never reads.

    python -m bench.flood_rss [APP] [PATH] [MIB]      # defaults: bench.apps:echo / 25

Starts `python -m server APP` on a free loopback port (`CHAT_DB` in a temp directory, for
`app:chat`), opens one WebSocket on PATH from a raw socket with a 16 KiB receive buffer,
sends masked 125-byte pings until MIB MiB are out or the socket stays unwritable for 2 s
(the server stopped reading), waits 1 s, then prints what was sent and the server's VmRSS before and
after (/proc/PID/status). No timing is measured; the server is stopped at the end.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import procfs

ROOT = Path(__file__).resolve().parent.parent
HANDSHAKE = ("GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
PING = b"\x89\xfd" + b"\0\0\0\0" + b"p" * 125  # FIN + ping, masked (zero mask), 125 bytes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect(port: int, path: str) -> socket.socket:
    deadline = time.monotonic() + 15
    while True:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        try:
            sock.connect(("127.0.0.1", port))
            break
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    sock.sendall(HANDSHAKE.format(path=path).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing after the head is consumed
    if not head.startswith(b"HTTP/1.1 101 "):
        raise SystemExit(f"no upgrade: {head!r}")
    return sock


def flood(sock: socket.socket, total: int, stall: float = 2.0) -> int:
    """Send pings until `total` bytes are out or the socket stays unwritable `stall` s."""
    block = PING * (65536 // len(PING))
    sock.setblocking(False)
    sent = 0
    try:
        while sent < total and select.select([], [sock], [], stall)[1]:
            sent += sock.send(block[sent % len(block):])
    except ConnectionError:
        pass  # the server cut the connection (e.g. its keepalive ping timed out)
    return sent


def main(app: str = "bench.apps:echo", path: str = "/", mib: str = "25") -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CHAT_DB": str(Path(tmp) / "chat.db")}
        server = subprocess.Popen(
            [sys.executable, "-m", "server", app, "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with _connect(port, path) as sock:
                before = procfs.rss_bytes([server.pid])
                sent = flood(sock, int(mib) * 2**20)
                time.sleep(1)  # let the server take in what the kernel still holds for it
                after = procfs.rss_bytes([server.pid])
        finally:
            server.terminate()
            server.wait(15)
    print(f"{app} {path}: {sent / 2**20:.1f} MiB of pings sent; server RSS "
          f"{before / 2**20:.1f} -> {after / 2**20:.1f} MiB ({(after - before) / 2**20:+.1f} MiB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
