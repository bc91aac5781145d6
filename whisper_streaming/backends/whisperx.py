"""Adapter for WhisperX (optional extra ``whisperx``; brings PyTorch).

WhisperX decodes with faster-whisper and refines word times with a wav2vec2 alignment model.
The alignment model must be available locally (WhisperX downloads it otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..exceptions import BackendError
from .base import InferenceRequest, Segment, Transcription, Word
from .faster_whisper import resolve_compute_type, resolve_device
from .models import DEFAULT_MODEL, resolve_model

__all__ = ["WhisperXBackend"]


class WhisperXBackend:
    """Transcribes with ``whisperx.load_model`` and aligns words with ``whisperx.align``.

    Raises:
        BackendError: WhisperX is not installed (``pip install 'whisper-streaming[whisperx]'``).
    """

    name = "whisperx"

    def __init__(
        self,
        model: str | None = DEFAULT_MODEL,
        *,
        device: str = "auto",
        compute_type: str = "auto",
        language: str = "en",
        **_: Any,
    ) -> None:
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
        self.device = resolve_device(device)
        compute = resolve_compute_type(compute_type, self.device)
        path = resolve_model(model)
        try:
            self._model = whisperx.load_model(
                path, self.device, compute_type=compute, language=language
            )
            self._align_model, self._align_meta = whisperx.load_align_model(language, self.device)
        except Exception as exc:
            raise BackendError(f"WhisperX could not load its models: {exc}") from exc

    def transcribe(self, request: InferenceRequest) -> Transcription:
        """Decode, then align words; see :class:`ASRBackend`."""
        try:
            result = self._model.transcribe(request.audio, batch_size=1, language=request.language)
            aligned = self._wx.align(
                result["segments"], self._align_model, self._align_meta, request.audio, self.device
            )
        except Exception as exc:
            raise BackendError(f"WhisperX failed: {exc}") from exc
        return Transcription(
            tuple(_segment(s) for s in aligned["segments"]), result.get("language"), None
        )

    def transcribe_batch(self, requests: Sequence[InferenceRequest]) -> list[Transcription]:
        """Decode several requests one after another."""
        return [self.transcribe(r) for r in requests]


def _segment(seg: dict[str, Any]) -> Segment:
    words = tuple(
        Word(" " + str(w["word"]), float(w["start"]), float(w["end"]), float(w.get("score", 1.0)))
        for w in seg.get("words", ())
        if "start" in w and "end" in w
    )
    return Segment(float(seg["start"]), float(seg["end"]), str(seg["text"]), words)
