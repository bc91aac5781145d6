"""The typed JSON protocol v1 (path "/ws/transcribe"), for browsers and other languages.

Every text frame is a JSON object with a ``type``. Audio is binary frames in the encoding and
sample rate announced by ``start_recording``. See DESIGN.md section 5.2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...audio import SAMPLE_RATE, Float32Array, decode_frame
from ...backends.base import Word
from ...config import TASKS
from ...exceptions import AudioError, ProtocolError
from . import load_object, shown

__all__ = [
    "ENCODINGS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "Ping",
    "RecordingConfig",
    "StartRecording",
    "StopRecording",
    "decode_audio",
    "error",
    "language",
    "parse",
    "partial",
    "pong",
    "ready",
    "stopped",
    "transcription",
    "wait",
]

MAX_PROMPT_CHARS = 1000
ENCODINGS = ("pcm_s16le", "float32le")
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    """Options of one recording."""

    sample_rate: int = SAMPLE_RATE
    encoding: str = "pcm_s16le"
    language: str | None = None
    task: str = "transcribe"
    word_timestamps: bool = True
    prompt: str = ""  # text that comes before the recording (names, terms)


@dataclass(frozen=True, slots=True)
class StartRecording:
    config: RecordingConfig


@dataclass(frozen=True, slots=True)
class StopRecording:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientMessage = StartRecording | StopRecording | Ping


def _config(data: Any) -> RecordingConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProtocolError("'config' must be an object", code="bad_config")
    rate = data.get("sample_rate", SAMPLE_RATE)
    if not isinstance(rate, int) or isinstance(rate, bool):
        raise ProtocolError(
            f"'sample_rate' must be an integer, got {shown(rate)}", code="bad_config"
        )
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError(
            f"unsupported sample_rate {rate}: use {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz",
            code="unsupported_rate",
        )
    encoding = data.get("encoding", "pcm_s16le")
    if encoding not in ENCODINGS:
        raise ProtocolError(
            f"'encoding' must be one of {ENCODINGS}, got {shown(encoding)}", code="bad_config"
        )
    lang = data.get("language")
    if lang is not None and (not isinstance(lang, str) or not 2 <= len(lang) <= 8):
        raise ProtocolError(
            f"'language' must be a language code or null, got {shown(lang)}", code="bad_config"
        )
    task = data.get("task", "transcribe")
    if task not in TASKS:
        raise ProtocolError(f"'task' must be one of {TASKS}, got {shown(task)}", code="bad_config")
    prompt = data.get("prompt", "")
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS:
        raise ProtocolError(
            f"'prompt' must be a string of at most {MAX_PROMPT_CHARS} characters", code="bad_config"
        )
    return RecordingConfig(
        rate, encoding, lang or None, task, bool(data.get("word_timestamps", True)), prompt
    )


def parse(raw: str) -> ClientMessage:
    """Parse a client text frame.

    Raises:
        ProtocolError: malformed JSON (``bad_message``), unknown type (``bad_message``) or a bad
            recording config (``bad_config`` / ``unsupported_rate``).
    """
    data = load_object(raw, "message")
    kind = data.get("type")
    if kind == "start_recording":
        return StartRecording(_config(data.get("config")))
    if kind == "stop_recording":
        return StopRecording()
    if kind == "ping":
        return Ping()
    raise ProtocolError(
        f"unknown message type {shown(kind)}: expected start_recording, stop_recording or ping"
    )


def decode_audio(data: bytes, encoding: str) -> Float32Array:
    """Decode one binary frame to float32 samples (at the announced rate).

    Raises:
        ProtocolError: ``bad_audio`` for a byte count that does not fit, or NaN / infinity.
    """
    try:
        return decode_frame(data, float32=encoding == "float32le")
    except AudioError as exc:
        raise ProtocolError(str(exc), code="bad_audio") from exc


def _dump(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def ready(session_id: str, backend: str, model: str) -> str:
    return _dump(
        {
            "type": "ready",
            "session_id": session_id,
            "backend": backend,
            "model": model,
            "sample_rate": SAMPLE_RATE,
        }
    )


def wait(minutes: float) -> str:
    return _dump({"type": "status", "status": "wait", "estimated_wait_minutes": round(minutes, 2)})


def error(code: str, message: str) -> str:
    return _dump({"type": "error", "code": code, "message": message})


def pong() -> str:
    return _dump({"type": "pong"})


def stopped() -> str:
    return _dump({"type": "stopped"})


def language(code: str, probability: float | None) -> str:
    return _dump({"type": "language", "language": code, "probability": probability})


def partial(words: Sequence[Word]) -> str:
    """The unconfirmed tail; replaces the previous partial (empty text clears it)."""
    text = "".join(w.word for w in words).strip()
    start = round(words[0].start, 3) if words else None
    end = round(words[-1].end, 3) if words else None
    return _dump({"type": "partial", "text": text, "start": start, "end": end})


def transcription(
    segment_id: int, words: Sequence[Word], processing_time_ms: float, *, with_words: bool = True
) -> str:
    """Committed text: appended, never revised."""
    confidence = sum(w.probability for w in words) / len(words) if words else 0.0
    message: dict[str, Any] = {
        "type": "transcription",
        "segment_id": segment_id,
        "text": "".join(w.word for w in words).strip(),
        "start": round(words[0].start, 3),
        "end": round(words[-1].end, 3),
        "is_final": True,
        "confidence": round(confidence, 4) if math.isfinite(confidence) else 0.0,
        "processing_time_ms": round(processing_time_ms, 1),
    }
    if with_words:
        message["words"] = [
            {
                "word": w.word.strip(),
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "probability": round(w.probability, 4),
            }
            for w in words
        ]
    return _dump(message)
