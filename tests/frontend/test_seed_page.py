"""The seed's own page still works against `wsrun app:chat --port 12345`, next to ours.

seed_client.html is a verbatim copy of the seed's client (../shared/seed/client.html in the
workspace, extracted from seed-python2-websocket-chat.txt; see that folder's README). It is
committed here because a fresh clone cannot rely on the workspace, and it must not be edited:
the point is that the page its users have keeps working unchanged. It hard-codes
ws://127.0.0.1:12345/, hence the fixed port, and is opened from a file:// URL (Origin: null).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, Dialog, expect

from tests.frontend.conftest import ChatPage, chat_server, shoot

SEED_PAGE = Path(__file__).with_name("seed_client.html")
SEED_PORT = 12345
CLOCK = r"\d\d:\d\d:\d\d"
IMG = "<img src=x onerror=alert(1)>"


def test_seed_page_chats_with_the_new_page(tmp_path: Path,
                                          new_context: Callable[..., BrowserContext],
                                          open_chat: Callable[..., ChatPage]) -> None:
    with chat_server(tmp_path, port=SEED_PORT) as url:
        seed = new_context().new_page()
        alerts: list[str] = []

        def on_dialog(dialog: Dialog) -> None:
            alerts.append(dialog.message)
            dialog.dismiss()

        seed.on("dialog", on_dialog)
        seed.goto(SEED_PAGE.as_uri())
        log = seed.locator("#log")
        # The seed's log is "<br>" + line per message, so its text is one line per entry.
        expect(log).to_have_text(re.compile(r"^\s*Connected\s*Welcome, 127\.0\.0\.1 !\s*$"))

        carol = open_chat(url).join("carol", "lobby")
        expect(log).to_contain_text("Welcome, carol !")
        expect(carol.members()).to_have_text(["127.0.0.1", "carol (you)"])

        # Seed -> chat.v1: the seed's line arrives as a message from its address.
        seed.locator("#msg").fill("hello from the seed")
        seed.locator("#msg").press("Enter")
        expect(log).to_contain_text(re.compile(rf"{CLOCK} 127\.0\.0\.1 say: hello from the seed"))
        expect(carol.confirmed_texts()).to_have_text(["hello from the seed"])
        expect(carol.log("lobby").locator("li.msg .nick")).to_have_text(["127.0.0.1"])

        # chat.v1 -> seed: carol's message in the seed's plain-text format.
        carol.say("hello, seed")
        expect(log).to_contain_text(re.compile(rf"{CLOCK} carol say: hello, seed"))
        # The seed's log is built with innerHTML: markup arrives escaped, shows as typed,
        # and runs nothing (no dialog below).
        carol.say(IMG)
        expect(log).to_contain_text(re.compile(rf"{CLOCK} carol say: {re.escape(IMG)}"))
        expect(log.locator("img")).to_have_count(0)
        lines = [line for line in log.inner_text().split("\n") if line]
        assert lines[:3] == ["Connected", "Welcome, 127.0.0.1 !", "Welcome, carol !"]
        assert [re.sub(CLOCK, "HH:MM:SS", line) for line in lines[3:]] == [
            "HH:MM:SS 127.0.0.1 say: hello from the seed",
            "HH:MM:SS carol say: hello, seed",
            f"HH:MM:SS carol say: {IMG}",
        ]
        shoot(seed, "seed-page")

        # Closing the seed's page sends `quit` from its onbeforeunload.
        seed.close(run_before_unload=True)
        expect(carol.confirmed_texts()).to_have_text(
            ["hello from the seed", "hello, seed", IMG, "127.0.0.1 Logout"])
        expect(carol.log("lobby").locator("li.msg .nick")).to_have_text(
            ["127.0.0.1", "carol", "carol", "127.0.0.1"])
        shoot(carol.page, "seed-logout")
        assert alerts == []
        assert carol.dialogs == [] and carol.errors == []
