"""The typed JSON protocol v1 (path "/ws/transcribe"), for browsers and other languages.

Every text frame is a JSON object with a ``type``. Audio is binary frames in the encoding and
sample rate announced by ``start_recording``. See DESIGN.md section 5.2.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...audio import SAMPLE_RATE, Float32Array, decode_frame
from ...backends.base import Word
from ...config import TASKS
from ...exceptions import AudioError, ProtocolError
from ..session import SessionError, SessionEvent
from . import check_frame, load_object, shown
from .base import Action, Audio, Begin, EndReason, Finish, Send, ServerInfo

__all__ = [
    "ENCODINGS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "Error",
    "JsonAdapter",
    "Language",
    "Partial",
    "Ping",
    "Pong",
    "Ready",
    "RecordingConfig",
    "ServerMessage",
    "StartRecording",
    "StopRecording",
    "Stopped",
    "Transcription",
    "TranscriptWord",
    "Wait",
    "WarningMessage",
    "decode_audio",
    "parse",
    "parse_server_message",
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
    diarization: bool | None = None  # speaker labels; None: the server's default


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
    diarization = data.get("diarization")
    if diarization is not None and not isinstance(diarization, bool):
        raise ProtocolError(
            f"'diarization' must be true, false or null, got {shown(diarization)}",
            code="bad_config",
        )
    return RecordingConfig(
        rate,
        encoding,
        lang or None,
        task,
        bool(data.get("word_timestamps", True)),
        prompt,
        diarization,
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


# -- server messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The connection is admitted; send ``start_recording``."""

    session_id: str
    backend: str
    model: str
    sample_rate: int = SAMPLE_RATE
    diarization: bool = False  # speaker labels are available (and on unless a recording opts out)

    def serialize(self) -> str:
        return _dump(
            {
                "type": "ready",
                "session_id": self.session_id,
                "backend": self.backend,
                "model": self.model,
                "sample_rate": self.sample_rate,
                "diarization": self.diarization,
            }
        )


@dataclass(frozen=True, slots=True)
class Wait:
    """The server is full; try again in about ``minutes``."""

    minutes: float

    def serialize(self) -> str:
        return _dump(
            {"type": "status", "status": "wait", "estimated_wait_minutes": round(self.minutes, 2)}
        )


@dataclass(frozen=True, slots=True)
class Error:
    code: str
    message: str

    def serialize(self) -> str:
        return _dump({"type": "error", "code": self.code, "message": self.message})


@dataclass(frozen=True, slots=True)
class WarningMessage:
    """A request was not granted as asked; the recording goes on (``code``: a stable
    identifier, such as ``translation_unavailable``)."""

    code: str
    message: str

    def serialize(self) -> str:
        return _dump({"type": "warning", "code": self.code, "message": self.message})


@dataclass(frozen=True, slots=True)
class Pong:
    def serialize(self) -> str:
        return _dump({"type": "pong"})


@dataclass(frozen=True, slots=True)
class Stopped:
    """The recording's final transcript has been sent."""

    def serialize(self) -> str:
        return _dump({"type": "stopped"})


@dataclass(frozen=True, slots=True)
class Language:
    language: str
    probability: float | None

    def serialize(self) -> str:
        return _dump(
            {"type": "language", "language": self.language, "probability": self.probability}
        )


@dataclass(frozen=True, slots=True)
class Partial:
    """The unconfirmed tail; replaces the previous partial (empty text clears it)."""

    text: str
    start: float | None
    end: float | None

    @classmethod
    def of(cls, words: Sequence[Word]) -> Partial:
        text = "".join(w.word for w in words).strip()
        start = round(words[0].start, 3) if words else None
        end = round(words[-1].end, 3) if words else None
        return cls(text, start, end)

    def serialize(self) -> str:
        return _dump({"type": "partial", "text": self.text, "start": self.start, "end": self.end})


@dataclass(frozen=True, slots=True)
class TranscriptWord:
    word: str
    start: float
    end: float
    probability: float
    speaker: int | None = None


