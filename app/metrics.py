"""Prometheus metrics of one chat app instance, in its own registry.

A registry per app (not prometheus_client's global one) so several apps in one process
(tests, a Starlette mount beside another) do not collide on metric names.

Several processes (`wsrun --workers N`, gunicorn): when `PROMETHEUS_MULTIPROC_DIR` is set
(wsrun's supervisor sets it), prometheus_client's multiprocess mode is used: each process
writes its values to files there and /metrics, whichever process answers, reports every
process's: counters summed, `chat_connections` summed over live processes,
`chat_rooms` one sample per live process (a `pid` label; a room may have members on
several). Those two gauges are written when a connection opens or closes and at each scrape.
This module imports prometheus_client only; never `server/`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    """Counters and gauges exposed at /metrics.

    Args:
        connections: returns the number of open chat connections (read at scrape time).
        rooms: returns the number of rooms with at least one member.
    """

    def __init__(self, connections: Callable[[], int], rooms: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        r: CollectorRegistry | None = self.registry
        if self.multiprocess:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]  # all processes' files
            r = None  # the metrics below write to the files; nothing to register
            self._connections, self._rooms = connections, rooms
            self._open = Gauge("chat_connections", "Open chat WebSocket connections",
                               multiprocess_mode="livesum", registry=None)
            self._rooms_gauge = Gauge("chat_rooms", "Rooms with at least one member",
                                      multiprocess_mode="liveall", registry=None)
        else:
            Gauge("chat_connections", "Open chat WebSocket connections",
                  registry=r).set_function(lambda: float(connections()))
            Gauge("chat_rooms", "Rooms with at least one member", registry=r).set_function(
                lambda: float(rooms()))
        self.messages = Counter("chat_messages", "Chat messages stored and broadcast", registry=r)
        self.frames = Counter(
            "chat_frames", "WebSocket text frames", ["direction"], registry=r)
        self.bytes = Counter(
            "chat_bytes", "WebSocket payload bytes (UTF-8)", ["direction"], registry=r)
        self.drops = Counter(
            "chat_drops", "Slow connections closed with 1013 (their queued frames dropped)",
            registry=r)
        self.errors = Counter("chat_errors", "Error replies and closes, by code", ["code"],
                              registry=r)
        # Bound once: labels() costs a dict lookup under a lock, twice per frame otherwise.
        self.frames_in, self.frames_out = self.frames.labels("in"), self.frames.labels("out")
        self.bytes_in, self.bytes_out = self.bytes.labels("in"), self.bytes.labels("out")

    def connections_changed(self) -> None:
        """A connection opened or closed: the multiprocess gauges are written now."""
        if self.multiprocess:
            self._open.set(self._connections())
            self._rooms_gauge.set(self._rooms())

    def render(self) -> bytes:
        self.connections_changed()
        return generate_latest(self.registry)
