"""bench/worker_balance.py in a tiny run: both socket modes produce a row of counts."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.procs import ROOT


def test_worker_balance_reports_both_modes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker_balance", "--workers", "2", "--short", "20",
         "--long", "6"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 2 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["shared", "reuseport"]
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[3:7]]
        seq, conc, held = ([int(n) for n in cell.split(" / ")] for cell in cells[:3])
        assert sum(seq) == sum(conc) == 20 and sum(held) == 6
        assert re.fullmatch(r"\d+ of 40", cells[3])
