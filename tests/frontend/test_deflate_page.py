"""Chromium negotiates permessage-deflate (RFC 7692) with wsrun, and the chat works over it.

The 101 response's headers are read through the DevTools protocol
(`Network.webSocketHandshakeResponseReceived`), which sees them as the browser got them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, expect

from tests.frontend.conftest import ChatPage, chat_server

EXPECTED = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def open_watched(new_context: Callable[..., BrowserContext], url: str,
                 handshakes: list[dict[str, Any]]) -> ChatPage:
    page = new_context().new_page()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on("Network.webSocketHandshakeResponseReceived",
           lambda event: handshakes.append(event["response"]))
    return ChatPage(page).open(url)


def test_chromium_chats_over_permessage_deflate(
    tmp_path: Path, new_context: Callable[..., BrowserContext]
) -> None:
    handshakes: list[dict[str, Any]] = []
    with chat_server(tmp_path) as url:
        alice = open_watched(new_context, url, handshakes).join("alice")
        bob = open_watched(new_context, url, handshakes).join("bob")
        long_text = "compressible chat text " * 40  # well over any threshold
        alice.say("hi bob")
        bob.say(long_text)
        expect(alice.confirmed_texts()).to_have_text(["hi bob", long_text.strip()])
        expect(bob.confirmed_texts()).to_have_text(["hi bob", long_text.strip()])
        assert alice.errors == [] and bob.errors == []
    assert len(handshakes) == 2
    for response in handshakes:
        assert response["status"] == 101
        headers = {name.lower(): value for name, value in response["headers"].items()}
        assert headers["sec-websocket-extensions"] == EXPECTED
