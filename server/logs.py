"""Logging set-up: the `wsrun.error` / `wsrun.access` loggers, their levels and formats.

`configure_logging(config)` applies --log-config, --log-level, --log-format and
--no-access-log; `JsonFormatter` writes one JSON object per line; `client_label` and
`target_label` make the peer-chosen parts of access lines safe to print. The glue calls
`logging.getLogger(...)` and imports only those two labels from here. This module
imports no other part of wsrun at run time.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.config import Config

__all__ = [
    "ACCESS_FIELDS",
    "LOG_LEVELS",
    "JsonFormatter",
    "client_label",
    "configure_logging",
    "printable",
    "target_label",
]

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}

# The structured fields the glue passes to `wsrun.access` as `extra=`: HTTP lines carry
# client, method, path, http_version, status, duration_ms, bytes_out; WebSocket close lines
# carry client, path, close_code, duration_ms, bytes/frames in and out.
ACCESS_FIELDS = (
    "client", "method", "path", "http_version", "status", "close_code", "duration_ms",
    "bytes_in", "bytes_out", "frames_in", "frames_out",
)


def printable(text: str) -> str:
    """`text` with every non-printable character escaped (`\\r` -> `\\x0d`, U+202E -> `\\u202e`).

    For the peer-chosen parts of access lines (the request target, the client label): a
    CR/LF, another control character or a bidi override from the peer must not start a
    forged log line or hide the real one. Printable text (the usual case) is returned as is.
    """
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable()
        else f"\\x{ord(char):02x}" if ord(char) < 0x100
        else f"\\u{ord(char):04x}" if ord(char) < 0x10000
        else f"\\U{ord(char):08x}"
        for char in text
    )


def client_label(client: tuple[str, int] | None) -> str:
    """An access line's client: "host:port" of the scope's client, "-" when there is none."""
    return printable(f"{client[0]}:{client[1]}") if client else "-"


def target_label(target: bytes) -> str:
    """An access line's request target: as received (still percent-encoded, with its query)."""
    return printable(target.decode("latin-1"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601, UTC), level, logger, message, access fields.

    Only the fields named in `ACCESS_FIELDS` are copied from a record, never arbitrary
    record attributes, so nothing a caller did not mean to log ends up in the line.
    Usable from a --log-config file as `"()": "server.logs.JsonFormatter"`.
    """

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attributes = record.__dict__
        for name in ACCESS_FIELDS:
            if name in attributes:
                line[name] = attributes[name]
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # json.dumps escapes control characters, so a message with a newline in it still
        # makes exactly one line; `default=str` keeps an odd value from failing the log call.
        return json.dumps(line, default=str)


def configure_logging(config: Config) -> None:
    """Set up wsrun's loggers from --log-config / --log-level / --log-format / --access-log.

    Raises:
        ValueError: an unknown `log_format`.
    """
    if config.log_config is not None:
        if isinstance(config.log_config, dict):
            logging.config.dictConfig(config.log_config)
        elif config.log_config.endswith(".json"):
            with open(config.log_config, encoding="utf-8") as file:
                logging.config.dictConfig(json.load(file))
        else:
            logging.config.fileConfig(config.log_config, disable_existing_loggers=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        if config.log_format == "json":
            handler.setFormatter(JsonFormatter())
        elif config.log_format == "text":
            handler.setFormatter(logging.Formatter("%(levelname)-9s %(message)s"))
        else:
            raise ValueError(f"log_format must be 'text' or 'json', not {config.log_format!r}")
        for name in ("wsrun.error", "wsrun.access"):
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.propagate = False
    if config.log_level is not None:
        level = LOG_LEVELS.get(str(config.log_level).lower(), config.log_level)
        logging.getLogger("wsrun.error").setLevel(level)
        logging.getLogger("wsrun.access").setLevel(level)
    if not config.access_log:
        access = logging.getLogger("wsrun.access")
        access.handlers[:] = []
        access.propagate = False
        access.disabled = True
