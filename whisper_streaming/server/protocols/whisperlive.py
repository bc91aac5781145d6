"""The WhisperLive-compatible protocol (path "/").

The stock ``whisper_live.client`` works against this server unmodified. Every server message is a
JSON text frame carrying the client's ``uid``; audio is binary frames of little-endian float32
(or int16, with ``audio_format: "int16"``) mono 16 kHz samples; ``b"END_OF_AUDIO"`` ends it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...audio import SAMPLE_RATE, Float32Array, decode_frame
from ...config import TASKS
from ...exceptions import AudioError, ProtocolError
from ...streaming.segments import SegmentBuilder, TranscriptSegment
from ..session import SessionError, SessionEvent
from . import check_frame, load_object, shown
from .base import Action, Audio, Begin, EndReason, Finish, Send, ServerInfo

__all__ = [
    "END_OF_AUDIO",
    "ClientConfig",
    "Disconnect",
    "Error",
    "Language",
    "Segments",
    "ServerMessage",
    "ServerReady",
    "TranscriptAccumulator",
    "Wait",
    "WarningMessage",
    "WhisperLiveAdapter",
    "WireSegment",
    "WireWord",
    "decode_audio",
    "parse_config",
    "parse_server_message",
]

END_OF_AUDIO = b"END_OF_AUDIO"
# Options of WhisperLive's client this server does not implement; a client that turns one on
# gets a WARNING naming it (its other tunables, no_speech_thresh and same_output_threshold,
# belong to WhisperLive's own streaming and are not used here).
UNSUPPORTED = (
    "enable_translation",
    "hotwords",
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
    diarization: bool | None = None  # enable_diarization; None: the server's default
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
    diarization = data.get("enable_diarization")
    if diarization is not None and not isinstance(diarization, bool):
        raise ProtocolError(
            f"'enable_diarization' must be true, false or null, got {shown(diarization)}"
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
        diarization=diarization,
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


# -- server messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerReady:
    """The server accepted the client."""

    uid: str
    backend: str

    def serialize(self) -> str:
        return _dump({"uid": self.uid, "message": "SERVER_READY", "backend": self.backend})


@dataclass(frozen=True, slots=True)
class Wait:
    """The server is full; try again in about ``minutes``."""

    uid: str | None
    minutes: float

    def serialize(self) -> str:
        return _dump({"uid": self.uid, "status": "WAIT", "message": round(float(self.minutes), 2)})


@dataclass(frozen=True, slots=True)
class Error:
    """Something went wrong (what the client sent, or this session)."""

    uid: str | None
    message: str

    def serialize(self) -> str:
        return _dump({"uid": self.uid, "status": "ERROR", "message": self.message})


@dataclass(frozen=True, slots=True)
class WarningMessage:
    """A request was not granted as asked, but the session goes on."""

    uid: str | None
    message: str

    def serialize(self) -> str:
        return _dump({"uid": self.uid, "status": "WARNING", "message": self.message})


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The session is over (time limit or idle timeout)."""

    uid: str | None

    def serialize(self) -> str:
        return _dump({"uid": self.uid, "message": "DISCONNECT"})


@dataclass(frozen=True, slots=True)
class Language:
    """The detected language."""

    uid: str | None
    language: str
    probability: float | None

    def serialize(self) -> str:
        return _dump(
            {"uid": self.uid, "language": self.language, "language_prob": self.probability}
        )


@dataclass(frozen=True, slots=True)
class WireWord:
    word: str
    start: float
    end: float
    probability: float
    speaker: int | None = None


