from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.procs import serve


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    """wsrun serving the echo app; yields "127.0.0.1:PORT"."""
    with serve("wsrun", "tests.integration.apps:echo", args=["--no-access-log"]) as addr:
        yield addr
