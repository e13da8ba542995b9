"""bench/handshake_cost.py, message_cost.py and fanout_cost.py drive handshakes, echoed
messages and broadcasts through the protocols: they must leave no connection or task behind
and report a positive cost (no timing is asserted)."""

from __future__ import annotations

from bench.handshake_cost import measure


async def test_handshake_cost_driver_cleans_up_every_connection() -> None:
    cost = await measure(50, ping_interval=20.0)  # asserts no leaked connection or task
    assert cost > 0


async def test_message_cost_driver_echoes_every_message_and_cleans_up() -> None:
    from bench.message_cost import measure as measure_message

    assert await measure_message(100) > 0  # asserts every echo went out, nothing leaked


async def test_fanout_cost_driver_delivers_every_broadcast_and_cleans_up() -> None:
    from bench.fanout_cost import measure as measure_fanout

    # Asserts every member got every broadcast, nothing leaked; with and without deflate.
    assert await measure_fanout(5, receivers=20) > 0
    assert await measure_fanout(5, receivers=20, deflate=True) > 0
