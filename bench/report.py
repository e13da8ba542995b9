"""Reporting: the machine and versions a run used, the printed table, the JSON file under
bench/results/, and PNG bar charts of the ratios (only when matplotlib is installed).

Imports nothing from `server/` or `app/`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("uvicorn", "websockets", "wsproto", "httptools", "hypercorn", "granian", "uvloop",
            "picows", "wsrun")


def machine() -> dict[str, Any]:
    """What the run ran on: CPU model, cores, memory, kernel, Python and package versions."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": sys.version.split()[0],
            "versions": versions}


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _cell(summary: dict[str, Any] | None, digits: int = 0, suffix: str = "") -> str:
    if not summary:
        return "-"
    return (f"{_fmt(summary['median'], digits)}{suffix} "
            f"({_fmt(summary['min'], digits)}-{_fmt(summary['max'], digits)})")


def table(results: dict[str, Any]) -> str:
    """A Markdown table: per scenario and server, medians with (min-max) over the rounds."""
    head = ("| scenario | server | raw (median, min-max) | per server CPU-s | "
            "x uvicorn-sansio per CPU | x raw | p50 / p99 ms | client busy |")
    rows = [head, "|" + "---|" * 8]
    for scen_name, scen in results["scenarios"].items():
        unit = scen["unit"]
        for name, entry in scen["servers"].items():
            if not entry["available"]:
                rows.append(f"| {scen_name} | {name} | unavailable: {entry['note']} "
                            "| | | | | |")
                continue
            summ = entry.get("summary", {})
            if not summ:
                why = entry["note"] or "; ".join(entry.get("errors", [])[:1]) or "no result"
                rows.append(f"| {scen_name} | {name} | no figure: {why} | | | | | |")
                continue
            digits = 1 if unit in ("MB/s", "KiB/conn") else 0
            if scen["primary"] == "rss_kib":
                raw, per_cpu = _cell(summ.get("rss_kib"), 1, " KiB/conn"), "-"
            else:
                raw = _cell(summ.get("rate"), digits, f" {unit}")
                per_cpu = _cell(summ.get("per_cpu"), digits)
            lat = "-"
            if summ.get("p99_ms"):
                p50 = (summ.get("p50_ms") or {}).get("median")
                lat = f"{_fmt(p50, 2)} / {_fmt(summ['p99_ms']['median'], 2)}"
            busy = (summ.get("client_busy") or {}).get("median")
            rows.append(f"| {scen_name} | {name} | {raw} | {per_cpu} | "
                        f"{_cell(entry.get('ratio'), 2, 'x')} | "
                        f"{_cell(entry.get('rate_ratio'), 2, 'x')} | {lat} | {_fmt(busy, 2)} |")
    return "\n".join(rows)


def write_json(results: dict[str, Any], stamp: str, directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    return path


def write_chart(results: dict[str, Any], stamp: str, directory: Path = RESULTS) -> Path | None:
    """Grouped bars: per scenario, each server's median ratio to the baseline, with the
    min-max spread as error bars. None (and no file) without matplotlib or ratios."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    scen_names = [n for n, s in results["scenarios"].items()
                  if any(e.get("ratio") for e in s["servers"].values())]
    names = [n for n in results["servers"]
             if any((results["scenarios"][s]["servers"].get(n) or {}).get("ratio")
                    for s in scen_names)]
    if not scen_names or not names:
        return None
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(scen_names)), 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        meds, lows, highs = [], [], []
        for s in scen_names:
            ratio = (results["scenarios"][s]["servers"].get(name) or {}).get("ratio")
            med = ratio["median"] if ratio else 0.0
            meds.append(med)
            lows.append(med - ratio["min"] if ratio else 0.0)
            highs.append(ratio["max"] - med if ratio else 0.0)
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(scen_names))]
        ax.bar(xs, meds, width, yerr=[lows, highs], capsize=2, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(scen_names)), scen_names)
    ax.set_ylabel("x uvicorn websockets-sansio (per server CPU-s;\nidle: inverse RSS/conn)")
    ax.set_title(f"WebSocket servers, median of {results['rounds']} interleaved rounds "
                 f"({results['machine']['cores']} cores)")
    ax.legend(fontsize="small", ncols=3)
    fig.tight_layout()
    path = directory / f"{stamp}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
