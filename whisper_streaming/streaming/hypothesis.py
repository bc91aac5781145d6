"""What a decode heard: pure functions over :class:`Segment` and :class:`Word` lists.

Word normalisation, the agreed prefix of two hypotheses (LocalAgreement, Machacek et al., 2023),
removal of words that repeat the end of the committed text, the segments worth keeping (silence
and hallucination filters), and where a decode skipped speech.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..backends.base import InferenceRequest, Segment, Transcription, Word

__all__ = [
    "Heard",
    "agreed_prefix_length",
    "drop_committed",
    "find_skipped_speech",
    "first_words",
    "hear",
    "heard_segments",
    "is_hallucination",
    "normalize_word",
    "squeezed_tail",
    "words_text",
]

logger = logging.getLogger(__name__)

_NON_WORD = re.compile(r"[^\w']+")
_SAME_PLACE_S = 1e-3  # two skips this close are the same place


def normalize_word(word: str) -> str:
    """Lower-case the word and drop punctuation and spaces, for comparisons."""
    return _NON_WORD.sub("", word.lower())


def words_text(words: Sequence[Word]) -> str:
    """The text of ``words`` as Whisper writes it, without the leading space."""
    return "".join(w.word for w in words).strip()


def agreed_prefix_length(
    previous: Sequence[Word], current: Sequence[Word], *, max_shift_s: float | None = None
) -> int:
    """Number of leading words on which two consecutive hypotheses agree (normalised text, and
    with ``max_shift_s``, word ends at most that far apart)."""
    n = 0
    for a, b in zip(previous, current, strict=False):
        if normalize_word(a.word) != normalize_word(b.word):
            break
        if max_shift_s is not None and abs(a.end - b.end) > max_shift_s:
            break
        n += 1
    return n


# How far (in anchor windows) a run of 1, 2, 3+ repeated words may lie from the committed end.
_ANCHOR_REACH = (1.0, 3.0, float("inf"))


def drop_committed(
    words: Sequence[Word],
    committed_tail: Sequence[Word],
    committed_end_s: float,
    *,
    max_overlap_words: int = 5,
    anchor_window_s: float = 1.5,
) -> list[Word]:
    """Remove from a new hypothesis the words that were already committed.

    The buffer is re-decoded from its start, so a hypothesis repeats the committed words that are
    still in the buffer, with slightly different timestamps. The reference implementation drops
    words that start before the committed end (less 0.1 s) and then an n-gram overlap; with
    jittering word times that loses real words ("Mr. Hale, as he" -> "he" when "as" moved 0.2 s
    earlier). Here the hypothesis is anchored on the text instead: the longest run of the last
    committed words (up to ``max_overlap_words``) that the hypothesis repeats, near the
    committed end (one word: within ``anchor_window_s``; two: three windows; three or more:
    anywhere); everything after the anchor is new. Without an
    anchor, words whose midpoint lies after the committed end are new.

    Args:
        words: the hypothesis, absolute times.
        committed_tail: the last committed words, absolute times, oldest first.
        committed_end_s: end time of the last committed word (0 when none).
    """
    if not committed_tail:
        return list(words)
    tail = [normalize_word(w.word) for w in committed_tail[-max_overlap_words:]]
    last_start = committed_tail[-1].start
    norms = [normalize_word(w.word) for w in words]
    best: tuple[int, float, int] | None = None  # (run length, -distance, index after the run)
    for k in range(1, len(words) + 1):
        n = 0
        while n < min(len(tail), k) and norms[k - 1 - n] == tail[-1 - n]:
            n += 1
        if not n:
            continue
        if words[k - n].start > committed_end_s + anchor_window_s:
            # A run that starts after the committed end is new speech that happens to repeat
            # the last committed words ("... the lazy dog. The quick brown fox ... the lazy
            # dog."), not the committed words heard again: anchoring there loses it.
            continue
        # Word times are least reliable around speech the model skipped in one decode: the
        # words before the gap get stretched over it or moved to its end ("The best" committed
        # at 64.8-65.3 s, re-heard at 61.3-61.6 s). So the start is compared as well as the
        # end, and a longer run of repeated words may lie further away.
        distance = min(
            abs(words[k - 1].end - committed_end_s), abs(words[k - 1].start - last_start)
        )
        if distance > anchor_window_s * _ANCHOR_REACH[min(n, len(_ANCHOR_REACH)) - 1]:
            continue
        if best is None or (n, -distance) > best[:2]:
            best = (n, -distance, k)
    if best is not None:
        return list(words[best[2] :])
    return [w for w in words if (w.start + w.end) / 2 > committed_end_s]


def find_skipped_speech(
    words: Sequence[Word], audio_end_s: float | None, max_s: float, *, new_from_s: float = 0.0
) -> tuple[int, float] | None:
    """Where one decode skipped speech, as (index of the first word after it, start time).

    Whisper sometimes jumps over seconds of speech in a single decode: the word before the jump
    is stretched over it ("how" lasting 8.5 s), or the next words are placed after a long gap,
    or the decode starts its text long after the new (uncommitted) audio begins (20 s of a 30 s
    window without a word), or it ends long before its audio does. With VAD the audio holds
    only speech, so such spans are lost words; without VAD they may be real pauses, and decoding
    them again costs one more decode. A stretched word at the very start (before ``max_s / 2``)
    is not reported, since decoding again from there would not move forward.

    Args:
        words: the decode's words, times relative to its audio.
        audio_end_s: length of the decoded audio, to check its tail; None to skip that check.
        max_s: the longest word, or gap, that is taken as real.
        new_from_s: where the audio not yet committed begins (the words before it may be
            missing without loss).
    """
    if words and words[0].start - new_from_s > max_s:
        return 0, new_from_s
    previous_end: float | None = None
    for i, w in enumerate(words):
        if previous_end is not None and w.start - previous_end > max_s:
            return i, previous_end
        if w.end - w.start > max_s and w.start >= max_s / 2:
            return i, w.start
        previous_end = w.end
    if audio_end_s is not None and previous_end is not None and audio_end_s - previous_end > max_s:
        return len(words), previous_end
    return None


def _word_anomaly(word: Word) -> float:
    """Whisper's word anomaly score: improbable, very short or very long words score high."""
    duration = word.end - word.start
    score = 0.0
    if word.probability < 0.15:
        score += 1.0
    if duration < 0.133:
        score += (0.133 - duration) * 15
    if duration > 2.0:
        score += duration - 2.0
    return score


