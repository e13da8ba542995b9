"""Rooms in a real browser: kept across reloads, on a phone, by keyboard, while offline."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import expect

from tests.frontend.conftest import SLOW, ChatPage, chat_server, shoot
from tests.frontend.test_page_access import PHONE
from tests.procs import free_port

OpenChat = Callable[..., ChatPage]


def tab_names(person: ChatPage) -> list[str]:
    names: list[str] = person.page.locator(".room-list li").evaluate_all(
        "items => items.map(li => li.dataset.room)")
    return names


def test_reload_in_the_middle_of_a_conversation_rejoins_every_room(
        tmp_path: Path, open_chat: OpenChat) -> None:
    with chat_server(tmp_path) as url:
        alice = open_chat(url).join("alice", "lobby")
        alice.add_room("dev")
        alice.add_room("ops")
        bob = open_chat(url).join("bob", "dev")
        alice.switch_to("dev")
        alice.say("are you there?")
        bob.say("yes, here")
        expect(alice.confirmed_texts("dev")).to_have_text(["are you there?", "yes, here"])

        alice.page.reload()
        # No join form: the same rooms in the same order, dev open with its recent history.
        expect(alice.page.locator("#join-view")).to_be_hidden()
        alice.expect_active("dev")
        assert tab_names(alice) == ["lobby", "dev", "ops"]
        expect(alice.page.locator("#room-title")).to_have_text("#dev")
        expect(alice.confirmed_texts("dev")).to_have_text(["are you there?", "yes, here"])
        expect(alice.log("dev").locator("li.msg.own .text")).to_have_text(["are you there?"])
        expect(alice.input).to_be_focused()
        for room in ("lobby", "ops"):
            expect(alice.room_button(room)).to_have_attribute("aria-current", "false")
        expect(alice.status).to_have_text("Connected")

        # The conversation goes on; nothing is shown twice on either side.
        alice.say("back after a reload")
        bob.say("welcome back")
        everything = ["are you there?", "yes, here", "back after a reload", "welcome back"]
        expect(bob.confirmed_texts("dev")).to_have_text(everything)
        expect(alice.confirmed_texts("dev")).to_have_text(everything)
        expect(alice.members()).to_have_text(["alice (you)", "bob"])
        alice.switch_to("ops")

        # Leaving every room forgets them: the next load shows the form, nick filled in.
        for room in ("ops", "dev", "lobby"):
            alice.page.get_by_role("button", name=f"Leave {room}").click()
        expect(alice.page.locator("#join-view")).to_be_visible()
        alice.page.reload()
        expect(alice.page.get_by_label("Nick")).to_have_value("alice")
        expect(alice.page.locator("#join-view")).to_be_visible()
        expect(alice.page.get_by_label("Room", exact=True)).to_be_focused()
        assert alice.errors == [] and bob.errors == []


def test_phone_layout_keeps_the_current_room_and_every_control_in_view(
        tmp_path: Path, open_chat: OpenChat) -> None:
    rooms = ["lobby", "engineering", "design-review", "support-tickets", "random-chatter"]
    with chat_server(tmp_path) as url:
        alice = open_chat(url, **PHONE).join("alice", rooms[0])
        page = alice.page
        title = page.locator("#room-title")
        add_input = page.get_by_label("Join another room")
        add_button = page.get_by_role("button", name="Join room")

        def check(room: str) -> None:
            expect(title).to_have_text(f"#{room}")
            expect(title).to_be_in_viewport(ratio=1)
            expect(alice.room_button(room)).to_be_in_viewport(ratio=1)
            for control in (add_input, add_button, alice.input,
                            page.get_by_role("button", name="Send"), alice.status):
                expect(control).to_be_in_viewport(ratio=1)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

        check(rooms[0])
        for room in rooms[1:]:
            alice.add_room(room)
            check(room)
        shoot(page, "phone-five-rooms")
        # The tab bar scrolls sideways: the first tab is out of sight now, and comes back
        # into view when it becomes the current room again.
        expect(alice.room_button(rooms[0])).not_to_be_in_viewport()
        page.keyboard.press("Alt+ArrowDown")  # wraps around to the first room
        alice.expect_active(rooms[0])
        check(rooms[0])
        alice.switch_to("support-tickets")
        check("support-tickets")
        alice.say("from the phone")
        expect(alice.confirmed_texts("support-tickets")).to_have_text(["from the phone"])
        assert alice.errors == []


def test_keyboard_shortcuts_switch_rooms_and_focus_follows(tmp_path: Path,
                                                          open_chat: OpenChat) -> None:
    with chat_server(tmp_path) as url:
        alice = open_chat(url).join("alice", "a")
        alice.add_room("b")
        alice.add_room("c")
        page = alice.page
        # The shortcuts are written in the page and announced on the controls.
        help_box = page.locator("details.shortcuts")
        help_box.locator("summary").click()
        expect(help_box).to_contain_text("previous / next room")
        expect(help_box).to_contain_text("join or switch to a room by name")
        expect(alice.room_button("a")).to_have_attribute(
            "aria-keyshortcuts", "Alt+ArrowUp Alt+ArrowDown")
        expect(page.get_by_label("Join another room")).to_have_attribute(
            "aria-keyshortcuts", "Control+K")

        alice.input.focus()
        page.keyboard.press("Alt+ArrowUp")
        alice.expect_active("b")
        expect(alice.input).to_be_focused()
        page.keyboard.press("Alt+ArrowUp")
        alice.expect_active("a")
        page.keyboard.press("Alt+ArrowUp")  # wraps
        alice.expect_active("c")
        page.keyboard.press("Alt+ArrowDown")
        alice.expect_active("a")
        expect(page).to_have_title("#a · wsrun chat")

        # Ctrl+K: the room box; a room already open is switched to, a new one joined.
        page.keyboard.press("Control+k")
        expect(page.get_by_label("Join another room")).to_be_focused()
        page.keyboard.type("c")
        page.keyboard.press("Enter")
        alice.expect_active("c")
        expect(alice.input).to_be_focused()
        page.keyboard.press("Control+k")
        page.keyboard.type("d")
        page.keyboard.press("Enter")
        alice.expect_active("d")
        expect(alice.input).to_be_focused()
        # Escape in the room box goes back to the message box.
        page.keyboard.press("Control+k")
        page.keyboard.type("zzz")
        page.keyboard.press("Escape")
        expect(alice.input).to_be_focused()
        expect(page.get_by_label("Join another room")).to_have_value("")
        # A bad room name keeps the focus in the room box, with the error.
        page.keyboard.press("Control+k")
        page.keyboard.type("no spaces")
        page.keyboard.press("Enter")
        expect(page.locator("#add-room-error")).to_have_text(
            "Use 1-64 letters, digits, '_', '.' or '-'.")
        expect(page.get_by_label("Join another room")).to_be_focused()

        # Leaving the current room: the neighbouring tab opens, the caret in its message box.
        alice.switch_to("b")
        page.get_by_role("button", name="Leave b").click()
        alice.expect_active("c")
        expect(alice.input).to_be_focused()
        assert tab_names(alice) == ["a", "c", "d"]
        # Leaving the last tab: its left neighbour.
        alice.switch_to("d")
        page.get_by_role("button", name="Leave d").click()
        alice.expect_active("c")
        expect(alice.input).to_be_focused()
        assert alice.errors == []


def test_offline_member_list_is_greyed_and_presence_is_not_repeated_after_reconnect(
        tmp_path: Path, open_chat: OpenChat) -> None:
    port = free_port()
    with chat_server(tmp_path, port=port) as url:
        alice = open_chat(url).join("alice", "general")
        bob = open_chat(url).join("bob", "general")
        presence = alice.log("general").locator("li.presence .notice-text")
        expect(presence).to_have_text(["bob joined"])
        box = alice.page.locator("#members-box")
        expect(box).not_to_have_class(re.compile("offline"))
        expect(alice.page.locator("#members-offline")).to_be_hidden()
        live_color = alice.members().first.evaluate("li => getComputedStyle(li).color")

    expect(alice.status).to_contain_text("reconnecting", timeout=SLOW)
    expect(box).to_have_class(re.compile("offline"))
    expect(alice.page.locator("#members-offline")).to_have_text(
        "Offline: this list may be out of date.")
    muted = alice.page.evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--muted')")
    greyed = alice.members().first.evaluate("li => getComputedStyle(li).color")
    assert greyed != live_color
    assert greyed == alice.page.evaluate(
        "c => { const p = document.createElement('p'); p.style.color = c; document.body.append(p);"
        " const v = getComputedStyle(p).color; p.remove(); return v; }", muted.strip())
    shoot(alice.page, "offline-members")
    # bob stays away until alice is back, so alice surely sees bob rejoin.
    bob.page.context.set_offline(True)

    with chat_server(tmp_path, port=port):
        expect(alice.status).to_have_text("Connected", timeout=SLOW)
        expect(alice.log("general").locator("li.notice .notice-text").last).to_have_text(
            "Reconnected to #general.", timeout=SLOW)
        expect(box).not_to_have_class(re.compile("offline"))
        expect(alice.page.locator("#members-offline")).to_be_hidden()
        bob.page.context.set_offline(False)
        expect(bob.status).to_have_text("Connected", timeout=SLOW)
        expect(alice.members()).to_have_text(["alice (you)", "bob"], timeout=SLOW)
        bob.say("I am back")
        expect(alice.confirmed_texts("general")).to_have_text(["I am back"])
        # bob was there before the restart: his rejoin is not news.
        expect(presence).to_have_text(["bob joined"])
        # A real departure after the reconnect is still shown.
        bob.page.get_by_role("button", name="Leave general").click()
        expect(presence).to_have_text(["bob joined", "bob left"])
        assert alice.errors == [] and bob.errors == []
