"""Configuration: every tunable limit, timeout and default in one dataclass.

The CLI builds a `Config`; `Server` reads it; sans-I/O objects get the limits they need
as constructor arguments (they never import this module's globals).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import logging.config
import os
import ssl
import sys
from dataclasses import dataclass
from typing import Any, Literal

from server.observability import JsonFormatter
from server.types import ASGIApp

__all__ = ["LOG_LEVELS", "AppLoadError", "Config"]

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}


class AppLoadError(Exception):
    """The app named on the command line cannot be imported or is not callable."""


@dataclass(slots=True)
class Config:
    app: ASGIApp | str
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    backlog: int = 2048
    factory: bool = False
    app_dir: str | None = "."
    # HTTP/1.1 limits (server/http11.py)
    max_request_line_size: int = 8 * 1024
    max_header_size: int = 64 * 1024
    max_headers: int = 100
    max_buffered_body_size: int = 64 * 1024
    # WebSocket limits and timers (server/websocket.py, server/protocol.py)
    ws_max_size: int = 16 * 1024 * 1024
    ws_max_queue: int = 32
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_close_timeout: float = 5.0
    # How long a protocol error or the peer's close waits for the app to take the messages
    # received before it (so its replies go out before the close frame).
    ws_drain_timeout: float = 2.0
    timeout_handshake: float = 10.0
    timeout_keep_alive: float = 5.0
    timeout_graceful_shutdown: float = 5.0
    limit_concurrency: int | None = None
    root_path: str = ""
    proxy_headers: bool = True
    forwarded_allow_ips: str = "127.0.0.1"
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile_password: str | None = None
    log_level: str | int | None = "info"
    access_log: bool = True
    log_config: str | dict[str, Any] | None = None
    log_format: Literal["text", "json"] = "text"  # for the default handlers (no log_config)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no metrics listener
    lifespan: Literal["auto", "on", "off"] = "auto"
    server_header: bool = True
    date_header: bool = True

    @property
    def is_ssl(self) -> bool:
        return bool(self.ssl_certfile)

    @property
    def trusted_proxies(self) -> frozenset[str]:
        return frozenset(ip.strip() for ip in self.forwarded_allow_ips.split(",") if ip.strip())

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.ssl_certfile:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, self.ssl_keyfile_password)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def load_app(self) -> ASGIApp:
        """Import `module:attr` (or take the callable as is), call it if `factory`.

        Raises:
            AppLoadError: with a one-line message naming what failed.
        """
        app: Any = self.app
        if isinstance(app, str):
            app = import_from_string(app, self.app_dir)
        if self.factory:
            try:
                app = app()
            except Exception as exc:
                raise AppLoadError(f"error calling the app factory: {exc!r}") from exc
        if not callable(app):
            raise AppLoadError(f"{self.app!r} is not callable")
        if inspect.isclass(app) or not _takes_three_arguments(app):
            raise AppLoadError(
                f"{self.app!r} is not an ASGI 3 app "
                "(expected `async def app(scope, receive, send)`)"
            )
        return app  # type: ignore[no-any-return]

    def configure_logging(self) -> None:
        if self.log_config is not None:
            if isinstance(self.log_config, dict):
                logging.config.dictConfig(self.log_config)
            elif self.log_config.endswith(".json"):
                import json

                with open(self.log_config, encoding="utf-8") as file:
                    logging.config.dictConfig(json.load(file))
            else:
                logging.config.fileConfig(self.log_config, disable_existing_loggers=False)
        else:
            handler = logging.StreamHandler(sys.stderr)
            if self.log_format == "json":
                handler.setFormatter(JsonFormatter())
            elif self.log_format == "text":
                handler.setFormatter(logging.Formatter("%(levelname)-9s %(message)s"))
            else:
                raise ValueError(f"log_format must be 'text' or 'json', not {self.log_format!r}")
            for name in ("wsrun.error", "wsrun.access"):
                logger = logging.getLogger(name)
                logger.handlers[:] = [handler]
                logger.propagate = False
        if self.log_level is not None:
            level = LOG_LEVELS.get(str(self.log_level).lower(), self.log_level)
            logging.getLogger("wsrun.error").setLevel(level)
            logging.getLogger("wsrun.access").setLevel(level)
        if not self.access_log:
            logging.getLogger("wsrun.access").handlers[:] = []
            logging.getLogger("wsrun.access").propagate = False
            logging.getLogger("wsrun.access").disabled = True


def _takes_three_arguments(app: Any) -> bool:
    target = app if inspect.isfunction(app) or inspect.ismethod(app) else app.__call__
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return True
    params = [
        p for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    has_var = any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values())
    return has_var or len(params) == 3


def import_from_string(spec: str, app_dir: str | None) -> Any:
    module_name, sep, attrs = spec.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(f'app must be given as "module:attribute", got "{spec}"')
    if app_dir is not None:
        path = os.path.abspath(app_dir)
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name) and (
            exc.name == module_name or module_name.startswith(exc.name + ".")
        ):
            raise AppLoadError(f'could not import module "{module_name}"') from None
        raise AppLoadError(f'error importing "{module_name}": {exc}') from exc
    except Exception as exc:
        raise AppLoadError(f'error importing "{module_name}": {exc!r}') from exc
    value: Any = module
    for attr in attrs.split("."):
        try:
            value = getattr(value, attr)
        except AttributeError:
            raise AppLoadError(f'attribute "{attrs}" not found in module "{module_name}"') from None
    return value
