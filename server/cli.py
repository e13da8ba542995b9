"""The `wsrun` command: click options (named like uvicorn's) -> Config -> Server on uvloop.

Every option can also come from a `WSRUN_` environment variable (`WSRUN_PORT=9000`).
Exit codes: 0 after a clean shutdown; 2 for a usage mistake (click's usage line, "Try
'wsrun --help' for help." and the error); 1 when the server cannot start (app not
importable, port in use...): one `Error:` line, after the traceback of the app's own
error when its import or factory raised; 3 when the app's lifespan startup failed.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
import traceback
from types import TracebackType
from typing import Any

import click

from server import __version__, loader
from server.config import Config
from server.logs import LOG_LEVELS
from server.observability import require_prometheus

__all__ = ["cli", "main"]

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Config)}


def default(name: str) -> Any:
    """The `Config` field's default: the CLI shows and uses the same value."""
    return _DEFAULTS[name]


LIFESPAN = click.Choice(["auto", "on", "off"])
LEVELS = click.Choice(list(LOG_LEVELS))
LOG_FORMATS = click.Choice(["text", "json"])
LOOPS = click.Choice(["auto", "asyncio", "uvloop"])


@click.command(
    context_settings={"auto_envvar_prefix": "WSRUN", "help_option_names": ["--help", "-h"]},
    help="Serve the ASGI app APP (\"module:attribute\") over HTTP/1.1 and WebSocket.",
)
@click.argument("app", envvar="WSRUN_APP")
@click.option("--host", default=default("host"),
              show_default=True, help="Bind socket to this host.")
@click.option("--port", default=default("port"), show_default=True, type=click.IntRange(0, 65535),
              help="Bind socket to this port (0: any free port).")
@click.option("--uds", default=default("uds"), help="Bind to a Unix domain socket.")
@click.option("--fd", default=default("fd"),
              type=int, help="Bind to the socket with this file descriptor.")
@click.option("--backlog", default=default("backlog"), show_default=True, type=click.IntRange(1),
              help="Maximum number of connections waiting to be accepted.")
@click.option("--factory", is_flag=True, default=default("factory"),
              help="Treat APP as a factory: call it with no arguments to get the app.")
@click.option("--app-dir", default=default("app_dir"), show_default=True,
              help="Look for APP in this directory (put first on sys.path).")
@click.option("--ws-max-size", default=default("ws_max_size"),
              show_default=True, type=click.IntRange(1),
              help="Largest WebSocket message in bytes; larger ones close with 1009.")
@click.option("--ws-per-message-deflate/--no-ws-per-message-deflate",
              default=default("ws_per_message_deflate"), show_default=True,
              help="Accept permessage-deflate compression (RFC 7692).")
@click.option("--ws-deflate-window-bits", default=default("ws_deflate_window_bits"),
              show_default=True, type=click.IntRange(9, 15),
              help="Largest LZ77 window (log2 bytes) for compressing, and asked of clients.")
@click.option("--ws-deflate-mem-level", default=default("ws_deflate_mem_level"),
              show_default=True, type=click.IntRange(1, 9),
              help="zlib memLevel of the compressors (memory vs speed).")
@click.option("--ws-deflate-level", default=default("ws_deflate_level"), show_default=True,
              type=click.IntRange(0, 9), help="zlib compression level.")
@click.option("--ws-deflate-threshold", default=default("ws_deflate_threshold"),
              show_default=True, type=click.IntRange(0),
              help="Send messages shorter than this many bytes uncompressed.")
@click.option("--ws-deflate-context-takeover/--no-ws-deflate-context-takeover",
              default=default("ws_deflate_context_takeover"), show_default=True,
              help="Keep compression context between messages (more memory per connection).")
@click.option("--ws-ping-interval", default=default("ws_ping_interval"),
              show_default=True, type=click.FloatRange(0),
              help="Seconds between keepalive pings (0: none).")
@click.option("--ws-ping-timeout", default=default("ws_ping_timeout"),
              show_default=True, type=click.FloatRange(0),
              help="Seconds to wait for a pong before closing with 1011 (0: wait forever).")
@click.option("--ws-close-timeout", default=default("ws_close_timeout"), show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="Seconds to wait for the peer's close frame before cutting TCP.")
@click.option("--timeout-handshake", default=default("timeout_handshake"), show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="Seconds a new connection has to send a complete request head.")
@click.option("--timeout-keep-alive", default=default("timeout_keep_alive"), show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="Close idle keep-alive connections after this many seconds.")
@click.option("--timeout-graceful-shutdown", default=default("timeout_graceful_shutdown"),
              show_default=True,
              type=click.FloatRange(0),
              help="Seconds to wait for connections to close on shutdown.")
@click.option("--limit-concurrency", default=default("limit_concurrency"), type=click.IntRange(1),
              help="Answer 503 past this many connections or tasks.")
@click.option("--root-path", default=default("root_path"),
              help="ASGI root_path, for an app mounted below a path.")
@click.option("--proxy-headers/--no-proxy-headers", default=default("proxy_headers"),
              show_default=True,
              help="Trust X-Forwarded-For / X-Forwarded-Proto from --forwarded-allow-ips.")
