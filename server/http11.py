"""Sans-I/O HTTP/1.1 (RFC 9112): request heads and bodies in, response bytes out.

`RequestParser` turns received bytes into `Request`, `Data` and `EndOfMessage` events and
raises `RequestError` (carrying the answering status) on bad input. The response side is
`server.response`; the body is read by its base, `server.bodies.BodyReader`.
This module imports no asyncio, socket or clock: only the stdlib, `server.errors` and
`server.bodies`.

Strategy: the head is parsed in one go once `\\r\\n\\r\\n` is buffered, with bytes methods
only (`find`, `split`, `partition`, `translate`); no per-byte loops, no regex per header.
One `translate` call counts every control byte of the head at once: the head is valid
only if the CRLFs are its sole control bytes. Bodies are emitted as `Data` as they
arrive, so a large body is never held whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from server.bodies import (
    BODY,
    CHUNK_SIZE,
    DONE,
    END,
    ERROR,
    HEAD,
    NOT_CTL,
    BodyReader,
    Data,
    EndOfMessage,
)
from server.errors import RequestError
from server.fields import NAMES, TOKEN_CHARS, tokens

__all__ = [
    "TOKEN_CHARS",
    "Data",
    "EndOfMessage",
    "Request",
    "RequestParser",
    "tokens",
]

_VERSION_RE = re.compile(rb"HTTP/([0-9])\.([0-9])")
# RFC 3986 3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ), IP-literal in
# brackets, then ":" port.
_HOST_CHARS = (
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=:[]"
)
_AUTHORITY_END = re.compile(rb"[/?#]")
_EMPTY_LINES = re.compile(rb"(?:\r\n)*")


@dataclass(frozen=True, slots=True)
class Request:
    """A request head (RFC 9112 3, 5)."""

    method: str
    target: bytes
    path: str
    raw_path: bytes
    query_string: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    expect_continue: bool
    websocket_upgrade: bool


# `Request(...)` without the frozen dataclass __init__ (ten `object.__setattr__` calls,
# ~12k instructions per request): the slots' own setters, as server.events does.
_REQUEST_SETTERS = tuple(Request.__dict__[field].__set__ for field in Request.__slots__)


def _new_request(*values: Any) -> Request:
    request: Request = object.__new__(Request)
    for setter, value in zip(_REQUEST_SETTERS, values, strict=True):
        setter(request, value)
    return request


_SPECIAL = frozenset(
    [b"content-length", b"host", b"transfer-encoding", b"connection", b"expect", b"upgrade"])


def _content_length(value: bytes, previous: int | None) -> int:
    """Parse a Content-Length value; RFC 9110 8.6: Content-Length = 1*DIGIT, and a list
    of identical values MAY be accepted as one, while differing values are an error."""
    length = previous
    for item in value.split(b","):
        item = item.strip(b" \t")
        # 18 digits is beyond any real body and below int()'s digit limit (a ValueError).
        if not item.isdigit() or len(item) > 18:
            raise RequestError("invalid Content-Length")
        if length is not None and int(item) != length:
            raise RequestError("conflicting Content-Length")
        length = int(item)
    assert length is not None
    return length


def _split_target(method: str, target: bytes) -> tuple[str, bytes, bytes]:
    """Return (path, raw_path, query_string) of a request-target (RFC 9112 3.2)."""
    if target[:1] == b"/":  # origin-form, by far the most common
        rest = target
    elif target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
        # absolute-form: RFC 9112 3.2.2 "a server MUST accept the absolute-form".
        end = _AUTHORITY_END.search(target, target.find(b"//") + 2)
        rest = target[end.start():] if end else b""
        if rest[:1] != b"/":  # "http://h?q": RFC 9112 3.2.1, an empty path is "/"
            rest = b"/" + rest
    elif target == b"*" and method == "OPTIONS":  # RFC 9112 3.2.4 asterisk-form
        return "*", b"*", b""
    elif method == "CONNECT" and b"/" not in target:  # RFC 9112 3.2.3 authority-form
        return target.decode("ascii"), target, b""
    else:
        raise RequestError("invalid request target")
    # A fragment is not part of a request-target; drop it rather than pass it to the app.
    rest = rest.partition(b"#")[0]
    raw_path, _, query_string = rest.partition(b"?")
    if raw_path.find(b"%") == -1:  # `find`: see server.fields.tokens
        return raw_path.decode("ascii"), raw_path, query_string
    try:
        # ASGI: "path: HTTP request target excluding any query string, with percent-encoded
        # sequences and UTF-8 byte sequences decoded into characters".
        return unquote_to_bytes(raw_path).decode("utf-8"), raw_path, query_string
    except UnicodeDecodeError:
        raise RequestError("request path is not UTF-8") from None


class RequestParser(BodyReader):
    """Parse requests from a byte stream, one event at a time.

    Args:
        max_request_line_size: longest request line, in bytes, before 414.
        max_header_size: longest header section (field lines), in bytes, before 431.
        max_headers: most header fields before 431.
    """

    def __init__(
        self,
        *,
        max_request_line_size: int = 8192,
        max_header_size: int = 65536,
        max_headers: int = 100,
    ) -> None:
        self.max_request_line_size = max_request_line_size
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self._buf = bytearray()
        self._state = HEAD
        self._eof = False
        self._remaining = 0  # body or chunk bytes still to read
        self._stop_after = False  # no keep-alive, or an upgrade: stop after this message
        self._scan_from = 0  # where to resume looking for the end of an incomplete head
        self._error: RequestError | None = None

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes received from the peer; ignored once the parser failed or saw EOF."""
        if self._state != ERROR and not self._eof:
            self._buf += data

    def receive_eof(self) -> None:
        """Record that the peer closed its sending side."""
        self._eof = True

    @property
    def at_eof(self) -> bool:
        """True when the peer sent EOF and no unparsed byte is left."""
        return self._eof and not self._buf

    def buffered(self) -> int:
        """Return how many received bytes are not consumed yet (for pausing reads)."""
        return len(self._buf)

    def trailing_data(self) -> bytes:
        """Return the buffered, unconsumed bytes without consuming them.

        After an upgrade request's `Request` and `EndOfMessage` these are the first bytes
        of the new protocol (WebSocket frames).
        """
        return bytes(self._buf)

    def next_event(self) -> Request | Data | EndOfMessage | None:
        """Return the next event, or None when more data is needed.

        After an `EndOfMessage` the next call starts parsing the next pipelined request,
        unless the connection is not kept alive or the request was a WebSocket upgrade:
        then it returns None from then on.

        Raises:
            RequestError: the request is invalid; the parser is dead and raises it again.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except RequestError as exc:
            self._state = ERROR
            self._error = exc
            self._buf.clear()
            raise

    def _next_event(self) -> Request | Data | EndOfMessage | None:
        state = self._state
        if state == HEAD:
            request = self._parse_head()
            if request is None and self._eof and self._buf:
                raise RequestError("incomplete request")
            return request
        if state == BODY:
            return self._read_body()
        if state == END:
            return self._end_message()
        if state == DONE:
            return None
        event = self._read_chunked()
        if event is None and self._eof:
            raise RequestError("incomplete request")
        return event

    def _parse_head(self) -> Request | None:
        buf = self._buf
        # RFC 9112 2.2: "a server that is expecting to receive and parse a request-line
        # SHOULD ignore at least one empty line (CRLF) received prior to the request-line".
        if buf[:2] == b"\r\n":
            del buf[: _EMPTY_LINES.match(buf).end()]  # type: ignore[union-attr]
        line_end = buf.find(b"\r\n")
        if line_end == -1 or line_end > self.max_request_line_size:
            # RFC 9112 3: "A server that receives a request-target longer than any URI it
            # wishes to parse MUST respond with a 414". Decide now, not after more bytes.
            limit = self.max_request_line_size
            n = len(buf)
            if line_end > limit or n > limit + 1 or (n == limit + 1 and buf[-1] != 13):
                raise RequestError("request line too long", 414)
            if b"\n" in buf:
                raise RequestError("bare LF in request line")
            return None
        scan = max(line_end, self._scan_from)
        end = buf.find(b"\r\n\r\n", scan)
        if end == -1:
            # The terminator starts at len(buf) - 3 or later: the section is already too big.
            if len(buf) - 3 - line_end > self.max_header_size:
                raise RequestError("request header section too large", 431)
            # A lenient parser ends the head at "LF LF" or "LF CRLF": refuse both now rather
            # than wait for a CRLFCRLF that a client (or a proxy in front) will never send.
            # ("\n\r\n" cannot be the tail of a CRLFCRLF here: none is buffered.)
            if buf.find(b"\n\n", scan) != -1 or buf.find(b"\n\r\n", scan) != -1:
                raise RequestError("bare LF in request head")
            self._scan_from = max(len(buf) - 3, 0)
            return None
        if end - line_end > self.max_header_size:
            raise RequestError("request header section too large", 431)
        head = bytes(buf[:end])
        del buf[: end + 4]
        self._scan_from = 0
        return self._build_request(head)

    def _build_request(self, head: bytes) -> Request:
        lines = head.split(b"\r\n")
        if len(lines) - 1 > self.max_headers:
            raise RequestError("too many request headers", 431)
        # The CRLFs must be the only control bytes: this catches NUL, bare CR and LF in any
        # field value (RFC 9110 5.5 "MUST either reject the message or replace") in one pass.
        if len(head.translate(None, NOT_CTL)) != 2 * (len(lines) - 1):
            raise RequestError("control character in request head")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise RequestError("malformed request line")
        method_b, target, version_b = parts
        if not method_b or method_b.translate(None, TOKEN_CHARS):
            raise RequestError("invalid method")
        # RFC 9112 3.2: the target has no whitespace; a URI is ASCII (RFC 3986).
        if not target or target.find(b"\t") != -1 or not target.isascii():
            raise RequestError("invalid request target")
        if version_b == b"HTTP/1.1":
            version = "1.1"
        elif version_b == b"HTTP/1.0":
            version = "1.0"
        elif _VERSION_RE.fullmatch(version_b):
            raise RequestError("HTTP version not supported", 505)
        else:
            raise RequestError("malformed HTTP version")
        method = method_b.decode("ascii")
        path, raw_path, query_string = _split_target(method, target)

        headers: list[tuple[bytes, bytes]] = []
        content_length: int | None = None
        hosts = 0
        # Raw values of the fields that decide framing and connection handling.
        special: dict[bytes, list[bytes]] = {}
        # Locals: this loop runs once per header field, the hot path of a handshake.
        token_chars, special_names, append, known = TOKEN_CHARS, _SPECIAL, headers.append, NAMES
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise RequestError("malformed header line")
            lname = known.get(name)  # a known spelling is a token: no need to check it
            if lname is None:
                if not name or name.translate(None, token_chars):
                    # Also covers obs-fold (RFC 9112 5.2 "MUST either reject the message by
                    # sending a 400") and whitespace before the colon (RFC 9112 5.1 "MUST
                    # reject").
                    if line[:1] in (b" ", b"\t"):
                        raise RequestError("obsolete line folding in header")
                    raise RequestError("invalid header name")
                lname = name.lower()
            name = lname
            value = value.strip(b" \t")
            append((name, value))
            if name in special_names:
                if name == b"content-length":
                    content_length = _content_length(value, content_length)
                elif name == b"host":
                    hosts += 1
                    # RFC 9112 3.2: also 400 for "a Host header field with an invalid field
                    # value"; Host = uri-host [ ":" port ] (RFC 3986 characters only).
                    if value.translate(None, _HOST_CHARS):
                        raise RequestError("invalid Host header")
                else:
                    special.setdefault(name, []).append(value)

        # RFC 9112 3.2: "A server MUST respond with a 400 (Bad Request) status code to any
        # HTTP/1.1 request message that lacks a Host header field and to any request message
        # that contains more than one Host header field line".
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            raise RequestError("missing or repeated Host header")

        chunked = b"transfer-encoding" in special
        if chunked:
            # RFC 9112 6.1: a recipient of "an HTTP/1.0 message containing a Transfer-Encoding
            # header field MUST treat the message as if the framing is faulty".
            if version == "1.0":
                raise RequestError("Transfer-Encoding in an HTTP/1.0 request")
            # RFC 9112 6.3: TE and CL together "ought to be handled as an error" (smuggling).
            if content_length is not None:
                raise RequestError("both Content-Length and Transfer-Encoding")
            # RFC 9112 6.1: "A server that receives a request message with a transfer coding
            # it does not understand SHOULD respond with 501 (Not Implemented)."
            if tokens(special[b"transfer-encoding"]) != [b"chunked"]:
                raise RequestError("unsupported Transfer-Encoding", 501)

        connection = tokens(special[b"connection"]) if b"connection" in special else []
        # RFC 9112 9.3: 1.1 is persistent unless "close"; 1.0 only with "keep-alive".
        if version == "1.1":
            keep_alive = b"close" not in connection
        else:
            keep_alive = b"keep-alive" in connection and b"close" not in connection
        # RFC 9110 10.1.1: "A server that receives a 100-continue expectation in an HTTP/1.0
        # request MUST ignore that expectation."
        expect_continue = (
            version == "1.1" and b"expect" in special
            and b"100-continue" in tokens(special[b"expect"])
        )
        # RFC 6455 4.1: the handshake is an HTTP/1.1 GET; RFC 9110 7.8: "A server MUST ignore
        # an Upgrade header field that is received in an HTTP/1.0 request."
        upgrade = (
            method == "GET" and version == "1.1"
            and b"upgrade" in special and b"websocket" in tokens(special[b"upgrade"])
        )

        self._stop_after = upgrade or not keep_alive
        if chunked:
            self._state = CHUNK_SIZE
        elif content_length:
            self._remaining = content_length
            self._state = BODY
        else:
            # RFC 9112 6.3: a request with neither TE nor CL has a zero-length body.
            self._state = END
        return _new_request(
            method, target, path, raw_path, query_string, version, headers,
            keep_alive, expect_continue, upgrade,
        )
