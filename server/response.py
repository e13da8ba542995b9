"""Sans-I/O HTTP/1.1 responses (RFC 9112): one `ResponseWriter` frames one response.

The one response path: app responses (`server.httpcycle`), WebSocket denial responses
(`server.wscycle`) and /metrics (an ASGI app served like any other) all go through
`ResponseWriter`, which checks the app's status and headers once (`begin`), decides the
framing (Content-Length, chunked or close-delimited) and whether the connection is kept
alive (`head`), and frames each body piece (`body`). `error_response` is the complete
answer to bad input. Like `server.http11`, this module imports no asyncio, socket or
clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from server.http11 import TOKEN_CHARS, Request, tokens

__all__ = ["DenialResponse", "ResponseWriter", "error_response", "response_head", "validate_header"]

_STATUS_LINES: dict[tuple[int, str], bytes] = {}


def _status_line(status: int, http_version: str) -> bytes:
    line = _STATUS_LINES.get((status, http_version))
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""  # RFC 9112 4: reason-phrase is optional, the SP before it is not
        line = f"HTTP/{http_version} {status} {phrase}\r\n".encode("ascii")
        _STATUS_LINES[(status, http_version)] = line
    return line


def response_head(
    status: int, headers: Sequence[tuple[bytes, bytes]], *, http_version: str = "1.1"
) -> bytes:
    """Serialize a status line and header fields, ending with the empty line.

    Headers are written as given: validate them first (`validate_header`).
    """
    return b"".join(
        [_status_line(status, http_version), *[n + b": " + v + b"\r\n" for n, v in headers],
         b"\r\n"]
    )


def validate_header(name: bytes, value: bytes) -> None:
    """Check a response header given by the application.

    Raises:
        RuntimeError: the name is not a token, or the value holds CR, LF or NUL
            (RFC 9110 5.5: "Field values containing CR, LF, or NUL characters are invalid
            and dangerous, due to the varying ways that implementations might parse and
            interpret those characters").
    """
    if type(name) is not bytes or type(value) is not bytes:  # exact types: no str subclass tricks
        raise RuntimeError(
            f"expected header name and value as bytes, got {type(name).__name__} "
            f"and {type(value).__name__}"
        )
    if not name or name.translate(None, TOKEN_CHARS):
        raise RuntimeError(f"invalid header name {name!r}")
    # `find`, not `in`: see server.fields.tokens (this runs for every header sent).
    if value.find(b"\r") != -1 or value.find(b"\n") != -1 or value.find(b"\0") != -1:
        raise RuntimeError(f"invalid header value for {name!r}: CR, LF or NUL")


# Framing of a response body.
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class ResponseWriter:
    """Frame one response to one request: status line, headers, body pieces.

    Args:
        request: the request being answered (method, version, keep-alive).
    """

    def __init__(self, request: Request) -> None:
        self._request = request
        # A refused WebSocket upgrade closes the connection: the client may already be
        # sending frames that would otherwise be read as the next request.
        self._keep_alive = request.keep_alive and not request.websocket_upgrade
        self._framing = _NO_BODY
        self._length = 0  # bytes still allowed by the app's Content-Length
        self._started = False
        self._finished = False
        # Between begin() and head(): the status, checked headers, the app's length.
        self._head: tuple[int, list[tuple[bytes, bytes]], int | None] | None = None

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open once this response is complete."""
        return self._keep_alive

    @property
    def head_pending(self) -> bool:
        """True between `begin` and `head`: checked, not yet framed."""
        return self._head is not None

    @property
    def finished(self) -> bool:
        """True once the last body piece has been framed."""
        return self._finished

    def start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
        """Return the response head, with the framing and connection headers we decide.

        `begin` then `head`, for a head written as soon as it is known.

        Raises:
            RuntimeError: as `begin`.
        """
        self.begin(status, headers)
        return self.head()

    def begin(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """Check and keep the status and headers: the one place they are validated.

        Raises:
            RuntimeError: started twice, a status outside 100-599, an invalid header, or an
                invalid Content-Length given by the app.
        """
        if self._started:
            raise RuntimeError("response already started")
        if type(status) is not int or not 100 <= status <= 599:
            raise RuntimeError(f"invalid response status {status!r}")
        out: list[tuple[bytes, bytes]] = []
        length: int | None = None
        for name, value in headers:
            validate_header(name, value)
            lname = name.lower()
            if lname == b"content-length":
                if not value.strip().isdigit() or (
                    length is not None and int(value) != length
                ):
                    raise RuntimeError(f"invalid content-length header {value!r}")
                length = int(value)
                # RFC 9110 8.6: "A server MUST NOT send a Content-Length header field in
                # any response with a status code of 1xx (Informational) or 204".
                if status < 200 or status == 204:
                    continue
            elif lname == b"transfer-encoding":
                continue  # framing is ours to decide
            elif lname == b"connection":
                # Ours to decide too: an app's "keep-alive" must not contradict a close.
                if b"close" in tokens([value]):
                    self._keep_alive = False
                continue
            out.append((name, value))
        self._started = True
        self._head = (status, out, length)

    def head(self, *, body_length: int | None = None, close: bool = False) -> bytes:
        """Return the head checked by `begin`, with the framing decided now.

        Args:
            body_length: the whole body's length, when it is known before the head goes
                out: framed with Content-Length rather than chunked.
            close: close the connection after this response.
        """
        assert self._head is not None, "begin() first"
        status, out, length = self._head
        self._head = None
        if close:
            self._keep_alive = False
        request = self._request
        # RFC 9112 6.3: responses to HEAD and 1xx/204/304 responses end at the head.
        if request.method == "HEAD" or status < 200 or status in (204, 304):
            self._framing = _NO_BODY
        elif length is not None:
            self._framing = _LENGTH
            self._length = length
        elif body_length is not None:
            self._framing = _LENGTH
            self._length = body_length
            out.append((b"content-length", str(body_length).encode("ascii")))
        elif request.http_version == "1.1":
            self._framing = _CHUNKED
            out.append((b"transfer-encoding", b"chunked"))
        else:
            # RFC 9112 6.1: no chunked to 1.0 clients; the body ends when we close.
            self._framing = _UNTIL_CLOSE
            self._keep_alive = False
        if not self._keep_alive:
            # RFC 9112 9.6: "The server SHOULD send a "close" connection option in its final
            # response on that connection."
            out.append((b"connection", b"close"))
        elif request.http_version == "1.0":
            out.append((b"connection", b"keep-alive"))
        return response_head(status, out, http_version="1.1")

    def body(self, data: bytes, more_body: bool) -> bytes:
        """Return the bytes that carry this body piece (and the end of the body).

        Raises:
            RuntimeError: not started, already finished, more bytes than Content-Length, or
                fewer at the end; the connection must then be closed (`keep_alive` is False).
        """
        if not self._started or self._finished or self._head is not None:
            raise RuntimeError("response body sent before start or after the last piece")
        framing = self._framing
        if not more_body:
            self._finished = True
        if framing == _CHUNKED:
            # RFC 9112 7.1: chunk = chunk-size CRLF chunk-data CRLF; last-chunk = "0" CRLF.
            out = b"%x\r\n%b\r\n" % (len(data), data) if data else b""
            return out + b"0\r\n\r\n" if not more_body else out
        if framing == _LENGTH:
            self._length -= len(data)
            if self._length < 0 or (not more_body and self._length):
                self._keep_alive = False
                self._finished = True
                raise RuntimeError("response body does not match its content-length")
            return data
        if framing == _UNTIL_CLOSE:
            return data
        return b""  # HEAD, 1xx, 204, 304: the app's body is not sent


class DenialResponse:
    """The response refusing a WebSocket handshake (the ASGI "websocket.http.response"
    extension): checked when the app starts it, framed with its first body piece.

    A body given whole gets a Content-Length rather than chunked framing (what websockets'
    server does, and what a handshake client most likely reads). The connection closes
    after it (`ResponseWriter` on an upgrade request).

    Raises:
        RuntimeError: a status outside 200-599 (a 1xx cannot end a handshake) or an
            invalid header (`ResponseWriter.begin`).
    """

    __slots__ = ("status", "writer")

    def __init__(self, request: Request, status: int,
                 headers: Sequence[tuple[bytes, bytes]]) -> None:
        if type(status) is not int or not 200 <= status <= 599:
            raise RuntimeError(f"invalid websocket.http.response.start status {status!r}")
        self.status = status
        self.writer = ResponseWriter(request)
        self.writer.begin(status, headers)

    @property
    def head_pending(self) -> bool:
        """True until the head is framed (by the first `body`, or `end`)."""
        return self.writer.head_pending

    def body(self, data: bytes, more_body: bool) -> bytes:
        """The bytes of one body piece, after the head the first time."""
        writer = self.writer
        head = writer.head(body_length=None if more_body else len(data)) \
            if writer.head_pending else b""
        return head + writer.body(data, more_body)

    def end(self) -> bytes:
        """The app stopped before the end: the head with an empty body, if the head is not
        out yet (uvicorn's test_server_reject_connection_with_missing_body); else nothing
        (a body under way is cut short by closing)."""
        writer = self.writer
        if not writer.head_pending:
            return b""
        head = writer.head(body_length=0)
        try:
            return head + writer.body(b"", False)
        except RuntimeError:
            return head  # the app announced a length it never sent: the head alone


def error_response(
    status: int, reason: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> bytes:
    """Return a complete plain-text error response that closes the connection."""
    body = reason.encode("utf-8") + b"\n"
    return response_head(
        status,
        [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
            *headers,
        ],
    ) + body
