"""The Redis backend's own faults, in-process on a real redis-server (AOF on): Redis going
away answers `unavailable` (never a silent drop), and the chat carries on when it is back."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import AuthenticationError

from app import ChatApp
from app.config import Settings
from app.session import ERROR_MESSAGES
from tests.app.conftest import InProcess, Peer
from tests.redisproc import RedisServer


async def say_until_stored(peer: Peer, room: str, text: str, ref: str) -> dict[str, Any]:
    """Resend (same ref) while the answer is `unavailable`: the client's retry loop."""
    async with asyncio.timeout(20):
        while True:
            await peer.send_json({"type": "say", "room": room, "text": text, "ref": ref})
            reply = await peer.recv_json()
            if reply["type"] == "message":
                return reply
            assert (reply["code"], reply["ref"]) == ("unavailable", ref), reply
            await asyncio.sleep(0.1)


async def test_redis_down_answers_unavailable_and_the_chat_recovers(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    target = InProcess(Settings(db=str(tmp_path / "unused.db"), redis_url=redis.url,
                                rate_burst=1000))
    await target.start()
    try:
        alice, bob = await target.connect(), await target.connect()
        await alice.join("ops", "alice")
        await bob.join("ops", "bob")
        assert (await alice.recv_json())["event"] == "join"
        first = await say_until_stored(alice, "ops", "before", "b")
        assert (await bob.recv_json())["id"] == first["id"]

        redis.kill()
        await alice.send_json({"type": "say", "room": "ops", "text": "during", "ref": "d"})
        assert await alice.recv_json() == {
            "type": "error", "code": "unavailable",
            "message": "chat storage unavailable, message not stored, try again", "ref": "d"}
        await alice.send_json({"type": "history", "room": "ops", "ref": 1})
        assert await alice.recv_json() == {
            "type": "error", "code": "unavailable", "message": ERROR_MESSAGES["unavailable"],
            "ref": 1}
        carol = await target.connect()
        await carol.send_json({"type": "join", "room": "ops", "nick": "carol", "ref": 2})
        assert await carol.recv_json() == {
            "type": "error", "code": "unavailable", "message": ERROR_MESSAGES["unavailable"],
            "ref": 2}
        plain = await target.connect(v1=False)  # its join into lobby cannot be stored
        assert await plain.recv() == "error: unavailable"
        closed = await plain.expect_close()
        assert (closed.code, closed.reason) == (1013, "try again later")
        assert (await target.get("/healthz")).json()["status"] == "ok"  # nothing crashed

        redis.start()  # same port, same directory: the AOF comes back
        second = await say_until_stored(alice, "ops", "during", "d")
        assert second["id"] == first["id"] + 1
        # bob gets it exactly once, right after the first: nothing lost, nothing twice.
        assert await bob.recv_json() == {k: v for k, v in second.items() if k != "ref"}
        await carol.join("ops", "carol")
        assert (await alice.recv_json())["nick"] == "carol"
        assert (await bob.recv_json())["nick"] == "carol"
        assert [m["text"] for m in (await carol.join("other", "carol"))["history"]] == []
        await bob.send_json({"type": "history", "room": "ops"})
        assert [m["text"] for m in (await bob.recv_json())["messages"]] == ["before", "during"]
    finally:
        await target.stop()
        redis.stop()


def test_redis_settings() -> None:
    s = Settings.from_env({"CHAT_REDIS_URL": "rediss://:s3cret@cache.example:6380/2",
                           "CHAT_PRESENCE_TTL": "2.5"})
    assert (s.redis_url, s.presence_ttl) == ("rediss://:s3cret@cache.example:6380/2", 2.5)
    assert "s3cret" not in repr(s)
    assert Settings.from_env({}).redis_url is None
    with pytest.raises(ValueError) as error:
        Settings.from_env({"CHAT_REDIS_URL": "http://:s3cret@cache.example"})
    assert str(error.value) == "CHAT_REDIS_URL: expected a redis://, rediss:// or unix:// URL"
    with pytest.raises(ValueError) as error:
        Settings.from_env({"CHAT_PRESENCE_TTL": "0.5"})
    assert str(error.value) == "CHAT_PRESENCE_TTL='0.5': must be at least 1"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (openssl, as `make test` installs)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


@pytest.mark.parametrize("tls", [False, True], ids=["redis", "rediss"])
async def test_password_and_tls_in_the_url(tmp_path: Path, tls: bool,
                                           certificate: tuple[Path, Path]) -> None:
    redis = RedisServer(tmp_path / "redis", password="s3cret/:@",
                        tls=certificate if tls else None).start()
    try:
        url = redis.url.replace("s3cret/:@", urllib.parse.quote("s3cret/:@", safe=""))
        target = InProcess(Settings(db=":memory:", redis_url=url))
        await target.start()
        try:
            peer = await target.connect()
            await peer.join("secure", "me")
            await peer.send_json({"type": "say", "room": "secure", "text": "hi", "ref": 1})
            assert (await peer.recv_json())["text"] == "hi"
        finally:
            await target.stop()
        # A wrong password stops start-up (it would not get better by retrying).
        app = ChatApp(Settings(db=":memory:", redis_url=url.replace("s3cret", "wrong")))
        with pytest.raises(AuthenticationError):
            await app.startup()
    finally:
        redis.stop()
