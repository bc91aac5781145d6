"""whisper_streaming: real-time speech transcription over WebSocket.

The streaming core (:class:`ASRProcessor`) is sans-I/O; backends (:func:`load_backend`) wrap
faster-whisper or WhisperX; the server shares one model between many clients.
"""

from .audio import SAMPLE_RATE
from .backends import (
    ASRBackend,
    InferenceRequest,
    ScriptedBackend,
    Segment,
    Transcription,
    Word,
    load_backend,
)
from .config import ProcessorOptions, VadOptions
from .exceptions import (
    AudioError,
    BackendError,
    ConfigError,
    ModelNotFoundError,
    ProtocolError,
    StateError,
    WhisperStreamingError,
)
from .streaming.processor import ASRProcessor, ProcessorState, TranscriptUpdate

__version__ = "0.1.0"

__all__ = [
    "SAMPLE_RATE",
    "ASRBackend",
    "ASRProcessor",
    "AudioError",
    "BackendError",
    "ConfigError",
    "InferenceRequest",
    "ModelNotFoundError",
    "ProcessorOptions",
    "ProcessorState",
    "ProtocolError",
    "ScriptedBackend",
    "Segment",
    "StateError",
    "TranscriptUpdate",
    "Transcription",
    "VadOptions",
    "Word",
    "WhisperStreamingError",
    "__version__",
    "load_backend",
]
