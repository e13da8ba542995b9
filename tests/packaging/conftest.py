"""Fixtures of the packaging tests: one wheel install per session, shared by the modules."""

from __future__ import annotations

import pytest

from tests.packaging.installed import Install, make_install, same_versions


@pytest.fixture(scope="session")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """The wheel, built from the Docker build context, installed in a fresh venv."""
    return make_install(tmp_path_factory.mktemp("wheel-install"))


@pytest.fixture(scope="session")
def install_with_hosts(install: Install) -> Install:
    """The same venv plus Starlette and the reference servers, as an embedding site has.

    uvicorn needs a WebSocket library of its own (websockets); hypercorn brings wsproto.
    """
    install.pip_install(*same_versions("starlette", "uvicorn", "hypercorn", "websockets"))
    return install
