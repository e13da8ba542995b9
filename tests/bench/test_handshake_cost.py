"""bench/handshake_cost.py drives full handshakes through the protocols: it must leave no
connection or task behind, and report a positive cost (no timing is asserted)."""

from __future__ import annotations

from bench.handshake_cost import measure


async def test_handshake_cost_driver_cleans_up_every_connection() -> None:
    cost = await measure(50, ping_interval=20.0)  # asserts no leaked connection or task
    assert cost > 0
