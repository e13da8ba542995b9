"""X-Forwarded-For / X-Forwarded-Proto from trusted proxies, over real sockets.

The client is the right-most untrusted hop of X-Forwarded-For, as uvicorn's
ProxyHeadersMiddleware chooses it, and only when that hop is an IP literal (optionally
with a port); otherwise the scope keeps the peer's own address. Each case is checked on
an HTTP request and on a WebSocket handshake, with the exact `scope["client"]`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.rawclient import (
    UPGRADE_HEADERS,
    Reader,
    connect,
    read_frame,
    read_response,
)
from tests.procs import serve

APP = "tests.integration.apps:client_app"
PEER = "peer"  # stands for ["127.0.0.1", the client socket's own port]


@pytest.fixture(scope="module")
def default_server() -> Iterator[str]:
    """--forwarded-allow-ips at its default, 127.0.0.1: the test client is a trusted proxy."""
    with serve("wsrun", APP, args=["--no-access-log"]) as addr:
        yield addr


def ask(addr: str, headers: list[tuple[str, str]], websocket: bool) -> dict[str, object]:
    """The app's view of `client` and `scheme` for a request carrying `headers`.

    The peer's own address comes back as PEER.
    """
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    with connect(addr) as sock:
        peer = list(sock.getsockname())
        if websocket:
            sock.sendall(f"GET / HTTP/1.1\r\n{UPGRADE_HEADERS}{lines}\r\n".encode("latin-1"))
            reader = Reader(sock)
            assert read_response(reader)[0] == 101
            opcode, _, payload = read_frame(reader)
            assert opcode == 1
        else:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{lines}\r\n"
                         .encode("latin-1"))
            status, _, payload = read_response(Reader(sock))
            assert status == 200
    view = json.loads(payload)
    if view["client"] == peer:
        view["client"] = PEER
    return view


FORWARDED_FOR = [
    ("203.0.113.7", ["203.0.113.7", 0]),
    ("203.0.113.7:4321", ["203.0.113.7", 4321]),
    ("2001:db8::1", ["2001:db8::1", 0]),
    ("[2001:db8::1]:80", ["2001:db8::1", 80]),
    ("[2001:db8::1]", ["2001:db8::1", 0]),
    ("admin, 198.51.100.2", ["198.51.100.2", 0]),  # the right-most untrusted hop
    ("203.0.113.7, 127.0.0.1", ["203.0.113.7", 0]),  # a trusted proxy is skipped
    ("127.0.0.1", ["127.0.0.1", 0]),  # all trusted: the left-most
    ("admin", PEER),
    ("a" * 5000, PEER),
    ("<img src=x onerror=alert(1)>", PEER),
    ("1.2.3.4, admin", PEER),  # the client's own hop is not an address
    ("1.2.3.4, admin, 127.0.0.1", PEER),
    ("fe80::1%eth0", PEER),  # a zone id names no client
    ("fe80::1%<img>", PEER),
    ("203.0.113.7:99999", PEER),
    ("203.0.113.7:+80", PEER),
    ("[2001:db8::1]x", PEER),
    ("01.2.3.4", PEER),
    ("1.2.3", PEER),
    ("", PEER),
    (" , ", PEER),
]


@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
@pytest.mark.parametrize(("value", "client"), FORWARDED_FOR)
def test_forwarded_for_from_a_trusted_proxy_gives_an_ip_literal_or_the_peer(
    default_server: str, value: str, client: object, websocket: bool
) -> None:
    view = ask(default_server, [("X-Forwarded-For", value)], websocket)
    assert view["client"] == client


@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
def test_forwarded_for_header_lines_are_one_list(default_server: str, websocket: bool) -> None:
    headers = [("X-Forwarded-For", "admin"), ("X-Forwarded-For", "198.51.100.2")]
    assert ask(default_server, headers, websocket)["client"] == ["198.51.100.2", 0]
    headers = [("X-Forwarded-For", "198.51.100.2"), ("X-Forwarded-For", "admin")]
    assert ask(default_server, headers, websocket)["client"] == PEER


@pytest.mark.parametrize(
    ("value", "http", "ws"),
    [("https", "https", "wss"), ("wss", "https", "wss"), ("HTTPS", "https", "wss"),
     ("http", "http", "ws"), ("ws", "http", "ws"), ("http, https", "https", "wss"),
     ("https, http", "http", "ws"), ("javascript", "http", "ws"), ("ftp", "http", "ws"),
     ("https x", "http", "ws"), ("", "http", "ws"), ("x" * 5000, "http", "ws")],
)
def test_forwarded_proto_counts_only_as_http_https_ws_wss(
    default_server: str, value: str, http: str, ws: str
) -> None:
    headers = [("X-Forwarded-Proto", value)]
    assert ask(default_server, headers, False)["scheme"] == http
    assert ask(default_server, headers, True)["scheme"] == ws


def test_forwarded_proto_last_line_counts(default_server: str) -> None:
    headers = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "gopher")]
    assert ask(default_server, headers, False)["scheme"] == "http"
    headers = [("X-Forwarded-Proto", "gopher"), ("X-Forwarded-Proto", "https")]
    assert ask(default_server, headers, False)["scheme"] == "https"


@pytest.mark.parametrize(
    ("allow", "value", "client", "scheme"),
    [
        # The peer is no trusted proxy: both headers are ignored.
        ("10.0.0.1", "203.0.113.7", PEER, "http"),
        ("127.0.0.0/8", "203.0.113.7, 127.0.0.5", ["203.0.113.7", 0], "https"),  # networks
        ("127.0.0.1,::1", "203.0.113.7, 0:0::1", ["203.0.113.7", 0], "https"),  # IPv6 by value
        ("*", "203.0.113.7, 198.51.100.2", ["203.0.113.7", 0], "https"),  # all trusted
        ("*", "admin, 198.51.100.2", PEER, "https"),
    ],
)
def test_forwarded_allow_ips(allow: str, value: str, client: object, scheme: str) -> None:
    headers = [("X-Forwarded-For", value), ("X-Forwarded-Proto", "https")]
    with serve("wsrun", APP, args=["--no-access-log", "--forwarded-allow-ips", allow]) as addr:
        assert ask(addr, headers, False) == {"client": client, "scheme": scheme}
        ws_scheme = scheme.replace("http", "ws")
        assert ask(addr, headers, True) == {"client": client, "scheme": ws_scheme}
