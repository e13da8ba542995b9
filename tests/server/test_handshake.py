"""server.handshake: RFC 6455 4.2 opening handshake, checked and answered in bytes.

No event loop. The `websockets` sans-I/O client serves as an oracle: its handshake request
goes through our parser and checks, and it must accept our 101.
"""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from server.errors import HandshakeError
from server.handshake import Handshake, accept_key, accept_response, check_request
from server.http11 import EndOfMessage, Request, RequestParser

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

GOOD = [
    (b"Host", b"server.example.com"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", KEY),
    (b"Origin", b"http://example.com"),
    (b"Sec-WebSocket-Protocol", b"chat, superchat"),
    (b"Sec-WebSocket-Version", b"13"),
]


def upgrade_request(headers: list[tuple[bytes, bytes]], body: bytes = b"") -> Request:
    data = b"GET /chat HTTP/1.1\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers)
    parser = RequestParser()
    parser.receive_data(data + b"\r\n" + body)
    request = parser.next_event()
    assert isinstance(request, Request) and request.websocket_upgrade
    return request


def replace(name: bytes, *values: bytes) -> list[tuple[bytes, bytes]]:
    """GOOD with the `name` header replaced by `values` (none: removed)."""
    out = [(n, v) for n, v in GOOD if n.lower() != name.lower()]
    return out + [(name, v) for v in values]


def test_accept_key_matches_rfc_example() -> None:
    # RFC 6455 1.3: "dGhlIHNhbXBsZSBub25jZQ==" -> "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    assert accept_key(KEY) == ACCEPT


def test_server_accepts_rfc_example_handshake() -> None:
    handshake = check_request(upgrade_request(GOOD))
    assert handshake == Handshake(KEY, ["chat", "superchat"])
    assert accept_response(handshake, "chat") == (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"sec-websocket-protocol: chat\r\n\r\n"
    )


def test_server_accepts_without_subprotocol_and_with_extra_headers() -> None:
    handshake = check_request(upgrade_request(replace(b"Sec-WebSocket-Protocol")))
    assert handshake.subprotocols == []
    assert accept_response(handshake, None, [(b"x-a", b"1"), (b"upgrade", b"dropped")]) == (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nx-a: 1\r\n\r\n"
    )


@pytest.mark.parametrize(
    "headers",
    [
        replace(b"Connection", b"keep-alive, Upgrade"),
        replace(b"Connection", b"keep-alive", b"UPGRADE"),
        replace(b"Upgrade", b"WebSocket"),
        replace(b"Sec-WebSocket-Key", b"  " + KEY),
        replace(b"Content-Length", b"0"),
    ],
)
def test_server_accepts_handshake_variants(headers: list[tuple[bytes, bytes]]) -> None:
    assert check_request(upgrade_request(headers)).key == KEY


def test_server_merges_subprotocol_lists_in_order() -> None:
    headers = replace(b"Sec-WebSocket-Protocol", b"a, b", b" ,c ,", b"d")
    assert check_request(upgrade_request(headers)).subprotocols == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        (replace(b"Connection"), b"", 400),
        (replace(b"Connection", b"keep-alive"), b"", 400),
        (replace(b"Connection", b"upgraded"), b"", 400),
        (replace(b"Upgrade", b"websocket, h2c"), b"", 400),
        (replace(b"Upgrade", b"websocket", b"websocket"), b"", 400),
        (replace(b"Sec-WebSocket-Key"), b"", 400),
        (replace(b"Sec-WebSocket-Key", KEY, KEY), b"", 400),
        (replace(b"Sec-WebSocket-Key", b""), b"", 400),
        (replace(b"Sec-WebSocket-Key", b"not base64!"), b"", 400),
        (replace(b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ"), b"", 400),  # no padding
        (replace(b"Sec-WebSocket-Key", b"AAAAAAAAAAAAAAAAAAAAAAAA"), b"", 400),  # 18 bytes
        (replace(b"Sec-WebSocket-Key", b"AAAAAAAAAAAAAAAAAAAA"), b"", 400),  # 15 bytes
        (replace(b"Sec-WebSocket-Protocol", b"bad proto"), b"", 400),
        (replace(b"Content-Length", b"3"), b"abc", 400),
        (replace(b"Transfer-Encoding", b"chunked"), b"0\r\n\r\n", 400),
        (replace(b"Sec-WebSocket-Version"), b"", 426),
        (replace(b"Sec-WebSocket-Version", b"8"), b"", 426),
        (replace(b"Sec-WebSocket-Version", b"13, 8"), b"", 426),
        (replace(b"Sec-WebSocket-Version", b"13", b"13"), b"", 426),
    ],
)
def test_server_refuses_invalid_handshake(
    headers: list[tuple[bytes, bytes]], body: bytes, status: int
) -> None:
    with pytest.raises(HandshakeError) as info:
        check_request(upgrade_request(headers, body))
    assert info.value.status == status
    expected = [(b"sec-websocket-version", b"13")] if status == 426 else []
    assert info.value.headers == expected


def test_server_refuses_subprotocol_not_offered() -> None:
    handshake = check_request(upgrade_request(GOOD))
    with pytest.raises(RuntimeError):
        accept_response(handshake, "other")


@pytest.mark.parametrize(
    "headers",
    [[(b"x", b"a\r\nb")], [(b"bad name", b"v")], [(b"x", b"\x00")]],
)
def test_server_refuses_invalid_accept_headers(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(RuntimeError):
        accept_response(check_request(upgrade_request(GOOD)), None, headers)


def test_server_takes_subprotocol_from_header_when_not_given() -> None:
    handshake = check_request(upgrade_request(GOOD))
    response = accept_response(handshake, None, [(b"sec-websocket-protocol", b"superchat")])
    assert response.endswith(b"sec-websocket-protocol: superchat\r\n\r\n")
    assert response.count(b"sec-websocket-protocol") == 1
    with pytest.raises(RuntimeError):
        accept_response(handshake, "chat", [(b"sec-websocket-protocol", b"chat")])
    with pytest.raises(RuntimeError):
        accept_response(handshake, None, [(b"sec-websocket-protocol", b"nope")])


@pytest.mark.parametrize("subprotocols", [None, ["chat", "superchat"]])
def test_websockets_client_completes_handshake(subprotocols: list[str] | None) -> None:
    client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/chat?x=1"), subprotocols=subprotocols)
    client.send_request(client.connect())
    parser = RequestParser()
    for chunk in client.data_to_send():
        parser.receive_data(chunk)
    request = parser.next_event()
    assert isinstance(request, Request) and request.websocket_upgrade
    assert (request.path, request.query_string) == ("/chat", b"x=1")
    assert parser.next_event() == EndOfMessage()
    handshake = check_request(request)
    chosen = handshake.subprotocols[1] if handshake.subprotocols else None
    client.receive_data(accept_response(handshake, chosen))
    assert client.handshake_exc is None
    assert client.state is State.OPEN
    assert client.subprotocol == chosen


# --- benchmark: `python -m tests.server.test_handshake` (never run by pytest) ----------

BROWSER_UPGRADE = (
    b"GET /ws?room=lobby HTTP/1.1\r\nHost: localhost:8000\r\nConnection: Upgrade\r\n"
    b"Pragma: no-cache\r\nCache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux "
    b"x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n"
    b"Upgrade: websocket\r\nOrigin: http://localhost:8000\r\nSec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)


def _bench() -> None:  # pragma: no cover - a measurement, not a test
    """Print microseconds per parse + handshake of a Chrome-like upgrade request."""
    import time
    from collections.abc import Callable

    import h11
    import wsproto
    import wsproto.events
    from websockets.server import ServerProtocol

    def wsrun() -> bytes:
        parser = RequestParser()
        parser.receive_data(BROWSER_UPGRADE)
        request = parser.next_event()
        assert isinstance(request, Request) and parser.next_event() == EndOfMessage()
        return accept_response(check_request(request), None)

    def h11_parse_only() -> object:
        connection = h11.Connection(h11.SERVER)
        connection.receive_data(BROWSER_UPGRADE)
        return connection.next_event()

    def wsproto_handshake() -> bytes:
        connection = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        connection.receive_data(BROWSER_UPGRADE)
        next(connection.events())
        return connection.send(wsproto.events.AcceptConnection())

    def websockets_handshake() -> list[bytes]:
        protocol = ServerProtocol()
        protocol.receive_data(BROWSER_UPGRADE)
        request = protocol.events_received()[0]
        protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
        return protocol.data_to_send()

    candidates: dict[str, Callable[[], object]] = {
        "wsrun parse + handshake": wsrun,
        "h11 parse only": h11_parse_only,
        "wsproto parse + handshake (h11)": wsproto_handshake,
        "websockets parse + handshake": websockets_handshake,
    }
    try:
        import httptools

        class Callbacks:
            def on_url(self, url: bytes) -> None:
                self.url = url

            def on_header(self, name: bytes, value: bytes) -> None:
                self.headers.append((name, value))

        def httptools_parse_only() -> object:
            callbacks = Callbacks()
            callbacks.headers = []  # type: ignore[attr-defined]
            parser = httptools.HttpRequestParser(callbacks)
            try:
                parser.feed_data(BROWSER_UPGRADE)
            except httptools.HttpParserUpgrade:
                pass
            return callbacks

        candidates["httptools parse only (C)"] = httptools_parse_only
    except ImportError:
        print("httptools not installed: skipped")
    best = dict.fromkeys(candidates, float("inf"))
    number = 5000
    for _ in range(15):  # interleaved rounds, best of each: robust to a busy machine
        for name, function in candidates.items():
            start = time.perf_counter()
            for _ in range(number):
                function()
            best[name] = min(best[name], (time.perf_counter() - start) / number)
    print(f"{len(BROWSER_UPGRADE)}-byte upgrade request, {BROWSER_UPGRADE.count(b': ')} headers")
    for name, seconds in best.items():
        print(f"{name:36} {seconds * 1e6:7.2f} us")


if __name__ == "__main__":
    _bench()
