"""Where and how the page is reached: under a root_path, on a phone, by keyboard alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, expect

from tests.frontend.conftest import ChatPage, chat_server, shoot

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}


def test_page_works_mounted_under_a_root_path(tmp_path: Path,
                                              new_context: Callable[..., BrowserContext]) -> None:
    with chat_server(tmp_path, app="tests.frontend.mounted:app") as url:
        page = new_context().new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        alice = ChatPage(page).open(url + "chat/").join("alice", "lobby")
        alice.say("under /chat")
        expect(alice.confirmed_texts()).to_have_text(["under /chat"])
        # The socket is found next to the page, inside the prefix.
        assert sockets == [url.replace("http://", "ws://") + "chat/ws"]
        assert alice.errors == []


def test_phone_sized_screen_and_keyboard_only(tmp_path: Path,
                                             open_chat: Callable[..., ChatPage]) -> None:
    with chat_server(tmp_path) as url:
        bob = open_chat(url).join("bob", "lobby")
        alice = open_chat(url, **PHONE)
        page = alice.page
        # Keyboard only: the nick field has focus, Tab reaches the room, Enter joins.
        expect(page.get_by_label("Nick")).to_be_focused()
        page.keyboard.type("alice")
        page.keyboard.press("Tab")
        expect(page.get_by_label("Room", exact=True)).to_be_focused()
        page.keyboard.press("Enter")
        alice.expect_active("lobby")
        # After joining, typing goes straight into the message box; Enter sends.
        expect(alice.input).to_be_focused()
        page.keyboard.type("from my phone")
        page.keyboard.press("Enter")
        expect(bob.confirmed_texts()).to_have_text(["from my phone"])
        # Shift+Enter is a new line, not a send.
        page.keyboard.type("two")
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("lines")
        expect(alice.input).to_have_value("two\nlines")
        page.keyboard.press("Enter")
        expect(bob.confirmed_texts()).to_have_text(["from my phone", "two\nlines"])

        # Everything needed fits the phone's width; the member list starts folded.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        for control in (alice.input, page.get_by_role("button", name="Send"),
                        alice.room_button("lobby"), alice.status):
            expect(control).to_be_in_viewport()
        expect(page.locator("#members-box")).not_to_have_attribute("open", "")
        expect(alice.confirmed_texts()).to_have_text(["from my phone", "two\nlines"])
        shoot(page, "phone")
        assert alice.errors == []


def test_socket_url_and_length_rules_of_the_client_module(
        tmp_path: Path, open_chat: Callable[..., ChatPage]) -> None:
    """client.js's pure helpers, run in the browser: the wss/root_path URL and code points."""
    with chat_server(tmp_path) as url:
        page = open_chat(url).page
        result = page.evaluate(r"""async () => {
            const m = await import("./client.js");
            return {
                https: m.socketUrl("https://chat.example/main.js"),
                prefixed: m.socketUrl("https://chat.example/team/chat/main.js?v=1#x"),
                plain: m.socketUrl("http://127.0.0.1:8000/main.js"),
                emoji: m.textLength("\u{1F600}".repeat(4000)),
                emojiOk: m.checkText("\u{1F600}".repeat(4000)),
                tooLong: m.checkText("a".repeat(4001)),
                blank: m.checkText(" \n\t "),
            };
        }""")
        assert result == {
            "https": "wss://chat.example/ws",
            "prefixed": "wss://chat.example/team/chat/ws",
            "plain": "ws://127.0.0.1:8000/ws",
            "emoji": 4000,  # code points, as the server counts, not UTF-16 units (8000)
            "emojiOk": None,
            "tooLong": "too_long",
            "blank": "empty",
        }

