"""wsrun: a strict, fast HTTP/1.1 + WebSocket ASGI server written from the socket up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Config", "Server", "__version__", "run"]

if TYPE_CHECKING:
    from server.config import Config
    from server.main import Server, run


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m server --help` and `import server.frames` stay cheap.
    if name == "Config":
        from server.config import Config

        return Config
    if name in ("Server", "run"):
        from server import main

        return getattr(main, name)
    raise AttributeError(name)
