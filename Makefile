# flowhook: the two commands of the README, and their parts.
# uv is pinned and run as `python3 -m uv`, so a fresh machine needs nothing but python3 and make; `make test`
# installs and starts the services its tests use (scripts/test-services.sh).
# Bytecode is compiled at install (--compile-bytecode) whatever PYTHONDONTWRITEBYTECODE says: without it every
# new flow-run process compiles ~1,360 modules again.
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(PYTHON) -m uv

.PHONY: setup services demo up test lint bench

setup:
	@$(PYTHON) -m uv --version 2>/dev/null | grep -q "$(UV_VERSION)" || $(PYTHON) -m pip install -q "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet --compile-bytecode

## Start the local stack, send a demo load, wait until it is stored, report; Ctrl-C stops everything.
demo: setup
	$(UV) run flowhook demo

## The stack alone (no demo load), until Ctrl-C.
up: setup
	$(UV) run flowhook up

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

## What the tests need beyond python3 and make (PostgreSQL, Redis, Chromium): installed from Debian's
## packages where missing, started where down (scripts/test-services.sh; installing needs root or sudo).
services:
	@bash scripts/test-services.sh

## Lint, type-check, every test: unit and end-to-end against a real Prefect server, the end-to-end
## benchmark's quick mode among them (tests/e2e: nothing lost or doubled; speed is `make bench`'s).
test: services lint
	$(UV) run pytest

## The end-to-end benchmark (bench/pipeline.py, ~20 min), then the gateway alone (bench/gateway_ingest.py).
bench: setup
	$(UV) run python bench/pipeline.py
	$(UV) run python bench/gateway_ingest.py
