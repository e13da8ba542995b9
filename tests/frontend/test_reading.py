"""Reading the log in a real browser: links, grouping, days, unseen messages, mentions.

History older than today is written to the SQLite file with the app's own Store before the
server starts, so day separators and time gaps are real data, not a clock trick. Contexts
run in UTC so the expected day labels are computed here the same way.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, expect

from tests.frontend.conftest import ChatPage, chat_server, seed_history, shoot

OpenChat = Callable[..., ChatPage]
UTC = {"timezone_id": "UTC", "locale": "en-US"}


def test_links_are_clickable_only_for_http_and_https(tmp_path: Path,
                                                     open_chat: OpenChat) -> None:
    text = ("docs at https://example.com/a?b=1&c=<2>, see (http://x.test/path). "
            "not javascript:alert(1) nor ftp://files.test/x nor "
            "<a href='javascript:alert(3)'>y</a>")
    with chat_server(tmp_path) as url:
        alice = open_chat(url, **UTC).join("alice", "lobby")
        bob = open_chat(url).join("bob", "lobby")
        bob.say(text)
        message = alice.log("lobby").locator("li.msg .text")
        expect(message).to_have_text([text])  # the text itself is unchanged
        links = message.locator("a")
        expect(links).to_have_text(["https://example.com/a?b=1&c=", "http://x.test/path"])
        assert links.evaluate_all("as => as.map(a => a.getAttribute('href'))") == [
            "https://example.com/a?b=1&c=", "http://x.test/path"]
        for n in range(2):
            expect(links.nth(n)).to_have_attribute("rel", "noopener noreferrer")
            expect(links.nth(n)).to_have_attribute("target", "_blank")
        # The markup stayed text: exactly two anchors in the page's logs, none javascript:.
        expect(alice.page.locator(".log a")).to_have_count(2)
        expect(alice.page.locator("a[href^='javascript']")).to_have_count(0)
        # A click opens a new tab that cannot reach back to the chat (noopener).
        with alice.page.context.expect_page() as opened:
            links.nth(1).click()
        assert opened.value.evaluate("window.opener") is None
        assert alice.errors == [] and alice.dialogs == []


def test_grouped_by_author_within_minutes_with_day_separators(
        tmp_path: Path, open_chat: OpenChat) -> None:
    now = datetime.datetime.now(datetime.UTC)
    three_days = (now - datetime.timedelta(days=3)).replace(hour=10, minute=0, second=0)
    yesterday = (now - datetime.timedelta(days=1)).replace(hour=22, minute=0, second=0)
    minute = datetime.timedelta(minutes=1)
    seed_history(tmp_path / "chat.db", "general", [
        ("bob", "old 1", three_days),
        ("bob", "old 2", three_days + 2 * minute),       # same group
        ("bob", "old 3", three_days + 9 * minute),       # more than 5 minutes later: new group
        ("carol", "old 4", three_days + 9.5 * minute),   # another author
        ("carol", "old 5", three_days + 10 * minute),    # same group
        ("carol", "late 1", yesterday),                  # a new day breaks the group
        ("carol", "late 2", yesterday + minute),
    ])
    with chat_server(tmp_path) as url:
        alice = open_chat(url, **UTC).join("alice", "general")
        bob = open_chat(url, **UTC).join("bob", "general")
        bob.say("today 1")
        bob.say("today 2")
        expect(alice.confirmed_texts("general")).to_have_count(9)
        rows = alice.log("general").locator("li.msg").evaluate_all("""items => items.map(li => [
            li.querySelector('.text').textContent,
            li.classList.contains('continued'),
            li.querySelector(':scope > .day')?.textContent ?? null])""")
        day3 = f"{three_days:%A}, {three_days:%B} {three_days.day}, {three_days.year}"
        assert rows == [
            ["old 1", False, day3],
            ["old 2", True, None],
            ["old 3", False, None],
            ["old 4", False, None],
            ["old 5", True, None],
            ["late 1", False, "Yesterday"],
            ["late 2", True, None],
            ["today 1", False, "Today"],
            ["today 2", True, None],
        ]
        # A continued message hides its header (still there for screen readers).
        header = alice.log("general").locator("li.msg.continued .meta").first
        box = header.bounding_box()
        assert box is not None and box["height"] <= 1
        # Every time carries its full date on hover.
        expect(alice.log("general").locator("li.msg time").first).to_have_attribute(
            "title", f"{three_days:%b} {three_days.day}, {three_days.year}, 10:00:00 AM")
        shoot(alice.page, "grouped-days")


def test_new_messages_divider_and_jump_to_latest(tmp_path: Path, open_chat: OpenChat) -> None:
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    seed_history(tmp_path / "chat.db", "general", [
        ("carol", f"history {n}", start + datetime.timedelta(minutes=n)) for n in range(50)])
    with chat_server(tmp_path) as url:
        alice = open_chat(url, **UTC).join("alice", "general")
        bob = open_chat(url).join("bob", "general")
        log = alice.log("general")
        jump = log.get_by_role("button", name="jump to latest")
        expect(jump).to_be_hidden()  # at the end: nothing to jump to
        log.evaluate("el => { el.scrollTop = 200; }")
        expect(jump).to_have_text("Jump to latest")  # scrolled up: a way back
        top = log.evaluate("el => el.scrollTop")

        bob.say("fresh 1")
        bob.say("fresh 2")
        expect(jump).to_have_text("2 new messages: jump to latest")
        # The divider sits right above the first unseen message; the reader was not moved.
        divider = log.locator("li.unread-divider")
        expect(divider).to_have_text("New messages")
        assert divider.evaluate("d => d.nextElementSibling.querySelector('.text').textContent") \
            == "fresh 1"
        assert log.evaluate("el => el.scrollTop") == top
        shoot(alice.page, "new-messages")

        jump.click()
        expect(jump).to_be_hidden()
        assert log.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight") < 48
        expect(alice.input).to_be_focused()
        # Seen at the end: the next message needs no divider (the old one stays put).
        bob.say("fresh 3")
        expect(alice.confirmed_texts("general").last).to_have_text("fresh 3")
        expect(divider).to_have_count(1)
        expect(jump).to_be_hidden()
        # Sending our own message clears the divider.
        alice.say("caught up")
        expect(divider).to_have_count(0)


def test_unread_counts_in_the_tab_title(tmp_path: Path, open_chat: OpenChat) -> None:
    with chat_server(tmp_path) as url:
        alice = open_chat(url).join("alice", "lobby")
        alice.add_room("dev")
        expect(alice.page).to_have_title("#dev · wsrun chat")
        bob = open_chat(url).join("bob", "lobby")
        bob.say("one")
        bob.say("two")
        expect(alice.page).to_have_title("(2) #dev · wsrun chat")
        expect(alice.room_button("lobby")).to_have_accessible_name("#lobby, 2 unread")
        bob.add_room("dev")
        bob.say("in dev")  # in the room alice looks at: not unread
        expect(alice.confirmed_texts("dev")).to_have_text(["in dev"])
        expect(alice.page).to_have_title("(2) #dev · wsrun chat")
        alice.switch_to("lobby")
        expect(alice.page).to_have_title("#lobby · wsrun chat")
        expect(alice.room_button("lobby")).to_have_accessible_name("#lobby")


# Test-side stand-ins for what a headless browser cannot do by itself: hide the tab
# (document.hidden) and show a desktop notification (each one is recorded instead).
HIDE_AND_RECORD = """
(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState",
    { get: () => (hidden ? "hidden" : "visible") });
  window.setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
  window.shown = [];
  class Recorded extends EventTarget {
    constructor(title, options = {}) {
      super();
      window.shown.push({ title, body: options.body, tag: options.tag });
    }
    close() {}
    static get permission() { return "granted"; }
    static requestPermission() { return Promise.resolve("granted"); }
  }
  window.Notification = Recorded;
})();
"""


def test_mentions_highlighted_and_notified_when_hidden_after_opt_in(
        tmp_path: Path, open_chat: OpenChat,
        new_context: Callable[..., BrowserContext]) -> None:
    with chat_server(tmp_path) as url:
        page = new_context().new_page()
        page.add_init_script(HIDE_AND_RECORD)
        alice = ChatPage(page).open(url).join("alice", "lobby")
        bob = open_chat(url).join("bob", "lobby")

        bob.say("hello @alice!")
        bob.say("mail alice@example.com or @alicexyz")  # not mentions
        mentioned = alice.log("lobby").locator("li.msg.mention")
        expect(alice.confirmed_texts()).to_have_count(2)
        expect(mentioned.locator(".text")).to_have_text(["hello @alice!"])
        expect(mentioned.locator("mark.mention")).to_have_text(["@alice"])

        # Hidden, but not opted in: no notification.
        page.evaluate("setHidden(true)")
        bob.say("@alice are you there?")
        expect(mentioned).to_have_count(2)
        assert page.evaluate("shown") == []
        page.evaluate("setHidden(false)")
        expect(page).to_have_title("#lobby · wsrun chat")

        toggle = page.get_by_role("button", name="Mention alerts: off")
        toggle.click()
        expect(page.get_by_role("button", name="Mention alerts: on")).to_have_attribute(
            "aria-pressed", "true")
        bob.say("visible tab, @alice")  # the tab is in view: no notification
        expect(mentioned).to_have_count(3)
        page.evaluate("setHidden(true)")
        bob.say("@ALICE ping")
        bob.say("no mention here")
        expect(alice.confirmed_texts().last).to_have_text("no mention here")
        assert page.evaluate("shown") == [
            {"title": "bob in #lobby", "body": "@ALICE ping", "tag": "chat-lobby"}]
        # Messages that came while the tab was hidden are counted in its title.
        expect(page).to_have_title("(2) #lobby · wsrun chat")
        page.evaluate("setHidden(false)")
        expect(page).to_have_title("#lobby · wsrun chat")
        assert alice.errors == []
