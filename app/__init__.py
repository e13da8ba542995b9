"""The chat: a plain ASGI 3 app, `app:chat`, that never imports `server/`.

Runs under `wsrun app:chat`, `uvicorn app:chat`, `hypercorn app:chat`, or mounted in
Starlette/FastAPI at a sub-path. Protocol: docs/protocol.md; settings: docs/configuration.md.
"""

from app.asgi import ChatApp, chat

__all__ = ["chat", "ChatApp"]
