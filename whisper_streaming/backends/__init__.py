"""Backend registry: :func:`load_backend` by name, with lazy imports and entry points.

Third-party backends register a factory in the entry-point group ``whisper_streaming.backends``::

    [project.entry-points."whisper_streaming.backends"]
    mybackend = "mypkg.backend:MyBackend"
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..exceptions import BackendError
from .base import ASRBackend, InferenceRequest, Segment, Transcription, Word
from .models import DEFAULT_MODEL, resolve_model
from .scripted import ScriptedBackend, timeline_from_text

__all__ = [
    "DEFAULT_MODEL",
    "ASRBackend",
    "InferenceRequest",
    "ScriptedBackend",
    "Segment",
    "Transcription",
    "Word",
    "available_backends",
    "load_backend",
    "resolve_model",
    "timeline_from_text",
]

ENTRY_POINT_GROUP = "whisper_streaming.backends"

_BUILTIN = {
    "faster_whisper": "whisper_streaming.backends.faster_whisper:FasterWhisperBackend",
    "whisperx": "whisper_streaming.backends.whisperx:WhisperXBackend",
    "scripted": "whisper_streaming.backends.scripted:ScriptedBackend",
}


def available_backends() -> list[str]:
    """Names accepted by :func:`load_backend`: built-in ones and installed plug-ins."""
    names = set(_BUILTIN)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def _factory(name: str) -> Callable[..., ASRBackend]:
    target = _BUILTIN.get(name)
    if target is not None:
        module_name, attr = target.split(":")
        factory: Callable[..., ASRBackend] = getattr(importlib.import_module(module_name), attr)
        return factory
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            loaded: Callable[..., ASRBackend] = ep.load()
            return loaded
    raise BackendError(f"unknown backend {name!r}; available: {', '.join(available_backends())}")


def load_backend(name: str = "faster_whisper", **options: Any) -> ASRBackend:
    """Create the backend called ``name`` with ``options`` passed to its constructor.

    Raises:
        BackendError: no such backend, or it failed to load.
    """
    factory = _factory(name.replace("-", "_"))
    try:
        return factory(**options)
    except TypeError as exc:
        raise BackendError(f"bad options for backend {name!r}: {exc}") from exc
