"""What the sans-I/O WebSocket core reports: frozen, slotted dataclasses, one per event.

`ServerConnection.events_received()` returns them in stream order. Imports nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

__all__ = [
    "BinaryMessage",
    "CloseReceived",
    "ConnectionFailed",
    "Event",
    "PingReceived",
    "PongReceived",
    "TextMessage",
    "new_binary",
    "new_text",
]


@dataclasses.dataclass(frozen=True, slots=True)
class TextMessage:
    """A complete text message."""

    data: str


@dataclasses.dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A complete binary message."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class PingReceived:
    """A ping; the pong is already queued in `data_to_send()` while OPEN."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class PongReceived:
    """A pong (an answer to our ping, or unsolicited)."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class CloseReceived:
    """A valid close frame from the peer; `code` is 1005 when it carried no status."""

    code: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """The peer broke the protocol (or dropped TCP: 1006); answer with `fail(code)`."""

    code: int
    reason: str


Event = TextMessage | BinaryMessage | PingReceived | PongReceived | CloseReceived | ConnectionFailed

# Per-message constructors for the hot path: object.__new__ plus the slot's setter skip the
# frozen dataclass __init__ (its object.__setattr__ call), ~0.2 us per message.
_new = object.__new__
_set_text: Callable[[TextMessage, str], None] = TextMessage.__dict__["data"].__set__
_set_binary: Callable[[BinaryMessage, bytes], None] = BinaryMessage.__dict__["data"].__set__


def new_text(data: str) -> TextMessage:
    """`TextMessage(data)`, built without the dataclass __init__."""
    event: TextMessage = _new(TextMessage)
    _set_text(event, data)
    return event


def new_binary(data: bytes) -> BinaryMessage:
    """`BinaryMessage(data)`, built without the dataclass __init__."""
    event: BinaryMessage = _new(BinaryMessage)
    _set_binary(event, data)
    return event
