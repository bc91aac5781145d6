"""The one map between stream time and time inside a stretch of audio (pure).

With VAD on, the audio a processor decodes is speech runs laid end to end (the silence between
them left out). A :class:`Timeline` records where each run starts in the audio and in the stream;
the buffer, the requests built from it and the results that come back all map times through it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Timeline"]


@dataclass(frozen=True, slots=True)
class Timeline:
    """Where the runs of some audio lie in the stream.

    Attributes:
        runs: ``(seconds into the audio, stream seconds)`` at the start of each contiguous run, in
            order; the first run starts at 0 s in the audio.
        duration_s: length of the audio.
    """

    runs: tuple[tuple[float, float], ...]
    duration_s: float

    @classmethod
    def of(cls, offset_s: float, duration_s: float) -> Timeline:
        """Audio that is one run starting at stream time ``offset_s``."""
        return cls(((0.0, offset_s),), duration_s)

    def to_stream_s(self, audio_s: float) -> float:
        """Map a time in the audio to stream time (a run's time continues past its end)."""
        base, stream = 0.0, self.runs[0][1] if self.runs else 0.0
        for run_audio_s, run_stream_s in self.runs:
            if run_audio_s > audio_s:
                break
            base, stream = run_audio_s, run_stream_s
        return stream + (audio_s - base)

    def to_audio_s(self, stream_s: float) -> float:
        """Map a stream time to a time in the audio, clamped to it; a stream time in the gap
        between two runs maps to the start of the later run."""
        result = 0.0
        for i, (run_audio_s, run_stream_s) in enumerate(self.runs):
            if run_stream_s > stream_s:
                return min(result, run_audio_s) if i else 0.0
            result = run_audio_s + (stream_s - run_stream_s)
        return max(0.0, min(result, self.duration_s))
