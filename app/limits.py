"""Limits per client address: token buckets keyed by address, in a table of bounded size.

A connection's own bucket (`CHAT_RATE`) is no limit for a client that reconnects; these
count across every connection of one address (docs/deployment.md "Rate limits"):
- `CHAT_ADDRESS_RATE`: chat messages per address;
- `CHAT_ADDRESS_CONNECT_RATE`: new WebSocket connections per address, refused with HTTP 429
  before the upgrade.

The address is the ASGI scope's `client` host: behind a trusted proxy, the forwarded one.
State lives in this process: with several worker processes each counts on its own, so an
address may reach N times the limit over N workers.

Memory is bounded: at most `max_addresses` buckets are kept, the least recently used one is
dropped first (that address starts again with a full bucket; a dropped bucket that was
already full loses nothing).

This module imports only the standard library; never `server/`.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from typing import Final

__all__ = ["AddressLimiter", "MAX_ADDRESSES"]

# About 200 bytes per address (key, list, two floats, the OrderedDict link): ~3 MiB.
MAX_ADDRESSES: Final = 16_384


class AddressLimiter:
    """`burst` tokens per address, refilled at burst/period per second; one per event.

    Args:
        burst, period: as in `CHAT_ADDRESS_RATE` "BURST/PERIOD".
        max_addresses: buckets kept at most.
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(self, burst: int, period: float, max_addresses: int = MAX_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(burst)
        self.rate = burst / period
        self.max_addresses = max_addresses
        self._clock = clock
        # address -> [tokens, stamp], least recently used first.
        self._buckets: collections.OrderedDict[str, list[float]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, address: str, now: float) -> list[float]:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = [self.capacity, now]
            if len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
            bucket[0] = min(self.capacity, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        return bucket

    def take(self, address: str) -> bool:
        """Spend one token of `address`; False (nothing spent) when it has none left."""
        bucket = self._bucket(address, self._clock())
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False

    def retry_after(self, address: str) -> int:
        """Whole seconds until `address` has a token again (at least 1)."""
        bucket = self._bucket(address, self._clock())
        return max(1, math.ceil((1.0 - bucket[0]) / self.rate))