def is_hallucination(
    segment: Segment, *, max_logprob: float = -1.0, min_no_speech_prob: float = 0.3
) -> bool:
    """Whether a segment looks like text the model invented ("Thank you for watching.").

    Whisper's word anomaly score (as used by ``hallucination_silence_threshold`` in openai-whisper)
    flags segments of improbable, zero-length words. Real speech sometimes has a few such words, so
    a segment is only dropped when the decoder was also unsure: low average log-probability or a
    high no-speech probability. Seen with tiny.en on utterance ends when a prompt is given.
    """
    words = [w for w in segment.words if normalize_word(w.word)][:8]
    if not words:
        return False
    score = sum(_word_anomaly(w) for w in words)
    anomalous = score >= 3 or score + 0.01 >= len(words)
    unsure = segment.avg_logprob < max_logprob or segment.no_speech_prob > min_no_speech_prob
    return anomalous and unsure


def heard_segments(
    segments: Sequence[Segment], *, no_speech_threshold: float, logprob_threshold: float
) -> list[list[Word]]:
    """The words of each segment worth keeping, in decode order.

    A segment is dropped when it looks silent (no-speech probability above the threshold and
    average log-probability below its threshold, Whisper's own rule) or invented
    (:func:`is_hallucination`). A "word" of punctuation alone is noise (seen on white noise
    without VAD) and is dropped too.
    """
    kept: list[list[Word]] = []
    for seg in segments:
        if (
            seg.no_speech_prob > no_speech_threshold and seg.avg_logprob < logprob_threshold
        ) or is_hallucination(seg):
            logger.debug(
                "dropped segment %r (no_speech %.2f, logprob %.2f)",
                seg.text,
                seg.no_speech_prob,
                seg.avg_logprob,
            )
            continue
        kept.append([w for w in seg.words if normalize_word(w.word)])
    drop = squeezed_tail([w for seg_words in kept for w in seg_words])
    while drop and kept:
        n = min(drop, len(kept[-1]))
        logger.debug("dropped squeezed words %r", "".join(w.word for w in kept[-1][-n:]))
        kept[-1] = kept[-1][: len(kept[-1]) - n]
        drop -= n
        if not kept[-1]:
            kept.pop()
    return kept


