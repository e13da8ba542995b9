"""Sans-I/O HTTP/1.1 request bodies (RFC 9112 6, 7): Content-Length and chunked, as `Data`.

`BodyReader` is the body half of `server.http11.RequestParser` (which reads the head and
decides the framing): it takes what the buffer holds of the current body, de-chunks it,
discards trailers, and emits `Data` pieces as they arrive (a large body is never held
whole), then `EndOfMessage`. Imports only the standard library and `server.errors`: no
asyncio, socket or clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import RequestError

__all__ = ["BodyReader", "Data", "EndOfMessage"]

# Parser states (shared with the head parser).
HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILERS, END, DONE, ERROR = range(9)

_HEX_CHARS = b"0123456789abcdefABCDEF"
# Every byte except the CTLs that may not appear in a head (HTAB is allowed: OWS).
NOT_CTL = bytes(b for b in range(256) if b >= 0x20 and b != 0x7F or b == 0x09)
_MAX_CHUNK_LINE = 4096  # chunk-size line incl. extensions; real clients send a few bytes


@dataclass(frozen=True, slots=True)
class Data:
    """A piece of the request body, de-chunked."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """End of the current request's body; emitted for bodiless requests too."""


_EOM = EndOfMessage()


class BodyReader:
    """Reads the body of the current request from `_buf` (the parser's buffer)."""

    _buf: bytearray
    _state: int
    _remaining: int  # body or chunk bytes still to read
    _eof: bool
    _stop_after: bool  # no keep-alive, or an upgrade: stop after this message
    max_header_size: int

    def _read_body(self) -> Data | None:
        buf = self._buf
        if not buf:
            if self._eof:
                raise RequestError("incomplete request")
            return None
        return self._take(END)

    def _take(self, state_after: int) -> Data:
        """Up to the rest of the current body (or chunk) from the buffer; `state_after` once
        it is all taken."""
        buf = self._buf
        n = min(len(buf), self._remaining)
        data = bytes(buf[:n])
        del buf[:n]
        self._remaining -= n
        if not self._remaining:
            self._state = state_after
        return Data(data)

    def _read_chunked(self) -> Data | EndOfMessage | None:
        # RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF;
        # last-chunk = 1*("0") [ chunk-ext ] CRLF; then trailer-section CRLF.
        buf = self._buf
        while True:
            state = self._state
            if state == CHUNK_SIZE:
                line_end = buf.find(b"\r\n", 0, _MAX_CHUNK_LINE)
                if line_end == -1:
                    if len(buf) >= _MAX_CHUNK_LINE:
                        raise RequestError("chunk size line too long")
                    return None
                line = bytes(buf[:line_end])
                del buf[: line_end + 2]
                # chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ):
                # accepted and ignored, but no control bytes.
                size, _, ext = line.partition(b";")
                size = size.rstrip(b" \t")
                if not size or size.translate(None, _HEX_CHARS) or len(size) > 16:
                    raise RequestError("invalid chunk size")
                if ext.translate(None, NOT_CTL):
                    raise RequestError("control character in chunk extension")
                self._remaining = int(size, 16)
                self._state = CHUNK_DATA if self._remaining else TRAILERS
            elif state == CHUNK_DATA:
                if not buf:
                    return None
                return self._take(CHUNK_CRLF)
            elif state == CHUNK_CRLF:
                if len(buf) < 2:
                    if buf and buf[0] != 0x0D:  # decide on "X" without waiting for more
                        raise RequestError("missing CRLF after chunk data")
                    return None
                if buf[:2] != b"\r\n":
                    raise RequestError("missing CRLF after chunk data")
                del buf[:2]
                self._state = CHUNK_SIZE
            elif state == TRAILERS:
                # RFC 9112 7.1.2: trailer fields MAY be discarded; we discard them all.
                if buf[:2] == b"\r\n":
                    del buf[:2]
                    return self._end_message()
                end = buf.find(b"\r\n\r\n", 0, self.max_header_size + 4)
                if end == -1:
                    if len(buf) >= self.max_header_size + 4:
                        raise RequestError("trailer section too large", 431)
                    if b"\n\n" in buf:
                        raise RequestError("bare LF in trailer section")
                    return None
                trailers = bytes(buf[: end + 2])
                if len(trailers.translate(None, NOT_CTL)) != 2 * trailers.count(b"\r\n"):
                    raise RequestError("control character in trailer section")
                del buf[: end + 4]
                return self._end_message()
            else:  # END
                return self._end_message()

    def _end_message(self) -> EndOfMessage:
        # The next request is parsed only when next_event() is called again; after a
        # "close" or an upgrade, no further request is read from this connection.
        self._state = DONE if self._stop_after else HEAD
        return _EOM
