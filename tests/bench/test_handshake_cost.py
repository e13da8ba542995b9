"""bench/handshake_cost.py and bench/message_cost.py drive handshakes and echoed messages
through the protocols: they must leave no connection or task behind and report a positive
cost (no timing is asserted)."""

from __future__ import annotations

from bench.handshake_cost import measure


async def test_handshake_cost_driver_cleans_up_every_connection() -> None:
    cost = await measure(50, ping_interval=20.0)  # asserts no leaked connection or task
    assert cost > 0


async def test_message_cost_driver_echoes_every_message_and_cleans_up() -> None:
    from bench.message_cost import measure as measure_message

    assert await measure_message(100) > 0  # asserts every echo went out, nothing leaked
