"""The receiving half of a WebSocket cycle: client bytes -> the app's `receive()`.

`Inbound` is the base of `server.wscycle.WebSocketCycle`: it feeds client bytes to the
sans-I/O `ServerConnection` (buffering them until the accept), queues its messages for
the app, and orders the end of the stream. Like the cycle, it imports no asyncio, socket
or clock; its glue (`WebSocketGlue`) pauses reading, runs timers and closes TCP.

Strategy (close ordering; RFC 6455 7.1.7 and 5.5.1 leave room for it, Autobahn grades
it): a close frame from the peer or a protocol error takes effect *behind* the messages
before it. The close echo / failure is written when the app's `receive()` reaches it,
after the app took every earlier message and its replies went out, or when
`Config.ws_drain_timeout` passes first (the "drain" timer). The app gets exactly one
`websocket.disconnect`: the peer's code, the failure's, or 1006 for a dropped socket.

Backpressure: reading pauses while `Config.ws_max_queue` messages wait for the app. Pongs
and the close echo have no app to wait: when writing them leaves the transport's buffer
over its high-water mark, reading pauses until it drains (`writing_resumed`), so a peer
that floods pings and never reads holds at most one read's worth of pongs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.types import Drainable, Message, Waiter, WebSocketGlue, Writer
from server.websocket import (
    BinaryMessage,
    CloseReceived,
    ConnectionFailed,
    PongReceived,
    ServerConnection,
    State,
    TextMessage,
)

if TYPE_CHECKING:
    from server.state import ServerState

__all__ = ["Inbound"]

MAX_PENDING_BEFORE_ACCEPT = 64 * 1024

# How the peer ended the connection.
_CLOSE, _FAIL, _LOST = "close", "fail", "lost"


class Inbound:
    """Client bytes in, ASGI messages out through `receive()`, in stream order.

    Args:
        state: the server's shared state; `glue`: the asyncio side; `flow`: write
            backpressure; `transport`: where frames are written.
    """

    __slots__ = (
        "conn", "connect_sent", "disconnect", "flow", "glue", "loop", "max_queue", "pending",
        "pending_answer", "queue", "replies_blocked", "state", "transport", "transport_closed",
        "waiter", "wire_done",
    )

    def __init__(
        self,
        state: ServerState,
        glue: WebSocketGlue,
        flow: Drainable,
        transport: Writer,
    ) -> None:
        self.state = state
        self.loop = state.loop
        self.glue = glue
        self.flow = flow
        self.transport = transport
        self.conn: ServerConnection | None = None  # made by the accept
        # Bytes that came before the accept: a bytearray once some do (most never do).
        self.pending: bytes | bytearray = b""
        # A list, not a deque: it holds about Config.ws_max_queue items, and an empty deque
        # costs ~600 bytes per idle connection.
        self.queue: list[Message] = []
        self.max_queue = state.config.ws_max_queue
        self.waiter: Waiter | None = None
        self.connect_sent = False
        self.disconnect: Message | None = None  # the websocket.disconnect the app will get
        self.wire_done = False  # close/fail written or TCP gone: nothing more to answer
        self.pending_answer: tuple[str, int, str] | None = None
        self.transport_closed = False
        self.replies_blocked = False  # reading paused until our pongs/close drain

    # -- from the glue: bytes and the transport's fate ------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client: buffered before the accept, frames after it."""
        conn = self.conn
        if conn is None:
            pending = self.pending
            if type(pending) is bytes:
                self.pending = pending = bytearray()
            pending += data
            if len(pending) > MAX_PENDING_BEFORE_ACCEPT:
                self.glue.pause_reading()
            return
        conn.receive_data(data)
        out = conn.data_to_send()
        if out:
            self.transport.writelines(out)
            if self.flow.write_paused:
                # Pongs (RFC 6455 5.5.2 "MUST send a Pong") we cannot deliver yet: read no
                # more pings until they drain, or a peer that never reads grows our buffer.
                self.replies_blocked = True
                self.glue.pause_reading()
        for event in conn.events_received():
            # `type(x) is C`, not isinstance: exact and cheapest; mypy narrows it too.
            if type(event) is TextMessage:
                self._deliver({"type": "websocket.receive", "text": event.data})
            elif type(event) is BinaryMessage:
                self._deliver({"type": "websocket.receive", "bytes": event.data})
            elif type(event) is PongReceived:
                self.glue.cancel_timer("pong")
            elif type(event) is CloseReceived:
                self._mark(_CLOSE, event.code, event.reason)
            elif type(event) is ConnectionFailed:
                self._mark(_FAIL, event.code, event.reason)

    def receive_eof(self) -> None:
        """The client half-closed: after the accept, the stream ends there (1006)."""
        if self.conn is not None:
            self.conn.receive_eof()

    def connection_lost(self) -> Message:
        """TCP is gone: the app gets 1006 unless the stream already ended.

        Returns:
            The `websocket.disconnect` the app gets (its code: how the connection ended).
        """
        self.transport_closed = True
        if self.disconnect is None:
            self._mark(_LOST, 1006, "")
        assert self.disconnect is not None
        return self.disconnect

    def writing_resumed(self) -> None:
        """The transport's buffer drained: pongs held back reading, which may go on now."""
        if self.replies_blocked:
            self.replies_blocked = False
            if len(self.queue) < self.max_queue // 2:  # else receive() resumes, as usual
                self.glue.resume_reading()

    # -- queue: what the app's receive() takes, in stream order ----------------------------

    def _deliver(self, message: Message) -> None:
        waiter = self.waiter
        if waiter is not None and not self.queue and not waiter.done():
            self.waiter = None
            waiter.set_result(message)
            return
        self.queue.append(message)
        if len(self.queue) >= self.max_queue:
            self.glue.pause_reading()

    def _mark(self, kind: str, code: int, reason: str) -> None:
        """The peer closed, broke the protocol, or dropped TCP at this point of the stream."""
        if self.disconnect is not None:
            return
        self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        conn = self.conn
        if kind is _LOST or conn is None or conn.state is not State.OPEN:
            # Nothing to wait for: our close is already out (or TCP is gone).
            self.answer_pending(kind, code, reason)
        elif not self.queue and self.waiter is not None:
            self.answer_pending(kind, code, reason)  # the app took everything before it
        else:
            self.pending_answer = (kind, code, reason)
            self.glue.set_timer("drain", self.state.config.ws_drain_timeout,
                                self.answer_pending, kind, code, reason)
        # An app waiting in receive() wakes up to the disconnect; otherwise receive()
        # returns it once the queue (the messages before the end) is empty.
        waiter = self.waiter
        if waiter is not None and not self.queue and not waiter.done():
            self.waiter = None
            waiter.set_result(None)

    def answer_pending(self, kind: str, code: int, reason: str) -> None:
        """Write our side of the ending: echo the close, or fail the connection."""
        if self.wire_done:
            return
        self.wire_done = True
        self.pending_answer = None
        self.glue.cancel_timer("drain")
        conn = self.conn
        if conn is not None and not self.transport_closed:
            if conn.state is State.OPEN:
                if kind is _CLOSE:
                    # RFC 6455 5.5.1: "the endpoint typically echos the status code it received"
                    conn.send_close(None if code == 1005 else code)
                else:
                    conn.fail(code, reason)
                out = conn.data_to_send()
                if out:
                    self.transport.writelines(out)
            # RFC 6455 7.1.1: "the server SHOULD close the underlying TCP connection first"
            self.glue.close_transport()

    async def receive(self) -> Message:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        while True:
            queue = self.queue
            if queue:
                message = queue.pop(0)
                glue = self.glue
                if (glue.read_paused and not self.replies_blocked
                        and len(queue) < self.max_queue // 2):
                    glue.resume_reading()
                return message
            if self.disconnect is not None:
                break
            waiter: Waiter = self.loop.create_future()
            self.waiter = waiter
            try:
                delivered = await waiter
            finally:
                if self.waiter is waiter:
                    self.waiter = None
            if delivered is not None:
                return delivered  # type: ignore[no-any-return]
        assert self.disconnect is not None
        if self.pending_answer is not None:
            self.answer_pending(*self.pending_answer)
        return self.disconnect
