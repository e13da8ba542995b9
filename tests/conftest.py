"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.redisproc import RedisServer


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh redis-server (AOF on, appendfsync always) for one test, stopped after it."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Callable[[str], RedisServer]]:
    """`shared_redis(name)`: one redis-server per name for a whole module, so each target
    of a parametrized module has a chat of its own (tests use rooms of their own)."""
    servers: dict[str, RedisServer] = {}

    def get(name: str) -> RedisServer:
        if name not in servers:
            servers[name] = RedisServer(tmp_path_factory.mktemp("redis")).start()
        return servers[name]

    try:
        yield get
    finally:
        for server in servers.values():
            server.stop()
