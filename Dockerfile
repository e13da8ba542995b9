# syntax=docker/dockerfile:1
#
# wsrun + the chat (`app:chat`) as a container image.
#
#   docker build -t wsrun-chat .
#   docker run --rm -p 8000:8000 -v chat-data:/data wsrun-chat
#
# Two stages: `build` turns the source into wheels (ours and every dependency's), the
# runtime stage installs those wheels offline into a clean slim image, so no compiler,
# build backend, source tree or pip cache ends up in what ships.
# Deployment notes (proxies, timeouts, TLS): docs/deployment.md.

# ---------------------------------------------------------------------------------------
# build: the wsrun wheel plus the wheels of its dependencies, in /wheels
# ---------------------------------------------------------------------------------------
FROM python:3.11-slim-trixie AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# Only what the wheel is built from (pyproject's `packages = ["server", "app", "frontend"]`
# and `readme`); .dockerignore keeps caches and local files out of these directories.
COPY pyproject.toml README.md ./
COPY server/ server/
COPY app/ app/
COPY frontend/ frontend/

# `pip wheel` builds in an isolated environment with the build backend pyproject pins,
# and also fetches the dependencies' wheels (uvloop and msgspec ship manylinux wheels,
# so nothing is compiled).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------
# runtime: python:3.11-slim + the installed wheels, run as an unprivileged user
# ---------------------------------------------------------------------------------------
FROM python:3.11-slim-trixie AS runtime

LABEL org.opencontainers.image.title="wsrun-chat" \
      org.opencontainers.image.description="wsrun (WebSocket + HTTP/1.1 ASGI server) serving the app:chat real-time chat" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed numeric UID/GID, so Kubernetes' runAsNonRoot can verify it and a host
# directory mounted on /data can be chowned to match (`chown 10001:10001`).
# --no-log-init: a high UID would otherwise grow /var/log/faillog to gigabytes.
RUN groupadd --system --gid 10001 chat \
 && useradd --system --no-log-init --uid 10001 --gid chat \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin chat \
 && mkdir -p /data \
 && chown chat:chat /data

# The wheels are bind-mounted from the build stage, not copied: they never become a layer.
# --no-index: install exactly the wheels built above, nothing from the network.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/wsrun-*.whl

# History lives on the volume; everything else in the image is read-only to `chat`.
ENV CHAT_DB=/data/chat.db
VOLUME ["/data"]

# An empty, root-owned working directory: wsrun puts its --app-dir (default ".") first on
# sys.path, and nothing there may shadow the installed `app` package.
WORKDIR /srv/wsrun

USER 10001:10001

EXPOSE 8000

# /healthz answers 200 JSON while the server runs. Python, not curl: the slim image has
# no curl. urlopen raises on a refused connection or a 4xx/5xx, which exits non-zero.
# HEALTHCHECK_URL overrides the address when the command is changed to another port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:8000/healthz'); sys.exit(urllib.request.urlopen(url, timeout=4).status != 200)"]

# Exec form: wsrun is PID 1 and gets `docker stop`'s SIGTERM itself, and shuts down
# gracefully (WebSockets closed with 1001, exit 0) within --timeout-graceful-shutdown
# (5 s), inside docker stop's default 10 s grace period.
STOPSIGNAL SIGTERM
CMD ["wsrun", "app:chat", "--host", "0.0.0.0", "--port", "8000"]
