"""Adapter for faster-whisper (CTranslate2), the default backend."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..exceptions import BackendError, ConfigError
from .base import InferenceRequest, RequestKind, Segment, Transcription, Word
from .batched import BatchItem, decode_batch, group_key, transcription
from .models import DEFAULT_MODEL, resolve_model

__all__ = [
    "FasterWhisperBackend",
    "cuda_available",
    "default_cpu_threads",
    "resolve_compute_type",
    "resolve_device",
]

logger = logging.getLogger(__name__)

# Whisper's test for a decode stuck in a repetition loop (gzip compression ratio of its text).
_LOOP_COMPRESSION_RATIO = 2.4
# Whisper's encoder window and its frame rate (10 ms mel frames).
_WINDOW_S = 30.0
_FRAMES_PER_S = 100
# Tokens a decode may generate per second of audio, plus a constant: read speech runs at 3-4
# tokens per second with the segment timestamps, so this never cuts real speech; a decode stuck
# in a loop stops here instead of at Whisper's 448-token limit.
_TOKENS_PER_S = 8.0
_TOKENS_BASE = 16
# The prompt may take up to 223 tokens (Whisper's max_length // 2 - 1) plus the start sequence.
_MAX_NEW_TOKENS = 220

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


def default_cpu_threads(cores: int, workers: int) -> int:
    """Threads per decode: the cores shared between the workers, but at least two (never more
    than the cores), so a lone stream's decode uses both cores of a 2-core machine.

    Measured through the server on 2 cores with 2 workers (`python -m bench`, one sitting): one
    real-time stream's partial text p50 5.1 -> 2.2 s and final text p50 9.5 -> 7.6 s with 2
    threads instead of 1; four streams at once (the cores oversubscribed twice) final p50
    13.5 -> 13.3 s, p95 20.2 -> 21.3 s.
    """
    return min(cores, max(2, cores // max(1, workers)))


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
        encoder_min_s: run the encoder of hypothesis decodes (partial text) on the request's
            audio (rounded up to ``encoder_step_s``, at least this long) instead of on Whisper's
            30 s window; 30 disables it. Decodes that commit text and requests longer than 30 s
            (offline decoding) always use full windows.
        encoder_step_s: granularity of the encoder length, so lengths come in few buckets.
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
        encoder_min_s: float = 4.0,
        encoder_step_s: float = 2.0,
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
        if not 1.0 <= encoder_min_s <= _WINDOW_S:
            raise ConfigError(f"encoder_min_s must be in [1, 30], got {encoder_min_s}")
        if not 0.1 <= encoder_step_s <= _WINDOW_S:
            raise ConfigError(f"encoder_step_s must be in [0.1, 30], got {encoder_step_s}")
        self.encoder_min_s = encoder_min_s
        self.encoder_step_s = encoder_step_s
        self._encoder_frames = threading.local()  # per worker thread: frames the encoder sees
        if cpu_threads == 0 and self.device == "cpu":
            cpu_threads = default_cpu_threads(os.cpu_count() or 1, num_workers)
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
        # faster-whisper pads every window's features to 30 s before calling encode(); a
        # shorter request is encoded on its own length (see encoder_seconds).
        self._model.encode = _trimmed_encode(self._model.encode, self._encoder_frames)
        logger.info(
            "loaded faster-whisper model %s on %s (%s), %d worker(s)",
            self.model_name,
            self.device,
            self.compute_type,
            num_workers,
        )

    def encoder_seconds(self, request: InferenceRequest) -> float:
        """Seconds of audio the encoder runs on for ``request``.

        For a hypothesis, its length rounded up to ``encoder_step_s``, at least
        ``encoder_min_s``, at most Whisper's 30 s window (silence pads the rest, as
        faster-whisper pads to 30 s); 30 s for everything else.
        """
        duration_s = request.duration_s
        if request.kind is not RequestKind.HYPOTHESIS or duration_s > _WINDOW_S:
            return _WINDOW_S
        steps = math.ceil(duration_s / self.encoder_step_s - 1e-9)
        return min(_WINDOW_S, max(self.encoder_min_s, steps * self.encoder_step_s))

    def transcribe(self, request: InferenceRequest) -> Transcription:
        """Decode one request with word timestamps; see :class:`ASRBackend`.

        Every decode is bounded: the encoder runs on :meth:`encoder_seconds` of audio, and the
        decoder may generate at most ``8 tokens/s * duration + 16`` tokens (speech needs 3-4 per
        second), so a repetition loop stops within that budget. A decode that loops (a segment
        whose text compresses more than ``_LOOP_COMPRESSION_RATIO``, Whisper's own test) gets one
        retry, greedy and without the prompt (prompts are the usual trigger); the retry's
        result stands. Whisper's standard fallback also resamples decodes of low average
        log-probability at higher temperatures; that is not done here, so a decode stays
        deterministic (the same audio gives the same text, and partial text does not flicker).
        Measured on the six long-form files (engine, 1 s chunks), that fallback made no
        difference beyond run-to-run noise (12.64% against 12.74%); offline is 13.1% both ways.
        """
        max_new_tokens = _max_new_tokens(request)
        encoder_s = self.encoder_seconds(request)
        self._encoder_frames.value = round(encoder_s * _FRAMES_PER_S)
        try:
            result, looping = self._decode(
                request, request.prompt or None, request.beam_size, max_new_tokens
            )
            retries = 0
            if looping:
                retries = 1
                result, _ = self._decode(request, None, 1, max_new_tokens)
        finally:
            self._encoder_frames.value = None
        return dataclasses.replace(result, retries=retries, encoder_s=encoder_s)

    def _decode(
        self, request: InferenceRequest, prompt: str | None, beam_size: int, max_new_tokens: int
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
                beam_size=beam_size,
                word_timestamps=True,
                initial_prompt=prompt,
                condition_on_previous_text=False,
                vad_filter=False,
                temperature=[0.0],
                compression_ratio_threshold=_LOOP_COMPRESSION_RATIO,
                max_new_tokens=max_new_tokens,
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
            tokens=sum(len(s.tokens) for s in raw),
        )
        return transcription, looping

    def transcribe_batch(self, requests: Sequence[InferenceRequest]) -> list[Transcription]:
        """Decode several requests, those that can share them in one encoder call and one
        ``generate`` call (:mod:`.batched`): requests of up to 30 s with the same beam size,
        task, language and about the same prompt length. The rest, and a group of one,
        go through :meth:`transcribe`. A batched decode that loops is retried alone, greedy
        and without the prompt, as in :meth:`transcribe`."""
        results: list[Transcription | None] = [None] * len(requests)
        groups: dict[tuple[int, str, str | None, int], list[int]] = {}
        for index, request in enumerate(requests):
            language = request.language if self.is_multilingual else "en"
            if request.duration_s <= _WINDOW_S and language is not None:
                groups.setdefault(group_key(request, language), []).append(index)
        for (beam_size, task, language, _), indices in groups.items():
            if len(indices) < 2:
                continue
            items = [self._batch_item(requests[i]) for i in indices]
            try:
                decode_batch(self._model, items, task=task, language=language, beam_size=beam_size)
            except Exception as exc:
                raise BackendError(f"batched decode failed: {type(exc).__name__}: {exc}") from exc
            for i, item in zip(indices, items, strict=True):
                if item.compression_ratio > _LOOP_COMPRESSION_RATIO:
                    results[i] = self._retry_alone(requests[i])
                else:
                    results[i] = dataclasses.replace(
                        transcription(item), encoder_s=item.encoder_frames / _FRAMES_PER_S
                    )
        pairs = zip(results, requests, strict=True)
        return [r if r is not None else self.transcribe(q) for r, q in pairs]

    def _batch_item(self, request: InferenceRequest) -> BatchItem:
        return BatchItem(
            request,
            encoder_frames=round(self.encoder_seconds(request) * _FRAMES_PER_S),
            max_new_tokens=_max_new_tokens(request),
        )

    def _retry_alone(self, request: InferenceRequest) -> Transcription:
        encoder_s = self.encoder_seconds(request)
        self._encoder_frames.value = round(encoder_s * _FRAMES_PER_S)
        try:
            result, _ = self._decode(request, None, 1, _max_new_tokens(request))
        finally:
            self._encoder_frames.value = None
        return dataclasses.replace(result, retries=1, encoder_s=encoder_s)


def _max_new_tokens(request: InferenceRequest) -> int:
    """Tokens one decode of ``request`` may generate (per window of Whisper's)."""
    if request.duration_s > _WINDOW_S:  # offline: several windows, each may need them all
        return _MAX_NEW_TOKENS
    return min(_MAX_NEW_TOKENS, int(_TOKENS_PER_S * request.duration_s) + _TOKENS_BASE)


def _trimmed_encode(encode: Callable[[Any], Any], frames: threading.local) -> Callable[[Any], Any]:
    """Wrap ``WhisperModel.encode`` so it encodes only the first ``frames.value`` mel frames of
    the (30 s, zero-padded) window it is given, when the calling thread set a value."""

    def trimmed(features: Any) -> Any:
        n = getattr(frames, "value", None)
        if n is not None and features.shape[-1] > n:
            features = features[..., :n]
        return encode(features)

    return trimmed


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
