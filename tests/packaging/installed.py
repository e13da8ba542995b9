"""The wheel installed in a fresh virtualenv, and servers run from it, for the packaging tests.

Strategy: copy what the Dockerfile's build stage COPYs (through .dockerignore) into a
temporary build context, build the wheel there with `pip wheel --no-deps` (so nothing is
written into the checkout), and install it with its dependencies into a new virtualenv
(made --without-pip; the test venv's `pip --python` installs into it). Servers then run
from that venv in empty directories outside the source tree, so every import and every
page file comes from the installed wheel, as on an operator's machine or in the image.

Needs the package index (or pip's cache) for the build backend and the dependencies.
This module imports only the standard library and the test helpers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.packaging.dockerfile import build_context, parse, stages
from tests.procs import free_port, stop, wait_for_port

__all__ = ["ROOT", "Install", "Running", "make_install", "run", "serve_installed"]

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Install:
    wheel: Path
    venv: Path
    env: dict[str, str]  # a clean environment: nothing points back at the source tree

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def wheel_file(self, name: str) -> bytes:
        """A file's bytes as the wheel holds them (the checkout may have moved on since)."""
        with zipfile.ZipFile(self.wheel) as wheel:
            return wheel.read(name)

    def pip_install(self, *requirements: str) -> None:
        run([sys.executable, "-m", "pip", "--python", self.bin / "python", "install",
             "--quiet", "--disable-pip-version-check", *requirements],
            env=self.env, cwd=self.venv)


@dataclasses.dataclass(frozen=True)
class Running:
    base: str  # "127.0.0.1:PORT"
    cwd: Path
    proc: subprocess.Popen[bytes]


def run(argv: Sequence[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a setup command; fail with its output when it fails."""
    result = subprocess.run([str(a) for a in argv], check=False, capture_output=True, text=True,
                            timeout=180, **kwargs)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result


def clean_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    env = {k: v for k, v in os.environ.items()
           if k not in drop and not k.startswith(("WSRUN_", "CHAT_", "HEALTHCHECK_"))}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def make_install(workdir: Path) -> Install:
    """Build the wheel from the Docker build context and install it into a new venv."""
    build_stage = stages(parse((ROOT / "Dockerfile").read_text()))[0]
    context, dist, venv = workdir / "context", workdir / "dist", workdir / "venv"
    context.mkdir()
    build_context(ROOT, context, build_stage)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, context])
    (wheel,) = dist.glob("wsrun-*.whl")
    env = clean_env()
    run([sys.executable, "-m", "venv", "--clear", "--without-pip", venv], env=env)
    install = Install(wheel, venv, env)
    # A real install: the wheel's declared dependencies come from the index (or pip's
    # cache), so a dependency missing from pyproject fails here.
    install.pip_install(str(wheel))
    return install


def same_versions(*names: str) -> list[str]:
    """`name==version` as installed in the test venv (so pip's cache serves them)."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def server_argv(install: Install, server: str, app: str, port: int) -> list[str]:
    python = str(install.bin / "python")
    if server == "wsrun":
        return [str(install.bin / "wsrun"), app, "--port", str(port)]
    if server == "uvicorn":
        return [python, "-m", "uvicorn", app, "--port", str(port), "--no-access-log"]
    if server == "hypercorn":
        return [python, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}"]
    raise ValueError(f"unknown server {server!r}")


@contextlib.contextmanager
def serve_installed(install: Install, server: str, app: str, cwd: Path,
                    args: Sequence[str] = (), env: dict[str, str] | None = None,
                    ) -> Iterator[Running]:
    """Run `server` from the venv on `app` in `cwd` with CHAT_DB there; stop with SIGTERM."""
    port = free_port()
    proc = subprocess.Popen(
        [*server_argv(install, server, app, port), *args],
        cwd=cwd, env={**install.env, "CHAT_DB": str(cwd / "chat.db"), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield Running(f"127.0.0.1:{port}", cwd, proc)
    finally:
        stop(proc)
