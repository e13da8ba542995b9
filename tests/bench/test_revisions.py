"""`wsrun@REV`: wsrun from another git revision, exported and run beside this checkout's.

Real git, real server processes on 127.0.0.1; the probe app (tests/bench/whereapp.py) reports
which files the server process imported `server` and its C extension from.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report, revisions, runner, servers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _where(spec: servers.ServerSpec, workdir: Path) -> dict[str, str | None]:
    """Start `spec` on the probe app, ask it where `server` came from, stop it."""
    running = servers.start(spec, "tests.bench.whereapp:app", workdir)
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    finally:
        servers.stop(running)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    answer: dict[str, str | None] = json.loads(body)
    return answer


def test_wsrun_at_head_runs_the_exported_server_package(tmp_path: Path) -> None:
    lines: list[str] = []
    with servers.resolve(["wsrun", "wsrun@HEAD"], lines.append) as specs:
        source = specs["wsrun@HEAD"].source
        assert source is not None and not source.is_relative_to(ROOT)
        assert specs["wsrun@HEAD"].label == f"wsrun at HEAD ({_git('rev-parse', 'HEAD')[:12]})"
        assert specs["wsrun@HEAD"].unavailable() is None
        old = _where(specs["wsrun@HEAD"], tmp_path)
        new = _where(specs["wsrun"], tmp_path)
    assert old["server"] == str(source / "server" / "__init__.py")
    assert new["server"] == str(ROOT / "server" / "__init__.py")
    if importlib.util.find_spec("server._speedups") is not None:  # built here: built there
        assert lines == []
        assert old["server._speedups"] is not None
        assert Path(old["server._speedups"]).parent == source / "server"
    assert not source.exists()  # removed once the run is over


def test_a_run_labels_the_revision_and_records_its_commit() -> None:
    results = runner.run(["wsrun@HEAD"], ["echo"], rounds=1, duration=0.2, warmup=0.05,
                         smoke=True, client="raw", log=lambda line: None)
    assert results["revisions"] == {"wsrun@HEAD": _git("rev-parse", "HEAD")}
    entry = results["scenarios"]["echo"]["servers"]["wsrun@HEAD"]
    assert entry["label"].startswith("wsrun at HEAD (")
    assert entry["errors"] == [] and entry["summary"]["rate"]["median"] > 0
    row = report.table({"machine": report.machine(), **results}).splitlines()[2]
    assert row.startswith("| echo | wsrun@HEAD | ")


def test_a_revision_without_the_cli_is_reported_unavailable() -> None:
    added = _git("log", "--diff-filter=A", "--format=%H", "--", "server/cli.py").splitlines()
    before = f"{added[-1]}~1"
    with servers.resolve([f"wsrun@{before}"], lambda line: None) as specs:
        assert specs[f"wsrun@{before}"].unavailable() == "server.cli is not in that revision"


def test_an_unknown_revision_is_a_one_line_usage_error() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--servers",
                           "wsrun,wsrun@no-such-revision", "--no-save"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == (
        f"Error: Invalid value for '--servers': 'no-such-revision' is not a commit of {ROOT}")
    with pytest.raises(revisions.RevisionError):
        servers.check("wsrun@no-such-revision")
    with pytest.raises(ValueError, match="unknown server 'uvicorn@HEAD'"):
        servers.check("uvicorn@HEAD")
