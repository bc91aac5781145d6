"""Streaming Silero VAD (v6, ONNX, run by onnxruntime; no PyTorch).

The model that faster-whisper ships is run one 512-sample window (32 ms at 16 kHz) at a time,
with the recurrent state and the 64-sample context carried from one window to the next, so audio
can arrive in chunks of any size.
"""

from __future__ import annotations

import enum
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, Float32Array
from .config import VadOptions

__all__ = ["WINDOW_SAMPLES", "SileroModel", "StreamingVad", "VadEvent", "VadEventKind"]

WINDOW_SAMPLES = 512
CONTEXT_SAMPLES = 64
_STATE_SHAPE = (1, 1, 128)


class SileroModel:
    """The Silero VAD ONNX session. Thread-safe; share one per process (see :meth:`shared`)."""

    _shared: SileroModel | None = None
    _shared_lock = threading.Lock()

    def __init__(self, path: str | None = None) -> None:
        import onnxruntime

        if path is None:
            import faster_whisper

            path = os.path.join(
                os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx"
            )
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            path, providers=["CPUExecutionProvider"], sess_options=opts
        )

    @classmethod
    def shared(cls) -> SileroModel:
        """The process-wide instance, loaded on first use."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = SileroModel()
            return cls._shared

    def __call__(
        self, window: Float32Array, state: tuple[Any, Any]
    ) -> tuple[float, tuple[Any, Any]]:
        """Speech probability of one window (with context prepended), and the next state."""
        out, h, c = self._session.run(
            None, {"input": window[None, :], "h": state[0], "c": state[1]}
        )
        return float(np.asarray(out).ravel()[0]), (h, c)


class VadEventKind(enum.Enum):
    """What a :class:`VadEvent` marks."""

    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


@dataclass(frozen=True, slots=True)
class VadEvent:
    """A change between silence and speech at ``sample`` (absolute index in the stream).

    Speech-start events are moved ``speech_pad_ms`` earlier and speech-end events that much later.
    """

    kind: VadEventKind
    sample: int

    @property
    def time_s(self) -> float:
        """``sample`` in seconds."""
        return self.sample / SAMPLE_RATE


class StreamingVad:
    """Turns a stream of samples into speech-start / speech-end events.

    Hysteresis and timing follow Silero's ``VADIterator``: speech starts at the first window at or
    above ``threshold``; it ends once windows stay below ``threshold - neg_threshold_offset`` for
    ``min_silence_ms``.
    """

    def __init__(self, options: VadOptions | None = None, model: SileroModel | None = None) -> None:
        self.options = options or VadOptions()
        self._model = model or SileroModel.shared()
        self._pad = self.options.speech_pad_ms * SAMPLE_RATE // 1000
        self._min_silence = self.options.min_silence_ms * SAMPLE_RATE // 1000
        self.reset()

    def reset(self) -> None:
        """Forget all audio and state."""
        self._state: tuple[Any, Any] = (
            np.zeros(_STATE_SHAPE, np.float32),
            np.zeros(_STATE_SHAPE, np.float32),
        )
        self._context = np.zeros(CONTEXT_SAMPLES, np.float32)
        self._pending = np.zeros(0, np.float32)
        self.processed_samples = 0
        """Samples whose windows have been scored (a multiple of the window size)."""
        self.triggered = False
        """Whether the stream is currently inside speech."""
        self._temp_end = 0
        self._last_end = 0
        self.last_probability = 0.0

    @property
    def speech_until(self) -> int:
        """Stream index up to which audio surely belongs to speech (or its padding).

        Inside speech this is the scored audio, except during a pause that may yet end the speech:
        then it stops ``speech_pad_ms`` after the pause began.
        """
        if self.triggered and self._temp_end:
            return min(self.processed_samples, self._temp_end + self._pad)
        return self.processed_samples

    def process(self, samples: Float32Array) -> list[VadEvent]:
        """Feed samples; return the events decided by the windows they complete."""
        buf = np.concatenate([self._pending, np.asarray(samples, np.float32)])
        n_windows = buf.shape[0] // WINDOW_SAMPLES
        events: list[VadEvent] = []
        threshold = self.options.threshold
        neg_threshold = threshold - self.options.neg_threshold_offset
        for i in range(n_windows):
            window = buf[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES]
            prob, self._state = self._model(np.concatenate([self._context, window]), self._state)
            self._context = window[-CONTEXT_SAMPLES:]
            start = self.processed_samples
            self.processed_samples += WINDOW_SAMPLES
            self.last_probability = prob
            if prob >= threshold:
                self._temp_end = 0
                if not self.triggered:
                    self.triggered = True
                    events.append(
                        VadEvent(VadEventKind.SPEECH_START, max(self._last_end, start - self._pad))
                    )
            elif self.triggered and prob < neg_threshold:
                if not self._temp_end:
                    self._temp_end = start
                if self.processed_samples - self._temp_end >= self._min_silence:
                    end = self._temp_end + self._pad
                    events.append(VadEvent(VadEventKind.SPEECH_END, end))
                    self._last_end = end
                    self.triggered = False
                    self._temp_end = 0
        self._pending = buf[n_windows * WINDOW_SAMPLES :].copy()
        return events
