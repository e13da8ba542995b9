"""The runner: starts the servers, runs each scenario's rounds interleaved across servers
(A, B, C, A, B, C, ...) so that machine noise hits every server alike, and summarises.

Each round is one `python -m bench.load` process (see bench/load.py), bounded in time; a
round that fails is recorded with its error and the run goes on. Summary per scenario and
server: median and spread (min-max) of every figure, and the ratio to uvicorn websockets-sansio
computed round by round (round i of a server over round i of the baseline), so a ratio's
spread is the spread of paired rounds. Ratios are "times better": per CPU-second for
throughput scenarios, baseline RSS over server RSS for idle.

Imports nothing from `server/` or `app/`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench import procfs, revisions, servers
from bench.scenarios import SCENARIOS, Scenario, figures, idle_with, load_params

Log = Callable[[str], None]


def spread(values: list[float]) -> dict[str, float] | None:
    """Median, min and max of `values`; None when there are none."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def run_round(s: Scenario, running: servers.Running, params: dict[str, Any],
              client: str) -> dict[str, Any]:
    """One load process against one running server; its raw result, or an "error"."""
    request = {**params, "host": "127.0.0.1", "port": running.port, "pid": running.pid,
               "client": client}
    try:
        done = subprocess.run([sys.executable, "-m", "bench.load", json.dumps(request)],
                              cwd=servers.ROOT, capture_output=True,
                              timeout=params["timeout"] + 30, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"load process timed out after {params['timeout'] + 30:.0f}s"}
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        return {"error": f"load process exited {done.returncode}: {(err or ['?'])[-1]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_scenario(s: Scenario, specs: dict[str, servers.ServerSpec], *, rounds: int,
                 duration: float, warmup: float, smoke: bool, client: str,
                 log: Log) -> dict[str, Any]:
    """All rounds of one scenario, interleaved across the servers in `specs`."""
    params = load_params(s, smoke=smoke, duration=duration, warmup=warmup)
    report: dict[str, Any] = {"about": s.about, "unit": s.unit, "primary": s.primary,
                              "params": params, "servers": {}}
    active: list[str] = []
    for name, spec in specs.items():
        if not s.runs_on(name):
            continue
        why = spec.unavailable()
        report["servers"][name] = {"label": spec.label, "available": why is None,
                                   "note": why or "", "rounds": []}
        if why is None:
            active.append(name)
        else:
            log(f"  {name}: unavailable ({why})")
    with servers.workdir() as scratch:
        running: dict[str, servers.Running] = {}
        try:
            for r in range(rounds):
                for name in active:
                    entry = report["servers"][name]
                    try:
                        if name not in running:
                            running[name] = servers.start(specs[name], s.app, scratch, s.env)
                        raw = run_round(s, running[name], params, client)
                    except (OSError, RuntimeError, TimeoutError) as exc:
                        raw = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
                    if s.fresh_server and name in running:
                        servers.stop(running.pop(name))
                    entry["rounds"].append(raw)
                    log(f"  round {r + 1}/{rounds} {name}: {_short(s, raw)}")
                    if raw.get("skipped"):
                        entry["note"] = raw["skipped"]
        finally:
            for one in running.values():
                servers.stop(one)
    _summarise(s, report)
    return report


def _short(s: Scenario, raw: dict[str, Any]) -> str:
    if "error" in raw or "skipped" in raw:
        return str(raw.get("error") or "skipped: " + raw["skipped"])
    f = figures(s, raw)
    if s.kind == "idle":
        return f"{f['rss_kib']:.1f} KiB/conn"
    per_cpu = f["per_cpu"]
    return (f"{f['rate']:,.0f} {s.unit}, "
            f"{'-' if per_cpu is None else f'{per_cpu:,.0f}'} per server CPU-s"
            + ("" if f["client_busy"] is None else f", client busy {f['client_busy']:.2f}"))


def _summarise(s: Scenario, report: dict[str, Any]) -> None:
    per_server: dict[str, list[dict[str, float | None] | None]] = {}
    for name, entry in report["servers"].items():
        figs = [None if ("error" in raw or "skipped" in raw) else figures(s, raw)
                for raw in entry["rounds"]]
        per_server[name] = figs
        keys = sorted({k for f in figs if f for k in f})
        entry["summary"] = {k: spread([v for f in figs if f and (v := f.get(k)) is not None])
                            for k in keys}
        entry["errors"] = [raw["error"] for raw in entry["rounds"] if "error" in raw]
    base = per_server.get(servers.BASELINE)
    for name, entry in report["servers"].items():
        entry["ratio"] = entry["rate_ratio"] = None
        if base is None:
            continue
        entry["ratio"] = spread(_paired(per_server[name], base, s.primary, s.lower_is_better))
        if s.kind != "idle":
            entry["rate_ratio"] = spread(_paired(per_server[name], base, "rate", False))


def _paired(mine: list[dict[str, float | None] | None], base: list[dict[str, float | None] | None],
            key: str, invert: bool) -> list[float]:
    ratios = []
    for a, b in zip(mine, base, strict=False):  # an unavailable server has no rounds
        x, y = (a or {}).get(key), (b or {}).get(key)
        if x and y:
            ratios.append(y / x if invert else x / y)
    return ratios


def run(names: list[str], scenario_names: list[str], *, rounds: int, duration: float,
        warmup: float, smoke: bool = False, client: str = "auto",
        idle_conns: int | None = None, log: Log = print) -> dict[str, Any]:
    """Run every scenario in `scenario_names` on every server in `names`.

    `names`: keys of `servers.SERVERS`, or `wsrun@REV` for wsrun at git revision REV.
    `idle_conns`: how many connections the idle scenario holds (None: its default, 5,000).
    """
    for name in names:
        servers.check(name)
    for name in scenario_names:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    procfs.raise_nofile()  # inherited by every server and load process started from here
    results: dict[str, Any] = {"baseline": servers.BASELINE, "rounds": rounds,
                               "duration": duration, "warmup": warmup, "smoke": smoke,
                               "servers": names, "scenarios": {}}
    results["revisions"] = {n: revisions.commit(n.partition("@")[2]) for n in names if "@" in n}
    with servers.resolve(names, log) as specs:
        for name in scenario_names:
            scenario = idle_with(idle_conns) if name == "idle" and idle_conns else SCENARIOS[name]
            log(f"{name}: {scenario.about}")
            results["scenarios"][name] = run_scenario(
                scenario, specs, rounds=rounds, duration=duration, warmup=warmup,
                smoke=smoke, client=client, log=log)
    return results
