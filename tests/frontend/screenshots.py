"""README's screenshots, taken from the real page: `python -m tests.frontend.screenshots`.

Starts `wsrun app:chat` on a throwaway SQLite file (yesterday's history written first),
lets three people chat in Debian's chromium, and writes docs/screenshot.png (desktop,
1280x800) and docs/screenshot-phone.png (390x844, the phone layout).
tests/frontend/test_screenshots.py runs the same scenes into a temporary directory, so the
script keeps working.
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, expect, sync_playwright

from tests.frontend.conftest import CHROMIUM_ARGS, ChatPage, chat_server, seed_history
from tests.procs import ROOT

DESKTOP = {"viewport": {"width": 1280, "height": 800}, "timezone_id": "UTC", "locale": "en-US"}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2, "timezone_id": "UTC", "locale": "en-US"}


def seed(db: Path) -> None:
    """Yesterday's conversation in #general."""
    day = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).replace(
        hour=16, minute=2, second=0, microsecond=0)
    minute = datetime.timedelta(minutes=1)
    seed_history(db, "general", [
        ("carol", "Release notes are up: https://example.com/releases/2.0", day),
        ("carol", "Shout if anything looks off.", day + minute),
        ("bob", "Looks good to me, thanks!", day + 4 * minute),
    ])


def take(browser: Browser, url: str, out: Path) -> tuple[Path, Path]:
    """Play the scenes against the chat at `url`; returns the desktop and phone PNG paths."""
    out.mkdir(parents=True, exist_ok=True)
    pages: list[ChatPage] = []

    def person(nick: str, rooms: list[str], options: dict[str, object]) -> ChatPage:
        page = ChatPage(browser.new_context(**options).new_page())  # type: ignore[arg-type]
        page.open(url).join(nick, rooms[0])
        for room in rooms[1:]:
            page.add_room(room)
        if len(rooms) > 1:
            page.switch_to(rooms[0])
        pages.append(page)
        return page

    try:
        alice = person("alice", ["general", "design", "release"], DESKTOP)
        bob = person("bob", ["general", "release"], DESKTOP)
        carol = person("carol", ["general"], DESKTOP)
        bob.say("Morning! Did the 2.0 build pass?")
        bob.say("@alice could you check the phone layout?")
        carol.say("It did, all green.")
        bob.switch_to("release")
        bob.say("Tagging 2.0 now")  # an unread badge on alice's #release tab
        expect(alice.room_button("release").locator(".badge")).to_have_text("1")
        carol.input.press_sequentially("On it")  # "carol is typing…"
        expect(alice.page.locator("#typing")).to_have_text("carol is typing…")
        desktop = out / "screenshot.png"
        alice.page.screenshot(path=str(desktop))

        # alice's phone: the same person (her client key), so her nick is hers there too.
        key = alice.page.evaluate("localStorage.getItem('chat.key')")
        storage = {"cookies": [], "origins": [{"origin": url.rstrip("/"),
                                               "localStorage": [{"name": "chat.key",
                                                                 "value": key}]}]}
        phone = person("alice", ["general", "design", "release", "support", "random"],
                       {**PHONE, "storage_state": storage})
        expect(phone.confirmed_texts("general")).to_have_count(6)
        mobile = out / "screenshot-phone.png"
        phone.page.screenshot(path=str(mobile))
        return desktop, mobile
    finally:
        for page in pages:
            with contextlib.suppress(Exception):
                page.page.context.close()


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        seed(Path(tmp) / "chat.db")
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                             headless=True, args=CHROMIUM_ARGS)
        with chat_server(Path(tmp)) as url:
            for path in take(browser, url, out):
                print(path)
        browser.close()


if __name__ == "__main__":
    main()