SQUEEZED_S = 0.02
"""A word the alignment gives at most this long was placed in (almost) no audio."""


def squeezed_tail(words: Sequence[Word]) -> int:
    """How many of the last ``words`` the decoder invented: a run at the end of a decode of at
    least three words aligned to no audio (with at most one longer word among them).

    Seen with tiny.en when a buffer ends in a pause: the decoder repeats the last sentence (or
    makes one up) and the alignment squeezes those words into the last instant, where there is
    no speech for them ("... extend the period. The later traditions tend to extend the
    period." with every repeated word at 4.02 s). Their confidence is high, so the segment
    filters keep them. Real words are seldom squeezed, and never three in a row at the end."""
    squeezed = longer = drop = 0
    for i in range(len(words) - 1, -1, -1):
        if words[i].end - words[i].start <= SQUEEZED_S:
            squeezed += 1
            if squeezed >= 3:
                drop = len(words) - i
        else:
            longer += 1
            if longer > 1:
                break
    return drop


def first_words(
    segments_words: Sequence[Sequence[Word]], limit: int, to_stream_s: Callable[[float], float]
) -> tuple[list[Word], tuple[float, ...]]:
    """The first ``limit`` words, with times mapped by ``to_stream_s``, and the (mapped) end of
    every segment that keeps at least one of them."""
    words: list[Word] = []
    ends: list[float] = []
    for seg_words in segments_words:
        mapped = [
            Word(w.word, to_stream_s(w.start), to_stream_s(w.end), w.probability)
            for w in seg_words[: max(0, limit - len(words))]
        ]
        if mapped:
            words.extend(mapped)
            ends.append(mapped[-1].end)
    return words, tuple(ends)


@dataclass(frozen=True, slots=True)
class Heard:
    """What a decode heard, in stream time (see :func:`hear`)."""

    words: list[Word]
    segment_ends: tuple[float, ...]
    skipped_at: float | None


def hear(
    request: InferenceRequest,
    result: Transcription,
    *,
    no_speech_threshold: float,
    logprob_threshold: float,
    skipped_speech_s: float,
    committed_end_s: float,
    ignore_skip_at: float | None = None,
    empty_is_skip: bool = False,
) -> Heard:
    """Words of a decode in stream time, without segments that look silent or invented
    (:func:`heard_segments`), and where the model skipped speech (:func:`find_skipped_speech`)
    if it did: the words from there on are left out. With ``empty_is_skip``, a decode that kept
    no word at all skipped from its start. A skip at ``ignore_skip_at`` (stream time) is taken
    as it is (a second look at the same place)."""
    kept = heard_segments(
        result.segments,
        no_speech_threshold=no_speech_threshold,
        logprob_threshold=logprob_threshold,
    )
    audio_words = [w for seg_words in kept for w in seg_words]
    skip = find_skipped_speech(
        audio_words,
        request.duration_s if request.final else None,
        skipped_speech_s,
        new_from_s=request.to_audio_s(committed_end_s),
    )
    if empty_is_skip and not audio_words:
        skip = (0, 0.0)
    skipped_at = request.to_stream_s(skip[1]) if skip is not None else None
    if (
        skipped_at is not None
        and ignore_skip_at is not None
        and abs(skipped_at - ignore_skip_at) < _SAME_PLACE_S
    ):
        skip = skipped_at = None
    limit = skip[0] if skip is not None else len(audio_words)
    words, ends = first_words(kept, limit, request.to_stream_s)
    if skipped_at is not None:
        logger.debug(
            "decode #%d skipped speech at %.2f s: kept %r",
            request.request_id,
            skipped_at,
            words_text(words),
        )
    return Heard(words, ends, skipped_at)
