"""Read a server's CPU time and memory from /proc, process tree included.

Servers such as granian run their worker in a child process, so every figure sums the process
and all its live descendants. Linux only; imports nothing from the rest of the project.
"""

from __future__ import annotations

import os
import resource

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read().decode()
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2:].split()


def process_tree(pid: int) -> list[int]:
    """Return `pid` and all its live descendants, found by parent pid in /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue  # the process exited while we looked
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, ()))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of each process in `pids` (fields 14 and 15 of /proc/PID/stat)."""
    ticks = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        # After the command name, field index 0 is field 3 (state): utime is 14, stime 15.
        ticks += int(fields[11]) + int(fields[12])
    return ticks / _CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    """VmRSS of each process in `pids`, from /proc/PID/status, in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmRSS:"):
                        total += int(line.split()[1]) * 1024  # reported in kB
                        break
        except OSError:
            continue
    return total


def raise_nofile(wanted: int = 65536) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (up to the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft
