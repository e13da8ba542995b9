"""Chat settings, read from environment variables (documented in docs/configuration.md).

`Settings.from_env()` turns `CHAT_*` variables into one frozen dataclass; a malformed
value raises `ValueError` naming the variable, so start-up fails with one clear line.
This module imports nothing from the project and must never import `server/`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["Settings", "check_processes"]


def check_processes(env: Mapping[str, str]) -> None:
    """Refuse to run in several processes without a shared backend.

    `WSRUN_WORKERS` is set by `wsrun --workers N` in each worker (docs/deployment.md): the
    in-process broker and SQLite history would give each worker rooms of its own.

    Raises:
        ValueError: more than one process and no `CHAT_REDIS_URL`.
    """
    raw = env.get("WSRUN_WORKERS", "").strip()
    workers = int(raw) if raw.isdigit() else 1
    if workers > 1 and not env.get("CHAT_REDIS_URL"):
        raise ValueError(
            f"WSRUN_WORKERS={workers}: the chat's rooms would be split between {workers} "
            "processes; set CHAT_REDIS_URL to share them, or run one worker")

N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, minimum: N,
            parse: Callable[[str], N], expected: str) -> N:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected {expected}") from None
    if not value >= minimum:  # `not >=`: NaN is refused too
        raise ValueError(f"{name}={raw!r}: must be at least {minimum:g}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    return _number(env, name, default, minimum, int, "an integer")


def _rate(env: Mapping[str, str], name: str, default: tuple[int, float]) -> tuple[int, float]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    count, sep, period = raw.partition("/")
    try:
        burst, seconds = int(count), float(period) if sep else 1.0
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected MESSAGES/SECONDS, e.g. 20/10") from None
    if burst < 1 or not seconds > 0:
        raise ValueError(f"{name}={raw!r}: both numbers must be positive")
    return burst, seconds


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r}: expected 1 or 0")


def _hosts(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None  # no Host check
    # Host names compare case-insensitively (RFC 3986 3.2.2); a trailing dot is the same name.
    return tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None  # the default rule, see Settings.allowed_origins
    # Origins compare case-insensitively on scheme and host (RFC 6454 6.2 serialises them
    # lower-case), and a trailing slash is a common copy-paste artefact.
    return tuple(o.strip().lower().rstrip("/") for o in raw.split(",") if o.strip())


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _redis_url(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.lower().startswith(_REDIS_SCHEMES):
        # The URL may hold a password: name the variable, never echo its value.
        raise ValueError(f"{name}: expected a redis://, rediss:// or unix:// URL")
    return raw


def _seconds(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    return _number(env, name, default, minimum, float, "a number of seconds")


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of the chat. Defaults are docs/configuration.md's figures.

    Attributes:
        db: SQLite path (`CHAT_DB`); ":memory:" keeps history for the process only.
        rate_burst, rate_period: token bucket per connection (`CHAT_RATE` "20/10").
        address_rate: token bucket per client address over all its connections, as
            (burst, period) (`CHAT_ADDRESS_RATE` "100/10").
        address_connect_rate: new WebSocket connections per client address
            (`CHAT_ADDRESS_CONNECT_RATE` "60/60"); past it, HTTP 429 before the upgrade.
        max_rooms: rooms one connection may join (`CHAT_MAX_ROOMS`).
        queue_limit: outbound messages buffered per connection before 1013 (`CHAT_QUEUE_LIMIT`).
        max_text: longest message text in code points (`CHAT_MAX_TEXT`).
        history_limit: messages kept per room (`CHAT_HISTORY_LIMIT`).
        allowed_origins: `CHAT_ALLOWED_ORIGINS`; None means the default rule (own host,
            localhost / 127.0.0.1 / [::1] on any port, no Origin header, and "null" for
            plain-text clients only).
        allowed_hosts: `CHAT_ALLOWED_HOSTS`; None accepts any Host header, else the host
            names (no port) accepted, "*" for any, ".example.com" for it and its subdomains.
        plain_escape_html: `CHAT_PLAIN_ESCAPE_HTML`; plain-text lines have `&`, `<`, `>`
            escaped as HTML entities (for pages that insert them as HTML).
        static_dir: overrides where the page is served from (`CHAT_STATIC_DIR`).
        redis_url: `CHAT_REDIS_URL`; set, the chat keeps its state in Redis so any number
            of processes and machines are one chat (docs/deployment.md); None: in-process.
        presence_ttl: `CHAT_PRESENCE_TTL` seconds; with Redis, the members of a process
            that stopped refreshing its liveness vanish from rooms within about this long.
    """

    db: str = "./chat.db"
    rate_burst: int = 20
    rate_period: float = 10.0
    max_rooms: int = 16
    queue_limit: int = 1000
    max_text: int = 4000
    history_limit: int = 1000
    address_rate: tuple[int, float] = (100, 10.0)
    address_connect_rate: tuple[int, float] = (60, 60.0)
    allowed_origins: tuple[str, ...] | None = None
    allowed_hosts: tuple[str, ...] | None = None
    plain_escape_html: bool = True
    static_dir: str | None = None
    redis_url: str | None = dataclasses.field(default=None, repr=False)  # may hold a password
    presence_ttl: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: `os.environ`).

        Raises:
            ValueError: a variable is set to something malformed; the message names it.
        """
        env = os.environ if env is None else env
        check_processes(env)
        d = cls()  # the defaults (slotted dataclasses keep no class-level values)
        burst, period = _rate(env, "CHAT_RATE", (d.rate_burst, d.rate_period))
        return cls(
            db=env.get("CHAT_DB") or d.db,
            rate_burst=burst,
            rate_period=period,
            max_rooms=_int(env, "CHAT_MAX_ROOMS", d.max_rooms, 1),
            queue_limit=_int(env, "CHAT_QUEUE_LIMIT", d.queue_limit, 1),
            max_text=_int(env, "CHAT_MAX_TEXT", d.max_text, 1),
            history_limit=_int(env, "CHAT_HISTORY_LIMIT", d.history_limit, 1),
            address_rate=_rate(env, "CHAT_ADDRESS_RATE", d.address_rate),
            address_connect_rate=_rate(env, "CHAT_ADDRESS_CONNECT_RATE", d.address_connect_rate),
            allowed_origins=_origins(env, "CHAT_ALLOWED_ORIGINS"),
            allowed_hosts=_hosts(env, "CHAT_ALLOWED_HOSTS"),
            plain_escape_html=_bool(env, "CHAT_PLAIN_ESCAPE_HTML", d.plain_escape_html),
            static_dir=env.get("CHAT_STATIC_DIR") or None,
            redis_url=_redis_url(env, "CHAT_REDIS_URL"),
            presence_ttl=_seconds(env, "CHAT_PRESENCE_TTL", d.presence_ttl, 1.0),
        )
