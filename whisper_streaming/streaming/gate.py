"""The speech gate: lets speech (with its padding) through to the decoder, holds silence back,
and says where utterances end (pure; the speech detector is injected).

The detector (Silero's :class:`~whisper_streaming.vad.StreamingVad` in the server, an energy
detector in the tests) is the expensive part: one model call per 32 ms window. A driver runs
:meth:`SpeechGate.detect` wherever it likes (the server: on the session's worker thread, off the
event loop) and hands the events to :meth:`SpeechGate.push` with the same samples, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..audio import Float32Array
from ..vad import WINDOW_SAMPLES, VadEvent, VadEventKind

__all__ = ["SpeechDetector", "SpeechGate", "SpeechPiece"]


class SpeechDetector(Protocol):
    """A streaming voice-activity detector (see :class:`~whisper_streaming.vad.StreamingVad`)."""

    @property
    def triggered(self) -> bool:
        """Whether the stream is inside speech now."""
        ...

    @property
    def speech_until(self) -> int:
        """Stream sample up to which the audio surely belongs to speech or its padding."""
        ...

    @property
    def processed_samples(self) -> int:
        """Stream samples scored so far."""
        ...

    def process(self, samples: Float32Array) -> list[VadEvent]:
        """Score the next samples; the speech starts and ends they decide, in stream samples."""
        ...


@dataclass(frozen=True, slots=True)
class SpeechPiece:
    """Speech for the decoder: ``samples`` start at stream sample ``start`` (may be empty);
    ``ends_utterance``: the utterance ended right after them."""

    samples: Float32Array
    start: int
    ends_utterance: bool = False


class SpeechGate:
    """Turns audio and the detector's events into speech pieces and utterance ends.

    Speech starts reach back ``pad_samples`` (the detector's padding) into audio already seen,
    so the gate keeps a short history of recent input.
    """

    def __init__(self, detector: SpeechDetector, pad_samples: int) -> None:
        self.detector = detector
        self._pad_samples = pad_samples
        # Recent input, for pre-roll: _history[0] is stream sample _history_start.
        self._history: Float32Array = np.zeros(0, np.float32)
        self._history_start = 0
        self._speech_from: int | None = None  # inside speech since this stream sample

    @property
    def in_speech(self) -> bool:
        """Whether the detector is inside speech."""
        return self.detector.triggered

    def detect(self, samples: Float32Array) -> list[VadEvent]:
        """Run the detector on the next samples (the expensive half; see the module docstring)."""
        return self.detector.process(samples)

    def push(self, samples: Float32Array, events: list[VadEvent] | None) -> list[SpeechPiece]:
        """Take the next samples (with what :meth:`detect` said of them, or None to run it
        here); returns the speech they complete, in order."""
        if events is None:
            events = self.detect(samples)
        self._history = np.concatenate([self._history, samples])
        pieces: list[SpeechPiece] = []
        for event in events:
            if event.kind is VadEventKind.SPEECH_START:
                self._speech_from = max(event.sample, self._history_start)
            elif self._speech_from is not None:
                pieces.append(self._take(event.sample, ends_utterance=True))
                self._speech_from = None
        if self._speech_from is not None:
            pieces.append(self._take(self.detector.speech_until))
        keep_from = self.detector.processed_samples - self._pad_samples - 2 * WINDOW_SAMPLES
        if keep_from > self._history_start:
            self._history = self._history[keep_from - self._history_start :]
            self._history_start = keep_from
        return [p for p in pieces if p.samples.size or p.ends_utterance]

    def flush(self, until: int) -> SpeechPiece | None:
        """Let through the speech seen so far, up to stream sample ``until`` (the utterance is
        being ended from outside: a flush or the end of the stream)."""
        if self._speech_from is None:
            return None
        return self._take(until)

    def close(self) -> None:
        """The stream ended: nothing more is let through."""
        self._speech_from = None

    def _take(self, until: int, *, ends_utterance: bool = False) -> SpeechPiece:
        assert self._speech_from is not None
        lo = max(self._speech_from, self._history_start)
        hi = min(until, self._history_start + self._history.shape[0])
        samples = self._history[lo - self._history_start : hi - self._history_start]
        self._speech_from = max(self._speech_from, hi)
        return SpeechPiece(samples if hi > lo else np.zeros(0, np.float32), lo, ends_utterance)
