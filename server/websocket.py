"""Sans-I/O RFC 6455 server connection: bytes in, events and bytes out.

`ServerConnection` holds one WebSocket's state. It reads frame headers with
`server.frames.read_header` (the one copy of the RFC 6455 5.2 rules), hands data frames
to `server.messages.MessageAssembler` (fragments, size limit, UTF-8) and answers pings;
what the server sends is framed and queued by its base, `server.outbox.Outbox`. It
starts in OPEN: the HTTP upgrade is done elsewhere. It imports no asyncio, socket, time
or clock; timers, writes and closing TCP belong to the glue (`server.wsprotocol`).

Strategy:
- Input is a buffer plus a read offset: the received chunk itself while nothing else is
  buffered (most reads carry whole frames: no copy), else a `bytearray` of the rest plus
  what came after. It is compacted once per `receive_data` call, never per frame.
- A frame whose header, mask and whole payload are in the buffer, and that is a whole
  uncompressed message, is unmasked in one call and decoded at once (`messages.complete`).
  Anything else (a fragment, a frame split across reads) is streamed: text and compressed
  messages are unmasked piece by piece (the mask rotated to the piece's offset) and
  decoded / inflated as they arrive; uncompressed binary frames that span reads keep their
  masked pieces and are unmasked once, when the frame is complete.
- Counters move only when a header is complete (mask included): a frame fed byte by
  byte counts its payload once.
- The core never writes a close frame on its own. A close frame from the peer gives
  `CloseReceived` and a protocol error gives `ConnectionFailed`, in stream order; either
  stops parsing (later input is discarded). The glue first delivers the messages before
  it, lets the app's replies go out, then calls `send_close()` / `fail()` (what Autobahn
  calls STRICT ordering). Pings are answered at once while the connection is OPEN.
- Extension hooks (RFC 7692): a `decompressor` allows RSV1 on a message's first frame and
  inflates it in the assembler as it arrives (bounded by the size limit); a `compressor`
  deflates each message sent over its threshold and sets RSV1 (`server.deflate`).
"""

from __future__ import annotations

from typing import Any

from server.config import DEFAULT_WS_MAX_SIZE
from server.errors import ProtocolError
from server.events import (
    BinaryMessage,
    CloseReceived,
    ConnectionFailed,
    Event,
    PingReceived,
    PongReceived,
    TextMessage,
)
from server.frames import (
    RSV1,
    CloseCode,
    Opcode,
    apply_mask,
    apply_mask_join,
    is_valid_close_code,
    parse_close,
    read_header,
    short_headers,
)
from server.messages import Decompressor, MessageAssembler, complete
from server.outbox import Compressor, Outbox, State

__all__ = [
    "BinaryMessage",
    "CloseReceived",
    "Compressor",
    "ConnectionFailed",
    "Event",
    "PingReceived",
    "PongReceived",
    "ServerConnection",
    "State",
    "TextMessage",
]


# Below this size a payload slice is cheaper to copy than to view (memoryview set-up).
_VIEW_MIN = 1024
_UNSENDABLE = frozenset({CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE, 1015})
_CLOSE = Opcode.CLOSE.value
_PING = Opcode.PING.value
_PONG_B0 = 0x80 | Opcode.PONG.value
_NO_LIST: Any = ()  # stands for a list not made yet (idle memory per connection)


