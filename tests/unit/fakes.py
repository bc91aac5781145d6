"""Test doubles that stand in for models which cannot be scripted otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from whisper_streaming.vad import CONTEXT_SAMPLES


class EnergyVadModel:
    """A stand-in for Silero: a window is speech when its RMS exceeds ``level``."""

    def __init__(self, level: float = 0.05) -> None:
        self.level = level
        self.windows = 0

    def __call__(self, window: np.ndarray, state: tuple[Any, Any]) -> tuple[float, tuple[Any, Any]]:
        self.windows += 1
        rms = float(np.sqrt(np.mean(window[CONTEXT_SAMPLES:] ** 2)))
        return (1.0 if rms > self.level else 0.0), state
