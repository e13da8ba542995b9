"""What others do, live, in a real browser: typing, the room directory, a second tab."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, expect

from tests.frontend.conftest import ChatPage, chat_server

OpenChat = Callable[..., ChatPage]


def test_typing_indicator_shows_and_expires(tmp_path: Path, open_chat: OpenChat) -> None:
    with chat_server(tmp_path) as url:
        alice = open_chat(url).join("alice", "general")
        bob = open_chat(url).join("bob", "general")
        typing = alice.page.locator("#typing")
        bob.input.press_sequentially("hel")
        expect(typing).to_have_text("bob is typing…")
        expect(bob.page.locator("#typing")).to_have_text("")  # not about yourself
        # The message ends it at once.
        bob.input.press_sequentially("lo")
        bob.input.press("Enter")
        expect(alice.confirmed_texts("general")).to_have_text(["hello"])
        expect(typing).to_have_text("")
        # Without a message it expires by itself (shown 6 s; waited for up to 15 s).
        bob.input.press_sequentially("x")
        expect(typing).to_have_text("bob is typing…")
        expect(typing).to_have_text("", timeout=15_000)
        # Only for the room it is about.
        alice.add_room("other")
        bob.input.press_sequentially("y")
        expect(alice.page.locator("#typing")).to_have_text("")
        alice.switch_to("general")
        assert alice.errors == [] and bob.errors == []


def test_room_box_suggests_the_rooms_that_exist(tmp_path: Path, open_chat: OpenChat) -> None:
    with chat_server(tmp_path) as url:
        bob = open_chat(url).join("bob", "design")
        open_chat(url).join("carol", "design")
        bob.say("history makes a room")
        bob.page.get_by_role("button", name="Leave design").click()
        dave = open_chat(url).join("dave", "support")
        dave.page.get_by_label("Join another room").focus()
        options = dave.page.locator("#room-suggestions option")
        # Rooms dave is not in, with their member counts; "support" is his already.
        expect(options).to_have_count(1)
        expect(options).to_have_attribute("value", "design")
        expect(options).to_have_text("1 member")


def test_a_second_tab_is_the_same_person(tmp_path: Path, open_chat: OpenChat,
                                         new_context: Callable[..., BrowserContext]) -> None:
    with chat_server(tmp_path) as url:
        bob = open_chat(url).join("bob", "general")
        context = new_context()
        first = ChatPage(context.new_page()).open(url).join("alice", "general")
        # The second tab shares localStorage: it opens in the same room, same nick and key.
        second = ChatPage(context.new_page()).open(url)
        second.expect_active("general")
        expect(second.members()).to_have_text(["alice (you)", "bob"])
        expect(bob.members()).to_have_text(["alice", "bob (you)"])
        second.say("from the second tab")
        expect(first.confirmed_texts("general")).to_have_text(["from the second tab"])
        expect(bob.confirmed_texts("general")).to_have_text(["from the second tab"])
        # One "alice joined" for bob, however many tabs.
        presence = bob.log("general").locator("li.presence .notice-text")
        expect(presence).to_have_text(["alice joined"])
        second.page.close()
        first.say("tab one still here")
        expect(bob.confirmed_texts("general")).to_have_text(
            ["from the second tab", "tab one still here"])
        expect(presence).to_have_text(["alice joined"])
        expect(bob.members()).to_have_text(["alice", "bob (you)"])
        first.page.close()
        expect(presence).to_have_text(["alice joined", "alice left"])
