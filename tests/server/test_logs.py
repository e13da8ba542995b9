"""Access-line labels: what a peer chose is escaped before it reaches a log line."""

from __future__ import annotations

import pytest

from server.logs import client_label, printable, target_label


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("/plain?q=1", "/plain?q=1"), ("/x\r\nCRITICAL forged", "/x\\x0d\\x0aCRITICAL forged"),
     ("a\u202eb", "a\\u202eb"), ("\x00\x1b\x7f\x85\xa0", "\\x00\\x1b\\x7f\\x85\\xa0"),
     ("tag\U000e0001", "tag\\U000e0001"), ("café ☕ \\x0d", "café ☕ \\x0d"), ("", "")],
)
def test_printable_escapes_what_could_break_or_hide_a_line(text: str, escaped: str) -> None:
    assert printable(text) == escaped


def test_labels() -> None:
    assert client_label(("127.0.0.1", 5000)) == "127.0.0.1:5000"
    assert client_label(("::1", 0)) == "::1:0"
    assert client_label(None) == "-"
    assert client_label(("a\nb", 1)) == "a\\x0ab:1"
    assert target_label(b"/x%0d%0a?q=1") == "/x%0d%0a?q=1"
    assert target_label(b"/a\x85") == "/a\\x85"
