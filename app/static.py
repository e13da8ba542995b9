"""The page: files of the `frontend` package served over plain ASGI HTTP.

`frontend/` is packaged as a top-level package directory of the wheel, so it is found with
`importlib.resources.files("frontend")` (also from an installed wheel), falling back to
the repository's directory. GET and HEAD only (405 otherwise); `/` is index.html; content
types from the extension; a strong ETag from the content, answered with 304 when
If-None-Match matches (RFC 9110 13.1.2); no path traversal: a path that is not a plain
relative file name inside the directory is 404 (400 for NUL or backslash). Only the page's
files are served: names with a web content type below (so not the package's `__init__.py`
or `__pycache__`), no name starting with "." or "_", and a file's path never with a
trailing "/" (`/index.html/` is 404, as a file is not a directory).

This module imports only the standard library; never `server/`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import mimetypes
from importlib.abc import Traversable
from pathlib import Path
from typing import Final

__all__ = ["StaticFiles", "Response", "frontend_root"]

Response = tuple[int, list[tuple[bytes, bytes]], bytes]

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
}


def frontend_root(override: str | None = None) -> Traversable:
    """Where the page's files are: `override`, the installed package, or the repo dir."""
    if override:
        return Path(override)
    try:
        root = importlib.resources.files("frontend")
        if root.joinpath("index.html").is_file():
            return root
    except (ImportError, TypeError, ValueError, OSError):
        pass
    return Path(__file__).resolve().parent.parent / "frontend"


def content_type(name: str) -> str:
    suffix = name[name.rfind("."):].lower() if "." in name else ""
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def _plain(status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> Response:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode()), *(extra or [])]
    return status, headers, body


def _etag_matches(header: str, etag: str) -> bool:
    # RFC 9110 13.1.2: If-None-Match uses the weak comparison function.
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in header.split(","))


class StaticFiles:
    """Answer GET/HEAD for the files under `root`.

    Args:
        root: the directory (a Traversable, so it also works inside a wheel).
    """

    def __init__(self, root: Traversable) -> None:
        self.root = root

    def _find(self, path: str) -> Traversable | None:
        parts = path.split("/")[1:] if path.startswith("/") else path.split("/")
        directory = parts[-1] == ""  # "/", "/sub/": the directory's index.html
        if directory:
            parts[-1] = "index.html"
        node = self.root
        for part in parts:
            # Only plain names: "", "..", ".", hidden and private ("_") names never resolve.
            if not part or part[0] in "._":
                return None
            node = node.joinpath(part)
        if not directory and node.is_dir():
            node = node.joinpath("index.html")
        if "." not in node.name or node.name[node.name.rfind("."):].lower() not in _TYPES:
            return None  # not one of the page's files (source, bytecode, data)
        return node if node.is_file() else None

    def respond(self, method: str, path: str, if_none_match: str | None) -> Response:
        """Build the response for `method` `path` (path relative to the app's root).

        Returns:
            (status, headers, body); body is empty for HEAD and 304.
        """
        if method not in ("GET", "HEAD"):
            return _plain(405, "method not allowed\n", [(b"allow", b"GET, HEAD")])
        if "\x00" in path or "\\" in path:
            return _plain(400, "bad path\n")
        node = self._find(path)
        if node is None:
            return _plain(404, "not found\n")
        try:
            body = node.read_bytes()
        except OSError:
            return _plain(404, "not found\n")
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        headers = [(b"etag", etag.encode()), (b"cache-control", b"no-cache")]
        if if_none_match is not None and _etag_matches(if_none_match, etag):
            return 304, headers, b""
        headers += [(b"content-type", content_type(node.name).encode()),
                    (b"content-length", str(len(body)).encode())]
        return 200, headers, b"" if method == "HEAD" else body
