"""Loading the app named on the command line (`module:attribute`, optionally a factory)
and the event loop named by --loop.

Imports no other part of wsrun at run time (the `Config` type only for type checking).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
from typing import TYPE_CHECKING, Any

from server.types import ASGIApp

if TYPE_CHECKING:
    from server.config import Config

__all__ = ["AppLoadError", "LoopUnavailable", "import_from_string", "load_app", "new_event_loop"]


class AppLoadError(Exception):
    """The app named on the command line cannot be imported or is not callable."""


def load_app(config: Config) -> ASGIApp:
    """Import `module:attr` (or take the callable as is), call it if `config.factory`.

    Raises:
        AppLoadError: with a one-line message naming what failed.
    """
    app: Any = config.app
    if isinstance(app, str):
        app = import_from_string(app, config.app_dir)
    if config.factory:
        try:
            app = app()
        except Exception as exc:
            raise AppLoadError(f"error calling the app factory: {exc!r}") from exc
    if not callable(app):
        raise AppLoadError(f"{config.app!r} is not callable")
    if inspect.isclass(app) or not _takes_three_arguments(app):
        raise AppLoadError(
            f"{config.app!r} is not an ASGI 3 app "
            "(expected `async def app(scope, receive, send)`)"
        )
    return app  # type: ignore[no-any-return]


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
    """Import `module:attr.attr` with `app_dir` first on sys.path.

    Raises:
        AppLoadError: a malformed spec, a missing module or attribute, or an import error.
    """
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


class LoopUnavailable(Exception):
    """--loop uvloop, but uvloop cannot be imported."""


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """The event loop of --loop: `uvloop`, `asyncio`, or `auto` (uvloop where installed).

    Raises:
        LoopUnavailable: `uvloop` asked for and not installed.
    """
    if kind == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise LoopUnavailable("--loop uvloop: uvloop is not installed") from None
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