@dataclass(frozen=True, slots=True)
class WireSegment:
    """A segment as the client sees it (times in seconds from the start of the stream)."""

    start: float
    end: float
    text: str  # with WhisperLive's leading space
    completed: bool
    words: tuple[WireWord, ...] | None = None  # with ``word_timestamps``
    speaker: int | None = None  # diarized sessions: 1, 2, ...

    @classmethod
    def of(cls, seg: TranscriptSegment, with_words: bool) -> WireSegment:
        words = None
        if with_words:
            words = tuple(
                WireWord(
                    w.word, round(w.start, 3), round(w.end, 3), round(w.probability, 4), w.speaker
                )
                for w in seg.words
            )
        text = " " + seg.text if seg.text else ""
        return cls(seg.start, seg.end, text, seg.completed, words, seg.speaker)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start": f"{self.start:.3f}",  # WhisperLive sends times as strings
            "end": f"{self.end:.3f}",
            "text": self.text,
            "completed": self.completed,
        }
        if self.speaker is not None:
            out["speaker"] = self.speaker
        if self.words is not None:
            out["words"] = [
                {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                | ({} if w.speaker is None else {"speaker": w.speaker})
                for w in self.words
            ]
        return out

    @classmethod
    def from_json(cls, data: Any) -> WireSegment:
        if not isinstance(data, dict):
            raise ProtocolError(f"a segment must be an object, got {shown(data)}")
        try:
            words = None
            if data.get("words") is not None:
                words = tuple(
                    WireWord(
                        str(w["word"]),
                        float(w["start"]),
                        float(w["end"]),
                        float(w.get("probability", 0.0)),
                        _speaker(w.get("speaker")),
                    )
                    for w in data["words"]
                )
            return cls(
                float(data["start"]),
                float(data["end"]),
                str(data["text"]),
                bool(data.get("completed", False)),
                words,
                _speaker(data.get("speaker")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"bad segment {shown(data)}: {exc}") from None


def _speaker(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class Segments:
    """Recent completed segments, then the current incomplete one."""

    uid: str | None
    segments: tuple[WireSegment, ...]

    def serialize(self) -> str:
        return _dump({"uid": self.uid, "segments": [s.to_json() for s in self.segments]})


ServerMessage = ServerReady | Wait | Error | WarningMessage | Disconnect | Language | Segments


def parse_server_message(raw: str) -> ServerMessage:
    """Parse a server message (for clients).

    Raises:
        ProtocolError: not a message this protocol has.
    """
    data = load_object(raw, "server message")
    uid = data.get("uid")
    uid = uid if isinstance(uid, str) else None
    status = data.get("status")
    message = data.get("message")
    if "segments" in data:
        segs = data["segments"]
        if not isinstance(segs, list):
            raise ProtocolError("'segments' must be a list")
        return Segments(uid, tuple(WireSegment.from_json(s) for s in segs))
    if status == "WAIT":
        try:
            return Wait(uid, float(message or 0))
        except (TypeError, ValueError):
            raise ProtocolError(f"bad WAIT message {shown(message)}") from None
    if status == "ERROR":
        return Error(uid, str(message))
    if status == "WARNING":
        return WarningMessage(uid, str(message))
    if message == "SERVER_READY":
        return ServerReady(uid or "", str(data.get("backend", "")))
    if message == "DISCONNECT":
        return Disconnect(uid)
    if isinstance(data.get("language"), str):
        prob = data.get("language_prob")
        return Language(uid, data["language"], float(prob) if prob is not None else None)
    raise ProtocolError(f"unknown server message {shown(data)}")


class TranscriptAccumulator:
    """What a WhisperLive client keeps of the ``segments`` messages it receives: completed
    segments that start where the last kept one ends (each message repeats recent ones), and the
    latest incomplete segment as the partial text. The Python client, the benchmark and the
    tests all read the server through this.

    Kept segments are dicts with float ``start`` and ``end``, ``text``, ``words`` when sent and
    ``speaker`` when diarized (what the transcript writers take).
    """

    def __init__(self) -> None:
        self.segments: list[dict[str, Any]] = []
        self.partial: dict[str, Any] | None = None

    def add(self, segments: Sequence[WireSegment]) -> list[dict[str, Any]]:
        """Take one message's segments; returns the newly completed ones."""
        new: list[dict[str, Any]] = []
        partial = None
        for seg in segments:
            item: dict[str, Any] = {"start": seg.start, "end": seg.end, "text": seg.text}
            if seg.speaker is not None:
                item["speaker"] = seg.speaker
            if seg.words is not None:
                item["words"] = [
                    {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                    | ({} if w.speaker is None else {"speaker": w.speaker})
                    for w in seg.words
                ]
            if not seg.completed:
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


# -- the server side, without I/O ---------------------------------------------------------


class WhisperLiveAdapter:
    """One WhisperLive connection's protocol state (see :class:`~.base.WireAdapter`).

    The display rules live here: each update sends the last ``send_last_n_segments`` completed
    segments and the incomplete one; a burst of segments completed at once is sent n at a time
    first; a stale partial is replaced before its segments complete; an unchanged message is not
    sent again.
    """

    name = "whisperlive"
    expects_config = True

    def __init__(self) -> None:
        self.config: ClientConfig | None = None
        self.builder = SegmentBuilder()
        self._ended = False
        self._last_sent: Segments | None = None

    @property
    def uid(self) -> str | None:
        return self.config.uid if self.config is not None else None

    def configure(self, raw: str | bytes) -> None:
        self.config = parse_config(raw)

    def session_name(self) -> str:
        return self.uid[:40] if self.uid else "whisperlive"

    def opened(self, info: ServerInfo) -> list[Action]:
        assert self.config is not None, "configure() comes first"
        config = self.config
        warnings = []
        if config.model and config.model != info.model:
            warnings.append(
                f"model {config.model!r} is not served here; using {info.model!r} instead"
            )
        if config.diarization and not info.diarization:
            warnings.append(
                "speaker labels are not enabled on this server (it starts with --diarization)"
            )
        language = config.language or info.options.language
        task = config.task
        if not info.multilingual:
            if language not in (None, "en"):
                warnings.append(f"{info.model!r} is English-only; language {language!r} ignored")
            if task == "translate":
                warnings.append(f"{info.model!r} cannot translate; transcribing instead")
            language, task = "en", "transcribe"
        if config.unsupported:
            names = ", ".join(config.unsupported)
            warnings.append(f"not supported by this server, ignored: {names}")
        options = dataclasses.replace(
            info.options,
            language=language,
            task=task,
            use_vad=config.use_vad,
            initial_prompt=config.initial_prompt or info.options.initial_prompt,
        )
        diarize = info.diarization if config.diarization is None else config.diarization
        return [
            *(Send(WarningMessage(config.uid, text)) for text in warnings),
            Begin(options, diarize=diarize and info.diarization),
            Send(ServerReady(config.uid, info.backend)),
        ]

    def receive(self, message: str | bytes, now: float) -> list[Action]:
        assert self.config is not None
        if self._ended:
            return []  # after END_OF_AUDIO, nothing more is read as audio
        if isinstance(message, str):
            raise ProtocolError(
                "unexpected text message: send binary audio frames, then END_OF_AUDIO"
            )
        if message == END_OF_AUDIO:
            self._ended = True
            return [Finish(last=True)]
        check_frame(message, SAMPLE_RATE * (4 if self.config.audio_format == "float32" else 2))
        return [Audio(decode_audio(message, self.config.audio_format))]

    def event(self, event: SessionEvent) -> list[ServerMessage]:
        uid = self.uid
        if isinstance(event, SessionError):
            return [Error(uid, event.message)]
        assert self.config is not None
        n = self.config.send_last_n_segments
        with_words = self.config.word_timestamps

        def message(segs: Sequence[TranscriptSegment]) -> Segments:
            return Segments(uid, tuple(WireSegment.of(s, with_words) for s in segs))

        out: list[ServerMessage] = []
        update = event.update
        if update.language:
            out.append(Language(uid, update.language, update.language_probability))
        done = self.builder.add(update)
        # Each message carries the last n completed segments; when one update completes more
        # (a burst of piled-up audio decoded at once), the older ones go first, n at a time,
        # or the client never sees them.
        if n > 0:
            for i in range(0, len(done) - n, n):
                out.append(message(done[i : min(i + n, len(done) - n)]))
        segs = self.builder.recent(n)
        current = self.builder.current()
        if current is not None:
            segs.append(current)
        elif done and segs:
            # The stock client keeps the last incomplete segment it was sent and writes it
            # after the completed ones unless the texts are equal. That partial was the whole
            # utterance, which the final decode may split into several segments: show the last
            # one as incomplete first, so the client's copy is current (otherwise its SRT ends
            # with the utterance twice).
            out.append(message([*segs[:-1], dataclasses.replace(segs[-1], completed=False)]))
        if segs:
            latest = message(segs)
            if latest != self._last_sent:
                out.append(latest)
                self._last_sent = latest
        return out

    def error(self, code: str, message: str) -> ServerMessage:
        return Error(self.uid, message)

    def wait(self, minutes: float) -> ServerMessage:
        return Wait(self.uid, minutes)

    def farewell(self, reason: EndReason) -> ServerMessage | None:
        if reason in (EndReason.TIME_LIMIT, EndReason.IDLE):
            return Disconnect(self.uid)
        return None
