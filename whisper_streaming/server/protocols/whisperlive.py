"""The WhisperLive-compatible protocol (path "/").

The stock ``whisper_live.client`` works against this server unmodified. Every server message is a
JSON text frame carrying the client's ``uid``; audio is binary frames of little-endian float32
(or int16, with ``audio_format: "int16"``) mono 16 kHz samples; ``b"END_OF_AUDIO"`` ends it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...audio import Float32Array, decode_frame
from ...config import TASKS
from ...exceptions import AudioError, ProtocolError
from ...streaming.segments import TranscriptSegment
from . import load_object, shown

__all__ = [
    "END_OF_AUDIO",
    "ClientConfig",
    "decode_audio",
    "disconnect",
    "error",
    "language",
    "parse_config",
    "segments",
    "server_ready",
    "TranscriptAccumulator",
    "wait",
    "warning",
]

END_OF_AUDIO = b"END_OF_AUDIO"
# Options of WhisperLive's client this server does not implement; a client that turns one on
# gets a WARNING naming it (its other tunables, no_speech_thresh and same_output_threshold,
# belong to WhisperLive's own streaming and are not used here).
UNSUPPORTED = (
    "enable_translation",
    "hotwords",
    "enable_diarization",
    "vad_parameters",
    "clip_audio",
)
AUDIO_FORMATS = ("float32", "int16")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The first message of a WhisperLive client."""

    uid: str
    language: str | None = None
    task: str = "transcribe"
    model: str | None = None
    use_vad: bool = True
    send_last_n_segments: int = 10
    word_timestamps: bool = False
    initial_prompt: str | None = None
    audio_format: str = "float32"
    unsupported: tuple[str, ...] = ()  # options the client turned on that this server lacks


def parse_config(raw: str | bytes) -> ClientConfig:
    """Parse and validate the configuration message. Unknown keys are ignored.

    Raises:
        ProtocolError: not a JSON object, no ``uid``, or a bad value.
    """
    if isinstance(raw, bytes):
        raise ProtocolError(
            "expected a JSON configuration message before any audio", code="not_started"
        )
    data = load_object(raw, "configuration")
    uid = data.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ProtocolError("configuration has no 'uid' (a non-empty string)")
    language = data.get("language")
    if language is not None and (not isinstance(language, str) or not 2 <= len(language) <= 8):
        raise ProtocolError(f"'language' must be a language code or null, got {shown(language)}")
    task = data.get("task") or "transcribe"
    if task not in TASKS:
        raise ProtocolError(f"'task' must be one of {TASKS}, got {shown(task)}")
    model = data.get("model")
    n = data.get("send_last_n_segments", 10)
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 1000:
        raise ProtocolError(f"'send_last_n_segments' must be an integer 0..1000, got {shown(n)}")
    audio_format = data.get("audio_format") or "float32"
    if audio_format not in AUDIO_FORMATS:
        raise ProtocolError(
            f"'audio_format' must be one of {AUDIO_FORMATS}, got {shown(audio_format)}"
        )
    prompt = data.get("initial_prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ProtocolError(f"'initial_prompt' must be a string or null, got {shown(prompt)}")
    return ClientConfig(
        uid=uid,
        language=language or None,
        task=task,
        model=model if isinstance(model, str) and model else None,
        use_vad=bool(data.get("use_vad", True)),
        send_last_n_segments=n,
        word_timestamps=bool(data.get("word_timestamps", False)),
        initial_prompt=prompt or None,
        audio_format=audio_format,
        unsupported=tuple(name for name in UNSUPPORTED if data.get(name)),
    )


def decode_audio(data: bytes, audio_format: str = "float32") -> Float32Array:
    """Decode one binary audio frame.

    Raises:
        ProtocolError: the byte count does not fit the format, or samples are NaN / infinite.
    """
    try:
        return decode_frame(data, float32=audio_format == "float32")
    except AudioError as exc:
        raise ProtocolError(str(exc), code="bad_audio") from exc


def _dump(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def server_ready(uid: str, backend: str) -> str:
    """The server accepted the client."""
    return _dump({"uid": uid, "message": "SERVER_READY", "backend": backend})


def wait(uid: str, minutes: float) -> str:
    """The server is full; try again in about ``minutes``."""
    return _dump({"uid": uid, "status": "WAIT", "message": round(float(minutes), 2)})


def error(uid: str | None, message: str) -> str:
    """Something the client sent is wrong."""
    return _dump({"uid": uid, "status": "ERROR", "message": message})


def warning(uid: str, message: str) -> str:
    """A request was not granted as asked, but the session goes on."""
    return _dump({"uid": uid, "status": "WARNING", "message": message})


def disconnect(uid: str) -> str:
    """The session is over (time limit or idle timeout)."""
    return _dump({"uid": uid, "message": "DISCONNECT"})


def language(uid: str, code: str, probability: float | None) -> str:
    """The detected language."""
    return _dump({"uid": uid, "language": code, "language_prob": probability})


def _segment(seg: TranscriptSegment, with_words: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start": f"{seg.start:.3f}",
        "end": f"{seg.end:.3f}",
        "text": " " + seg.text if seg.text else "",
        "completed": seg.completed,
    }
    if with_words:
        out["words"] = [
            {
                "word": w.word,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "probability": round(w.probability, 4),
            }
            for w in seg.words
        ]
    return out


def segments(uid: str, segs: Sequence[TranscriptSegment], *, with_words: bool = False) -> str:
    """Recent completed segments, then the current incomplete one."""
    return _dump({"uid": uid, "segments": [_segment(s, with_words) for s in segs]})


class TranscriptAccumulator:
    """What a WhisperLive client keeps of the ``segments`` messages it receives: completed
    segments that start where the last kept one ends (each message repeats recent ones), and the
    latest incomplete segment as the partial text. The Python client, the benchmark and the
    tests all read the server through this.

    Segments are dicts with float ``start`` and ``end``, ``text``, and ``words`` when sent.
    """

    def __init__(self) -> None:
        self.segments: list[dict[str, Any]] = []
        self.partial: dict[str, Any] | None = None

    def add(self, segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Take one message's segments; returns the newly completed ones."""
        new: list[dict[str, Any]] = []
        partial = None
        for seg in segments:
            item: dict[str, Any] = {
                "start": float(seg["start"]),
                "end": float(seg["end"]),
                "text": str(seg["text"]),
            }
            if "words" in seg:
                item["words"] = seg["words"]
            if not seg.get("completed"):
                partial = item
            elif not self.segments or item["start"] >= self.segments[-1]["end"] - 1e-6:
                if not self.segments or item != self.segments[-1]:
                    self.segments.append(item)
                    new.append(item)
        self.partial = partial
        return new

    @property
    def text(self) -> str:
        """The completed transcript."""
        return " ".join(s["text"].strip() for s in self.segments)