@dataclass(frozen=True, slots=True)
class Transcription:
    """Committed text: appended, never revised."""

    segment_id: int
    text: str
    start: float
    end: float
    confidence: float
    processing_time_ms: float
    words: tuple[TranscriptWord, ...] | None = None
    speaker: int | None = None  # diarized recordings: 1, 2, ...

    @classmethod
    def of(
        cls,
        segment_id: int,
        words: Sequence[Word],
        processing_time_ms: float,
        *,
        with_words: bool = True,
    ) -> Transcription:
        confidence = sum(w.probability for w in words) / len(words) if words else 0.0
        return cls(
            segment_id,
            "".join(w.word for w in words).strip(),
            round(words[0].start, 3),
            round(words[-1].end, 3),
            round(confidence, 4) if math.isfinite(confidence) else 0.0,
            round(processing_time_ms, 1),
            tuple(
                TranscriptWord(
                    w.word.strip(),
                    round(w.start, 3),
                    round(w.end, 3),
                    round(w.probability, 4),
                    w.speaker,
                )
                for w in words
            )
            if with_words
            else None,
            words[0].speaker,
        )

    def serialize(self) -> str:
        message: dict[str, Any] = {
            "type": "transcription",
            "segment_id": self.segment_id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "is_final": True,
            "confidence": self.confidence,
            "processing_time_ms": self.processing_time_ms,
        }
        if self.speaker is not None:
            message["speaker"] = self.speaker
        if self.words is not None:
            message["words"] = [
                {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                | ({} if w.speaker is None else {"speaker": w.speaker})
                for w in self.words
            ]
        return _dump(message)


ServerMessage = (
    Ready | Wait | Error | WarningMessage | Pong | Stopped | Language | Partial | Transcription
)


def _speaker(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_server_message(raw: str) -> ServerMessage:
    """Parse a server message (for clients).

    Raises:
        ProtocolError: not a message of this protocol, or a field of the wrong type.
    """
    data = load_object(raw, "server message")
    kind = data.get("type")
    try:
        if kind == "ready":
            return Ready(
                str(data["session_id"]),
                str(data["backend"]),
                str(data["model"]),
                int(data["sample_rate"]),
                bool(data.get("diarization", False)),
            )
        if kind == "status" and data.get("status") == "wait":
            return Wait(float(data["estimated_wait_minutes"]))
        if kind == "error":
            return Error(str(data["code"]), str(data["message"]))
        if kind == "warning":
            return WarningMessage(str(data["code"]), str(data["message"]))
        if kind == "pong":
            return Pong()
        if kind == "stopped":
            return Stopped()
        if kind == "language":
            prob = data.get("probability")
            return Language(str(data["language"]), None if prob is None else float(prob))
        if kind == "partial":
            start, end = data.get("start"), data.get("end")
            return Partial(
                str(data["text"]),
                None if start is None else float(start),
                None if end is None else float(end),
            )
        if kind == "transcription":
            words = data.get("words")
            return Transcription(
                int(data["segment_id"]),
                str(data["text"]),
                float(data["start"]),
                float(data["end"]),
                float(data["confidence"]),
                float(data["processing_time_ms"]),
                None
                if words is None
                else tuple(
                    TranscriptWord(
                        str(w["word"]),
                        float(w["start"]),
                        float(w["end"]),
                        float(w["probability"]),
                        _speaker(w.get("speaker")),
                    )
                    for w in words
                ),
                _speaker(data.get("speaker")),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"bad {shown(kind)} message: {exc}") from None
    raise ProtocolError(f"unknown server message type {shown(kind)}")


# -- the server side, without I/O ---------------------------------------------------------

TRAILING_AUDIO_S = 1.0
"""Audio frames that arrive this soon after stop_recording are the sender's last buffers (a
browser's audio worklet still delivers what it held): ignored without an error."""


def _by_speaker(words: Sequence[Word]) -> list[Sequence[Word]]:
    """``words`` split where the speaker changes (one run when the stream is not diarized)."""
    runs: list[Sequence[Word]] = []
    start = 0
    for i in range(1, len(words) + 1):
        if i == len(words) or words[i].speaker != words[start].speaker:
            runs.append(words[start:i])
            start = i
    return runs


class JsonAdapter:
    """One JSON-protocol connection's state (see :class:`~.base.WireAdapter`). A connection may
    record several times: ``start_recording`` begins a stream, ``stop_recording`` finishes it,
    and ``stopped`` follows its final transcript."""

    name = "json"
    expects_config = False

    def __init__(self) -> None:
        self.info: ServerInfo | None = None
        self.recording: RecordingConfig | None = None
        self.stopping = False
        self.stopped_at = -math.inf
        self.trailing_frames = 0  # audio frames ignored after a stop
        self._recordings = 0
        self._segment_id = 0
        self._last_partial: Partial | None = None

    def configure(self, raw: str | bytes) -> None:
        raise AssertionError("the JSON protocol has no configuration message")

    def session_name(self) -> str:
        return "json"

    def opened(self, info: ServerInfo) -> list[Action]:
        self.info = info
        return [
            Send(Ready(info.session_id, info.backend, info.model, diarization=info.diarization))
        ]

    def receive(self, message: str | bytes, now: float) -> list[Action]:
        if isinstance(message, bytes):
            if self.recording is None or self.stopping:
                if now - self.stopped_at <= TRAILING_AUDIO_S:
                    self.trailing_frames += 1
                    return []
                raise ProtocolError("send start_recording before audio", code="not_started")
            config = self.recording
            check_frame(message, config.sample_rate * (4 if config.encoding == "float32le" else 2))
            return [Audio(decode_audio(message, config.encoding))]
        request = parse(message)
        if isinstance(request, Ping):
            return [Send(Pong())]
        if isinstance(request, StartRecording):
            if self.recording is not None:
                raise ProtocolError(
                    "a recording is already running; send stop_recording first",
                    code="already_started",
                )
            return self._begin(request.config)
        if self.recording is None or self.stopping:
            raise ProtocolError("no recording to stop", code="not_started")
        self.stopping = True
        self.stopped_at = now
        return [Finish()]

    def _begin(self, config: RecordingConfig) -> list[Action]:
        info = self.info
        assert info is not None, "opened() comes first"
        warnings: list[WarningMessage] = []
        if not info.multilingual:
            if config.task == "translate":
                warnings.append(
                    WarningMessage(
                        "translation_unavailable",
                        f"{info.model!r} is English-only and cannot translate: the recording "
                        "is transcribed (serve a multilingual model to translate)",
                    )
                )
            if config.language not in (None, "en"):
                warnings.append(
                    WarningMessage(
                        "language_unavailable",
                        f"{info.model!r} is English-only: language {config.language!r} is "
                        "ignored and the recording is transcribed as English",
                    )
                )
        if config.diarization and not info.diarization:
            warnings.append(
                WarningMessage(
                    "diarization_unavailable",
                    "speaker labels are not enabled on this server (it starts with "
                    "--diarization): the recording has none",
                )
            )
        options = dataclasses.replace(
            info.options,
            language=config.language if info.multilingual else "en",
            task=config.task if info.multilingual else "transcribe",
            initial_prompt=config.prompt or info.options.initial_prompt,
        )
        diarize = info.diarization if config.diarization is None else config.diarization
        self.recording = config
        self.stopping = False
        self._recordings += 1
        self._last_partial = None
        begin = Begin(
            options,
            config.sample_rate,
            name=f".{self._recordings}",
            diarize=diarize and info.diarization,
        )
        return [*(Send(w) for w in warnings), begin]

    def event(self, event: SessionEvent) -> list[ServerMessage]:
        if isinstance(event, SessionError):
            return [Error(event.code, event.message)]
        out: list[ServerMessage] = []
        update = event.update
        with_words = self.recording.word_timestamps if self.recording is not None else True
        if update.language:
            out.append(Language(update.language, update.language_probability))
        ms = 1000 * event.timing.inference_s if event.timing else 0.0
        for words in _by_speaker(update.committed):
            out.append(Transcription.of(self._segment_id, words, ms, with_words=with_words))
            self._segment_id += 1
        partial = Partial.of(update.partial)
        if partial != self._last_partial and (update.partial or self._last_partial is not None):
            out.append(partial)
            self._last_partial = partial if update.partial else None
        if update.final:
            out.append(Stopped())
            self.recording = None
            self.stopping = False
        return out

    def error(self, code: str, message: str) -> ServerMessage:
        return Error(code, message)

    def wait(self, minutes: float) -> ServerMessage:
        return Wait(minutes)

    def farewell(self, reason: EndReason) -> ServerMessage | None:
        if reason is EndReason.TIME_LIMIT:
            return Error("time_limit", "maximum connection time reached")
        if reason is EndReason.IDLE:
            return Error("idle_timeout", "no audio for too long")
        return None
