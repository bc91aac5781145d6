# whisper_streaming: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= localhost
PORT ?= 9090

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

# The stock WhisperLive client, for the compatibility test: whisper-live without its pinned
# dependencies, plus what its client module imports. PyAudio compiles against PortAudio.
$(VENV)/.installed-compat: $(VENV)/.installed-dev
	@if ! [ -e /usr/include/portaudio.h ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq portaudio19-dev) >/dev/null; \
	  else echo "warning: portaudio19-dev is missing (apt-get install portaudio19-dev); the stock-client test will not run"; fi; \
	fi
	$(BIN)/python -m pip install -q websocket-client scipy av pyaudio || echo "warning: PyAudio did not install"
	$(BIN)/python -m pip install -q --no-deps whisper-live==0.10.0
	touch $@

run: $(VENV)/.installed
	$(BIN)/whisper-streaming serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check whisper_streaming tests bench examples *.py
	$(BIN)/ruff format --check whisper_streaming tests bench examples *.py
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/unit -q

e2e: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/e2e -q

test: lint $(VENV)/.installed-compat
	$(BIN)/python -m pytest -q

# Defaults finish in under 10 minutes on 2 CPU cores; see bench/README.md for the options.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
