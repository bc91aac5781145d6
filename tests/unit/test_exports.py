"""The public API is what __all__ says, and every name in it exists."""

import importlib

import pytest

import whisper_streaming

MODULES = [
    "whisper_streaming",
    "whisper_streaming.audio",
    "whisper_streaming.config",
    "whisper_streaming.exceptions",
    "whisper_streaming.vad",
    "whisper_streaming.backends",
    "whisper_streaming.backends.base",
    "whisper_streaming.backends.models",
    "whisper_streaming.streaming",
    "whisper_streaming.streaming.processor",
    "whisper_streaming.streaming.segments",
    "whisper_streaming.streaming.cuts",
    "whisper_streaming.streaming.gate",
    "whisper_streaming.streaming.policy",
    "whisper_streaming.streaming.timeline",
    "whisper_streaming.streaming.transcript",
    "whisper_streaming.streaming.update",
    "whisper_streaming.server.scheduler",
    "whisper_streaming.server.client_manager",
    "whisper_streaming.server.websocket_server",
    "whisper_streaming.client",
    "whisper_streaming.client.outputs",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    """Every name in a module's __all__ is defined."""
    module = importlib.import_module(name)
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr}"


def test_top_level_api() -> None:
    """The package root exports the core API and a version."""
    assert set(whisper_streaming.__all__) >= {
        "ASRProcessor",
        "ProcessorOptions",
        "TranscriptUpdate",
        "ScriptedBackend",
        "load_backend",
        "Word",
        "__version__",
    }


def test_unknown_backend_and_offline_model_errors() -> None:
    """Unknown backends and unreachable models fail with clear errors."""
    from whisper_streaming.backends import load_backend
    from whisper_streaming.backends.models import resolve_model
    from whisper_streaming.exceptions import BackendError, ModelNotFoundError

    with pytest.raises(BackendError, match="available: .*faster_whisper"):
        load_backend("no_such_backend")
    with pytest.raises(ModelNotFoundError, match="Offline choices"):
        resolve_model("/nonexistent/model/dir")
    with pytest.raises(ModelNotFoundError, match="Offline choices"):
        resolve_model("definitely-not-a-model-name", local_files_only=True)
    assert resolve_model("tiny.en").endswith("model")
