"""Pure metric code: word alignment, latency attribution and percentiles.

Kept free of I/O so it is unit-tested on hand-made inputs with known answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Summary", "align", "lag_slope_s_per_min", "percentile", "summarize", "word_latencies"]


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[int | None, int | None]]:
    """Levenshtein alignment of two word lists.

    Returns pairs (ref index, hyp index): both set for a match or substitution, ref only for a
    deletion, hyp only for an insertion. Among alignments with the fewest edits, the one with the
    most exact matches is chosen (so a deletion plus an insertion beats two substitutions when it
    matches more words).
    """
    n, m = len(ref), len(hyp)
    # cost[i][j] = (edits, -matches) for ref[:i] against hyp[:j]
    cost = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = (i, 0)
    for j in range(1, m + 1):
        cost[0][j] = (j, 0)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            e, negm = cost[i - 1][j - 1]
            same = ref[i - 1] == hyp[j - 1]
            diag = (e, negm - 1) if same else (e + 1, negm)
            up = (cost[i - 1][j][0] + 1, cost[i - 1][j][1])
            left = (cost[i][j - 1][0] + 1, cost[i][j - 1][1])
            cost[i][j] = min(diag, up, left)
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            e, negm = cost[i - 1][j - 1]
            same = ref[i - 1] == hyp[j - 1]
            if cost[i][j] == ((e, negm - 1) if same else (e + 1, negm)):
                pairs.append((i - 1, j - 1))
                i, j = i - 1, j - 1
                continue
        if i > 0 and cost[i][j] == (cost[i - 1][j][0] + 1, cost[i - 1][j][1]):
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    pairs.reverse()
    return pairs


def matched(ref: Sequence[str], hyp: Sequence[str]) -> dict[int, int]:
    """ref index -> hyp index, for the words the alignment matches exactly."""
    return {
        r: h for r, h in align(ref, hyp) if r is not None and h is not None and ref[r] == hyp[h]
    }


def word_latencies(
    ref_words: Sequence[str],
    ref_end_s: Sequence[float],
    hyp_words: Sequence[str],
    hyp_arrival_s: Sequence[float],
    stream_start_s: float,
) -> list[float]:
    """Latency of every reference word the hypothesis got right.

    Args:
        ref_words: reference words (normalised).
        ref_end_s: end time of each reference word in the audio, in seconds.
        hyp_words: streamed words (normalised).
        hyp_arrival_s: wall-clock time each streamed word first arrived.
        stream_start_s: wall-clock time the audio started streaming.

    Returns:
        arrival - (stream start + word end), for matched words, in reference order.
    """
    pairs = matched(ref_words, hyp_words)
    return [hyp_arrival_s[h] - (stream_start_s + ref_end_s[r]) for r, h in sorted(pairs.items())]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution of a latency sample, in seconds."""

    count: int
    mean: float
    p50: float
    p90: float
    p95: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("count", "mean", "p50", "p90", "p95", "max")}


def summarize(values: Sequence[float]) -> Summary:
    """Mean, p50, p90, p95 and max."""
    if not values:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    return Summary(
        len(values),
        sum(values) / len(values),
        percentile(values, 50),
        percentile(values, 90),
        percentile(values, 95),
        max(values),
    )


def lag_slope_s_per_min(audio_times_s: Sequence[float], latencies_s: Sequence[float]) -> float:
    """Least-squares slope of latency against audio time, in seconds of lag per minute of audio.

    Near 0 when the server keeps up; positive when latency grows over the stream.
    """
    n = len(audio_times_s)
    if n < 2:
        return 0.0
    mx = sum(audio_times_s) / n
    my = sum(latencies_s) / n
    var = sum((x - mx) ** 2 for x in audio_times_s)
    if var == 0:
        return 0.0
    cov = sum((x - mx) * (y - my) for x, y in zip(audio_times_s, latencies_s, strict=True))
    return cov / var * 60.0
