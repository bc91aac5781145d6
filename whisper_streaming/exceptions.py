"""Exceptions raised by whisper_streaming.

All of them derive from :class:`WhisperStreamingError`::

    WhisperStreamingError
    ├── ConfigError            an option is out of range or inconsistent
    ├── AudioError             audio cannot be decoded or has the wrong shape / values
    ├── StateError             an action was called in the wrong lifecycle state
    ├── ProtocolError          a client sent a message that does not follow the wire protocol
    └── BackendError           the ASR backend failed
        └── ModelNotFoundError the requested model cannot be found or downloaded
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "BackendError",
    "ConfigError",
    "ModelNotFoundError",
    "ProtocolError",
    "StateError",
    "WhisperStreamingError",
]


class WhisperStreamingError(Exception):
    """Base class of every error raised by this package."""


class ConfigError(WhisperStreamingError, ValueError):
    """An option is out of range or inconsistent with another option."""


class AudioError(WhisperStreamingError, ValueError):
    """Audio cannot be decoded, or samples have the wrong shape or values."""


class StateError(WhisperStreamingError, RuntimeError):
    """An action was called in a state that does not allow it."""


class ProtocolError(WhisperStreamingError):
    """A client message does not follow the wire protocol.

    Attributes:
        code: a short machine-readable code, e.g. ``"bad_message"``.
    """

    def __init__(self, message: str, code: str = "bad_message") -> None:
        super().__init__(message)
        self.code = code


class BackendError(WhisperStreamingError, RuntimeError):
    """The ASR backend failed to load or to transcribe."""


class ModelNotFoundError(BackendError):
    """The requested model is neither embedded, a local directory, nor downloadable."""
