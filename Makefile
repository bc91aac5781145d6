# whisper_streaming: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= localhost
PORT ?= 9090
SAMPLE ?= ../shared/testdata/jfk/jfk.flac

.PHONY: run test lint unit e2e bench clean help

help:
	@echo "make run    set up .venv and start the server on the embedded tiny.en model"
	@echo "make test   set up .venv with the dev extras and run lint, types and all tests"
	@echo "make bench  run the benchmark (see bench/README.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	@echo "The server lands with issue #3; until then 'make run' streams $(SAMPLE) through the engine (simulate)."
	$(BIN)/whisper-streaming simulate $(SAMPLE)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check whisper_streaming tests
	$(BIN)/ruff format --check whisper_streaming tests
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/unit -q

e2e: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/e2e -q

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
