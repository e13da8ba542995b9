"""The servers under test: how to start each one on an ASGI app, and how to stop it.

Every server runs one worker with uvloop where it offers it, on 127.0.0.1 only, from a scratch
working directory (so an app that writes files, like app:chat's SQLite history, leaves the
checkout alone), with its output in a log file (a full pipe would stall it). A server whose
Python package is missing is reported as unavailable, never silently dropped.

Imports nothing from `server/` or `app/`: wsrun is started as `python -m server`, from this
checkout or, as `wsrun@REV`, from git revision REV (bench/revisions.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bench import revisions

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BASELINE = "uvicorn-sansio"
# Room for the 5,000-connection idle round and the 1,001-member fan-out on every server.
BACKLOG = "8192"


def _uvicorn(ws: str) -> Callable[[str, int], list[str]]:
    return lambda app, port: [
        PY, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--ws", ws, "--no-access-log", "--log-level", "warning",
        "--backlog", BACKLOG]


@dataclass(frozen=True)
class ServerSpec:
    """One server under test: `argv(app, port)` starts it; `module` must be importable.

    `source`: a directory put first on the server's PYTHONPATH, where its package comes from
    instead of this checkout (`wsrun@REV`: `server/` exported from revision REV)."""

    name: str
    label: str
    module: str
    argv: Callable[[str, int], list[str]]
    source: Path | None = None

    def unavailable(self) -> str | None:
        """Why this server cannot run here, or None when it can."""
        if self.source is not None:
            path = self.source.joinpath(*self.module.split("."))
            if not (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
                return f"{self.module} is not in that revision"
            return None
        if importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed"
        return None


SERVERS: dict[str, ServerSpec] = {s.name: s for s in (
    ServerSpec("wsrun", "wsrun (uvloop)", "server.cli", lambda app, port: [
        PY, "-m", "server", app, "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "--backlog", BACKLOG]),
    ServerSpec(BASELINE, "uvicorn --ws websockets-sansio", "uvicorn",
               _uvicorn("websockets-sansio")),
    ServerSpec("uvicorn-websockets", "uvicorn --ws websockets", "uvicorn", _uvicorn("websockets")),
    ServerSpec("uvicorn-wsproto", "uvicorn --ws wsproto", "uvicorn", _uvicorn("wsproto")),
    ServerSpec("hypercorn", "hypercorn -k uvloop", "hypercorn", lambda app, port: [
        PY, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}", "-k", "uvloop",
        "--workers", "1", "--backlog", BACKLOG]),
    ServerSpec("granian", "granian --interface asgi", "granian", lambda app, port: [
        PY, "-m", "granian", "--interface", "asgi", "--loop", "uvloop", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--backlog", BACKLOG,
        "--backpressure", BACKLOG, "--log-level", "warning", app]),
)}


# `wsrun@REV`: wsrun from git revision REV of this repository (bench/revisions.py).
AT_REVISION = "wsrun"


def check(name: str) -> None:
    """ValueError unless `name` is a server of SERVERS or `wsrun@REV` with REV a commit."""
    base, at, rev = name.partition("@")
    if not at and name in SERVERS:
        return
    if at and base == AT_REVISION and rev:
        revisions.commit(rev)
        return
    raise ValueError(f"unknown server {name!r}; known: {', '.join(SERVERS)}, "
                     f"{AT_REVISION}@REV (a git revision)")


@contextlib.contextmanager
def resolve(names: list[str], log: Callable[[str], None]) -> Iterator[dict[str, ServerSpec]]:
    """The spec of every name in `names`; each `wsrun@REV` exported for the duration."""
    with contextlib.ExitStack() as stack:
        specs: dict[str, ServerSpec] = {}
        for name in names:
            check(name)
            base, _, rev = name.partition("@")
            if not rev:
                specs[name] = SERVERS[name]
                continue
            source = stack.enter_context(revisions.export(rev, log))
            specs[name] = replace(SERVERS[base], name=name, source=source,
                                  label=f"wsrun at {rev} ({revisions.commit(rev)[:12]})")
        yield specs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    """A started server: its address, pid (root of its process tree) and log file."""

    spec: ServerSpec
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""


def _wait_listening(running: Running, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            raise RuntimeError(f"{running.spec.name} exited with {running.proc.returncode}:\n"
                               f"{running.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", running.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{running.spec.name}: nothing listening on 127.0.0.1:{running.port}"
                       f" after {timeout}s:\n{running.log_tail()}")


def start(spec: ServerSpec, app: str, workdir: Path, env: dict[str, str] | None = None,
          timeout: float = 30.0) -> Running:
    """Start `spec` on `app` on a free loopback port and wait until it accepts connections.

    `env` values may name `{workdir}` and `{server}` (e.g. a database file per server)."""
    port = free_port()
    log = workdir / f"{spec.name}-{port}.log"
    extra = {k: v.format(workdir=workdir, server=spec.name) for k, v in (env or {}).items()}
    path = str(ROOT) if spec.source is None else f"{spec.source}{os.pathsep}{ROOT}"
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}
    with open(log, "wb") as out:
        # Own session: stopping it reaches the workers it forks (granian) and nothing else.
        proc = subprocess.Popen(spec.argv(app, port), cwd=workdir, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    running = Running(spec, port, proc, log)
    try:
        _wait_listening(running, timeout)
    except BaseException:
        stop(running)
        raise
    return running


def stop(running: Running, timeout: float = 10.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after `timeout`."""
    proc = running.proc
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    # Workers left behind by a parent that died first share the group: reap them too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="wsrun-bench-") as path:
        yield Path(path)
