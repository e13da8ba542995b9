"""Access lines of a real wsrun process, exactly: what the peer chose cannot forge a line.

Every access line, HTTP or WebSocket, text or JSON, shows the request target as received
(percent-encoded, with its query) with non-printables escaped; WebSocket handshakes that
are refused (by the server's check, by the app closing before accept, by the app's denial
response) get a line too. Requests go over raw sockets, one after the other, so each
line's client port is known.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import close_payload
from tests.integration.rawclient import (
    Reader,
    client_frame,
    connect,
    read_close,
    read_response,
    recv_until_closed,
)
from tests.integration.test_observability import BEHAVIOURS, wsrun

CLOSE = 8
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
FORGED = "/x%0d%0aCRITICAL%20forged%20line"


def upgrade_head(target: str, version: str = "13", extra: str = "") -> bytes:
    return (f"GET {target} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            f"Sec-WebSocket-Version: {version}\r\n{extra}\r\n").encode()


def websocket_session(addr: str, target: str, extra: str = "") -> int:
    """Open, let the app close (the default path accepts, sends, returns), answer the close."""
    with connect(addr) as sock:
        port = sock.getsockname()[1]
        sock.sendall(upgrade_head(target, extra=extra))
        reader = Reader(sock)
        assert read_response(reader)[0] == 101
        assert read_close(reader)[0] == 1000
        sock.sendall(client_frame(CLOSE, close_payload(1000)))
        assert recv_until_closed(sock) == b""
    return int(port)


def refused(addr: str, head: bytes) -> tuple[int, int]:
    """Send `head`; return (client port, response status) once the server closed."""
    with connect(addr) as sock:
        port = sock.getsockname()[1]
        sock.sendall(head)
        status = read_response(Reader(sock))[0]
        recv_until_closed(sock)
    return int(port), status


def traffic(addr: str) -> list[tuple[str, str, dict[str, object]]]:
    """Run the requests; return the (client, line text after the client, JSON fields) expected."""
    c = "127.0.0.1:%d"
    expected: list[tuple[str, str, dict[str, object]]] = []
    port = websocket_session(addr, FORGED + "?q=%0a1")
    target = FORGED + "?q=%0a1"
    expected.append((c % port, f'"WebSocket {target}" [accepted]',
                     {"path": target, "status": 101}))
    expected.append((c % port, f'"WebSocket {target}" closed 1000',
                     {"path": target, "close_code": 1000}))
    port = websocket_session(addr, "/ok", "X-Forwarded-For: 203.0.113.9\r\n")
    expected.append(("203.0.113.9:0", '"WebSocket /ok" [accepted]', {"path": "/ok", "status": 101}))
    expected.append(("203.0.113.9:0", '"WebSocket /ok" closed 1000',
                     {"path": "/ok", "close_code": 1000}))
    port, status = refused(addr, f"GET {FORGED}?a=%0d HTTP/1.1\r\nHost: a\r\n"
                                 f"Connection: close\r\n\r\n".encode())
    assert status == 200
    expected.append((c % port, f'"GET {FORGED}?a=%0d HTTP/1.1" 200',
                     {"path": f"{FORGED}?a=%0d", "status": 200, "method": "GET"}))
    # The app raises before starting its response: our 500 is logged with the request line.
    port, status = refused(addr, b"GET /crash?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 500
    expected.append((c % port, '"GET /crash?x=1 HTTP/1.1" 500',
                     {"path": "/crash?x=1", "status": 500, "method": "GET"}))
    cases = [
        (upgrade_head("/reject?a=1"), 403, "/reject?a=1"),  # the app closes before accept
        (upgrade_head("/deny"), 401, "/deny"),  # the app's denial response
        (upgrade_head("/crash-before-accept"), 500, "/crash-before-accept"),
        (upgrade_head(FORGED, version="8"), 426, FORGED),  # the server's handshake check
        (upgrade_head("/nokey").replace(f"Sec-WebSocket-Key: {KEY}\r\n".encode(), b""),
         400, "/nokey"),
    ]
    for head, status, target in cases:
        port, got = refused(addr, head)
        assert got == status
        expected.append((c % port, f'"WebSocket {target}" {status}',
                         {"path": target, "status": status}))
    return expected


def test_text_access_lines_are_exact_and_escaped(tmp_path: Path) -> None:
    with wsrun(tmp_path, BEHAVIOURS, metrics=False) as server:
        expected = traffic(server.addr)
        lines = server.stop()
    access = [line for line in lines if " - \"" in line]
    assert sorted(access) == sorted(f"INFO      {client} - {rest}" for client, rest, _ in expected)
    assert not any(line.startswith("CRITICAL") for line in lines)


def test_json_access_lines_are_exact_and_escaped(tmp_path: Path) -> None:
    with wsrun(tmp_path, BEHAVIOURS, ["--log-format", "json"], metrics=False) as server:
        expected = traffic(server.addr)
        lines = server.stop()
    records = [json.loads(line) for line in lines]
    access = {r["message"]: r for r in records if r["logger"] == "wsrun.access"}
    assert len(access) == len(expected) == len([r for r in records
                                                if r["logger"] == "wsrun.access"])
    for client, rest, fields in expected:
        record = access[f"{client} - {rest}"]
        assert record["level"] == "INFO" and record["client"] == client
        assert {name: record[name] for name in fields} == fields
