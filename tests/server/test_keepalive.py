"""`Keepalive`: one timer calls every connection in turn, in the order they were added."""

from __future__ import annotations

import asyncio

from server.keepalive import Keepalive


class Recorder:
    """A connection that records its pings and asks for the next one, `times` in all; on
    its first ping it may discard another connection (`drops`)."""

    def __init__(self, name: str, calls: list[str], keepalive: Keepalive, times: int) -> None:
        self.name, self.calls, self.keepalive_, self.times = name, calls, keepalive, times
        self.drops: Recorder | None = None

    def keepalive(self) -> None:
        self.calls.append(self.name)
        if self.drops is not None:
            self.keepalive_.discard(self.drops)
            self.drops = None
        self.times -= 1
        if self.times:
            self.keepalive_.add(self)


async def _run(times: dict[str, int], drops: tuple[str, str] | None = None) -> list[str]:
    keepalive = Keepalive(asyncio.get_running_loop(), 0.01)
    calls: list[str] = []
    conns = {name: Recorder(name, calls, keepalive, n) for name, n in times.items()}
    if drops:
        conns[drops[0]].drops = conns[drops[1]]
    for conn in conns.values():
        keepalive.add(conn)
    while len(keepalive):
        await asyncio.sleep(0.005)
    keepalive.close()
    return calls


def test_keepalive_calls_each_connection_in_turn() -> None:
    calls = asyncio.run(_run({"a": 3, "b": 3, "c": 3}))
    assert calls == ["a", "b", "c"] * 3


def test_keepalive_forgets_a_discarded_connection() -> None:
    # c's first ping discards b, which had asked for its next one: b is never called again.
    calls = asyncio.run(_run({"a": 3, "b": 3, "c": 3}, drops=("c", "b")))
    assert calls == ["a", "b", "c", "a", "c", "a", "c"]


def test_keepalive_discard_of_an_unknown_connection_is_a_no_op() -> None:
    async def run() -> int:
        keepalive = Keepalive(asyncio.get_running_loop(), 0.01)
        keepalive.discard(Recorder("x", [], keepalive, 1))
        return len(keepalive)

    assert asyncio.run(run()) == 0
