"""Server-level figures: the Prometheus collector over `Stats`, and the /metrics ASGI app.

`Stats` holds plain counters that the glue increments on its hot path (no locks, no
prometheus calls per frame); `StatsCollector` turns them into Prometheus metric families
only when /metrics is scraped. `metrics_app` is a tiny ASGI app, served on --metrics-port
by the server's own `HttpProtocol` on its own loop (`server.metrics`): no thread, no
second request loop, nothing shared with the app's listener.

prometheus_client is an optional extra (`wsrun[metrics]`): it is imported inside the
metrics functions only, so the server runs without it unless metrics are asked for.
This module sits below the glue: it reads connections through `server.state.Connection`
and must not import `server.protocol` or `server.wsprotocol`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from server.logs import JsonFormatter  # noqa: F401 - its former home, named by --log-config files
from server.state import Connection, Stats
from server.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "MetricsUnavailable",
    "StatsCollector",
    "add_figures",
    "metrics_app",
    "registry_for",
    "require_prometheus",
    "snapshot",
]

error_log = logging.getLogger("wsrun.error")

MISSING_EXTRA = "--metrics-port needs the metrics extra: pip install 'wsrun[metrics]'"


# -- metrics -------------------------------------------------------------------------------


class MetricsUnavailable(Exception):
    """Metrics were asked for but prometheus_client (the `metrics` extra) is not installed."""


def require_prometheus() -> None:
    """Check that prometheus_client can be imported.

    Raises:
        MetricsUnavailable: it cannot; the message says how to install it.
    """
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise MetricsUnavailable(MISSING_EXTRA) from None


def snapshot(stats: Stats, connections: Iterable[Connection]) -> dict[str, Any]:
    """The server's figures as plain JSON-able data: what a worker of `--workers` reports to
    its supervisor, which sums them with `add_figures`. Status and code keys are strings.

    Args:
        stats: the server's counters.
        connections: the live connections (`ServerState.connections`); WebSocket ones are
            counted and their not-yet-folded frame/byte counters added.
    """
    frames_in, frames_out = stats.frames_in, stats.frames_out
    bytes_in, bytes_out = stats.bytes_in, stats.bytes_out
    count = websockets = 0
    for connection in connections:
        count += 1
        traffic = connection.traffic()
        if traffic is not None:
            websockets += 1
            # A WebSocket's own counters are folded into `stats` when its TCP connection
            # closes, in the callback that removes it from `connections`.
            frames_in += traffic.frames_in
            frames_out += traffic.frames_out
            bytes_in += traffic.bytes_in
            bytes_out += traffic.bytes_out
    return {
        "connections": count, "websockets": websockets,
        "http_responses": {str(k): v for k, v in stats.http_responses.items()},
        "ws_accepted": stats.ws_accepted,
        "ws_rejected": {str(k): v for k, v in stats.ws_rejected.items()},
        "frames_in": frames_in, "frames_out": frames_out,
        "bytes_in": bytes_in, "bytes_out": bytes_out,
        "close_codes": {str(k): v for k, v in stats.close_codes.items()},
        "write_pauses": stats.write_pauses,
    }


GAUGES = ("connections", "websockets")


def add_figures(total: dict[str, Any], part: dict[str, Any], gauges: bool = True) -> None:
    """Add `part` (a `snapshot`) into `total`; `gauges=False` adds the counters only."""
    for name, value in part.items():
        if isinstance(value, dict):
            into = total.setdefault(name, {})
            for key, count in value.items():
                into[key] = into.get(key, 0) + count
        elif gauges or name not in GAUGES:
            total[name] = total.get(name, 0) + value
        else:
            total.setdefault(name, 0)


class StatsCollector:
    """A prometheus_client collector reading figures (a `snapshot`) at scrape time.

    Args:
        figures: returns the figures to report (one server's, or a sum over workers).
    """

    def __init__(self, figures: Callable[[], dict[str, Any]]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        f = self.figures()
        connections, websockets = f.get("connections", 0), f.get("websockets", 0)
        frames_in, frames_out = f.get("frames_in", 0), f.get("frames_out", 0)
        bytes_in, bytes_out = f.get("bytes_in", 0), f.get("bytes_out", 0)

        def by_key(name: str) -> list[tuple[int, int]]:
            return sorted((int(k), v) for k, v in f.get(name, {}).items())

        yield GaugeMetricFamily(
            "wsrun_connections_open", "Open client connections (HTTP and WebSocket).",
            value=connections)
        yield GaugeMetricFamily(
            "wsrun_websocket_connections_open",
            "Open WebSocket connections (upgrade received, TCP not yet closed).",
            value=websockets)

        http = CounterMetricFamily(
            "wsrun_http_requests", "HTTP responses sent, by status (error responses too).",
            labels=["status"])
        for status, count in by_key("http_responses"):
            http.add_metric([str(status)], count)
        yield http

        handshakes = CounterMetricFamily(
            "wsrun_websocket_handshakes",
            "WebSocket handshakes by outcome: accepted (101) or rejected with a status.",
            labels=["outcome", "status"])
        handshakes.add_metric(["accepted", "101"], f.get("ws_accepted", 0))
        for status, count in by_key("ws_rejected"):
            handshakes.add_metric(["rejected", str(status)], count)
        yield handshakes

        yield CounterMetricFamily(
            "wsrun_websocket_received_frames",
            "WebSocket data messages (text/binary) received.", value=frames_in)
        yield CounterMetricFamily(
            "wsrun_websocket_sent_frames",
            "WebSocket data messages (text/binary) sent.", value=frames_out)
        yield CounterMetricFamily(
            "wsrun_websocket_received_bytes",
            "Payload of the WebSocket data messages received.", value=bytes_in)
        yield CounterMetricFamily(
            "wsrun_websocket_sent_bytes",
            "Payload of the WebSocket data messages sent.", value=bytes_out)

        closes = CounterMetricFamily(
            "wsrun_websocket_closes",
            "Accepted WebSockets ended, by close code (1006: connection dropped).",
            labels=["code"])
        for code, count in by_key("close_codes"):
            closes.add_metric([str(code)], count)
        yield closes

        yield CounterMetricFamily(
            "wsrun_write_pauses",
            "Times a client's socket buffer filled up and writing had to pause.",
            value=f.get("write_pauses", 0))


def registry_for(*collectors: Any) -> CollectorRegistry:
    """A registry with `collectors` and the process_* figures (CPU, memory, open fds).

    Raises:
        MetricsUnavailable: prometheus_client is not installed.
    """
    require_prometheus()
    from prometheus_client import CollectorRegistry, ProcessCollector

    # Our own registry, not prometheus_client's global one: an app in the same process
    # may register its metrics there, and those belong to the app's own /metrics.
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


_ALLOW = (b"allow", b"GET, HEAD")
_TEXT = (b"content-type", b"text/plain; charset=utf-8")
REFRESH_TIMEOUT = 2.0


def metrics_app(
    registry: CollectorRegistry, refresh: Callable[[], Awaitable[None]] | None = None
) -> ASGIApp:
    """The ASGI app of the metrics listener: GET/HEAD /metrics, 404 elsewhere.

    Served by the server's own `HttpProtocol` on --metrics-port (`server.metrics`), so a
    scrape goes through the same parser and response path as any request.

    Args:
        registry: what a scrape reports (`registry_for(StatsCollector(...))`).
        refresh: awaited before each scrape is rendered (--workers: collect the workers'
            figures), for at most `REFRESH_TIMEOUT` seconds.

    Raises:
        MetricsUnavailable: prometheus_client is not installed.
    """
    require_prometheus()
    from prometheus_client.exposition import choose_encoder

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to set up
        if scope["path"] != "/metrics":
            status, headers, body = 404, [_TEXT], b"Not Found: the metrics are at /metrics\n"
        elif scope["method"] not in ("GET", "HEAD"):
            # RFC 9110 15.5.6: "The origin server MUST generate an Allow header field in a
            # 405 response containing a list of the target resource's currently supported
            # methods."
            status, headers, body = 405, [_TEXT, _ALLOW], b"Method Not Allowed\n"
        else:
            if refresh is not None:
                try:
                    await asyncio.wait_for(refresh(), REFRESH_TIMEOUT)
                except Exception:  # report what is known rather than nothing
                    error_log.warning("Metrics: collecting the workers' figures failed",
                                      exc_info=True)
            # The format negotiation of prometheus_client's own handler: the classic text
            # format (0.0.4) unless the scraper's Accept asks for OpenMetrics or text 1.0.0.
            accept = b",".join(v for n, v in scope["headers"] if n == b"accept")
            encoder, content_type = choose_encoder(accept.decode("latin-1"))
            status, headers, body = 200, [(b"content-type", content_type.encode("ascii"))], \
                encoder(registry)
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
