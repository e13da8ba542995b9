"""README's screenshots come from the real page: the script's scenes, run here."""

from __future__ import annotations

import struct
from pathlib import Path

from playwright.sync_api import Browser

from tests.frontend.conftest import chat_server
from tests.frontend.screenshots import seed, take


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_readme_screenshots_are_taken_from_the_page(tmp_path: Path, browser: Browser) -> None:
    seed(tmp_path / "chat.db")
    with chat_server(tmp_path) as url:
        desktop, phone = take(browser, url, tmp_path / "shots")
    assert png_size(desktop) == (1280, 800)
    assert png_size(phone) == (780, 1688)  # 390x844 at device scale 2
