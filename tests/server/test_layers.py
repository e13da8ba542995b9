"""The layering of server/ (README "Development"): no import circle, every arrow points down.

Read from the source with `ast` (nothing is imported), so a circle hidden behind a
function-level or `TYPE_CHECKING` import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"

# Bytes in, events and bytes out: no event loop, no socket, no clock (STYLE "Architecture").
SANS_IO = ("errors", "types", "config", "http11", "response", "handshake", "masking", "closing",
           "bodies", "fields", "frames", "events", "messages", "extensions", "deflate", "outbox",
           "websocket")
FORBIDDEN_IN_SANS_IO = {"asyncio", "socket", "time", "selectors", "ssl", "threading", "uvloop"}
# The asyncio glue and what sits above it (the package's public names included): nothing
# else may import these.
GLUE = {"glue", "protocol", "wsprotocol", "metrics", "main", "cli", "supervisor", "worker",
        "workers", "__main__", "__init__"}
# The ASGI cycles (phases, queues, close ordering): no transport, socket or clock of their
# own; the glue hands them its write methods, timers and awaitables.
CYCLES = ("httpcycle", "wscycle", "wsinbound")
FORBIDDEN_IN_CYCLES = {"asyncio", "socket", "time", "selectors", "ssl", "threading", "uvloop"}


def module_imports(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, anywhere in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "server":  # `from server import frames`
                names.update(f"server.{alias.name}" for alias in node.names)
    return names


def graph() -> dict[str, set[str]]:
    """server module name -> the server modules it imports."""
    modules = {path.stem: path for path in SERVER.glob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = {
            imported.split(".")[1]
            for imported in module_imports(path)
            if imported.startswith("server.") and imported.split(".")[1] in modules
        } - {name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports as a list of modules (first == last), or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node):], node]
        if node in done:
            return None
        visiting.append(node)
        for child in sorted(edges[node]):
            cycle = visit(child)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(edges):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_find_cycle_reports_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_server_has_no_import_cycle() -> None:
    assert find_cycle(graph()) is None


def test_nothing_below_the_glue_imports_it() -> None:
    edges = graph()
    offenders = {
        name: sorted(imported & GLUE) for name, imported in edges.items()
        if name not in GLUE and imported & GLUE
    }
    assert offenders == {}


def stdlib_imports(name: str) -> set[str]:
    """Top-level packages a server module imports itself (empty if it does not exist)."""
    path = SERVER / f"{name}.py"
    return {imported.split(".")[0] for imported in module_imports(path)} if path.exists() \
        else set()


def test_sans_io_modules_import_no_event_loop_socket_or_clock() -> None:
    edges = graph()
    for name in SANS_IO:
        assert stdlib_imports(name) & FORBIDDEN_IN_SANS_IO == set(), name
        # ... nor through the modules of ours they import.
        assert edges.get(name, set()) <= set(SANS_IO), name


def test_cycles_import_no_transport_socket_or_clock() -> None:
    edges = graph()
    for name in CYCLES:
        assert stdlib_imports(name) & FORBIDDEN_IN_CYCLES == set(), name
        # Of ours, only the sans-I/O core, each other, and ServerState for its type (the
        # glue's pieces, flow control and timers, come in as arguments).
        assert edges.get(name, set()) <= {*SANS_IO, *CYCLES, "state"}, name
