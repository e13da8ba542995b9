"""The Autobahn TestSuite (PyPI `kosoku`) against wsrun serving the echo app.

Sections 1-7, 9 and 10, three runs in a row: every case OK, INFORMATIONAL only where
Autobahn merely informs (7.1.6, 7.13.x: close behaviour it does not grade), never
NON-STRICT, FAILED or UNIMPLEMENTED.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

SECTIONS = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
INFORMATIONAL = {"7.1.6", "7.13.1", "7.13.2"}


def kosoku() -> str:
    path = shutil.which("kosoku") or str(Path(sys.executable).parent / "kosoku")
    assert Path(path).exists(), "kosoku is a test dependency (pip install kosoku)"
    return path


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run", [1, 2, 3])
def test_autobahn_sections_1_to_7_9_10_all_ok(echo_server: str, tmp_path: Path, run: int) -> None:
    args = [kosoku(), echo_server, "-p", "2", "-o", str(tmp_path)]
    for section in SECTIONS:
        args += ["-i", section]
    done = subprocess.run(args, capture_output=True, text=True, timeout=540)
    report = json.loads((tmp_path / "index.json").read_text())
    (results,) = report.values()
    behaviours = Counter(r["behavior"] for r in results.values())
    not_ok = {
        case: (r["behavior"], r["behaviorClose"])
        for case, r in results.items()
        if (r["behavior"], r["behaviorClose"]) != ("OK", "OK")
        and not (case in INFORMATIONAL and r["behavior"] == "INFORMATIONAL")
    }
    assert not_ok == {}, done.stdout[-3000:]
    assert len(results) == 301
    assert behaviours == Counter({"OK": 298, "INFORMATIONAL": 3})
    assert done.returncode == 0
