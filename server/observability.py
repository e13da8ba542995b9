"""Server-level figures and log formats.

`Stats` holds plain counters that the glue increments on its hot path (no locks, no
prometheus calls per frame); the metrics listener reads them at scrape time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Stats"]


@dataclass(slots=True)
class Stats:
    http_responses: Counter[int] = field(default_factory=Counter)  # status -> count
    ws_accepted: int = 0
    ws_rejected: Counter[int] = field(default_factory=Counter)  # status -> count
    frames_in: int = 0  # WebSocket data frames (text/binary)
    frames_out: int = 0
    bytes_in: int = 0  # payload bytes of those frames
    bytes_out: int = 0
    close_codes: Counter[int] = field(default_factory=Counter)  # how each WebSocket ended
    write_pauses: int = 0
