"""The audio a processor decodes: speech runs laid end to end, mapped back to stream time (pure)."""

from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE, Float32Array
from .timeline import Timeline

__all__ = ["SpeechBuffer"]

_RUN_TAIL_S = 0.4  # VAD padding plus word-time jitter at the end of a speech run


class SpeechBuffer:
    """Samples being decoded. With VAD they are a concatenation of speech runs (silence left
    out); ``anchors`` maps them to the stream: ``(buffer index, stream index)`` where each run
    starts. Without VAD there is one run."""

    def __init__(self) -> None:
        self._joined: Float32Array = np.zeros(0, np.float32)
        self._pending: list[Float32Array] = []  # appended since the last join
        self._len = 0
        self.anchors: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return self._len

    @property
    def samples(self) -> Float32Array:
        """The buffered samples, contiguous. Appends are joined here, once per read, so a
        buffer that grows chunk by chunk is not copied whole at every chunk."""
        if self._pending:
            self._joined = np.concatenate([self._joined, *self._pending])
            self._pending = []
        return self._joined

    @property
    def duration_s(self) -> float:
        """Seconds of audio held."""
        return len(self) / SAMPLE_RATE

    @property
    def start_s(self) -> float:
        """Stream time of the first sample (0 when empty)."""
        return self.anchors[0][1] / SAMPLE_RATE if self.anchors else 0.0

    @property
    def end_s(self) -> float:
        """Stream time just after the last sample (0 when empty)."""
        if not self.anchors:
            return 0.0
        b, s = self.anchors[-1]
        return float(s + len(self) - b) / SAMPLE_RATE

    @property
    def runs_s(self) -> tuple[tuple[float, float], ...]:
        """``(buffer time, stream time)`` where each run starts, in seconds."""
        return tuple((b / SAMPLE_RATE, s / SAMPLE_RATE) for b, s in self.anchors)

    def append(self, samples: Float32Array, stream_start: int) -> None:
        """Add samples starting at stream sample ``stream_start`` (a new run if not contiguous)."""
        n = len(self)
        if not n:
            self.anchors = [(0, stream_start)]
        else:
            b, s = self.anchors[-1]
            if s + (n - b) != stream_start:
                self.anchors.append((n, stream_start))
        self._pending.append(np.array(samples, np.float32, copy=True))
        self._len += int(samples.shape[0])

    @property
    def timeline(self) -> Timeline:
        """Where the buffered audio lies in the stream."""
        return Timeline(self.runs_s, self.duration_s)

    def index_of(self, stream_s: float) -> int:
        """Buffer index of a stream time (a time in a gap maps to the next run's start)."""
        if not self.anchors:
            return 0
        return int(round(self.timeline.to_audio_s(stream_s) * SAMPLE_RATE))

    def seconds_after(self, stream_s: float) -> float:
        """Seconds of buffered audio after a stream time."""
        return (len(self) - self.index_of(stream_s)) / SAMPLE_RATE

    def snap_to_run_start(self, at_s: float, committed_end_s: float) -> float:
        """Move a trimming cut to the start of the next speech run when the rest of its run is
        already committed, so the buffer starts at a speech onset (with its VAD padding) rather
        than at a word boundary. Measured: 1.3 WER points better on the long-form files."""
        target = at_s * SAMPLE_RATE
        for i, (b, s) in enumerate(self.anchors[:-1]):
            b_next, s_next = self.anchors[i + 1]
            run_end_s = (s + (b_next - b)) / SAMPLE_RATE
            if s <= target < s_next:
                if committed_end_s >= run_end_s - _RUN_TAIL_S:
                    return float(s_next) / SAMPLE_RATE
                return at_s
        return at_s

    def cut_samples(self, n: int) -> int:
        """Drop the first ``n`` samples (clamped); returns how many were dropped."""
        n = max(0, min(n, len(self)))
        if not n:
            return 0
        self._joined = self.samples[n:].copy()
        self._len -= n
        anchors = []
        for i, (b, s) in enumerate(self.anchors):
            run_end = self.anchors[i + 1][0] if i + 1 < len(self.anchors) else None
            if run_end is not None and run_end <= n:
                continue
            anchors.append((0, s + n - b) if b < n else (b - n, s))
        self.anchors = anchors if len(self) else []
        return n
