"""bench/chat_scale.py end to end at a tiny size: every setup starts, carries chat traffic
(processes sharing a real redis-server among them) and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.chat_scale import default_setups
from tests.procs import ROOT


def test_chat_scale_reports_each_setup() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.chat_scale", "--clients", "4", "--rooms", "2",
         "--warmup", "0.2", "--duration", "0.5", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    results = json.loads(out.stdout)
    assert list(results) == default_setups().split(",")
    assert list(results)[:3] == ["in-process", "redis-1", "redis-2"]
    for setup, figures in results.items():
        assert figures["errors"] == 0, setup
        assert figures["acked_per_s"] > 0 and figures["delivered_per_s"] > 0, setup
        for key in ("ack_p50_ms", "ack_p99_ms", "cpu_wsrun", "cpu_redis", "cpu_load"):
            assert figures[key] >= 0, (setup, key)
