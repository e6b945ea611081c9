# Two commands a newcomer needs: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint unit services bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make demo: run the main job on the embedded SQLite default (no server needed)
demo: $(STAMP)
	$(BIN)/crm demo

## make test: lint, dependency rule, and the whole suite against real PostgreSQL and NATS
test: $(STAMP) services lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## unit tests only: no server needed
unit: $(STAMP)
	$(BIN)/pytest tests/unit

services:
	bash .ci/services

bench: $(STAMP) services
	for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis .ruff_cache
