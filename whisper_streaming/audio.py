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
    "StreamingResampler",
    "check_samples",
    "decode_file",
    "decode_frame",
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


def decode_frame(data: bytes, *, float32: bool) -> Float32Array:
    """Decode one frame of little-endian float32 or signed 16-bit PCM to checked float32 samples.

    Raises:
        AudioError: the byte count does not fit the sample width, or NaN / infinite samples.
    """
    width = 4 if float32 else 2
    if len(data) % width:
        kind = "float32" if float32 else "16-bit PCM"
        raise AudioError(f"{kind} audio needs a multiple of {width} bytes, got {len(data)}")
    if float32:
        return check_samples(np.frombuffer(data, dtype="<f4").astype(np.float32))
    return check_samples(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)


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


class StreamingResampler:
    """Linear-interpolation resampler that keeps its phase across chunks.

    Chunked resampling with :func:`resample` would restart the interpolation grid at every chunk
    boundary; this one carries the last input sample and the fractional position instead.
    """

    def __init__(self, from_rate: int, to_rate: int = SAMPLE_RATE) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise AudioError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._step = from_rate / to_rate  # input samples per output sample
        self._pos = 0.0  # position of the next output sample, in input samples from _prev
        self._prev: Float32Array = np.zeros(0, np.float32)

    def process(self, samples: npt.ArrayLike) -> Float32Array:
        """Resample the next chunk."""
        arr = np.asarray(samples, dtype=np.float32)
        if self.from_rate == self.to_rate:
            return arr
        data = np.concatenate([self._prev, arr])
        if data.shape[0] < 2:
            self._prev = data
            return np.zeros(0, np.float32)
        last = data.shape[0] - 1
        positions = np.arange(self._pos, last, self._step)
        out: Float32Array = np.interp(positions, np.arange(data.shape[0]), data).astype(np.float32)
        next_pos = self._pos + positions.shape[0] * self._step
        keep_from = min(int(np.floor(next_pos)), last)
        self._prev = data[keep_from:]
        self._pos = next_pos - keep_from
        return out
