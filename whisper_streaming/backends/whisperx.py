"""The WhisperX backend (optional extra ``whisperx``; brings PyTorch).

WhisperX runs its own voice activity detection (the pyannote segmentation model that ships
inside its wheel), merges the speech into chunks of up to 30 s and decodes them in batches with
faster-whisper, without timestamps. So each segment is a VAD chunk with its text:

- Word times come from forced alignment (a wav2vec2 CTC model) when ``align_model`` names a
  local model directory; otherwise each chunk's words are spread over the chunk by length
  (the streaming engine needs word times; those are estimates, and say so in the docs).
- Per request, the prompt, beam size, language and task are honoured (WhisperX keeps them in
  its pipeline's options; they are set for each decode, under a lock).
- Nothing is downloaded at run time: the VAD model is in the wheel, the ASR model is the
  embedded one or a local directory, and alignment needs its model and NLTK's ``punkt_tab``
  data on disk, checked at startup with a message that says what to fetch and where to put it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE
from ..exceptions import BackendError, ConfigError
from .base import InferenceRequest, Segment, Transcription, Word
from .faster_whisper import resolve_compute_type, resolve_device
from .models import DEFAULT_MODEL, resolve_model

__all__ = ["WhisperXBackend", "spread_words"]

logger = logging.getLogger(__name__)

_PUNKT = "tokenizers/punkt_tab/english/"


class WhisperXBackend:
    """Transcribes with ``whisperx.load_model`` (and aligns words with ``whisperx.align`` when
    an alignment model is given).

    Args:
        model: "tiny.en" (embedded, default), or a CTranslate2 model directory.
        device: "auto", "cpu" or "cuda".
        compute_type: CTranslate2 compute type ("auto": int8 on CPU, float16 on CUDA).
        language: the language every request is decoded in when it names none (None:
            detected per request on a multilingual model; English on an English-only one).
        batch_size: VAD chunks decoded together.
        cpu_threads: CTranslate2 threads on the CPU (0: one per core).
        vad_onset: WhisperX's VAD threshold to start speech.
        vad_offset: its threshold to end speech.
        align_model: a local wav2vec2 CTC model directory (Hugging Face format) for word
            alignment in ``language``; None: word times are estimated.

    Raises:
        BackendError: WhisperX is not installed, an option is not one of these, or the model
            did not load.
        ConfigError: the alignment model or NLTK's ``punkt_tab`` is missing (the message says
            what to download and where to put it).
    """

    name = "whisperx"

    def __init__(
        self,
        model: str | None = DEFAULT_MODEL,
        *,
        device: str = "auto",
        compute_type: str = "auto",
        language: str | None = None,
        batch_size: int = 8,
        cpu_threads: int = 0,
        vad_onset: float = 0.5,
        vad_offset: float = 0.363,
        align_model: str | None = None,
        **unsupported: Any,
    ) -> None:
        if unsupported:
            names = ", ".join(sorted(unsupported))
            raise BackendError(f"the whisperx backend has no option {names}")
        # pyannote.audio (WhisperX's VAD) reports usage to its makers unless told not to; this
        # server is meant to work offline and send nothing anywhere.
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
        try:
            import whisperx
        except ImportError as exc:
            raise BackendError(
                "the whisperx backend needs the optional extra: "
                "pip install 'whisper-streaming[whisperx]'"
            ) from exc
        self._wx = whisperx
        self.model_name = model or DEFAULT_MODEL
        self.max_concurrency = 1
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.compute_type = resolve_compute_type(compute_type, self.device)
        self._lock = threading.Lock()
        path = resolve_model(model)
        try:
            self._pipeline = whisperx.load_model(
                path,
                self.device,
                compute_type=self.compute_type,
                language=language,
                vad_method="pyannote",
                vad_options={"vad_onset": vad_onset, "vad_offset": vad_offset},
                threads=cpu_threads or os.cpu_count() or 1,
            )
        except Exception as exc:
            raise BackendError(f"WhisperX could not load {self.model_name!r}: {exc}") from exc
        self.is_multilingual = bool(self._pipeline.model.model.is_multilingual)
        self.language = language if self.is_multilingual else "en"
        self._align: tuple[Any, Any] | None = None
        if align_model is not None:
            self._align = self._load_alignment(align_model)
        logger.info(
            "loaded WhisperX with %s on %s (%s); word times %s",
            self.model_name,
            self.device,
            self.compute_type,
            f"aligned with {align_model}" if align_model else "estimated (no --align-model)",
        )

    def _load_alignment(self, directory: str) -> tuple[Any, Any]:
        if not os.path.isdir(directory):
            raise ConfigError(
                f"alignment model directory {directory!r} does not exist. WhisperX aligns words "
                "with a wav2vec2 CTC model in Hugging Face format; on a machine with access to "
                "the hub: huggingface-cli download facebook/wav2vec2-base-960h --local-dir "
                f"{directory} (English; other languages: jonatasgrosman/wav2vec2-large-xlsr-53-"
                "<language>), then copy the folder here"
            )
        if self.language is None:
            raise ConfigError(
                "an alignment model is for one language: set --language to its language"
            )
        import nltk

        try:
            nltk.data.find(_PUNKT)
        except LookupError:
            raise ConfigError(
                "WhisperX's alignment splits sentences with NLTK's punkt_tab data, which is not "
                "installed: python -m nltk.downloader -d /usr/local/share/nltk_data punkt_tab "
                "(or any folder named by NLTK_DATA)"
            ) from None
        try:
            model, metadata = self._wx.load_align_model(
                self.language, self.device, model_name=directory
            )
            return model, metadata
        except Exception as exc:
            raise ConfigError(f"cannot load the alignment model in {directory!r}: {exc}") from exc

    def transcribe(self, request: InferenceRequest) -> Transcription:
        """Decode one request (VAD, batched decode, then alignment or estimated word times);
        see :class:`ASRBackend`."""
        language = request.language or self.language
        task = request.task if self.is_multilingual else "transcribe"
        audio = np.ascontiguousarray(request.audio, np.float32)
        with self._lock:
            pipeline = self._pipeline
            defaults = pipeline.options
            pipeline.options = dataclasses.replace(
                defaults, beam_size=request.beam_size, initial_prompt=request.prompt or None
            )
            try:
                result = pipeline.transcribe(
                    audio, batch_size=self.batch_size, language=language, task=task
                )
                segments = result["segments"]
                if self._align is not None and segments:
                    model, metadata = self._align
                    segments = self._wx.align(
                        segments, model, metadata, audio, self.device, return_char_alignments=False
                    )["segments"]
            except Exception as exc:
                raise BackendError(f"WhisperX failed: {type(exc).__name__}: {exc}") from exc
            finally:
                pipeline.options = defaults
        duration = audio.shape[0] / SAMPLE_RATE
        return Transcription(
            tuple(_segment(s, duration) for s in segments if str(s.get("text", "")).strip()),
            result.get("language") or language,
            None,
        )

    def transcribe_batch(self, requests: Sequence[InferenceRequest]) -> list[Transcription]:
        """Decode several requests one after another (each is batched inside WhisperX)."""
        return [self.transcribe(r) for r in requests]


def _segment(seg: dict[str, Any], duration_s: float) -> Segment:
    start = float(seg["start"])
    end = min(max(float(seg["end"]), start), duration_s)
    text = str(seg["text"])
    aligned = [w for w in seg.get("words", ()) if "start" in w and "end" in w]
    probability = float(np.exp(seg["avg_logprob"])) if "avg_logprob" in seg else 1.0
    if aligned:
        words = tuple(
            Word(" " + str(w["word"]).strip(), float(w["start"]), float(w["end"]), float(score))
            for w in aligned
            if (score := w.get("score", probability)) is not None
        )
    else:
        words = spread_words(text, start, end, probability)
    return Segment(start, end, text, words, avg_logprob=float(seg.get("avg_logprob", 0.0)))


def spread_words(text: str, start: float, end: float, probability: float = 1.0) -> tuple[Word, ...]:
    """The words of ``text`` laid over ``[start, end]`` in proportion to their length (an
    estimate, for a segment decoded without timestamps)."""
    tokens = text.split()
    if not tokens:
        return ()
    weights = np.array([len(t) + 1 for t in tokens], np.float64)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return tuple(
        Word(" " + token, round(float(a), 3), round(float(b), 3), probability)
        for token, a, b in zip(tokens, edges[:-1], edges[1:], strict=True)
    )
