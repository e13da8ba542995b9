"""A tiny run of every benchmark scenario: the harness must produce well-formed results.

Real servers, real load processes, 127.0.0.1 only; one short round each. No timing is
asserted: only that every scenario yields a positive figure (or a stated skip) per server.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import report, runner
from bench.scenarios import SCENARIOS
from bench.servers import BASELINE, SERVERS, ServerSpec

HAVE_WSRUN = SERVERS["wsrun"].unavailable() is None
SMOKE_SERVERS = [BASELINE] + (["wsrun"] if HAVE_WSRUN else [])
PRIMARY = {"echo": "rate", "echo-50": "rate", "echo-100": "rate", "echo-pipelined": "rate",
           "large": "rate", "fanout": "rate", "fanout-w1": "rate", "fanout-w8": "rate",
           "connect": "rate", "idle": "rss_kib", "chat": "rate", "fanout-deflate": "rate",
           "idle-deflate": "rss_kib", "chat-deflate": "rate"}


def smoke(names: list[str], scenarios: list[str], client: str) -> dict[str, Any]:
    return runner.run(names, scenarios, rounds=1, duration=0.3, warmup=0.1, smoke=True,
                      client=client, log=lambda line: None)


def assert_well_formed(results: dict[str, Any], names: list[str], scenarios: list[str]) -> None:
    assert list(results["scenarios"]) == scenarios
    for scen_name, scen in results["scenarios"].items():
        s = SCENARIOS[scen_name]
        expected = [n for n in names if s.runs_on(n)]
        assert list(scen["servers"]) == expected
        for name, entry in scen["servers"].items():
            assert entry["available"] is True
            assert len(entry["rounds"]) == 1
            (raw,) = entry["rounds"]
            assert "error" not in raw, (scen_name, name, raw)
            if "skipped" in raw:  # only chat may skip, and only with a reason
                assert scen_name.startswith("chat")
                assert raw["skipped"].startswith("bench/chat_load.py")
                continue
            assert raw["errors"] == 0, (scen_name, name, raw)
            if s.kind == "fanout":  # every broadcast reached every member before the close
                assert raw["unfinished"] == 0, (scen_name, name, raw)
            figure = entry["summary"][PRIMARY[scen_name]]
            assert figure["n"] == 1 and figure["median"] > 0, (scen_name, name, figure)
            ratio = entry["ratio"]
            if name == BASELINE and ratio is not None:
                assert ratio["median"] == 1.0


def test_every_scenario_yields_a_figure_with_the_raw_client(tmp_path: Path) -> None:
    scenarios = list(SCENARIOS)
    results = smoke(SMOKE_SERVERS, scenarios, "raw")
    assert_well_formed(results, SMOKE_SERVERS, scenarios)
    for scen in results["scenarios"].values():
        for entry in scen["servers"].values():
            assert all(r.get("client", "raw") == "raw" for r in entry["rounds"])

    # The report: a table row per scenario and server, JSON that loads back.
    results = {"stamp": "smoke", "command": "test", "machine": report.machine(), **results}
    lines = report.table(results).splitlines()
    rows = sum(len(s["servers"]) for s in results["scenarios"].values())
    assert len(lines) == 2 + rows
    assert lines[2].startswith(f"| echo | {SMOKE_SERVERS[0]} | ")
    path = report.write_json(results, "smoke", tmp_path)
    assert json.loads(path.read_text())["scenarios"].keys() == results["scenarios"].keys()
    chart = report.write_chart(results, "smoke", tmp_path)
    if importlib.util.find_spec("matplotlib") is None:
        assert chart is None
    else:
        assert chart is not None and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(importlib.util.find_spec("picows") is None, reason="picows not installed")
def test_picows_client_drives_echo_and_fanout() -> None:
    scenarios = ["echo", "large", "fanout", "fanout-w1", "fanout-w8", "connect"]
    results = smoke([BASELINE], scenarios, "picows")
    assert_well_formed(results, [BASELINE], scenarios)
    for scen in results["scenarios"].values():
        assert scen["servers"][BASELINE]["rounds"][0]["client"] == "picows"


def test_unavailable_server_is_reported_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = ServerSpec("ghost", "ghost server", "no_such_module_for_bench", lambda app, port: [])
    monkeypatch.setitem(SERVERS, "ghost", ghost)
    results = smoke(["ghost"], ["echo"], "raw")
    entry = results["scenarios"]["echo"]["servers"]["ghost"]
    assert entry["available"] is False
    assert entry["note"] == "no_such_module_for_bench is not installed"
    assert entry["rounds"] == []
    results = {"machine": report.machine(), **results}
    assert report.table(results).splitlines()[2] == (
        "| echo | ghost | unavailable: no_such_module_for_bench is not installed | | | | | |")


def test_flood_rss_prints_its_figures() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.flood_rss", "bench.apps:echo", "/", "1"],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"bench\.apps:echo /: \d+\.\d MiB of pings sent; server RSS "
                        r"\d+\.\d -> \d+\.\d MiB \([+-]\d+\.\d MiB\)\n", done.stdout), done.stdout
