"""Several sessions' requests in one encoder call and one ``generate`` call (CTranslate2).

faster-whisper's ``transcribe`` decodes one audio at a time. This module decodes a list of
requests together over the same ``ctranslate2.models.Whisper`` the shared ``WhisperModel``
holds, with faster-whisper's own helpers for the prompt, the segment split and the word times,
and the same rules as its ``transcribe`` with the options the backend uses (greedy or beam
search at temperature 0, Whisper's no-speech test, a window that ends in an unfinished segment
decoded again from its last timestamp). On a GPU one call for many sessions is the point; on
the CPU it pays little (see ``docs/performance.md``), so the server batches only when asked.

CTranslate2 needs ``<|startoftranscript|>`` at the same position in every prompt of a batch,
so requests are grouped by beam size, task, language and prompt length (:func:`group_key`), and
the prompts of a group are cut to the shortest one's length (their last tokens). A server's
prompts are the last ``prompt_chars`` (200) of committed text, so after the first sentences
they all fall in one group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import InferenceRequest, Segment, Transcription, Word

__all__ = ["BatchItem", "decode_batch", "group_key", "transcription"]

_WINDOW_FRAMES = 3000  # Whisper's 30 s window in 10 ms mel frames
_FRAMES_PER_S = 100
_NO_SPEECH_THRESHOLD = 0.6  # faster-whisper's defaults for its no-speech test
_LOG_PROB_THRESHOLD = -1.0
_MAX_INITIAL_TIMESTAMP_S = 1.0
_MAX_PASSES = 8  # windows decoded again from their last timestamp, at most
_PREPEND_PUNCTUATIONS = "\"'“¿([{-"
_APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass(slots=True)
class BatchItem:
    """One request of a batch and what its decode has found so far."""

    request: InferenceRequest
    encoder_frames: int  # mel frames the encoder sees (the window is cut to this)
    max_new_tokens: int  # per pass
    features: np.ndarray[Any, np.dtype[np.float32]] = field(
        default_factory=lambda: np.zeros((0, 0), np.float32)
    )
    seek: int = 0  # frames of the request already decoded
    passes: int = 0
    segments: list[Segment] = field(default_factory=list)
    tokens: int = 0
    compression_ratio: float = 0.0  # the highest of its passes
    language: str | None = None

    @property
    def content_frames(self) -> int:
        return int(self.features.shape[-1])

    @property
    def done(self) -> bool:
        return self.seek >= self.content_frames or self.passes >= _MAX_PASSES


def group_key(request: InferenceRequest, language: str | None) -> tuple[int, str, str | None, int]:
    """Requests with the same key can share a ``generate`` call: the same beam size, task and
    language, and prompts of about the same length (the same power of two in characters, so
    that cutting them to the shortest keeps at least about half of each; 0: no prompt)."""
    return (request.beam_size, request.task, language, len(request.prompt.strip()).bit_length())


def decode_batch(
    model: Any, items: Sequence[BatchItem], *, task: str, language: str | None, beam_size: int
) -> None:
    """Decode ``items`` (one group: the same :func:`group_key`) in
    batched passes; fills each item's ``segments``, ``tokens`` and ``compression_ratio``.

    ``model`` is a faster-whisper ``WhisperModel``; its ``model`` is the CTranslate2 Whisper.
    Raises whatever CTranslate2 raises.
    """
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task=task, language=language or "en"
    )
    suppress = get_suppressed_tokens(tokenizer, (-1,))
    previous = [_prompt_tokens(tokenizer, item.request.prompt) for item in items]
    keep = min(len(p) for p in previous)  # the same <|startoftranscript|> position for all
    prompts = {
        id(item): model.get_prompt(tokenizer, p[len(p) - keep :] if keep else [])
        for item, p in zip(items, previous, strict=True)
    }
    for item in items:
        item.features = model.feature_extractor(item.request.audio)[..., :-1]
        item.language = language
    bare = model.get_prompt(tokenizer, [])
    while active := [item for item in items if not item.done]:
        _decode_pass(model, tokenizer, suppress, active, prompts, bare, beam_size)


def _prompt_tokens(tokenizer: Any, prompt: str) -> list[int]:
    if not prompt.strip():
        return []
    tokens: list[int] = tokenizer.encode(" " + prompt.strip())
    return tokens[-223:]  # Whisper's max_length // 2 - 1, as faster-whisper keeps


def _decode_pass(
    model: Any,
    tokenizer: Any,
    suppress: Sequence[int],
    items: Sequence[BatchItem],
    prompts: dict[int, list[int]],
    bare: list[int],
    beam_size: int,
) -> None:
    """One encoder call and one generate call for every item's next window (all first
    windows, or all later ones: the prompts must line up)."""
    from faster_whisper.transcribe import get_compression_ratio

    frames = max(item.encoder_frames for item in items)
    windows = []
    sizes = []
    for item in items:
        size = min(_WINDOW_FRAMES, item.content_frames - item.seek)
        window = item.features[:, item.seek : item.seek + size]
        windows.append(np.pad(window, ((0, 0), (0, frames - window.shape[-1])))[:, :frames])
        sizes.append(size)
    encoder_output = model.encode(np.stack(windows).astype(np.float32))
    # As faster-whisper does without condition_on_previous_text: the prompt conditions a
    # request's first window only.
    batch_prompts = [prompts[id(item)] if item.seek == 0 else bare for item in items]
    max_length = min(
        model.max_length,
        max(len(p) + item.max_new_tokens for p, item in zip(batch_prompts, items, strict=True)),
    )
    results = model.model.generate(
        encoder_output,
        batch_prompts,
        beam_size=beam_size,
        max_length=max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=list(suppress),
        max_initial_timestamp_index=round(_MAX_INITIAL_TIMESTAMP_S / model.time_precision),
    )
    split: list[list[dict[str, Any]]] = []
    for item, size, result in zip(items, sizes, results, strict=True):
        item.passes += 1
        tokens = list(result.sequences_ids[0])
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        no_speech = result.no_speech_prob > _NO_SPEECH_THRESHOLD
        if no_speech and not avg_logprob > _LOG_PROB_THRESHOLD:
            item.seek += size
            split.append([])
            continue
        item.tokens += len(tokens)
        text_tokens = [t for t in tokens if t < tokenizer.eot]
        ratio = get_compression_ratio(tokenizer.decode(text_tokens)) if text_tokens else 0.0
        item.compression_ratio = max(item.compression_ratio, ratio)
        subsegments, seek, single_ending = model._split_segments_by_timestamps(
            tokenizer=tokenizer,
            tokens=tokens,
            time_offset=item.seek / _FRAMES_PER_S,
            segment_size=size,
            segment_duration=size / _FRAMES_PER_S,
            seek=item.seek,
        )
        for sub in subsegments:
            sub.update(no_speech_prob=result.no_speech_prob, avg_logprob=avg_logprob)
        # A window that ends in an unfinished segment is decoded again from its last timestamp.
        item.seek = item.seek + size if single_ending or seek <= item.seek else seek
        split.append(subsegments)
    if any(split):
        # Every item needs a segment list here; an empty placeholder aligns nothing and is
        # dropped below (a zero-length segment).
        placeholders = [[_empty(item)] for item in items]
        model.add_word_timestamps(
            [subs or empty for subs, empty in zip(split, placeholders, strict=True)],
            tokenizer,
            encoder_output,
            sizes,
            _PREPEND_PUNCTUATIONS,
            _APPEND_PUNCTUATIONS,
            0.0,
        )
    for item, subsegments in zip(items, split, strict=True):
        item.segments.extend(_segments(tokenizer, subsegments))


def _empty(item: BatchItem) -> dict[str, Any]:
    return {"seek": item.seek, "start": 0.0, "end": 0.0, "tokens": []}


def _segments(tokenizer: Any, subsegments: Sequence[dict[str, Any]]) -> list[Segment]:
    out = []
    for sub in subsegments:
        text = tokenizer.decode([t for t in sub["tokens"] if t < tokenizer.eot])
        if sub["start"] == sub["end"] or not text.strip():
            continue
        words = tuple(
            Word(str(w["word"]), float(w["start"]), float(w["end"]), float(w["probability"]))
            for w in sub.get("words", ())
        )
        out.append(
            Segment(
                start=float(sub["start"]),
                end=float(sub["end"]),
                text=text,
                words=words,
                no_speech_prob=float(sub["no_speech_prob"]),
                avg_logprob=float(sub["avg_logprob"]),
            )
        )
    return out


def transcription(item: BatchItem) -> Transcription:
    """The item's result as the backend returns it."""
    return Transcription(
        segments=tuple(item.segments),
        language=item.language,
        language_probability=1.0 if item.language else None,
        tokens=item.tokens,
    )