class ServerConnection(Outbox):
    """The server side of one WebSocket connection, after the opening handshake.

    Args:
        max_message_size: largest message accepted, in bytes (None: no limit); a larger
            one fails the connection with 1009 as soon as a frame header announces it.
        compressor, decompressor: a negotiated compression extension (RFC 7692).
    """

    # Slots: one of these lives as long as each WebSocket (idle memory per connection).
    # The send side's (queue, counters, state) are `Outbox`'s.
    __slots__ = (
        "_buf", "_close_rcvd", "_decompressor", "_eof", "_events",
        "_failed", "_fin", "_left", "_mask", "_max_size", "_messages", "_offset", "_parsing",
        "_pos", "_raw", "_rsv_allowed", "_short", "bytes_in", "close_code", "close_reason",
        "messages_in",
    )

    def __init__(
        self,
        max_message_size: int | None = DEFAULT_WS_MAX_SIZE,
        *,
        compressor: Compressor | None = None,
        decompressor: Decompressor | None = None,
    ) -> None:
        super().__init__(compressor)
        #: The peer's close code and reason, once its close frame was received.
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._max_size = max_message_size
        self._decompressor = decompressor
        # Made for the first frame that is not a whole message (most connections never
        # see one): an idle connection holds no assembler.
        self._messages: MessageAssembler | None = None
        self._rsv_allowed = RSV1 if decompressor is not None else 0
        self._short = short_headers(self._rsv_allowed)  # shared by every connection
        self._buf: bytes | bytearray = b""  # the received chunk itself, or a copy of its rest
        self._pos = 0
        self._events: list[Event] = []
        self._parsing = True  # False once a close, an error, fail() or EOF stops input
        self._close_rcvd = False
        self._failed = False
        self._eof = False
        # The data frame whose payload is being streamed (_left == -1: between frames).
        self._left = -1
        self._mask = b""
        self._offset = 0
        self._fin = True
        # Masked pieces of the frame being collected: made when such a frame begins; until
        # then a shared empty tuple, so an idle connection holds no list.
        self._raw: list[bytes] = _NO_LIST
        #: Data messages received, and the payload bytes of their frames on the wire.
        self.messages_in = 0
        self.bytes_in = 0

    @property
    def max_message_size(self) -> int | None:
        """The size limit of received messages (None: no limit)."""
        return self._max_size

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the socket, split anywhere. Never raises on peer input."""
        if not self._parsing:
            return
        if self._raw and not self._buf and len(data) <= self._left:
            # Inside a large frame with nothing else buffered: keep the piece as is, no
            # copy into the buffer (it is unmasked with the rest, once).
            self._raw.append(data if type(data) is bytes else bytes(data))
            self._left -= len(data)
            if self._left:
                return
            # That was the frame's last byte: _parse() below finishes the frame.
        elif self._buf:
            self._buf += data
        else:
            # Nothing buffered (the usual case): parse the chunk itself, no copy.
            self._buf = data if type(data) is bytes else bytes(data)
        try:
            self._parse()
        except ProtocolError as exc:
            self._stop(ConnectionFailed(exc.close_code, exc.reason))
            return
        except Exception:  # noqa: BLE001 - a bug of ours must not reach the glue as peer input
            self._stop(ConnectionFailed(CloseCode.INTERNAL_ERROR, "internal error"))
            return
        # Compact once per call, not per frame: keep only the unconsumed rest (b"" when
        # all of it was parsed, as it mostly is).
        pos = self._pos
        if pos and self._parsing:
            buf = self._buf
            if isinstance(buf, bytes):
                self._buf = buf[pos:]
            else:
                del buf[:pos]
            self._pos = 0

    def receive_eof(self) -> None:
        """The peer closed TCP. Without a close frame before it, that is a 1006."""
        if self._eof:
            return
        self._eof = True
        if self._parsing:
            # RFC 6455 7.1.5: "If _The WebSocket Connection is Closed_ and no Close
            # control frame was received by the endpoint ... the connection close code
            # is considered to be 1006."
            self._stop(ConnectionFailed(CloseCode.ABNORMAL_CLOSURE, "connection closed"))
        self.state = State.CLOSED

    def events_received(self) -> list[Event]:
        """Return the events parsed since the last call, in stream order."""
        events, self._events = self._events, []
        return events

    def close_expected(self) -> bool:
        """Whether the glue should now close TCP (or expect the peer to).

        True once a close frame was both sent and received, after `fail()`, or after EOF.
        """
        return self._failed or self._eof or (self._close_sent and self._close_rcvd)

    def _stop(self, event: Event) -> None:
        """Emit the final input event and discard all later input."""
        self._events.append(event)
        self._parsing = False
        self._buf = b""
        self._pos = 0
        self._raw = _NO_LIST
        if self._messages is not None:
            self._messages.reset()

    def _parse(self) -> None:
        """Consume every complete header and every available payload byte in the buffer."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        messages = self._messages
        max_size = self._max_size
        rsv_allowed = self._rsv_allowed
        short = self._short
        try:
            while True:
                if self._left >= 0:
                    pos = self._stream_payload(pos)
                    if self._left >= 0 or not self._parsing:
                        return
                    continue
                if end - pos < 2:
                    return
                header = short[buf[pos]][buf[pos + 1]]
                if header is None:
                    header = read_header(buf, pos, end, rsv_allowed)
                    if header is None:
                        return
                b0, length, start = header
                start += pos
                opcode = b0 & 0x0F
                stop = start + length
                if opcode >= 8:
                    if b0 & 0x70:
                        # RFC 7692 6.1: the compression bit is never set on a control frame.
                        raise ProtocolError("reserved bits set")
                    if stop > end:
                        return  # control frames are small: wait for the whole frame
                    payload = apply_mask(buf[start:stop], bytes(buf[start - 4 : start]))
                    pos = stop
                    if not self._control(opcode, payload):
                        return
                    continue
                rsv1 = b0 & RSV1
                if (
                    stop <= end and b0 & 0x80 and opcode and not rsv1
                    and (messages is None or not messages.opcode)
                    and (max_size is None or length <= max_size)
                ):
                    # A whole unfragmented message is in the buffer (most traffic): a first
                    # frame, no message in progress, within the limit, so the assembler's
                    # `check` has nothing to refuse and no state to keep.
                    self.bytes_in += length
                    pos = stop
                    if length < _VIEW_MIN:
                        payload = apply_mask(buf[start:stop], buf[start - 4 : start])
                    else:
                        with memoryview(buf) as view:  # the C apply_mask reads it in place
                            payload = apply_mask(view[start:stop], buf[start - 4 : start])
                    if self._close_sent:
                        continue  # after our close, data is ignored
                    self._events.append(complete(opcode, payload))
                    self.messages_in += 1
                    continue
                if messages is None:
                    messages = self._messages = MessageAssembler(max_size, self._decompressor)
                # RFC 6455 5.4 ordering and the size limit, before the payload arrives.
                messages.check(opcode, length, rsv1 != 0)
                if start > end:
                    return  # the masking key has not arrived yet
                self.bytes_in += length
                # A fragment, or a frame split across reads: stream its payload.
                messages.begin(opcode, length, rsv1 != 0)
                if not messages.streams:
                    self._raw = []
                self._mask = bytes(buf[start - 4 : start])
                self._left = length
                self._offset = 0
                self._fin = b0 & 0x80 != 0
                pos = start
        finally:
            self._pos = pos

    def _stream_payload(self, pos: int) -> int:
        """Consume the available payload of the streamed data frame; return the new offset."""
        buf = self._buf
        left = self._left
        take = min(len(buf) - pos, left)
        messages = self._messages
        assert messages is not None  # made when the frame began
        # Memoryviews are released before the buffer is resized (a live export forbids it).
        if not messages.streams:
            raw = self._raw
            with memoryview(buf) as view:
                if take < left:
                    if take:
                        raw.append(bytes(view[pos : pos + take]))
                elif raw:
                    if take:
                        raw.append(bytes(view[pos : pos + take]))
                    messages.feed(apply_mask_join(raw, self._mask))
                    self._raw = _NO_LIST
                else:
                    messages.feed(apply_mask(view[pos : pos + take], self._mask))
                    self._raw = _NO_LIST
        elif take:
            mask = self._mask
            rot = self._offset & 3
            if rot:
                # A piece that starts k bytes into the payload is masked from mask[k % 4].
                mask = mask[rot:] + mask[:rot]
            with memoryview(buf) as view:
                chunk = apply_mask(view[pos : pos + take], mask)
            self._offset += take
            messages.feed(chunk)
        pos += take
        self._left = left = left - take
        if left:
            return pos
        self._left = -1
        if self._fin:
            message = messages.finish()
            if not self._close_sent:  # after our close, data is ignored
                self._events.append(message)
                self.messages_in += 1
        return pos

    def _control(self, opcode: int, payload: bytes) -> bool:
        """Handle a control frame; return False when parsing must stop (a close)."""
        if opcode == _PING:
            self._events.append(PingReceived(payload))
            # RFC 6455 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
            # frame in response, unless it already received a Close frame. ... the Pong
            # frame ... MUST have identical "Application data"". After our own close we
            # send nothing more (RFC 6455 5.5.1).
            if self.state is State.OPEN:
                self._out.append(bytes((_PONG_B0, len(payload))) + payload)
            return True
        if opcode == _CLOSE:
            code, reason = parse_close(payload)
            self.close_code = code
            self.close_reason = reason
            self._close_rcvd = True
            # A close between fragments is a normal close (Autobahn 7.1.5): the partial
            # message is dropped. RFC 6455 5.5.1: after a close, no more data is read.
            self._stop(CloseReceived(code, reason))
            if self._close_sent:
                self.state = State.CLOSED
            return False
        self._events.append(PongReceived(payload))
        return True

    # ----------------------------------------------------------------- output

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame, stop reading input.

        The reason is cut to 123 bytes of UTF-8. No close frame goes out if one already
        did, after EOF, or for 1005/1006/1015, which RFC 6455 7.4.1 says "MUST NOT be
        set as a status code in a Close control frame". Afterwards `close_expected()`.

        Raises:
            ValueError: a code outside the registry (e.g. 999, 1004, 2000, 5000).
        """
        if code not in _UNSENDABLE and not is_valid_close_code(code):
            raise ValueError(f"close code {code} must not be sent")
        if self._parsing:
            self._parsing = False
            self._buf = b""
            self._pos = 0
            self._raw = _NO_LIST
            if self._messages is not None:
                self._messages.reset()
        self._failed = True
        if not (self._close_sent or self._eof or code in _UNSENDABLE):
            self._queue_close(code, reason)
            self._close_sent = True
        if self.state is State.OPEN:
            self.state = State.CLOSED if self._close_rcvd else State.CLOSING

