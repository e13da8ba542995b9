"""Server-level figures: the Prometheus collector over `Stats`, and the metrics listener.

`Stats` holds plain counters that the glue increments on its hot path (no locks, no
prometheus calls per frame); `StatsCollector` turns them into Prometheus metric families
only when the metrics listener is scraped. The listener (`start_metrics_server`, from
`--metrics-port`) is a small asyncio protocol on the server's own loop, speaking HTTP/1.1
through `server.http11`: no thread, nothing shared with the app's listener.

prometheus_client is an optional extra (`wsrun[metrics]`): it is imported inside the
metrics functions only, so the server runs without it unless metrics are asked for.
This module sits below the glue: it reads connections through `server.state.Connection`
and must not import `server.protocol` or `server.wsprotocol`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from server.errors import RequestError
from server.http11 import EndOfMessage, Request, RequestParser
from server.logs import JsonFormatter  # noqa: F401 - its former home, named by --log-config files
from server.response import ResponseWriter, error_response
from server.state import Connection, Stats

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "MetricsUnavailable",
    "StatsCollector",
    "add_figures",
    "registry_for",
    "snapshot",
    "require_prometheus",
    "start_metrics_server",
    "stop_metrics_server",
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


# Live connections of each metrics listener, closed by `stop_metrics_server`: in Python
# 3.11 `asyncio.Server.close()` leaves accepted connections open.
_LIVE: weakref.WeakKeyDictionary[asyncio.AbstractServer, set[_MetricsProtocol]] = (
    weakref.WeakKeyDictionary()
)


async def start_metrics_server(
    host: str, port: int, registry: CollectorRegistry, idle_timeout: float,
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> asyncio.Server:
    """Listen on host:port and answer `GET /metrics` with the Prometheus text format.

    Args:
        host, port: where to listen (port 0: any free port).
        registry: what a scrape reports (`registry_for(StatsCollector(...))`).
        idle_timeout: seconds an idle scrape connection is kept.
        refresh: awaited before each scrape is rendered (--workers: collect the workers'
            figures), for at most `REFRESH_TIMEOUT` seconds.

    Returns:
        The listening server; stop it with `stop_metrics_server`.

    Raises:
        MetricsUnavailable: prometheus_client is not installed.
        OSError: the address cannot be bound.
    """
    require_prometheus()
    from prometheus_client.exposition import choose_encoder

    live: set[_MetricsProtocol] = set()

    def render(accept: str) -> tuple[bytes, bytes]:
        # The format negotiation of prometheus_client's own handler: the classic text
        # format (0.0.4) unless the scraper's Accept asks for OpenMetrics or text 1.0.0.
        encoder, content_type = choose_encoder(accept)
        return content_type.encode("ascii"), encoder(registry)

    def factory() -> asyncio.Protocol:
        return _MetricsProtocol(render, live, idle_timeout, refresh)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=host, port=port, reuse_address=True)
    _LIVE[server] = live
    return server


async def stop_metrics_server(server: asyncio.Server) -> None:
    """Stop listening and close the listener's open connections."""
    server.close()
    for protocol in list(_LIVE.pop(server, ())):
        protocol.close()
    try:
        await asyncio.wait_for(server.wait_closed(), 1.0)
    except TimeoutError:
        pass


_ALLOW = (b"allow", b"GET, HEAD")
_MAX_BODY = 64 * 1024  # a scrape has no body; refuse to read a large one
REFRESH_TIMEOUT = 2.0


class _MetricsProtocol(asyncio.Protocol):
    """HTTP/1.1 on the metrics listener: GET/HEAD /metrics, 404 elsewhere, keep-alive."""

    def __init__(
        self, render: Callable[[str], tuple[bytes, bytes]], live: set[_MetricsProtocol],
        idle_timeout: float, refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.render = render
        self.refresh = refresh
        self.refreshing = False  # a response is being prepared: parse nothing further yet
        self.live = live
        self.idle_timeout = idle_timeout
        self.parser = RequestParser(max_request_line_size=8192, max_header_size=16384)
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.body_size = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.live.add(self)
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.live.discard(self)
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        self.parser.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        self.parser.receive_eof()
        self._process()
        return None  # close our side too

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _arm_timer(self) -> None:
        # An idle or slow client must not hold a connection forever.
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.idle_timeout, self.close)

    def _process(self) -> None:
        while (
            self.transport is not None and not self.transport.is_closing()
            and not self.refreshing
        ):
            try:
                event = self.parser.next_event()
            except RequestError as exc:
                self.transport.write(error_response(exc.status, exc.reason, exc.headers or []))
                self.close()
                return
            if event is None:
                if self.parser.at_eof:
                    self.close()
                return
            if type(event) is Request:
                self.request = event
                self.body_size = 0
                self._arm_timer()
            elif type(event) is EndOfMessage:
                if self.refresh is not None:
                    self.refreshing = True
                    asyncio.ensure_future(self._refresh_then_respond(self.refresh))
                    return
                self._respond()
            else:  # Data: a body nobody asked for; drop it, within limits
                self.body_size += len(event.data)  # type: ignore[union-attr]
                if self.body_size > _MAX_BODY:
                    self.transport.write(error_response(413, "Content Too Large"))
                    self.close()
                    return

    async def _refresh_then_respond(self, refresh: Callable[[], Awaitable[None]]) -> None:
        try:
            await asyncio.wait_for(refresh(), REFRESH_TIMEOUT)
        except Exception:  # report what is known rather than nothing
            error_log.warning("Metrics: collecting the workers' figures failed", exc_info=True)
        self.refreshing = False
        if self.transport is not None and not self.transport.is_closing():
            self._respond()
            self._process()  # a pipelined request that arrived meanwhile

    def _respond(self) -> None:
        request = self.request
        assert request is not None and self.transport is not None
        self.request = None
        if request.path != "/metrics":
            status, headers, body = 404, [(b"content-type", b"text/plain; charset=utf-8")], \
                b"Not Found: the metrics are at /metrics\n"
        elif request.method not in ("GET", "HEAD"):
            # RFC 9110 15.5.6: "The origin server MUST generate an Allow header field in a
            # 405 response containing a list of the target resource's currently supported
            # methods."
            status, headers, body = 405, [(b"content-type", b"text/plain; charset=utf-8"),
                                          _ALLOW], b"Method Not Allowed\n"
        else:
            accept = b",".join(v for n, v in request.headers if n.lower() == b"accept")
            content_type, body = self.render(accept.decode("latin-1"))
            status, headers = 200, [(b"content-type", content_type)]
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        writer = ResponseWriter(request)
        self.transport.write(writer.start(status, headers) + writer.body(body, False))
        if not writer.keep_alive:
            self.close()
        else:
            self._arm_timer()
