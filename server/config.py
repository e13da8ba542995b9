"""Configuration: every tunable limit, timeout and default in one dataclass, as plain data.

The CLI builds a `Config` (its option defaults are read from this class); `Server` reads
it; sans-I/O objects get the limits they need as constructor arguments. Loading the app
is `server.loader`, logging set-up `server.logs`, the TLS context `server.main`. This
module imports no asyncio, socket or clock, and nothing of wsrun but `server.types`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from server.deflate import DEFAULT_LEVEL, DEFAULT_MEM_LEVEL, DEFAULT_THRESHOLD, DEFAULT_WINDOW_BITS
from server.types import ASGIApp

__all__ = ["DEFAULT_WS_MAX_SIZE", "Config"]

# The largest WebSocket message accepted (RFC 6455 10.4: "implementations will likely want
# to impose implementation-specific limits on frame size"); larger ones close with 1009.
DEFAULT_WS_MAX_SIZE = 16 * 2**20


@dataclass(slots=True)
class Config:
    app: ASGIApp | str
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    backlog: int = 2048
    reuse_port: bool = False  # SO_REUSEPORT on the listening socket (server/supervisor.py)
    factory: bool = False
    app_dir: str | None = "."
    # HTTP/1.1 limits (server/http11.py)
    max_request_line_size: int = 8 * 1024
    max_header_size: int = 64 * 1024
    max_headers: int = 100
    max_buffered_body_size: int = 64 * 1024
    # WebSocket limits and timers (server/websocket.py, server/protocol.py)
    ws_max_size: int = DEFAULT_WS_MAX_SIZE
    ws_max_queue: int = 32
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_close_timeout: float = 5.0
    # How long a protocol error or the peer's close waits for the app to take the messages
    # received before it (so its replies go out before the close frame).
    ws_drain_timeout: float = 2.0
    # permessage-deflate (RFC 7692, server/deflate.py); the defaults are explained there
    ws_per_message_deflate: bool = True
    ws_deflate_window_bits: int = DEFAULT_WINDOW_BITS
    ws_deflate_mem_level: int = DEFAULT_MEM_LEVEL
    ws_deflate_level: int = DEFAULT_LEVEL
    ws_deflate_threshold: int = DEFAULT_THRESHOLD
    ws_deflate_context_takeover: bool = False
    timeout_handshake: float = 10.0
    timeout_keep_alive: float = 5.0
    timeout_graceful_shutdown: float = 5.0
    limit_concurrency: int | None = None
    root_path: str = ""
    proxy_headers: bool = True
    forwarded_allow_ips: str = "127.0.0.1"
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile_password: str | None = None
    log_level: str | int | None = "info"
    access_log: bool = True
    log_config: str | dict[str, Any] | None = None
    log_format: Literal["text", "json"] = "text"  # for the default handlers (no log_config)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no metrics listener
    lifespan: Literal["auto", "on", "off"] = "auto"
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"  # auto: uvloop when installed
    server_header: bool = True
    date_header: bool = True

    @property
    def is_ssl(self) -> bool:
        """Whether the listener serves TLS (https:// and wss://)."""
        return bool(self.ssl_certfile)

    @property
    def trusted_proxies(self) -> frozenset[str]:
        """--forwarded-allow-ips as a set of addresses ("*": every peer)."""
        return frozenset(ip.strip() for ip in self.forwarded_allow_ips.split(",") if ip.strip())
