"""The resampler the JSON protocol uses for 8-48 kHz audio."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_streaming.audio import SAMPLE_RATE, StreamingResampler, resample
from whisper_streaming.exceptions import AudioError

RATES = [8000, 11025, 22050, 32000, 44100, 48000, 47999]


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(
        np.float32
    )


def _db(x: np.ndarray, reference_rms: float) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) / reference_rms))


@pytest.mark.parametrize("rate", RATES)
def test_speech_band_tone_keeps_its_shape_and_length(rate: int) -> None:
    out = resample(_tone(1000, rate, 2.0), rate)
    assert out.dtype == np.float32
    assert out.shape[0] == round(2.0 * SAMPLE_RATE)
    expected = _tone(1000, SAMPLE_RATE, 2.0)
    # The first and last 2 ms see the silence outside the stream.
    assert np.max(np.abs(out[64:-64] - expected[64:-64])) < 1e-4


@pytest.mark.parametrize("rate", [44100, 48000])
def test_content_above_8_khz_does_not_fold_into_the_speech_band(rate: int) -> None:
    """Linear interpolation (the first implementation) passed a 12 kHz tone as 4 kHz at -2 dB
    (44.1 kHz) and 0 dB (48 kHz)."""
    out = resample(_tone(12000, rate), rate)
    assert _db(out[64:-64], 0.5 / np.sqrt(2)) < -60
    # Just above the new Nyquist rate the filter is already well down.
    assert _db(resample(_tone(8600, rate), rate)[64:-64], 0.5 / np.sqrt(2)) < -60


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_the_speech_band_is_flat_up_to_7_khz(rate: int) -> None:
    """Whisper's mel filters reach 8 kHz: the top of the band is not rolled off early."""
    for freq in (3000, 6000, 7000, 7300):
        assert abs(_db(resample(_tone(freq, rate), rate)[64:-64], 0.5 / np.sqrt(2))) < 0.2


@pytest.mark.parametrize("rate", RATES)
def test_output_does_not_depend_on_how_the_stream_is_split(rate: int) -> None:
    x = np.random.default_rng(rate).standard_normal(rate * 2).astype(np.float32) * 0.1
    whole = resample(x, rate)
    resampler = StreamingResampler(rate)
    sizes = np.random.default_rng(0).integers(0, 3000, 200)
    parts, i = [], 0
    for size in sizes:
        parts.append(resampler.process(x[i : i + size]))
        i += size
    parts.append(resampler.process(x[i:]))
    parts.append(resampler.flush())
    chunked = np.concatenate(parts)
    assert chunked.shape == whole.shape
    assert np.allclose(chunked, whole, atol=1e-6)


def test_flush_returns_the_held_back_tail_and_ends_the_stream() -> None:
    resampler = StreamingResampler(48000)
    head = resampler.process(np.ones(4800, np.float32))
    assert 0 < head.shape[0] < 1600  # the filter's lookahead is held back
    tail = resampler.flush()
    assert head.shape[0] + tail.shape[0] == 1600
    assert resampler.flush().shape[0] == 0
    with pytest.raises(AudioError, match="flushed"):
        resampler.process(np.ones(10, np.float32))


def test_same_rate_passes_audio_through_untouched() -> None:
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    resampler = StreamingResampler(SAMPLE_RATE)
    assert np.array_equal(resampler.process(x), x)
    assert resampler.flush().shape[0] == 0


@pytest.mark.parametrize(("src", "dst"), [(0, 16000), (16000, 0), (-8000, 16000)])
def test_rates_must_be_positive(src: int, dst: int) -> None:
    with pytest.raises(AudioError, match="positive"):
        StreamingResampler(src, dst)
