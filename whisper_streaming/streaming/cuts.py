"""Where to cut the buffer (pure decisions; the processor carries them out).

Three rules, in stream seconds:

- :func:`window_cut`: a full-beam decode of a window commits up to its last complete segment;
- :func:`trim_cut`: a long buffer drops audio whose text is committed, keeping context;
- :func:`cap_cut`: a buffer that would exceed ``max_buffer_s`` is cut even mid-hypothesis.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..backends.base import Word

__all__ = ["EPS_S", "cap_cut", "trim_cut", "window_cut"]

EPS_S = 1e-3


def window_cut(
    words: Sequence[Word],
    segment_ends: Sequence[float],
    *,
    window_end_s: float,
    committed_end_s: float,
    whole: bool,
    margin_s: float,
) -> float | None:
    """Where a full-beam decode of a window commits and cuts (None: nowhere yet).

    ``segment_ends[:-1]`` are the complete segments of the decode. The window is the whole buffer
    of a long utterance (``whole``), cut only at a complete segment past the committed text (on
    the six long-form files: 12.4-12.9% WER, against 13.2-13.5% when cut before its last words),
    or the oldest part of an overfull buffer, which must move on: failing a complete segment, it
    commits what ends ``margin_s`` before the window's end.
    """
    complete = [e for e in segment_ends[:-1] if e <= window_end_s]
    if whole:
        complete = [e for e in complete if e > committed_end_s + EPS_S]
        if not complete:
            return None
    if complete:
        return max(complete)
    ripe = [w.end for w in words if w.end <= window_end_s - margin_s]
    return max(ripe) if ripe else window_end_s - margin_s


def trim_cut(
    segment_ends: Sequence[float],
    hypothesis: Sequence[Word],
    *,
    buffer_start_s: float,
    committed_end_s: float,
    heard: bool,
    decoded_end_s: float,
    margin_s: float,
) -> tuple[float, bool] | None:
    """Where to trim a buffer grown past ``buffer_trimming_s``, and whether the cut may move to
    the next speech onset (None: not yet).

    At the end of a complete segment that lies in committed text, else at the end of the
    committed text when nothing uncommitted starts before it (both may move); a decode that
    heard nothing at all drops what it covered but its last ``margin_s``.
    """
    inside = [e for e in segment_ends[:-1] if buffer_start_s < e <= committed_end_s + EPS_S]
    if inside:
        return max(inside), True
    if committed_end_s > buffer_start_s and (
        not hypothesis or hypothesis[0].start >= committed_end_s - EPS_S
    ):
        return committed_end_s, True
    if not heard and not hypothesis:
        return decoded_end_s - margin_s, False
    return None


def cap_cut(
    segment_ends: Sequence[float],
    hypothesis: Sequence[Word],
    *,
    buffer_start_s: float,
    buffer_end_s: float,
    decoded_end_s: float,
    keep_s: float,
    margin_s: float,
    trim_s: float,
) -> float | None:
    """Where to cut a buffer that holds more than ``keep_s``: the last complete segment, else
    the last word that ends ``margin_s`` before the buffer's end, else ``trim_s`` before it;
    never keeping more than ``keep_s`` and never past the decoded audio. None: the audio piled up
    beyond this decode (the next request decodes the oldest window; cutting would drop
    undecoded audio)."""
    limit = buffer_end_s - keep_s
    if limit >= decoded_end_s - EPS_S:
        return None
    complete = [e for e in segment_ends[:-1] if e > buffer_start_s]
    ripe = [w.end for w in hypothesis if w.end <= buffer_end_s - margin_s]
    if complete:
        cut = max(complete)
    elif ripe:
        cut = max(ripe)
    else:
        cut = buffer_end_s - trim_s
    return min(max(cut, limit), decoded_end_s)
