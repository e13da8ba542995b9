"""wsrun as it was at another git revision of this repository, for before/after in one run.

`export(rev)` writes the `server/` package of `rev` (`git archive`) into a temporary directory,
builds its optional C extensions there (`server/*.c`, in place, as setup.py would) and yields
the directory; it is removed afterwards. A server started with that directory first on
PYTHONPATH runs the old `server` package with this checkout's `bench/` apps and `app/`, so only
the server differs. Imports nothing from `server/` or `app/`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Builds every server/NAME.c as the extension server.NAME, in place (setup.py's
# `Extension("server._speedups", ["server/_speedups.c"], optional=True)`), without reading
# the revision's pyproject.toml: only the compiler and setuptools of this environment.
_BUILD = """
import sys
from pathlib import Path
from setuptools import Distribution, Extension
sources = sorted(Path("server").glob("*.c"))
if sources:
    exts = [Extension("server." + s.stem, [str(s)]) for s in sources]
    dist = Distribution({"ext_modules": exts, "script_name": "setup.py",
                         "script_args": ["build_ext", "--inplace", "--quiet",
                                         "--build-temp", sys.argv[1], "--build-lib", sys.argv[1]]})
    dist.parse_command_line()
    dist.run_commands()
"""


class RevisionError(ValueError):
    """A revision that cannot be exported (unknown to git, or without `server/`)."""


def commit(rev: str) -> str:
    """The full commit id `rev` names in this repository; RevisionError if none."""
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet",
                           f"{rev}^{{commit}}"], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise RevisionError(f"{rev!r} is not a commit of {ROOT}")
    return done.stdout.strip()


@contextmanager
def export(rev: str, log: Callable[[str], None] = print) -> Iterator[Path]:
    """A temporary directory holding `server/` of `rev`, extensions built; removed on exit."""
    full = commit(rev)
    with tempfile.TemporaryDirectory(prefix=f"wsrun-{rev.replace('/', '_')}-") as scratch:
        tmp = Path(scratch) / "src"  # on PYTHONPATH: `server/` only, no build directories
        tmp.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", full,
                                  "server"], capture_output=True, check=False)
        if archive.returncode != 0:
            raise RevisionError(f"git archive {rev} server: "
                                f"{archive.stderr.decode(errors='replace').strip()}")
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        build = subprocess.run([sys.executable, "-c", _BUILD, str(Path(scratch) / "build")],
                               cwd=tmp, capture_output=True, text=True, check=False)
        if build.returncode != 0:  # the extensions are optional, as in setup.py
            log(f"wsrun@{rev}: C extensions not built, its pure-Python fallbacks run: "
                f"{(build.stderr.strip().splitlines() or ['?'])[-1]}")
        yield tmp
