# whisper_streaming: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= localhost
PORT ?= 9090

.PHONY: run test test-whisperx lint unit e2e stress bench bench-compare clean help

help:
	@echo "make run    set up .venv and start the server on the embedded tiny.en model"
	@echo "make test   set up .venv with the dev extras and run lint, types and all tests"
	@echo "make test-whisperx  the WhisperX backend's tests in its own environment (PyTorch, CPU)"
	@echo "make stress the fault tests at full size (5,000 fuzzed frames per protocol, ...)"
	@echo "make bench  run the benchmark (see bench/README.md)"
	@echo "make bench-compare  this server and WhisperLive side by side (about 50 minutes)"

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

# System packages the tests need: PortAudio headers (PyAudio, for the stock WhisperLive client),
# Debian's chromium (the browser test) and nginx (the scale-out test). Installed with apt when
# running as root (CI).
SYSTEM_PACKAGES := portaudio19-dev chromium nginx
$(VENV)/.system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	  else echo "warning: missing system packages:$$missing (apt-get install them)"; fi; \
	fi
	@mkdir -p $(VENV) && touch $@

# The stock WhisperLive client, for the compatibility test: whisper-live without its pinned
# dependencies, plus what its client module imports.
$(VENV)/.installed-compat: $(VENV)/.installed-dev $(VENV)/.system-deps
	$(BIN)/python -m pip install -q websocket-client scipy av pyaudio || echo "warning: PyAudio did not install"
	$(BIN)/python -m pip install -q --no-deps whisper-live==0.10.0
	# Resemblyzer's speaker-encoder weights (in its wheel); its code and PyTorch are not needed.
	$(BIN)/python -m pip install -q --no-deps resemblyzer==0.1.4
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
	$(BIN)/python -m pytest -q --durations=10

# The fault tests at full size (make test runs quick versions of the same tests).
stress: $(VENV)/.installed-dev
	WHISPER_STREAMING_FUZZ_FRAMES=5000 WHISPER_STREAMING_LONG_STREAM_S=3600 \
	  $(BIN)/python -m pytest -q tests/integration/test_fuzz.py \
	  "tests/integration/test_server.py::test_a_long_stream_sent_as_fast_as_taken_is_complete_with_bounded_memory" \
	  "tests/integration/test_server.py::test_a_client_that_never_reads_stays_bounded_and_others_keep_their_pace" \
	  "tests/integration/test_server.py::test_a_hundred_abrupt_disconnects_leak_nothing" \
	  tests/integration/test_json_protocol.py tests/unit/test_protocol_input.py

# Defaults finish in under 10 minutes on 2 CPU cores; see bench/README.md for the options.
bench: $(VENV)/.installed-dev $(VENV)/.installed-compat
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.diarization

# WhisperLive 0.10.0 in its own environment, for `make bench-compare`: its server imports torch
# (the CPU build), and its wheel pins versions ours does not need. Only what its server imports
# is installed (not PyAudio, OpenVINO or the CUDA libraries its metadata lists).
WL_VENV := .venv-whisperlive
$(WL_VENV)/.installed:
	$(PYTHON) -m venv $(WL_VENV)
	$(WL_VENV)/bin/python -m pip install -q torch==2.13.0 faster-whisper==1.2.0 \
	  tokenizers==0.20.3 requests onnxruntime websockets fastapi uvicorn
	$(WL_VENV)/bin/python -m pip install -q --no-deps whisper-live==0.10.0
	$(WL_VENV)/bin/python -c "from whisper_live.server import TranscriptionServer"
	touch $@

bench-compare: $(VENV)/.installed-dev $(WL_VENV)/.installed
	$(BIN)/python -m bench.compare $(BENCH_ARGS)

# The WhisperX backend's environment: whisperx (its bundled pyannote VAD model needs
# pyannote.audio) on PyTorch's CPU build. whisperx pins torch~=2.8 and pyannote.audio wants
# torchaudio, whose PyPI builds link CUDA: they are installed without their pins, and
# torchaudio's compiled extensions (CUDA-linked, unused: whisperx gets the audio as an array)
# are removed so it imports as the Python package. On a machine with CUDA, install
# 'whisper-streaming[whisperx]' as usual instead.
WX_VENV := .venv-whisperx
WX_PIP := $(WX_VENV)/bin/python -m pip install -q -c tests/e2e/whisperx-constraints.txt
$(WX_VENV)/.installed: pyproject.toml tests/e2e/whisperx-constraints.txt
	$(PYTHON) -m venv $(WX_VENV)
	$(WX_VENV)/bin/python -m pip install -q --upgrade pip
	$(WX_VENV)/bin/python -m pip install -q torch==2.13.0
	$(WX_VENV)/bin/python -m pip install -q --no-deps torchaudio==2.11.1 whisperx==3.8.6 \
	  pyannote.audio==4.0.7 torch-audiomentations==0.12.0 torch-pitch-shift==1.2.5 julius==0.2.8
	rm -f $(WX_VENV)/lib/python*/site-packages/torchaudio/lib/*.so
	$(WX_PIP) 'transformers>=4.48,<5' 'huggingface-hub<1.0' 'nltk>=3.9.1' 'omegaconf>=2.3.0' \
	  asteroid-filterbanks einops lightning opentelemetry-api opentelemetry-sdk \
	  opentelemetry-exporter-otlp 'pyannote-core>=6.0.1' 'pyannote-database>=6.1.1' \
	  'pyannote-metrics>=4.0.0' 'pyannote-pipeline>=4.0.0' pyannoteai-sdk \
	  pytorch-metric-learning rich safetensors torchmetrics primePy matplotlib
	$(WX_PIP) -e . pytest pytest-timeout jiwer whisper-normalizer jsonschema
	$(WX_VENV)/bin/python -c "import whisperx.vads"
	touch $@

test-whisperx: $(WX_VENV)/.installed
	$(WX_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/e2e/test_whisperx.py

clean:
	rm -rf $(VENV) $(WL_VENV) $(WX_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