@click.option("--forwarded-allow-ips", default=default("forwarded_allow_ips"), show_default=True,
              help="Comma-separated proxy addresses or networks to trust ('*' for all).")
@click.option("--ssl-keyfile", default=default("ssl_keyfile"),
              type=click.Path(exists=True, dir_okay=False),
              help="TLS private key file (serves https:// and wss://).")
@click.option("--ssl-certfile", default=default("ssl_certfile"),
              type=click.Path(exists=True, dir_okay=False),
              help="TLS certificate file.")
@click.option("--ssl-keyfile-password", default=default("ssl_keyfile_password"),
              help="Password of the TLS key file.")
@click.option("--log-level", default=default("log_level"),
              show_default=True, type=LEVELS, help="Log level.")
@click.option("--access-log/--no-access-log", default=default("access_log"), show_default=True,
              help="Log each request and WebSocket session.")
@click.option("--log-config", default=default("log_config"),
              type=click.Path(exists=True, dir_okay=False),
              help="Logging configuration file (.json dictConfig, or .ini fileConfig).")
@click.option("--log-format", default=default("log_format"), show_default=True, type=LOG_FORMATS,
              help="Log lines as text, or as one JSON object per line (ignored with "
                   "--log-config: use server.logs.JsonFormatter there).")
@click.option("--metrics-port", default=default("metrics_port"), type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics at http://METRICS_HOST:PORT/metrics "
                   "(needs the metrics extra: pip install 'wsrun[metrics]').")
@click.option("--metrics-host", default=default("metrics_host"), show_default=True,
              help="Bind the metrics listener to this host.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Number of worker processes sharing the socket (see docs/deployment.md).")
@click.option("--reload", is_flag=True, default=False,
              help="Restart the server when a watched file changes (development; needs the "
                   "reload extra: pip install 'wsrun[reload]').")
@click.option("--reload-dir", "reload_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="Watch this directory for --reload (repeatable; default: the current one).")
@click.option("--reload-include", "reload_includes", multiple=True,
              help="Glob of files to watch for --reload (repeatable; default: *.py).")
@click.option("--reload-exclude", "reload_excludes", multiple=True,
              help="Glob of files to ignore for --reload (repeatable; default: .*, .py[cod], "
                   ".sw.*, ~*).")
@click.option("--lifespan", default=default("lifespan"), show_default=True, type=LIFESPAN,
              help="Run the app's lifespan startup/shutdown (auto: if it supports it).")
@click.option("--loop", default=default("loop"), show_default=True, type=LOOPS,
              help="Event loop: uvloop, asyncio, or auto (uvloop when installed).")
@click.version_option(__version__, "--version", prog_name="wsrun", message="%(prog)s %(version)s")
def cli(app: str, **options: Any) -> None:
    if options["ssl_keyfile"] and not options["ssl_certfile"]:
        raise click.UsageError("--ssl-keyfile needs --ssl-certfile")
    options["ws_ping_interval"] = options["ws_ping_interval"] or None
    options["ws_ping_timeout"] = options["ws_ping_timeout"] or None
    if options["metrics_port"] is not None:
        require_prometheus()  # fail before loading the app, not after its startup ran
    workers, reload = options.pop("workers"), options.pop("reload")
    watch = {name: options.pop(name) for name in
             ("reload_dirs", "reload_includes", "reload_excludes")}
    if reload and workers > 1:
        raise click.UsageError("--reload and --workers cannot be used together")
    if any(watch.values()) and not reload:
        raise click.UsageError("--reload-dir/--reload-include/--reload-exclude need --reload")
    if reload or workers > 1:
        from server.supervisor import Supervisor

        settings = None
        if reload:
            from server.reloader import Reload

            settings = Reload.checked(**watch)
        Supervisor(app, options, workers=workers, reload=settings).run()
        return
    from server.main import run

    run(app, **options)


def main(argv: list[str] | None = None, prog_name: str = "wsrun") -> None:
    """Entry point: exit codes as in the module docstring, no traceback of our own."""
    try:
        cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(1)
    except click.ClickException as exc:
        logging.shutdown()
        exc.show()  # a UsageError adds click's usage line and "Try 'wsrun --help'"
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(0)
    except Exception as exc:
        from server.workers import describe_error

        described = describe_error(exc)
        if described is None:
            raise
        if isinstance(exc, loader.AppLoadError) and exc.__cause__ is not None:
            _print_app_traceback(exc.__cause__)
        _die(*described)
    sys.exit(0)


# Frames of ours and of the import machinery, above the app's own code in a traceback.
_LOADER_FILES = (loader.__file__, os.path.dirname(importlib.__file__))


def _print_app_traceback(error: BaseException) -> None:
    """Print the traceback of the app's error from its first frame in the app's code."""
    tb: TracebackType | None = error.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename.startswith(_LOADER_FILES)
        or tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")
    ):
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb, chain=False, file=sys.stderr)


def _die(message: str, code: int = 1) -> None:
    logging.shutdown()
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)
