"""Audio helpers: file decoding, PCM conversion and resampling.

Everything inside the package works on mono float32 samples in [-1, 1] at :data:`SAMPLE_RATE`.
"""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt

from .exceptions import AudioError

__all__ = [
    "SAMPLE_RATE",
    "Float32Array",
    "check_samples",
    "decode_file",
    "float32_to_pcm16",
    "pcm16_to_float32",
    "resample",
]

SAMPLE_RATE = 16_000
"""Sample rate, in Hz, of all audio handled by the streaming core and the model."""

Float32Array = npt.NDArray[np.float32]


def decode_file(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> Float32Array:
    """Decode any audio or video file that FFmpeg understands into mono float32 samples.

    Raises:
        AudioError: the file does not exist or cannot be decoded.
    """
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {os.fspath(path)!r}")
    from faster_whisper.audio import decode_audio  # lazy: PyAV is heavy to import

    try:
        samples = decode_audio(os.fspath(path), sampling_rate=sample_rate)
    except Exception as exc:  # PyAV raises many unrelated types
        raise AudioError(f"cannot decode {os.fspath(path)!r}: {exc}") from exc
    return np.ascontiguousarray(samples, dtype=np.float32)


def pcm16_to_float32(data: bytes) -> Float32Array:
    """Convert little-endian signed 16-bit PCM bytes to float32 samples in [-1, 1).

    Raises:
        AudioError: the byte count is odd.
    """
    if len(data) % 2:
        raise AudioError(f"PCM16 data must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float32_to_pcm16(samples: npt.ArrayLike) -> bytes:
    """Convert float samples in [-1, 1] to little-endian signed 16-bit PCM bytes (clipped)."""
    arr = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return bytes((arr * 32767.0).round().astype("<i2").tobytes())


def check_samples(samples: npt.ArrayLike) -> Float32Array:
    """Return ``samples`` as a 1-D float32 array, refusing NaN and infinity.

    Raises:
        AudioError: not one-dimensional, or not finite.
    """
    arr = np.asarray(samples, dtype=np.float32)
    if arr.ndim != 1:
        raise AudioError(f"audio must be mono (1-D), got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise AudioError("audio contains NaN or infinite samples")
    return arr


def resample(samples: npt.ArrayLike, from_rate: int, to_rate: int = SAMPLE_RATE) -> Float32Array:
    """Resample mono audio by linear interpolation after a simple anti-aliasing average.

    Good enough for speech recognition (Whisper only looks at < 8 kHz); exact rational resampling
    is not needed for ASR and would add SciPy as a dependency.

    Raises:
        AudioError: a rate is not positive.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    arr = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate or arr.size == 0:
        return arr.astype(np.float32, copy=False)
    if from_rate > to_rate:
        # Box filter over the decimation ratio removes most energy above the new Nyquist rate.
        width = int(from_rate // to_rate)
        if width > 1:
            kernel = np.ones(width, dtype=np.float32) / width
            arr = np.convolve(arr, kernel, mode="same").astype(np.float32)
    n_out = int(round(arr.size * to_rate / from_rate))
    src_t = np.arange(arr.size, dtype=np.float64) / from_rate
    dst_t = np.arange(n_out, dtype=np.float64) / to_rate
    return np.interp(dst_t, src_t, arr).astype(np.float32)
