"""The backend seam: the :class:`ASRBackend` protocol and the values that cross it."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..audio import SAMPLE_RATE, Float32Array
from ..streaming.timeline import Timeline

__all__ = ["ASRBackend", "InferenceRequest", "RequestKind", "Segment", "Transcription", "Word"]


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word. Times are in seconds.

    ``word`` keeps Whisper's leading space (``" Hello"``) so that joining words gives the text.
    """

    word: str
    start: float
    end: float
    probability: float = 1.0
    speaker: int | None = None  # 1, 2, ... when the stream is diarized

    def shifted(self, offset_s: float) -> Word:
        """Return the same word with both times moved by ``offset_s`` seconds."""
        return dataclasses.replace(self, start=self.start + offset_s, end=self.end + offset_s)


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of words the model decoded together. Times in seconds, relative to the request."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0

    def shifted(self, offset_s: float) -> Segment:
        """Return the same segment, its words too, with every time moved by ``offset_s``."""
        return dataclasses.replace(
            self,
            start=self.start + offset_s,
            end=self.end + offset_s,
            words=tuple(w.shifted(offset_s) for w in self.words),
        )


@dataclass(frozen=True, slots=True)
class Transcription:
    """A backend's answer to one :class:`InferenceRequest`."""

    segments: tuple[Segment, ...] = ()
    language: str | None = None
    language_probability: float | None = None
    tokens: int = 0  # tokens the decoder generated (0: not reported)
    retries: int = 0  # extra decodes the backend ran (a repetition loop's retry)
    encoder_s: float = 0.0  # seconds of audio the encoder ran on (0: not reported)

    @property
    def text(self) -> str:
        """All segment texts joined."""
        return "".join(s.text for s in self.segments)


class RequestKind(enum.Enum):
    """Why the processor asks for a decode."""

    HYPOTHESIS = "hypothesis"  # partial text of the buffer (greedy); commits nothing itself
    UTTERANCE_END = "utterance_end"  # end of an utterance, flush or finish: commits everything
    WINDOW = "window"  # a long utterance: commits its complete segments
    CATCH_UP = "catch_up"  # the oldest 30 s of audio that piled up: commits what it completes

    @property
    def commits(self) -> bool:
        """Whether the processor commits what this decode returns without agreement."""
        return self is not RequestKind.HYPOTHESIS


@dataclass(frozen=True, slots=True, eq=False)
class InferenceRequest:
    """One decode the streaming processor asks for.

    Attributes:
        audio: mono float32 samples at :data:`SAMPLE_RATE`.
        offset_s: stream time, in seconds, of ``audio[0]``.
        prompt: previous committed text to condition the decoder on ("" for none).
        language: language code, or None to auto-detect.
        task: "transcribe" or "translate".
        beam_size: beam width.
        final: the processor will commit everything this request returns.
        request_id: increasing number, unique within one processor.
        runs: where the audio comes from when the VAD removed silence: (seconds into ``audio``,
            stream time) at the start of each contiguous run. Empty means one run at offset_s.
        kind: why the decode is asked for (backends may spend less on hypotheses).
    """

    audio: Float32Array
    offset_s: float
    prompt: str = ""
    language: str | None = None
    task: str = "transcribe"
    beam_size: int = 5
    final: bool = False
    request_id: int = 0
    runs: tuple[tuple[float, float], ...] = ()
    kind: RequestKind = RequestKind.HYPOTHESIS

    @property
    def timeline(self) -> Timeline:
        """Where ``audio`` lies in the stream (``runs``, or one run at ``offset_s``)."""
        return Timeline(self.runs or ((0.0, self.offset_s),), self.duration_s)

    def to_stream_s(self, audio_s: float) -> float:
        """Map a time in ``audio`` (seconds) to stream time, following ``runs``."""
        return self.timeline.to_stream_s(audio_s)

    def to_audio_s(self, stream_s: float) -> float:
        """Map a stream time to a time in ``audio`` (a time in a gap maps to the next run)."""
        return self.timeline.to_audio_s(stream_s)

    @property
    def duration_s(self) -> float:
        """Length of ``audio`` in seconds."""
        return float(np.asarray(self.audio).shape[0]) / SAMPLE_RATE


@runtime_checkable
class ASRBackend(Protocol):
    """What the scheduler needs from a speech recognizer.

    Implementations must be safe to call from several worker threads at once, or set
    ``max_concurrency`` to 1. Word timestamps must be returned for every segment.
    """

    name: str
    model_name: str
    max_concurrency: int

    def transcribe(self, request: InferenceRequest) -> Transcription:
        """Transcribe one request. Times in the result are relative to ``request.audio``."""
        ...

    def transcribe_batch(self, requests: Sequence[InferenceRequest]) -> list[Transcription]:
        """Transcribe several requests; may simply loop over :meth:`transcribe`."""
        ...
