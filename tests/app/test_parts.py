"""The app's parts on their own: settings from the environment, chat.v1 decoding, the
SQLite store (a real file), the Origin rule and the token bucket."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.asgi import host_allowed, origin_allowed, route_path
from app.config import Settings
from app.limits import AddressLimiter
from app.messages import BadRequest, HistoryRequest, Join, Say, StoredMessage, decode_request
from app.session import TokenBucket
from app.store import SCHEMA_VERSION, Store


def test_settings_defaults_and_env() -> None:
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env({"CHAT_DB": ":memory:", "CHAT_RATE": "5/2.5", "CHAT_MAX_ROOMS": "3",
                           "CHAT_QUEUE_LIMIT": "10", "CHAT_MAX_TEXT": "9",
                           "CHAT_HISTORY_LIMIT": "7",
                           "CHAT_ALLOWED_ORIGINS": "https://A.example/, null"})
    assert (s.db, s.rate_burst, s.rate_period, s.max_rooms, s.queue_limit, s.max_text,
            s.history_limit, s.allowed_origins) == (
        ":memory:", 5, 2.5, 3, 10, 9, 7, ("https://a.example", "null"))
    d = Settings()
    assert (d.address_rate, d.address_connect_rate, d.allowed_hosts, d.plain_escape_html) == (
        (100, 10.0), (60, 60.0), None, True)
    s = Settings.from_env({"CHAT_ADDRESS_RATE": "500/10", "CHAT_ADDRESS_CONNECT_RATE": "600",
                           "CHAT_ALLOWED_HOSTS": "Chat.Example., .example.org",
                           "CHAT_PLAIN_ESCAPE_HTML": "0"})
    assert (s.address_rate, s.address_connect_rate, s.allowed_hosts, s.plain_escape_html) == (
        (500, 10.0), (600, 1.0), ("chat.example", ".example.org"), False)


@pytest.mark.parametrize("env, message", [
    ({"CHAT_RATE": "fast"}, "CHAT_RATE='fast': expected MESSAGES/SECONDS, e.g. 20/10"),
    ({"CHAT_RATE": "0/10"}, "CHAT_RATE='0/10': both numbers must be positive"),
    ({"CHAT_MAX_ROOMS": "many"}, "CHAT_MAX_ROOMS='many': expected an integer"),
    ({"CHAT_QUEUE_LIMIT": "0"}, "CHAT_QUEUE_LIMIT='0': must be at least 1"),
    ({"CHAT_ADDRESS_RATE": "x/1"},
     "CHAT_ADDRESS_RATE='x/1': expected MESSAGES/SECONDS, e.g. 20/10"),
    ({"CHAT_ADDRESS_CONNECT_RATE": "60/0"},
     "CHAT_ADDRESS_CONNECT_RATE='60/0': both numbers must be positive"),
    ({"CHAT_PLAIN_ESCAPE_HTML": "maybe"}, "CHAT_PLAIN_ESCAPE_HTML='maybe': expected 1 or 0"),
])
def test_settings_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as error:
        Settings.from_env(env)
    assert str(error.value) == message


def test_decode_requests() -> None:
    assert decode_request('{"type":"join","room":"a.b-C_9","nick":"ünï 😀","since":0}') == Join(
        room="a.b-C_9", nick="ünï 😀", since=0)
    assert decode_request(b'{"type":"say","room":"r","text":"","ref":5,"extra":1}') == Say(
        room="r", text="", ref=5)
    assert decode_request('{"type":"history","room":"r"}') == HistoryRequest(room="r")
    with pytest.raises(BadRequest) as bad:
        decode_request('{"type":"say","room":"r","text":1,"ref":"k"}')
    assert (bad.value.message, bad.value.ref) == ("Expected `str`, got `int` - at `$.text`", "k")
    with pytest.raises(BadRequest) as bad:
        decode_request('{"type":"join","room":"r","nick":"' + "😀" * 33 + '"}')
    assert bad.value.message == "Expected `str` of length <= 32 - at `$.nick`"
    with pytest.raises(BadRequest) as bad:
        decode_request('{"type":"join","room":"r","nick":"a","since":true}')
    assert bad.value.ref is None


def test_plain_line_and_ack_encodings() -> None:
    m = StoredMessage(3, "lobby", "::1", "hi", "2024-01-02T03:04:05.678Z", "r")
    assert m.v1() == ('{"type":"message","id":3,"room":"lobby","nick":"::1","text":"hi",'
                      '"ts":"2024-01-02T03:04:05.678Z"}')
    assert m.ack() == m.v1()[:-1] + ',"ref":"r"}'
    assert m.plain().endswith(" ::1 say: hi") and len(m.plain()) == len("03:04:05 ::1 say: hi")


async def test_store_batches_prunes_and_migrates(tmp_path: Path) -> None:
    path = str(tmp_path / "h.db")
    store = Store(path, history_limit=3)
    assert await store.open() == 0
    batch = [StoredMessage(i, "a" if i % 2 else "b", "n", f"t{i}", "ts", i if i < 3 else None)
             for i in range(1, 10)]
    await store.append(batch)
    assert [m.id for m in await store.latest("a", 10)] == [5, 7, 9]
    assert [m.id for m in await store.before("a", 9, 1)] == [7]
    messages, truncated = await store.since("a", 0, 10)
    assert ([m.id for m in messages], truncated) == ([5, 7, 9], True)
    messages, truncated = await store.since("a", 4, 2)
    assert ([m.id for m in messages], truncated) == ([7, 9], True)
    messages, truncated = await store.since("a", 5, 2)
    assert ([m.id for m in messages], truncated) == ([7, 9], False)
    await store.close()

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    # Reopened: the last id survives even though pruning removed most rows.
    store = Store(path, history_limit=3)
    assert await store.open() == 9
    assert [(m.id, m.ref) for m in await store.latest("b", 10)] == [(4, None), (6, None),
                                                                     (8, None)]
    await store.close()


async def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    store = Store(str(path), 10)
    with pytest.raises(RuntimeError, match="newer than this app"):
        await store.open()
    await store.close()


@pytest.mark.parametrize("origin, host, allowed, expected", [
    (None, "x", None, True),
    ("null", "x", None, False),  # chat.v1; plain-text clients: test_null_origin_rule
    ("http://localhost:5173", "chat.example", None, True),
    ("https://127.0.0.1", "chat.example", None, True),
    ("http://[::1]:8000", "chat.example", None, True),
    ("https://chat.example:8443", "chat.example:8443", None, True),
    ("https://chat.example", "chat.example:8443", None, False),
    ("http://evil.example", "chat.example", None, False),
    ("http://localhost.evil.example", "chat.example", None, False),
    ("http://evil.example", "evil.example", ("https://chat.example",), False),
    ("https://CHAT.example", "x", ("https://chat.example",), True),
    ("http://evil.example", "x", ("*",), True),
    ("null", "x", ("https://chat.example",), False),
])
def test_origin_rule(origin: str | None, host: str, allowed: tuple[str, ...] | None,
                     expected: bool) -> None:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    assert origin_allowed({"headers": headers}, allowed) is expected


def test_null_origin_rule() -> None:
    null = {"headers": [(b"host", b"x"), (b"origin", b"null")]}
    assert origin_allowed(null, None, v1=False) is True
    assert origin_allowed(null, None, v1=True) is False
    assert origin_allowed(null, ("null",), v1=True) is True
    assert origin_allowed(null, ("https://chat.example",), v1=False) is False


@pytest.mark.parametrize("host, allowed, expected", [
    ("evil.example", None, True),
    (None, None, True),
    ("chat.example", ("chat.example",), True),
    ("CHAT.example:8000", ("chat.example",), True),
    ("chat.example.", ("chat.example",), True),
    ("evil.example", ("chat.example",), False),
    ("chat.example.evil.example", ("chat.example",), False),
    (None, ("chat.example",), False),
    ("", ("chat.example",), False),
    ("a.chat.example", (".chat.example",), True),
    ("chat.example", (".chat.example",), True),
    ("evilchat.example", (".chat.example",), False),
    ("a.chat.example", ("*.chat.example",), True),
    ("chat.example", ("*.chat.example",), False),
    ("[::1]:8000", ("[::1]",), True),
    ("[::1", ("[::1]",), False),
    ("127.0.0.1:8000", ("localhost", "127.0.0.1"), True),
    ("anything", ("*",), True),
])
def test_host_rule(host: str | None, allowed: tuple[str, ...] | None, expected: bool) -> None:
    headers = [] if host is None else [(b"host", host.encode())]
    assert host_allowed({"headers": headers}, allowed) is expected


def test_address_limiter_counts_per_address_and_stays_bounded() -> None:
    now = [100.0]
    limiter = AddressLimiter(2, 10.0, max_addresses=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [True, True, False]
    assert limiter.take("b") is True  # another address has its own bucket
    assert limiter.retry_after("a") == 5  # one token per 5 s
    now[0] += 5.0
    assert [limiter.take("a") for _ in range(2)] == [True, False]
    for n in range(100):
        limiter.take(f"10.0.0.{n}")
    assert len(limiter) == 3  # the least recently used buckets were dropped
    assert limiter.take("a") is True  # dropped: a full bucket again


@pytest.mark.parametrize("path, root, expected", [
    ("/ws", "", "/ws"), ("/chat/ws", "/chat", "/ws"), ("/chat", "/chat", "/"),
    ("/chatter/ws", "/chat", "/chatter/ws"), ("", "", "/"),
])
def test_route_path(path: str, root: str, expected: str) -> None:
    assert route_path({"path": path, "root_path": root}) == expected


def test_token_bucket_burst() -> None:
    bucket = TokenBucket(3, 3600.0)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
