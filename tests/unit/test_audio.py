"""The resampler the JSON protocol uses for 8-48 kHz audio, and the WAV writer of --save-audio."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from whisper_streaming.audio import (
    SAMPLE_RATE,
    StreamingResampler,
    WavWriter,
    decode_file,
    read_wav,
    resample,
)
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
    # The first and last 8 ms see the silence outside the stream (the filter is longest at
    # 8 kHz); in between, the tone to within 5e-5 (-80 dB).
    assert np.max(np.abs(out[128:-128] - expected[128:-128])) < 5e-5


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


def test_wav_writer_round_trips_float_samples_exactly(tmp_path: Path) -> None:
    """What the server saves with --save-audio decodes back to the very samples it was given."""
    rng = np.random.default_rng(0)
    chunks = [rng.uniform(-1, 1, n).astype(np.float32) for n in (1600, 3, 0, 4799)]
    writer = WavWriter(tmp_path / "a.wav")
    for chunk in chunks:
        writer.write(chunk)
    writer.close()
    writer.close()  # idempotent
    assert writer.closed and writer.frames == 6402
    data = (tmp_path / "a.wav").read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    fmt, channels, rate = struct.unpack("<HHI", data[20:28])
    assert (fmt, channels, rate) == (3, 1, SAMPLE_RATE)  # IEEE float, mono, 16 kHz
    samples, rate = read_wav(tmp_path / "a.wav")
    assert rate == SAMPLE_RATE
    np.testing.assert_array_equal(samples, np.concatenate(chunks))
    # Other tools read it too (FFmpeg, through decode_file, rounds to 16 bits).
    np.testing.assert_allclose(decode_file(tmp_path / "a.wav"), samples, atol=1 / 32768)


def test_wav_writer_with_nothing_written_is_a_valid_empty_file(tmp_path: Path) -> None:
    writer = WavWriter(tmp_path / "empty.wav")
    writer.close()
    assert read_wav(tmp_path / "empty.wav")[0].size == 0


def test_read_wav_reads_pcm16_and_refuses_other_files(tmp_path: Path) -> None:
    pcm = np.array([0, 16384, -32768, 32767], "<i2")
    with wave.open(str(tmp_path / "pcm.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    samples, rate = read_wav(tmp_path / "pcm.wav")
    assert rate == 8000
    np.testing.assert_array_equal(samples, pcm / 32768)
    with wave.open(str(tmp_path / "stereo.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    (tmp_path / "text.wav").write_text("hello")
    for name, needle in (("stereo.wav", "2 channel"), ("text.wav", "not a WAV")):
        with pytest.raises(AudioError, match=needle):
            read_wav(tmp_path / name)
