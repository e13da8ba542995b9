"""Accessibility of the page's main states, checked by axe-core in Chromium.

axe-core comes with the PyPI package axe-playwright-python (its `axe.min.js`, injected into
the page). Each state must have no violation of impact "serious" or "critical"; the
violations found are listed in the failure message, one line each with the nodes' selectors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.frontend.conftest import ChatPage, chat_server
from tests.frontend.test_page_access import PHONE

BLOCKING = ("serious", "critical")


def violations(page: Page) -> list[str]:
    """axe's serious and critical violations on `page`, as "rule (impact): selectors"."""
    results: dict[str, Any] = Axe().run(page).response
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results["violations"] if v["impact"] in BLOCKING
    ]


def chat_with_content(open_chat: Callable[..., ChatPage], url: str,
                      **options: object) -> ChatPage:
    """A chat view showing every kind of line: messages, own, grouped, link, mention, notice."""
    bob = open_chat(url).join("bob", "general")
    alice = open_chat(url, **options).join("alice", "general")
    alice.add_room("dev")
    alice.switch_to("general")
    bob.say("hi @alice, see https://example.com/docs")
    bob.say("second line in the same group")
    alice.say("thanks bob")
    bob.add_room("dev")  # waits until dev is bob's current room
    bob.say("over in dev")  # an unread badge on alice's dev tab
    expect(alice.confirmed_texts("general")).to_have_count(3)
    expect(alice.room_button("dev").locator(".badge")).to_have_text("1")
    return alice


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_join_form_has_no_serious_violation(tmp_path: Path, open_chat: Callable[..., ChatPage],
                                            scheme: str) -> None:
    with chat_server(tmp_path) as url:
        page = open_chat(url, color_scheme=scheme).page
        expect(page.get_by_label("Nick")).to_be_focused()
        assert violations(page) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chat_view_has_no_serious_violation(tmp_path: Path, open_chat: Callable[..., ChatPage],
                                            scheme: str) -> None:
    with chat_server(tmp_path) as url:
        alice = chat_with_content(open_chat, url, color_scheme=scheme)
        alice.page.locator("details.shortcuts summary").click()  # the help, opened
        assert violations(alice.page) == []


def test_phone_view_has_no_serious_violation(tmp_path: Path,
                                             open_chat: Callable[..., ChatPage]) -> None:
    with chat_server(tmp_path) as url:
        alice = chat_with_content(open_chat, url, **PHONE)
        assert violations(alice.page) == []
        alice.page.locator("#members-box summary").click()  # the folded member list, opened
        expect(alice.members()).to_have_text(["alice (you)", "bob"])
        assert violations(alice.page) == []
