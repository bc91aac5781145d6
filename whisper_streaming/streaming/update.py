"""What the processor reports after each step (pure values)."""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import Word
from .hypothesis import words_text

__all__ = ["TranscriptUpdate"]


@dataclass(frozen=True, slots=True)
class TranscriptUpdate:
    """What changed after one step. Word times are seconds from the start of the stream.

    Attributes:
        committed: words confirmed by this step, in order; never revised later.
        partial: the whole unconfirmed tail as it stands now; replaces the previous partial.
        utterance_end: an utterance was finalized (VAD end of speech, flush or finish).
        final: the stream is finished; no more updates will come.
        language: detected language, set on the first update that knows it.
        language_probability: probability of ``language``.
        segment_ends: stream times at which the model ended a segment among ``committed``.
    """

    committed: tuple[Word, ...] = ()
    partial: tuple[Word, ...] = ()
    utterance_end: bool = False
    final: bool = False
    language: str | None = None
    language_probability: float | None = None
    segment_ends: tuple[float, ...] = ()

    @property
    def committed_text(self) -> str:
        """Text of ``committed``."""
        return words_text(self.committed)

    @property
    def partial_text(self) -> str:
        """Text of ``partial``."""
        return words_text(self.partial)
