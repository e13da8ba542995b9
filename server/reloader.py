"""--reload: restart the (single) worker when a watched file changes, through `watchfiles`.

The option names and default globs are uvicorn's: --reload-dir (default: the current
directory), --reload-include (default "*.py"), --reload-exclude (default ".*", ".py[cod]",
".sw.*", "~*"; a directory given there is skipped as a whole). watchfiles is the optional
`reload` extra, imported only when --reload is used. A worker that fails to start (an edit
with a syntax error) is reported and the next change tries again.
This module must not import the protocol layers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

__all__ = ["Reload", "changes"]

MISSING_EXTRA = "--reload needs the reload extra: pip install 'wsrun[reload]'"
DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")


@dataclass(frozen=True, slots=True)
class Reload:
    """What --reload watches: directories, and file globs to include and exclude."""

    dirs: tuple[Path, ...]
    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    exclude_dirs: tuple[Path, ...]

    @classmethod
    def checked(cls, reload_dirs: Sequence[str] = (), reload_includes: Sequence[str] = (),
                reload_excludes: Sequence[str] = ()) -> Reload:
        """Settings from the CLI's values.

        Raises:
            click.ClickException: watchfiles is not installed (one line, how to get it).
        """
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise click.ClickException(MISSING_EXTRA) from None
        includes = [p for p in DEFAULT_INCLUDES if p not in reload_excludes]
        includes += [p for p in reload_includes if p not in includes]
        excludes = [p for p in DEFAULT_EXCLUDES if p not in reload_includes]
        exclude_dirs = []
        for pattern in reload_excludes:
            if os.path.isdir(pattern):
                exclude_dirs.append(Path(pattern).resolve())
            elif pattern not in excludes:
                excludes.append(pattern)
        dirs = [Path(d).resolve() for d in reload_dirs] or [Path.cwd()]
        return cls(tuple(dirs), tuple(includes), tuple(excludes), tuple(exclude_dirs))

    def matches(self, path: Path) -> bool:
        """Whether a change to `path` restarts the worker."""
        if not any(path.match(pattern) for pattern in self.includes):
            return False
        if any(d in path.parents for d in self.exclude_dirs):
            return False
        return not any(path.match(pattern) for pattern in self.excludes)


async def changes(settings: Reload, stop: asyncio.Event) -> AsyncIterator[str]:
    """Yield a description of each change that matters, until `stop` is set."""
    from watchfiles import awatch

    cwd = Path.cwd()
    async for found in awatch(*settings.dirs, stop_event=stop, ignore_permission_denied=True):
        paths = sorted({Path(path) for _, path in found if settings.matches(Path(path))})
        if paths and not stop.is_set():
            yield ", ".join(repr(str(p.relative_to(cwd) if p.is_relative_to(cwd) else p))
                            for p in paths)
