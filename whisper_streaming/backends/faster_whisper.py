"""Adapter for faster-whisper (CTranslate2), the default backend."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from ..exceptions import BackendError, ConfigError
from .base import InferenceRequest, Segment, Transcription, Word
from .models import DEFAULT_MODEL, resolve_model

__all__ = ["FasterWhisperBackend", "cuda_available", "resolve_compute_type", "resolve_device"]

logger = logging.getLogger(__name__)

# Whisper's test for a decode stuck in a repetition loop (gzip compression ratio of its text).
_LOOP_COMPRESSION_RATIO = 2.4

DEVICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    """Whether CTranslate2 sees at least one CUDA device."""
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count()) > 0
    except Exception:  # a broken CUDA install must not stop CPU inference
        return False


def resolve_device(device: str) -> str:
    """Map "auto" to "cuda" when a GPU is visible, else "cpu"."""
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device


def resolve_compute_type(compute_type: str, device: str) -> str:
    """Map "auto" to float16 on CUDA and int8 on the CPU."""
    if compute_type == "auto":
        return "float16" if device == "cuda" else "int8"
    return compute_type


class FasterWhisperBackend:
    """Transcribes requests with a shared faster-whisper ``WhisperModel``.

    One model serves every session. ``num_workers`` CTranslate2 workers let that many threads
    decode at once while sharing the weights.

    Args:
        model: model name or directory (see :func:`resolve_model`).
        device: "auto", "cpu" or "cuda".
        compute_type: "auto" or any CTranslate2 compute type ("int8", "float16", ...).
        cpu_threads: threads per decode on the CPU (0: CTranslate2's default).
        num_workers: decodes that may run in parallel.
        temperatures: fallback temperatures; a short tuple keeps worst-case latency bounded.
        download_root: where hub downloads go.
        local_files_only: never download.

    Raises:
        ModelNotFoundError: the model cannot be found.
        BackendError: CTranslate2 cannot load it.
    """

    name = "faster_whisper"

    def __init__(
        self,
        model: str | None = DEFAULT_MODEL,
        *,
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
        num_workers: int = 1,
        temperatures: Sequence[float] = (0.0, 0.2, 0.4),
        download_root: str | None = None,
        local_files_only: bool = False,
    ) -> None:
        if num_workers < 1:
            raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
        if cpu_threads < 0:
            raise ConfigError(f"cpu_threads must be >= 0, got {cpu_threads}")
        self.model_name = model or DEFAULT_MODEL
        self.device = resolve_device(device)
        self.compute_type = resolve_compute_type(compute_type, self.device)
        self.max_concurrency = num_workers
        self._temperatures = tuple(temperatures)
        if cpu_threads == 0 and self.device == "cpu":
            # Share the cores between the workers instead of oversubscribing them.
            cpu_threads = max(1, (os.cpu_count() or 1) // num_workers)
        self.cpu_threads = cpu_threads
        path = resolve_model(model, download_root=download_root, local_files_only=local_files_only)
        from faster_whisper import WhisperModel

        try:
            self._model = WhisperModel(
                path,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=cpu_threads,
                num_workers=num_workers,
            )
        except Exception as exc:
            raise BackendError(f"cannot load model {self.model_name!r} from {path}: {exc}") from exc
        self.is_multilingual = bool(self._model.model.is_multilingual)
        logger.info(
            "loaded faster-whisper model %s on %s (%s), %d worker(s)",
            self.model_name,
            self.device,
            self.compute_type,
            num_workers,
        )

    def transcribe(self, request: InferenceRequest) -> Transcription:
        """Decode one request with word timestamps; see :class:`ASRBackend`.

        The decode runs at temperature 0 first and is accepted unless it loops (a segment whose
        text compresses more than ``_LOOP_COMPRESSION_RATIO``, as Whisper's own fallback tests).
        A looping decode is retried without the prompt (prompts are the usual trigger), and only
        then with faster-whisper's temperature fallback. Whisper's standard fallback also
        resamples decodes of low average log-probability (sampling at 0.2 and 0.4); that is
        not done here, so a decode stays deterministic (the same audio gives the same text, and
        partial text does not flicker between samples). Measured on the six long-form files
        (engine, 1 s chunks), neither way is better beyond run-to-run noise: 12.64% with the
        standard fallback against 12.74% with this under the ``segments`` policy (session 4),
        13.6-14.0% against 14.1% under LocalAgreement (session 2); offline is 13.1% both ways.
        """
        attempts: list[tuple[str | None, tuple[float, ...]]] = [(request.prompt or None, (0.0,))]
        if request.prompt:
            attempts.append((None, (0.0,)))
        attempts.append((request.prompt or None, self._temperatures))
        result = Transcription()
        for prompt, temperatures in attempts:
            result, looping = self._decode(request, prompt, temperatures)
            if not looping:
                break
        return result

    def _decode(
        self, request: InferenceRequest, prompt: str | None, temperatures: tuple[float, ...]
    ) -> tuple[Transcription, bool]:
        language = request.language
        if not self.is_multilingual:
            language = "en"
        task = request.task if self.is_multilingual else "transcribe"
        try:
            segments, info = self._model.transcribe(
                request.audio,
                language=language,
                task=task,
                beam_size=request.beam_size,
                word_timestamps=True,
                initial_prompt=prompt,
                condition_on_previous_text=False,
                vad_filter=False,
                temperature=list(temperatures),
                compression_ratio_threshold=_LOOP_COMPRESSION_RATIO,
            )
            # The segments are a lazy generator: consume it here, on the worker thread.
            raw = list(segments)
        except Exception as exc:
            raise BackendError(f"faster-whisper failed: {type(exc).__name__}: {exc}") from exc
        looping = any(s.compression_ratio > _LOOP_COMPRESSION_RATIO for s in raw)
        transcription = Transcription(
            segments=tuple(_segment(s) for s in raw),
            language=info.language,
            language_probability=float(info.language_probability),
        )
        return transcription, looping

    def transcribe_batch(self, requests: Sequence[InferenceRequest]) -> list[Transcription]:
        """Decode several requests one after another."""
        return [self.transcribe(r) for r in requests]


def _segment(seg: Any) -> Segment:
    words = tuple(
        Word(str(w.word), float(w.start), float(w.end), float(w.probability))
        for w in (seg.words or ())
    )
    return Segment(
        start=float(seg.start),
        end=float(seg.end),
        text=str(seg.text),
        words=words,
        no_speech_prob=float(seg.no_speech_prob),
        avg_logprob=float(seg.avg_logprob),
    )
