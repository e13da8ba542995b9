"""Where the chat's state lives: one interface (`Backend`), two implementations.

- `LocalBackend` (default): one process, history in SQLite (`CHAT_DB`).

`open_backend(settings, metrics)` picks one from the settings.
This package imports app/ modules only; never `server/`.
"""

from __future__ import annotations

from app.backends.base import Backend, JoinResult, Unavailable
from app.config import Settings
from app.metrics import Metrics

__all__ = ["Backend", "JoinResult", "Unavailable", "open_backend"]


def open_backend(settings: Settings, metrics: Metrics) -> Backend:
    """The backend `settings` ask for (not started yet: call `start()`)."""
    from app.backends.local import LocalBackend

    return LocalBackend(settings.db, settings.history_limit, metrics)
