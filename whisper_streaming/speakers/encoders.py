"""The speaker-embedding seam: a small protocol and a scripted encoder for tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..audio import SAMPLE_RATE, Float32Array

__all__ = ["ScriptedEncoder", "SpeakerEncoder", "unit"]


class SpeakerEncoder(Protocol):
    """Turns speech (float32, mono, 16 kHz) into a voice embedding of unit length."""

    name: str

    def embed(self, samples: Float32Array) -> Float32Array:
        """The embedding of one stretch of one speaker's speech (at least ~0.5 s)."""
        ...


def unit(vector: npt.NDArray[np.floating[Any]]) -> Float32Array:
    """``vector`` scaled to unit length, as float32 (a zero vector stays zero)."""
    norm = float(np.linalg.norm(vector))
    out: Float32Array = (vector / norm if norm > 0 else vector).astype(np.float32)
    return out


class ScriptedEncoder:
    """An encoder for tests: ``voice(samples)`` says which voice (an integer) the audio is, and
    each voice has a fixed random direction, blurred by ``noise`` per call.

    With the default ``voice``, a tone's loudest frequency (to the nearest 50 Hz) is its voice.
    """

    name = "scripted"

    def __init__(
        self,
        voice: Callable[[Float32Array], int] | None = None,
        *,
        dimensions: int = 64,
        noise: float = 0.1,
        seed: int = 0,
    ) -> None:
        self._voice = voice or _dominant_frequency
        self._dimensions = dimensions
        self._noise = noise
        self._rng = np.random.default_rng(seed)
        self._directions: dict[int, Float32Array] = {}

    def embed(self, samples: Float32Array) -> Float32Array:
        voice = self._voice(samples)
        if voice not in self._directions:
            seeded = np.random.default_rng(abs(hash(voice)) % 2**32)
            self._directions[voice] = unit(seeded.standard_normal(self._dimensions))
        jitter = (
            self._rng.standard_normal(self._dimensions) * self._noise / np.sqrt(self._dimensions)
        )
        return unit(self._directions[voice] + jitter)


def _dominant_frequency(samples: Float32Array) -> int:
    spectrum = np.abs(np.fft.rfft(samples))
    hz = float(np.argmax(spectrum)) * SAMPLE_RATE / max(1, samples.shape[0])
    return int(round(hz / 50) * 50)
