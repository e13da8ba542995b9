"""Read the Dockerfile and .dockerignore the way Docker does, for the packaging tests.

There is no Docker engine on the test machines, so the tests cannot build the image. What
they can do is read the Dockerfile into instructions and stages (`parse`, `stages`), and
rebuild the build stage's view of the source tree: `build_context` copies what the
Dockerfile COPYs, filtered through .dockerignore, so the wheel test builds the wheel from
exactly the files `docker build` would send.

Only the parts of the Dockerfile syntax the project uses are handled: parser directives,
comments, backslash continuations, `--flag=value` options, exec (JSON) and shell forms.
This module imports only the standard library.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

__all__ = [
    "Instruction",
    "Stage",
    "build_context",
    "context_files",
    "ignored",
    "parse",
    "read_dockerignore",
    "stages",
]

_DIRECTIVE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(\S+)\s*$")
_FLAG = re.compile(r"^--([a-z-]+)(?:=(\S*))?\s*")


@dataclasses.dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: `keyword` upper-cased, its `--flags`, the rest as written."""

    line: int
    keyword: str
    flags: dict[str, str]
    args: str

    def exec_form(self) -> list[str] | None:
        """The arguments as a JSON array of strings (exec form), or None (shell form)."""
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class Stage:
    """A build stage: its FROM image, its `AS` name (or None) and its instructions."""

    image: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join backslash continuations; drop comments and blank lines (Docker's rules:
    a comment line inside a continuation is removed, not an end of the instruction)."""
    lines = text.splitlines()
    index = 0
    # Parser directives are comments at the very top (`# syntax=...`); they end at the
    # first line that is not one.
    while index < len(lines) and _DIRECTIVE.match(lines[index]):
        index += 1
    start, parts = 0, []
    for number, raw in enumerate(lines[index:], start=index + 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not parts):
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        yield start, " ".join(p for p in parts if p)
        parts = []
    if parts:
        yield start, " ".join(p for p in parts if p)


def parse(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, in order."""
    out = []
    for line, logical in _logical_lines(text):
        keyword, _, rest = logical.partition(" ")
        flags: dict[str, str] = {}
        rest = rest.strip()
        # Flags come before the arguments (`COPY --from=build`, `HEALTHCHECK --interval=`).
        while match := _FLAG.match(rest):
            flags[match.group(1)] = match.group(2) or ""
            rest = rest[match.end():]
        out.append(Instruction(line, keyword.upper(), flags, rest.strip()))
    return out


def stages(instructions: list[Instruction]) -> list[Stage]:
    """Split instructions at each FROM; instructions before the first FROM (ARG) are dropped."""
    result: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], name, []))
        elif result:
            result[-1].instructions.append(instruction)
    return result


# -- .dockerignore --------------------------------------------------------------------


def read_dockerignore(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """The patterns of a .dockerignore as (is_exception, compiled regex), in order."""
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line[1:].strip() if negated else line
        # Docker cleans each pattern like filepath.Clean: no leading "/" or "./", no trailing "/".
        line = str(PurePosixPath(line.lstrip("/"))).removeprefix("./")
        patterns.append((negated, re.compile(_translate(line))))
    return patterns


def _translate(pattern: str) -> str:
    """Go filepath.Match plus Docker's `**`: `*` and `?` never cross "/", `**` does."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i)
            out.append(pattern[i:end + 1].replace("[!", "[^") if end > i else re.escape("["))
            i = end + 1 if end > i else i + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "^" + "".join(out) + "$"


def ignored(patterns: list[tuple[bool, re.Pattern[str]]], relpath: str) -> bool:
    """Whether Docker leaves `relpath` out of the build context.

    As Docker's patternmatcher: a pattern applies to a path when it matches the path or one
    of its parent directories; the last pattern that applies decides.
    """
    parts = PurePosixPath(relpath).parts
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negated, regex in patterns:
        if any(regex.match(candidate) for candidate in candidates):
            result = not negated
    return result


def context_files(root: Path) -> list[str]:
    """Every file of `root` that `docker build root` sends, relative, sorted."""
    patterns = read_dockerignore(root / ".dockerignore")
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        # Skip walking what is ignored whole (.venv/, .git/): nothing below it can come
        # back unless an exception pattern is written for it, which ours are not.
        dirnames[:] = sorted(d for d in dirnames if not ignored(patterns, prefix + d)
                             or _has_exception_below(patterns, prefix + d))
        files += [prefix + f for f in filenames if not ignored(patterns, prefix + f)]
    return sorted(files)


def _has_exception_below(patterns: list[tuple[bool, re.Pattern[str]]], rel: str) -> bool:
    return any(negated and regex.pattern.startswith("^" + re.escape(rel + "/"))
               for negated, regex in patterns)


def build_context(root: Path, dest: Path, stage: Stage) -> list[str]:
    """Copy what `stage` COPYs from the build context of `root` into `dest`.

    Returns:
        The copied files, relative to `dest`.

    Raises:
        FileNotFoundError: a COPY source that the context does not contain.
    """
    available = context_files(root)
    copied = []
    for copy in stage.all("COPY"):
        if "from" in copy.flags:
            continue
        words = copy.exec_form() or copy.args.split()
        *sources, _target = words
        for source in sources:
            source = source.rstrip("/")
            matched = [f for f in available if f == source or f.startswith(source + "/")]
            if not matched:
                raise FileNotFoundError(f"COPY {source} (line {copy.line}): not in the context")
            for rel in matched:
                # `COPY dir/ dir/` copies the directory's contents into dir/; `COPY a b ./`
                # copies files into the working directory: both keep the relative path here.
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / rel, out)
                copied.append(rel)
    return copied
