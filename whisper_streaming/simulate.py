"""Stream a file through the processor and a backend with no server (computation-unaware).

Like ``whisper_online.py``'s offline simulation: feed ``min_chunk_s`` of audio, run every decode
that is then due, repeat; finish the stream at the end of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .audio import SAMPLE_RATE, Float32Array
from .backends.base import ASRBackend, Word
from .config import ProcessorOptions
from .streaming.hypothesis import words_text
from .streaming.processor import ASRProcessor, TranscriptUpdate

__all__ = ["SimulationResult", "simulate"]


@dataclass(slots=True)
class SimulationResult:
    """Everything a simulation committed, plus the largest buffers the processor held."""

    words: list[Word] = field(default_factory=list)
    updates: int = 0
    decodes: int = 0
    max_buffer_s: float = 0.0
    max_request_s: float = 0.0

    @property
    def text(self) -> str:
        """The committed transcript."""
        return words_text(self.words)


def simulate(
    samples: Float32Array,
    backend: ASRBackend,
    options: ProcessorOptions | None = None,
    *,
    on_update: Callable[[float, TranscriptUpdate], None] | None = None,
    chunks_s: Iterable[float] | None = None,
) -> SimulationResult:
    """Stream ``samples`` through a new processor in ``min_chunk_s`` steps.

    Args:
        on_update: called with (seconds of audio fed, update) after every decode.
        chunks_s: sizes of the successive chunks to feed instead (a server sees uneven chunks:
            network timing, and decodes that take longer than a chunk). When it runs out, the
            rest of the audio is fed in ``min_chunk_s`` steps.
    """
    proc = ASRProcessor(options)
    result = SimulationResult()
    step = int(proc.options.min_chunk_s * SAMPLE_RATE)
    sizes = iter(chunks_s if chunks_s is not None else ())

    def run_due() -> bool:
        while (req := proc.next_request()) is not None:
            result.decodes += 1
            result.max_request_s = max(result.max_request_s, req.duration_s)
            update = proc.apply(req, backend.transcribe(req))
            result.updates += 1
            result.words.extend(update.committed)
            result.max_buffer_s = max(result.max_buffer_s, proc.buffer_duration_s)
            if on_update is not None:
                on_update(proc.stream_time_s, update)
            if update.final:
                return True
        return False

    i = 0
    while i < samples.shape[0]:
        size_s = next(sizes, None)
        n = step if size_s is None else int(size_s * SAMPLE_RATE)
        if n <= 0:
            raise ValueError(f"chunk sizes must be positive, got {size_s}")
        proc.insert_audio(samples[i : i + n])
        i += n
        result.max_buffer_s = max(result.max_buffer_s, proc.buffer_duration_s)
        run_due()
    final = proc.finish()
    if final.final:
        result.words.extend(final.committed)
        if on_update is not None:
            on_update(proc.stream_time_s, final)
    else:
        run_due()
    return result
