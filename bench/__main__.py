"""`python -m bench` (`make bench`): run the side-by-side benchmarks and report.

Prints a Markdown table, writes bench/results/<timestamp>.json and, when matplotlib is
installed, <timestamp>.png with the ratios. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import click

from bench import report, runner
from bench.scenarios import SCENARIOS
from bench.servers import AT_REVISION, BASELINE, SERVERS, check


def _names(value: str, check: Callable[[str], None], option: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    for name in names:
        try:
            check(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None
    return names


def _scenario(name: str) -> None:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")


def _entries(rows: list[tuple[str, str]]) -> str:
    return "\n".join(textwrap.fill(text, 88, initial_indent=f"  {name:<19} ",
                                    subsequent_indent=" " * 22,
                                    break_on_hyphens=False) for name, text in rows)


def _epilog() -> str:
    scenarios = _entries([(s.name, s.about + ("" if s.only is None else
                                              f" [only {' and '.join(s.only)}, wsrun@REV too]"))
                          for s in SCENARIOS.values()])
    known = _entries([(s.name, s.label) for s in SERVERS.values()] + [(
        f"{AT_REVISION}@REV", "wsrun at git revision REV of this repository (its server/ "
        "exported to a temporary directory, C extensions built), e.g. --servers "
        "wsrun,wsrun@HEAD~3,uvicorn-sansio: before/after in one run")])
    # "\b" keeps click from rewrapping the paragraph that follows it.
    return (f"\b\nScenarios (all run by default; work per server CPU-second is compared):\n"
            f"{scenarios}\n\n\b\nServers (ratios are to {BASELINE}):\n{known}\n\n"
            "Method and latest figures: docs/benchmarks.md.")


@click.command(epilog=_epilog())
@click.option("--servers", "server_list", default=",".join(SERVERS), show_default=True,
              help="Comma-separated servers to compare (see below; wsrun@REV for a revision).")
@click.option("--scenarios", "scenario_list", default=",".join(SCENARIOS), show_default=True,
              help="Comma-separated scenarios to run (see below).")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Interleaved rounds per scenario and server.")
@click.option("--duration", default=2.0, show_default=True, type=click.FloatRange(0.1, 60),
              help="Measured seconds per round (idle: seconds held before reading RSS).")
@click.option("--warmup", default=0.5, show_default=True, type=click.FloatRange(0, 30),
              help="Unmeasured seconds of load before each round's window.")
@click.option("--client", default="auto", show_default=True,
              type=click.Choice(["auto", "picows", "raw"]),
              help="Load-generator client: picows (C) when installed, else raw asyncio.")
@click.option("--idle-conns", default=5000, show_default=True, type=click.IntRange(1, 60000),
              help="Connections the idle scenario holds open (raise `ulimit -n` past ~30,000).")
@click.option("--smoke", is_flag=True, help="Tiny loads (few connections): checks the harness.")
@click.option("--out", "out_dir", default=str(report.RESULTS), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the JSON and PNG go.")
@click.option("--no-save", is_flag=True, help="Print the table only.")
def main(server_list: str, scenario_list: str, rounds: int, duration: float, warmup: float,
         client: str, idle_conns: int, smoke: bool, out_dir: Path, no_save: bool) -> None:
    """Benchmark WebSocket ASGI servers side by side on the same apps."""
    names = _names(server_list, check, "--servers")
    scenario_names = _names(scenario_list, _scenario, "--scenarios")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    command = "python -m bench " + " ".join(sys.argv[1:])
    results = runner.run(names, scenario_names, rounds=rounds, duration=duration,
                         warmup=warmup, smoke=smoke, client=client, idle_conns=idle_conns,
                         log=lambda line: click.echo(line, err=True))
    results = {"stamp": stamp, "command": command.strip(), "machine": report.machine(),
               **results}
    click.echo(report.table(results))
    if not no_save:
        click.echo(f"\nresults: {report.write_json(results, stamp, out_dir)}")
        chart = report.write_chart(results, stamp, out_dir)
        click.echo(f"chart: {chart}" if chart else "chart: skipped (matplotlib not installed)")


if __name__ == "__main__":
    main()
