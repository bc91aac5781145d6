"""Online speaker clustering: one label per voice for the whole stream (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import Float32Array
from .encoders import unit

__all__ = ["OnlineClustering", "SpeakerAssignment"]


@dataclass(frozen=True, slots=True)
class SpeakerAssignment:
    """The label given to one stretch of speech, and how sure it is."""

    speaker: int  # 0, 1, ... in order of first appearance
    similarity: float  # cosine similarity to the speaker's voice (1.0 for a new speaker)
    new: bool  # this stretch opened a new speaker


class OnlineClustering:
    """Assigns each embedding to the most similar known speaker, or to a new one.

    A speaker's voice is the duration-weighted mean of the embeddings assigned to it, so it
    settles as the speaker talks. An embedding at least ``threshold`` similar (cosine) to the
    closest voice joins it; a less similar one opens a new speaker, unless ``max_speakers`` are
    known already (then it joins the closest). Stretches shorter than ``min_new_speaker_s``
    never open a speaker (a short "yes" carries little of a voice); they join the closest.

    Args:
        threshold: cosine similarity needed to join a known speaker.
        max_speakers: cap on the number of speakers in one stream.
        min_new_speaker_s: shortest stretch that may open a new speaker.
    """

    def __init__(
        self, threshold: float = 0.7, max_speakers: int = 8, min_new_speaker_s: float = 1.0
    ) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity (-1..1), got {threshold}")
        if max_speakers < 1:
            raise ValueError(f"max_speakers must be >= 1, got {max_speakers}")
        self.threshold = threshold
        self.max_speakers = max_speakers
        self.min_new_speaker_s = min_new_speaker_s
        self._sums: list[Float32Array] = []  # duration-weighted sums of embeddings
        self._voices: list[Float32Array] = []  # their unit-length means

    @property
    def speakers(self) -> int:
        """Speakers known so far."""
        return len(self._voices)

    def assign(self, embedding: Float32Array, duration_s: float) -> SpeakerAssignment:
        """Label one stretch of speech (``embedding`` of ``duration_s`` seconds)."""
        vector = unit(np.asarray(embedding, np.float32))
        choice = self._choose(vector, duration_s)
        weight = max(duration_s, 1e-3)
        if choice.new:
            self._sums.append(weight * vector)
            self._voices.append(vector)
        else:
            self._sums[choice.speaker] = self._sums[choice.speaker] + weight * vector
            self._voices[choice.speaker] = unit(self._sums[choice.speaker])
        return choice

    def peek(self, embedding: Float32Array, duration_s: float) -> SpeakerAssignment:
        """The label :meth:`assign` would give now, changing nothing."""
        return self._choose(unit(np.asarray(embedding, np.float32)), duration_s)

    def _choose(self, vector: Float32Array, duration_s: float) -> SpeakerAssignment:
        if self._voices:
            similarities = np.array([float(v @ vector) for v in self._voices])
            best = int(np.argmax(similarities))
            similarity = float(similarities[best])
            may_open = duration_s >= self.min_new_speaker_s and self.speakers < self.max_speakers
            if similarity >= self.threshold or not may_open:
                return SpeakerAssignment(best, similarity, False)
        return SpeakerAssignment(len(self._voices), 1.0, True)
