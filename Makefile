# Two commands set up a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
HOST   ?= 127.0.0.1
PORT   ?= 8000
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test conformance install install-test system-deps bench soak lint clean
SOAK_MINUTES ?= 5
BENCH_ARGS ?=

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(PIP) install -q -e . --config-settings editable_mode=compat
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test system-deps

## make run: install and serve the chat on http://$(HOST):$(PORT)
run: install
	$(BIN)/wsrun app:chat --host $(HOST) --port $(PORT)

## system packages the tests drive for real: Debian's chromium (Playwright cannot fetch its
## own), openssl (a throwaway certificate for the TLS tests) and redis-server (the chat's
## Redis backend, started by the tests on a free port)
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

## make test: install test extras and system packages, then run the whole suite
test: install-test
	$(BIN)/python -m pytest

## make conformance: Autobahn sections 12 and 13 (permessage-deflate), CONFORMANCE_RUNS runs
## in a row (minutes of CPU each, so not in `make test`; CI runs both, 12/13 once)
CONFORMANCE_RUNS ?= 3
conformance: install-test
	WSRUN_CONFORMANCE_RUNS=$(CONFORMANCE_RUNS) $(BIN)/python -m pytest -m conformance tests/integration/test_autobahn.py

## make soak: wsrun app:chat under mixed hostile load for SOAK_MINUTES; fails on a lost or
## duplicated message, RSS not back near its baseline, a leaked fd or a server traceback
soak: install-test
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

## make bench: every scenario on every server, 5 interleaved rounds (docs/benchmarks.md);
## BENCH_ARGS adds options, e.g. BENCH_ARGS="--servers wsrun,wsrun@main~5,uvicorn-sansio"
bench: install-test
	$(PIP) install -q -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install-test
	$(PIP) install -q -e '.[dev]'
	$(BIN)/python -m ruff check server app tests bench
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache
