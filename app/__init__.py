"""The chat app (placeholder until app/ lands): `app:chat`."""

from app.asgi import chat

__all__ = ["chat"]
