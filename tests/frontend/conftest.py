"""Fixtures for the page's tests in a real browser: Debian's chromium driven by Playwright.

The page runs against a real `wsrun app:chat` process on a free loopback port (uvicorn
only while server/cli.py does not exist yet), so these tests check the page, the app and the
server together, the way a user meets them. Nothing is mocked; the browser only ever talks to
127.0.0.1. Screenshots of the main states go to tests/artifacts/screenshots/ on each run.

The sync Playwright API is used from plain (non-async) tests: it runs its own event loop and
refuses to run inside one, which pytest-asyncio never starts for a sync test. Playwright and
the browser are module-scoped so that loop is gone before other directories' async tests run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from app.messages import StoredMessage
from app.store import Store
from tests.procs import LOOPBACK_CHAT_LIMITS, ROOT, serve

SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"

# Issue 4: "The tests start a real `wsrun app:chat`". The fallback is only for the time
# before server/cli.py landed; it switches over by itself.
SERVER = "wsrun" if importlib.util.find_spec("server.cli") is not None else "uvicorn"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Waits that span a server restart and a reconnect backoff; everything else uses
# Playwright's default 5 s. These bound the test, they are not asserted timings.
SLOW = 20_000


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                         args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """A factory of fresh browser contexts (separate cookies, storage and sockets)."""
    contexts: list[BrowserContext] = []

    def make(**kwargs: object) -> BrowserContext:
        context = browser.new_context(**kwargs)  # type: ignore[arg-type]  # options vary
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


@contextlib.contextmanager
def chat_server(tmp_path: Path, *, env: dict[str, str] | None = None,
                port: int | None = None, app: str = "app:chat") -> Iterator[str]:
    """Serve `app` with its history in tmp_path/chat.db; yields "http://127.0.0.1:PORT/"."""
    full_env = {"CHAT_DB": str(tmp_path / "chat.db"), **LOOPBACK_CHAT_LIMITS, **(env or {})}
    with serve(SERVER, app, env=full_env, port=port) as address:
        yield f"http://{address}/"


def seed_history(db: Path, room: str, rows: list[tuple[str, str, datetime.datetime]]) -> None:
    """Write `rows` (nick, text, time) as the history of `room` (ids 1..n) into the SQLite
    file `db` with the app's own Store, before a server opens it: past days, real data."""

    def iso(moment: datetime.datetime) -> str:
        utc = moment.astimezone(datetime.UTC).replace(tzinfo=None)
        return utc.isoformat(timespec="milliseconds") + "Z"

    async def write() -> None:
        store = Store(str(db), 10_000)
        await store.open()
        await store.append([StoredMessage(n, room, nick, text, iso(ts), None)
                            for n, (nick, text, ts) in enumerate(rows, start=1)])
        await store.close()

    # Playwright's sync API keeps an event loop running in this thread: use another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, write()).result()


def shoot(page: Page, name: str) -> Path:
    """Save a screenshot of the page as tests/artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


class ChatPage:
    """One person at the chat page: the controls a user reaches, by their labels."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str) -> ChatPage:
        self.page.goto(url)
        expect(self.status).to_have_text("Connected", timeout=SLOW)
        return self

    def join(self, nick: str, room: str = "lobby") -> ChatPage:
        self.page.get_by_label("Nick").fill(nick)
        self.page.get_by_label("Room", exact=True).fill(room)
        self.page.get_by_role("button", name="Join", exact=True).click()
        self.expect_active(room)
        return self

    def expect_active(self, room: str) -> None:
        """Wait until `room` is joined and shown (its tab current, its log visible)."""
        expect(self.room_button(room)).to_have_attribute("aria-current", "true")
        expect(self.log(room)).to_be_visible()

    def add_room(self, room: str) -> None:
        self.page.get_by_label("Join another room").fill(room)
        self.page.get_by_role("button", name="Join room").click()
        self.expect_active(room)

    def switch_to(self, room: str) -> None:
        self.room_button(room).click()
        self.expect_active(room)

    def room_button(self, room: str) -> Locator:
        return self.page.locator(f".room-list li[data-room='{room}'] .room-button")

    @property
    def status(self) -> Locator:
        return self.page.get_by_role("status")

    @property
    def input(self) -> Locator:
        return self.page.get_by_role("textbox", name="Message")

    @property
    def say_error(self) -> Locator:
        return self.page.locator("#say-error")

    def say(self, text: str) -> None:
        """Type `text` and press Enter, as a user does."""
        self.input.fill(text)
        self.input.press("Enter")

    def log(self, room: str) -> Locator:
        return self.page.locator(f".log[data-room='{room}']")

    def texts(self, room: str = "lobby") -> Locator:
        """Texts of the messages in the log, oldest first (pending ones last)."""
        return self.log(room).locator("li.msg .text")

    def confirmed_texts(self, room: str = "lobby") -> Locator:
        return self.log(room).locator("li.msg.confirmed .text")

    def members(self) -> Locator:
        return self.page.locator("#member-list li")


@pytest.fixture
def open_chat(new_context: Callable[..., BrowserContext]) -> Callable[..., ChatPage]:
    """`open_chat(url, **context_options)` -> a ChatPage in its own browser context."""

    def make(url: str, **options: object) -> ChatPage:
        context = new_context(**options)
        return ChatPage(context.new_page()).open(url)

    return make
