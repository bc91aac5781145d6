"""The faster-whisper adapter's bounds on one decode, without loading a model."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from whisper_streaming.backends.base import InferenceRequest, RequestKind
from whisper_streaming.backends.faster_whisper import FasterWhisperBackend, _trimmed_encode


def request(seconds: float, kind: RequestKind = RequestKind.HYPOTHESIS) -> InferenceRequest:
    return InferenceRequest(np.zeros(int(seconds * 16000), np.float32), 0.0, kind=kind)


@pytest.mark.parametrize(
    ("seconds", "kind", "expected"),
    [
        (0.5, RequestKind.HYPOTHESIS, 4.0),  # at least encoder_min_s
        (4.1, RequestKind.HYPOTHESIS, 6.0),  # rounded up to encoder_step_s
        (6.0, RequestKind.HYPOTHESIS, 6.0),
        (29.5, RequestKind.HYPOTHESIS, 30.0),  # never past Whisper's window
        (80.0, RequestKind.HYPOTHESIS, 30.0),  # offline: full windows
        (5.0, RequestKind.UTTERANCE_END, 30.0),  # decodes that commit keep the full window
        (5.0, RequestKind.WINDOW, 30.0),
        (5.0, RequestKind.CATCH_UP, 30.0),
    ],
)
def test_encoder_length_rule(seconds: float, kind: RequestKind, expected: float) -> None:
    backend = SimpleNamespace(encoder_min_s=4.0, encoder_step_s=2.0)
    got = FasterWhisperBackend.encoder_seconds(backend, request(seconds, kind))  # type: ignore[arg-type]
    assert got == pytest.approx(expected)


def test_trimmed_encode_cuts_the_padded_window_only_when_the_thread_asks() -> None:
    seen: list[tuple[int, ...]] = []

    def encode(features: Any) -> str:
        seen.append(features.shape)
        return "encoded"

    frames = threading.local()
    trimmed = _trimmed_encode(encode, frames)
    window = np.zeros((80, 3000), np.float32)
    assert trimmed(window) == "encoded"
    frames.value = 600
    trimmed(window)
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(trimmed(window)))
    thread.start()
    thread.join()
    frames.value = None
    trimmed(window)
    assert seen == [(80, 3000), (80, 600), (80, 3000), (80, 3000)]


@pytest.mark.parametrize(
    ("cores", "workers", "threads"), [(1, 2, 1), (2, 2, 2), (2, 1, 2), (16, 2, 8), (16, 8, 2)]
)
def test_default_cpu_threads(cores: int, workers: int, threads: int) -> None:
    from whisper_streaming.backends.faster_whisper import default_cpu_threads

    assert default_cpu_threads(cores, workers) == threads
