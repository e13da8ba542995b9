"""The Autobahn TestSuite (PyPI `kosoku`) against wsrun serving the echo app.

Sections 1-7, 9 and 10, three runs in a row: every case OK, INFORMATIONAL only where
Autobahn merely informs (7.1.6, 7.13.x: close behaviour it does not grade), never
NON-STRICT, FAILED or UNIMPLEMENTED.

Sections 12 and 13 (permessage-deflate, 216 cases, each echoing 1,000 messages of up to
128 KiB) take minutes of CPU a run, so they are marked `conformance`: `make test` leaves
them out and `make conformance` (which CI runs too) runs them, three runs in a row
(`WSRUN_CONFORMANCE_RUNS`, 3 by default; CI runs them once to stay within its time). Their
server has no keepalive ping: these cases last longer than the 20 s ping interval, and
kosoku ends a case when a ping arrives in the middle of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import serve

SECTIONS = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
INFORMATIONAL = {"7.1.6", "7.13.1", "7.13.2"}


def run_kosoku(addr: str, sections: list[str], out: Path) -> tuple[dict[str, Any], str, int]:
    """Run kosoku on `sections`; return (results by case, stdout tail, exit code)."""
    args = [kosoku(), addr, "-p", "2", "-o", str(out)]
    for section in sections:
        args += ["-i", section]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1700)
    report = json.loads((out / "index.json").read_text())
    (results,) = report.values()
    return results, done.stdout[-3000:], done.returncode


def kosoku() -> str:
    path = shutil.which("kosoku") or str(Path(sys.executable).parent / "kosoku")
    assert Path(path).exists(), "kosoku is a test dependency (pip install kosoku)"
    return path


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run", [1, 2, 3])
def test_autobahn_sections_1_to_7_9_10_all_ok(echo_server: str, tmp_path: Path, run: int) -> None:
    results, stdout, returncode = run_kosoku(echo_server, SECTIONS, tmp_path)
    behaviours = Counter(r["behavior"] for r in results.values())
    not_ok = {
        case: (r["behavior"], r["behaviorClose"])
        for case, r in results.items()
        if (r["behavior"], r["behaviorClose"]) != ("OK", "OK")
        and not (case in INFORMATIONAL and r["behavior"] == "INFORMATIONAL")
    }
    assert not_ok == {}, stdout
    assert len(results) == 301
    assert behaviours == Counter({"OK": 298, "INFORMATIONAL": 3})
    assert returncode == 0


@pytest.fixture(scope="module")
def echo_server_without_pings() -> Iterator[str]:
    with serve("wsrun", "tests.integration.apps:echo",
               args=["--no-access-log", "--ws-ping-interval", "0"]) as addr:
        yield addr


CONFORMANCE_RUNS = int(os.environ.get("WSRUN_CONFORMANCE_RUNS", "3"))


@pytest.mark.conformance
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("run", range(1, CONFORMANCE_RUNS + 1))
def test_autobahn_sections_12_13_permessage_deflate_all_ok(
    echo_server_without_pings: str, tmp_path: Path, run: int
) -> None:
    results, stdout, returncode = run_kosoku(echo_server_without_pings, ["12.*", "13.*"], tmp_path)
    not_ok = {case: (r["behavior"], r["behaviorClose"]) for case, r in results.items()
              if (r["behavior"], r["behaviorClose"]) != ("OK", "OK")}
    assert not_ok == {}, stdout
    sections = Counter(case.split(".")[0] for case in results)
    assert sections == Counter({"12": 90, "13": 126})
    assert returncode == 0
