"""Where the chat's state lives: one interface (`Backend`), two implementations.

- `LocalBackend` (default): one process, history in SQLite (`CHAT_DB`).
- `RedisBackend` (`CHAT_REDIS_URL` set): any number of processes and machines sharing one
  Redis are one chat (docs/deployment.md).

`open_backend(settings, metrics)` picks one from the settings.
This package imports app/ modules only; never `server/`.
"""

from __future__ import annotations

from collections.abc import Callable

from app.backends.base import Backend, JoinResult, Unavailable
from app.config import Settings
from app.metrics import Metrics

__all__ = ["Backend", "JoinResult", "Unavailable", "open_backend"]


def open_backend(settings: Settings, metrics: Metrics,
                 farewell: Callable[[str, str], str | None]) -> Backend:
    """The backend `settings` ask for (not started yet: call `start()`).

    Args:
        farewell: (room, nick) -> the plain-text line for a member whose process vanished.
    """
    if settings.redis_url:
        from app.backends.redis import RedisBackend

        return RedisBackend(settings.redis_url, settings.history_limit,
                            settings.presence_ttl, metrics, farewell)
    from app.backends.local import LocalBackend

    return LocalBackend(settings.db, settings.history_limit, metrics)
