"""docker-compose.yml and its nginx config, read as Compose and nginx would (no engine
here): the services reference each other correctly and the settings match the docs."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings
from tests.packaging.dockerfile import parse

ROOT = Path(__file__).resolve().parent.parent.parent
APPS = ("chat1", "chat2")


def interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` with VAR unset (what a bare `docker compose up` uses)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_services_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", *APPS, "proxy"}
    assert set(compose["volumes"]) == {"redis-data"}
    assert services["redis"]["volumes"] == ["redis-data:/data"]
    for name in APPS:
        assert services[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert "healthcheck" in services["redis"]
        assert "ports" not in services[name]  # reached through the proxy only
    assert services["proxy"]["depends_on"] == list(APPS)


def test_apps_reach_redis_with_its_password_and_durable_settings(
        compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = [interpolate(str(c)) for c in redis["command"]]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] in ("always", "everysec")
    password = options["--requirepass"]
    assert interpolate(redis["environment"]["REDISCLI_AUTH"]) == password  # health check
    for name in APPS:
        env = {k: interpolate(str(v)) for k, v in compose["services"][name]["environment"].items()}
        settings = Settings.from_env(env)  # valid for the app itself
        url = urllib.parse.urlsplit(settings.redis_url or "")
        assert (url.scheme, url.hostname, url.port, url.password) == (
            "redis", "redis", 6379, password)
        assert settings.presence_ttl == 15.0


def test_apps_are_the_image_and_listen_where_the_proxy_sends(compose: dict[str, Any]) -> None:
    dockerfile = parse((ROOT / "Dockerfile").read_text())
    exposed = {i.args for i in dockerfile if i.keyword == "EXPOSE"}
    assert exposed == {"8000"}
    for name in APPS:
        service = compose["services"][name]
        assert service["build"] == "." and (ROOT / "Dockerfile").is_file()
        assert service["expose"] == ["8000"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.search(r"upstream chat \{(.*?)\}", nginx, re.S)
    assert upstream is not None
    assert re.findall(r"^\s*server (\S+);", upstream.group(1), re.M) == [
        f"{name}:8000" for name in APPS]
    assert "proxy_pass http://chat;" in nginx
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    listen = re.search(r"^\s*listen (\d+);", nginx, re.M)
    assert listen is not None
    proxy = compose["services"]["proxy"]
    assert [p.split(":")[-1] for p in proxy["ports"]] == [listen.group(1)]
    source, target, mode = proxy["volumes"][0].split(":")
    assert (ROOT / source).resolve() == ROOT / "deploy" / "nginx.conf"
    assert (target, mode) == ("/etc/nginx/conf.d/default.conf", "ro")
