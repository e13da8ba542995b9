"""bench.soak's books: how a chatter counts deliveries, losses and duplicates.

The soak itself runs in CI after the suite (`.ci/run`: `make soak SOAK_MINUTES=1`); here
its accounting is checked with frames as the chat sends them, and its CLI refusals.
"""

from __future__ import annotations

import random
import subprocess
import sys

from bench.soak_load import Chatter, Totals
from tests.procs import ROOT


def message(id: int, room: str = "r", **ref: object) -> dict[str, object]:
    return {"type": "message", "id": id, "room": room, "nick": "n", "text": "t",
            "ts": "2024-05-01T12:00:00.000Z", **ref}


def chatter(totals: Totals) -> Chatter:
    c = Chatter("ws://127.0.0.1:1/ws", "r", "me", totals, random.Random(0), 1.0)
    c.baseline = 0
    return c


def test_acks_deliveries_losses_and_duplicates_are_counted() -> None:
    totals = Totals()
    me, other = chatter(totals), chatter(totals)
    me.pending = {"me-1": "a", "me-2": "b"}
    me._receive(message(1, ref="me-1"))  # my acknowledgement: a delivery to me
    other._receive(message(1))
    me._receive(message(2))  # me-2 committed; the ack was lost with the connection
    me._receive(message(2, ref="me-2"))  # the resend's answer: the original, not a duplicate
    other._receive(message(2))
    other._receive(message(2))  # a duplicate
    me._receive(message(3, room="elsewhere"))  # another room: not counted
    assert (totals.acknowledged, me.pending, totals.acked["r"]) == (2, {}, {1, 2})
    assert dict(me.seen) == {1: 1, 2: 1} and dict(other.seen) == {1: 1, 2: 2}
    totals.acked["r"].add(3)  # acknowledged to someone, never received by these two
    assert me.expected() - me.seen.keys() == {3}
    assert me.last_id == 2


def test_cli_refuses_nonsense_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.soak", "--minutes", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "python -m bench.soak: error: --minutes, --chatters, --rooms and --rate must be positive")
