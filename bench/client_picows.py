"""The load generator's fast client: picows (Cython) behind the same `Conn` interface as
`client_raw.RawConn` (`send`, `close`, `abort`, `state`, `on_message(conn, payload)`).

Only imported when picows is installed (the `bench` extra); imports nothing from the project.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

OnMessage = Callable[["PicowsConn", bytes], None]
_CONT, _TEXT, _BINARY, _CLOSE = (
    WSMsgType.CONTINUATION, WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CLOSE)


class PicowsConn(WSListener):  # type: ignore[misc]
    """One client connection; picows parses and masks in C, we only see whole frames."""

    def __init__(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.state: Any = None
        self.transport: WSTransport | None = None
        self.close_sent = False
        self._fragments: list[bytes] = []

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is _TEXT or msg_type is _BINARY or msg_type is _CONT:
            payload = frame.get_payload_as_bytes()
            if not frame.fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                self._fragments.append(payload)
                payload = b"".join(self._fragments)
                self._fragments.clear()
            self.on_message(self, payload)
        elif msg_type is _CLOSE:
            # RFC 6455 5.5.1: answer a Close we did not start, then let the server close TCP.
            if not self.close_sent:
                self.close_sent = True
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def send(self, payload: bytes, text: bool) -> None:
        assert self.transport is not None
        self.transport.send(_TEXT if text else _BINARY, payload)

    async def close(self, timeout: float = 5.0) -> None:
        """Start the close handshake (1000) and wait until the connection is gone."""
        assert self.transport is not None
        if not self.close_sent:
            self.close_sent = True
            self.transport.send_close(WSCloseCode.OK)
        try:
            await asyncio.wait_for(self.transport.wait_disconnected(), timeout)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.disconnect(graceful=False)


async def connect(host: str, port: int, path: str, on_message: OnMessage,
                  subprotocol: str | None = None, timeout: float = 10.0) -> PicowsConn:
    """Open a connection and complete the opening handshake."""
    headers = {"Sec-WebSocket-Protocol": subprotocol} if subprotocol else None
    _, conn = await ws_connect(
        lambda: PicowsConn(on_message), f"ws://{host}:{port}{path}",
        websocket_handshake_timeout=timeout, extra_headers=headers,
        max_frame_size=64 * 1024 * 1024, logger_name="bench")
    assert isinstance(conn, PicowsConn)
    return conn
