"""Benchmark metrics on synthetic inputs with known answers."""

import math

import pytest

from bench.metrics import align, lag_slope_s_per_min, percentile, summarize, word_latencies


def test_alignment_with_insertions_deletions_and_substitutions() -> None:
    """Matches, a substitution, a deletion and an insertion are all placed correctly."""
    ref = "the cat sat on the mat".split()
    hyp = "the bat sat the mat today".split()
    pairs = align(ref, hyp)
    assert pairs == [(0, 0), (1, 1), (2, 2), (3, None), (4, 3), (5, 4), (None, 5)]


def test_alignment_of_empty_sides() -> None:
    """Everything is a deletion or an insertion when one side is empty."""
    assert align(["a", "b"], []) == [(0, None), (1, None)]
    assert align([], ["a"]) == [(None, 0)]


def test_latency_for_a_hand_made_timeline() -> None:
    """Latency = arrival - (stream start + word end), for matched words only."""
    ref = ["hello", "big", "world"]
    ref_end = [0.5, 1.0, 1.5]
    hyp = ["hello", "world", "again"]
    arrivals = [100.8, 102.0, 103.0]
    assert word_latencies(ref, ref_end, hyp, arrivals, stream_start_s=100.0) == pytest.approx(
        [0.3, 0.5]
    )


def test_percentiles_and_summary() -> None:
    """Linear-interpolated percentiles; NaN for an empty sample."""
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(4.6)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
    s = summarize(values)
    assert (s.count, s.mean, s.p50, s.max) == (5, 3.0, 3.0, 5.0)
    assert s.p95 == pytest.approx(4.8)


def test_lag_slope() -> None:
    """Latency growing 1 s per minute of audio has slope 1; constant latency has 0."""
    t = [0.0, 30.0, 60.0, 90.0]
    assert lag_slope_s_per_min(t, [1.0, 1.5, 2.0, 2.5]) == pytest.approx(1.0)
    assert lag_slope_s_per_min(t, [0.7] * 4) == pytest.approx(0.0)
    assert lag_slope_s_per_min([1.0], [2.0]) == 0.0
