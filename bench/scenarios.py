"""The scenarios: which app each runs, its load parameters (full and smoke), and how its raw
round result becomes figures. Pure data and arithmetic: no processes, no I/O.

Figures of a round (keys of `figures()`):
- `rate`: work per wall-second (msg/s, MB/s, deliveries/s, handshakes/s);
- `per_cpu`: the same work per server CPU-second (utime + stime, process tree), the figure
  the speed targets are about, since the load generator shares the machine;
- `p50_ms`, `p99_ms` where latency is measured; `client_busy`, the load generator's own CPU
  share of the window (near 1.0 means the client, not the server, was the limit);
- idle only: `rss_kib` (server RSS growth per open connection, KiB; lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

ECHO_APP = "bench.apps:echo"
BROADCAST_APP = "bench.apps:broadcast"
CHAT_APP = "app:chat"


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # the load function in bench.load
    app: str
    unit: str  # unit of `rate`
    params: dict[str, Any]
    smoke: dict[str, Any]  # overrides for a smoke run
    about: str
    fresh_server: bool = False  # restart the server for each round (memory figures)
    only: tuple[str, ...] | None = None  # restrict to these servers
    lower_is_better: bool = False
    env: dict[str, str] = field(default_factory=dict)  # for the server process

    def runs_on(self, server: str) -> bool:
        """Whether this scenario runs on `server`; `wsrun@REV` counts as wsrun."""
        return self.only is None or server.partition("@")[0] in self.only

    @property
    def primary(self) -> str:
        """The figure compared across servers: per CPU-second, or RSS for idle."""
        return "rss_kib" if self.kind == "idle" else "per_cpu"


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("echo", "echo", ECHO_APP, "msg/s",
             {"conns": 100, "size": 32, "inflight": 1},
             {"conns": 4}, "100 connections, 32-byte text, one message in flight each"),
    # Load shapes: the same work at other concurrencies, so a result holds across shapes.
    Scenario("echo-50", "echo", ECHO_APP, "msg/s",
             {"conns": 50, "size": 32, "inflight": 1},
             {"conns": 4}, "50 connections, 32-byte text, one message in flight each"),
    Scenario("echo-100", "echo", ECHO_APP, "msg/s",
             {"conns": 100, "size": 32, "inflight": 1},
             {"conns": 8}, "100 connections, 32-byte text, one message in flight each"),
    Scenario("echo-pipelined", "echo", ECHO_APP, "msg/s",
             {"conns": 100, "size": 32, "inflight": 16},
             {"conns": 4, "inflight": 4}, "100 connections, 32-byte text, 16 in flight each"),
    Scenario("large", "echo", ECHO_APP, "MB/s",
             {"conns": 4, "size": 1 << 20, "inflight": 1, "binary": True},
             {"conns": 1}, "4 connections, 1 MiB binary echo, one in flight each"),
    Scenario("fanout", "fanout", BROADCAST_APP, "deliveries/s",
             {"receivers": 1000, "size": 100, "window": 8, "gate": "ack"},
             {"receivers": 20}, "1,000 receivers in one room, one sender keeping 8 messages "
             "of 100 B in flight, each until the sender's own copy (sent last) is back"),
    Scenario("fanout-w1", "fanout", BROADCAST_APP, "deliveries/s",
             {"receivers": 1000, "size": 100, "window": 1, "gate": "all"},
             {"receivers": 20}, "1,000 receivers, ONE broadcast of 100 B in flight: the next "
             "is sent once every receiver has its copy, so nothing coalesces"),
    Scenario("fanout-w8", "fanout", BROADCAST_APP, "deliveries/s",
             {"receivers": 1000, "size": 100, "window": 8, "gate": "all"},
             {"receivers": 20}, "1,000 receivers, 8 broadcasts of 100 B in flight, each until "
             "every receiver has its copy"),
    Scenario("connect", "connect", ECHO_APP, "handshakes/s",
             {"concurrency": 16},
             {"concurrency": 2}, "16 workers looping connect + handshake + close handshake"),
    Scenario("idle", "idle", ECHO_APP, "KiB/conn",
             {"conns": 5000},
             {"conns": 50}, "5,000 idle connections: server RSS growth per connection",
             fresh_server=True, lower_is_better=True),
    Scenario("chat", "chat", CHAT_APP, "msg/s",
             {"clients": 100, "rooms": 10, "deflate": False},
             {"clients": 4, "rooms": 2}, "app:chat, 100 clients in 10 rooms speaking chat.v1",
             only=("wsrun", "uvicorn-sansio"),
             # A fresh SQLite file per server; the default rate limit would be the bottleneck.
             env={"CHAT_DB": "{workdir}/{server}.db", "CHAT_RATE": "1000000/1",
                  "CHAT_ADDRESS_RATE": "1000000/1", "CHAT_ADDRESS_CONNECT_RATE": "1000000/1"}),
    # permessage-deflate (RFC 7692) negotiated, as browsers offer it; only the servers that
    # accept it by default. The clients inflate what they receive and send uncompressed.
    Scenario("fanout-deflate", "fanout", BROADCAST_APP, "deliveries/s",
             {"receivers": 1000, "size": 100, "window": 8, "gate": "ack", "deflate": True},
             {"receivers": 20}, "fanout with permessage-deflate negotiated",
             only=("wsrun", "uvicorn-sansio")),
    Scenario("idle-deflate", "idle", ECHO_APP, "KiB/conn",
             {"conns": 5000, "deflate": True},
             {"conns": 50}, "idle with permessage-deflate negotiated",
             fresh_server=True, lower_is_better=True, only=("wsrun", "uvicorn-sansio")),
    Scenario("chat-deflate", "chat", CHAT_APP, "msg/s",
             {"clients": 100, "rooms": 10, "deflate": True},
             {"clients": 4, "rooms": 2}, "chat with permessage-deflate negotiated",
             only=("wsrun", "uvicorn-sansio"),
             env={"CHAT_DB": "{workdir}/{server}.db", "CHAT_RATE": "1000000/1",
                  "CHAT_ADDRESS_RATE": "1000000/1", "CHAT_ADDRESS_CONNECT_RATE": "1000000/1"}),
)}


def idle_with(conns: int) -> Scenario:
    """The idle scenario holding `conns` connections (`python -m bench --idle-conns N`)."""
    return replace(SCENARIOS["idle"], params={"conns": conns},
                   about=f"{conns:,} idle connections: server RSS growth per connection")


def load_params(s: Scenario, *, smoke: bool, duration: float, warmup: float) -> dict[str, Any]:
    """The JSON the load process gets for one round (without host, port and pid)."""
    params = {**s.params, **(s.smoke if smoke else {})}
    # Idle holds its connections for `duration` before reading RSS; the rest count for it.
    timeout = 120.0 + 4 * duration
    return {"kind": s.kind, "duration": duration, "warmup": warmup, "timeout": timeout,
            **params}


def figures(s: Scenario, raw: dict[str, Any]) -> dict[str, float | None]:
    """Turn one round's raw load result into figures (see the module docstring)."""
    if s.kind == "idle":
        return {"rss_kib": raw["rss_per_conn"] / 1024, "conns": float(raw["count"])}
    amount = raw["bytes"] / 1e6 if s.unit == "MB/s" else float(raw["count"])
    cpu = raw["server_cpu"]
    out: dict[str, float | None] = {
        "rate": amount / raw["elapsed"],
        # CPU time comes in 10 ms ticks: a window with no tick has no per-CPU figure.
        "per_cpu": amount / cpu if cpu > 0 else None,
        "server_cpu": cpu,
        "client_busy": raw.get("client_busy"),
    }
    for key in ("p50_ms", "p99_ms"):
        if key in raw:
            out[key] = raw[key]
    return out
