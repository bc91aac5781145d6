"""Audio helpers: file decoding, PCM conversion and resampling.

Everything inside the package works on mono float32 samples in [-1, 1] at :data:`SAMPLE_RATE`.
"""

from __future__ import annotations

import functools
import math
import os
import struct
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from .exceptions import AudioError

__all__ = [
    "SAMPLE_RATE",
    "Float32Array",
    "StreamingResampler",
    "WavWriter",
    "check_samples",
    "decode_file",
    "decode_frame",
    "float32_to_pcm16",
    "pcm16_to_float32",
    "read_wav",
    "resample",
]

SAMPLE_RATE = 16_000
"""Sample rate, in Hz, of all audio handled by the streaming core and the model."""

Float32Array = npt.NDArray[np.float32]


def decode_file(
    path: str | os.PathLike[str] | BinaryIO, sample_rate: int = SAMPLE_RATE
) -> Float32Array:
    """Decode any audio or video file that FFmpeg understands (a path, or a binary file object
    such as an upload) into mono float32 samples.

    Raises:
        AudioError: the file does not exist or cannot be decoded.
    """
    if isinstance(path, (str, os.PathLike)):
        if not os.path.isfile(path):
            raise AudioError(f"audio file not found: {os.fspath(path)!r}")
        source: str | BinaryIO = os.fspath(path)
        name = repr(source)
    else:
        source, name = path, "the file"
    from faster_whisper.audio import decode_audio  # lazy: PyAV is heavy to import

    try:
        samples = decode_audio(source, sampling_rate=sample_rate)
    except Exception as exc:  # PyAV raises many unrelated types
        raise AudioError(f"cannot decode {name}: {exc}") from exc
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
    """Resample mono audio in one go (the same band-limited filter as :class:`StreamingResampler`).

    Raises:
        AudioError: a rate is not positive.
    """
    resampler = StreamingResampler(from_rate, to_rate)
    arr = np.asarray(samples, dtype=np.float32)
    if arr.size == 0:
        return arr
    return np.concatenate([resampler.process(arr), resampler.flush()])


_MAX_PHASES = 1024
_KAISER_BETA = 8.6


@functools.lru_cache(maxsize=16)
def _filter_bank(from_rate: int, to_rate: int, zero_crossings: int) -> tuple[int, Float32Array]:
    """The windowed-sinc weights of :class:`StreamingResampler`, shared by its instances.

    Returns the kernel's half-width in input samples and one row of weights per phase (the
    fractional part of an output's position in the input). Positions repeat with period
    ``to_rate / gcd``: 1 phase for 48 kHz, 160 for 44.1 kHz. Odd rates (16000 phases for
    47999 Hz) are rounded to the nearest of 1024 phases, under 1/2048 of an input sample.
    """
    cutoff = 0.97 * min(1.0, to_rate / from_rate)  # fraction of the input's Nyquist rate
    half = int(np.ceil(zero_crossings / cutoff))
    taps = np.arange(-half + 1, half + 1)
    count = min(to_rate // math.gcd(from_rate, to_rate), _MAX_PHASES)
    t = (np.arange(count) / count)[:, None] - taps[None, :]
    w = cutoff * np.sinc(cutoff * t)
    w *= np.i0(_KAISER_BETA * np.sqrt(np.clip(1 - (t / half) ** 2, 0, 1))) / np.i0(_KAISER_BETA)
    w /= w.sum(axis=1, keepdims=True)  # exact gain 1 at DC
    table: Float32Array = w.astype(np.float32)
    table.flags.writeable = False
    return half, table


class StreamingResampler:
    """Band-limited resampler for a stream of chunks, without SciPy.

    Each output sample is a windowed-sinc (Kaiser, beta 8.6) interpolation of the input around
    its position, with the cutoff at 0.97 of the lower Nyquist rate: flat to 7.3 kHz at 16 kHz
    (-0.1 dB; Whisper's mel filters reach 8 kHz), -17 dB at 8 kHz, below -85 dB from 8.6 kHz.
    Downsampling therefore filters out what the new rate cannot carry: a 48 kHz microphone's
    8-24 kHz content would otherwise fold into the speech band (plain linear interpolation turns a
    12 kHz tone at 48 kHz into a 4 kHz tone at full strength, -2 dB at 44.1 kHz). The output
    lags the input by about ``zero_crossings`` samples of the lower rate (2 ms at 16 kHz):
    :meth:`flush` returns that tail at the end.

    Chunks may have any size; the output does not depend on how the input was split.
    """

    def __init__(
        self, from_rate: int, to_rate: int = SAMPLE_RATE, zero_crossings: int = 32
    ) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise AudioError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._half, self._table = _filter_bank(from_rate, to_rate, zero_crossings)
        self._taps = np.arange(-self._half + 1, self._half + 1)
        # Input before the stream starts reads as silence.
        self._buf: Float32Array = np.zeros(self._half, np.float32)
        self._base = -self._half  # input index of _buf[0]
        self._received = 0  # input samples received
        self._produced = 0  # output samples produced
        self._flushed = False

    def process(self, samples: npt.ArrayLike) -> Float32Array:
        """Resample the next chunk (returns what the input so far determines)."""
        arr = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._flushed:
            raise AudioError("the resampler was flushed: start a new one for a new stream")
        if self.from_rate == self.to_rate:
            return arr
        self._received += arr.shape[0]
        self._buf = np.concatenate([self._buf, arr])
        end = self._base + self._buf.shape[0]  # one past the last input index held
        # An output at position p needs inputs up to floor(p) + half.
        return self._emit(((end - self._half) * self.to_rate - 1) // self.from_rate + 1)

    def flush(self) -> Float32Array:
        """The rest of the stream: the output still held back for lookahead."""
        if self._flushed or self.from_rate == self.to_rate:
            self._flushed = True
            return np.zeros(0, np.float32)
        self._buf = np.concatenate([self._buf, np.zeros(self._half + 1, np.float32)])
        total = int(round(self._received * self.to_rate / self.from_rate))
        out = self._emit(max(total, self._produced))
        self._flushed = True
        return out

    def _emit(self, stop: int) -> Float32Array:
        if stop <= self._produced:
            return np.zeros(0, np.float32)
        n = np.arange(self._produced, stop, dtype=np.int64)
        # Output n sits at input position n * from / to: an integer part and a phase (rounded
        # to the nearest row of the table; exact when the table has a row per phase).
        first = (n * self.from_rate) // self.to_rate
        phases = self._table.shape[0]
        phase = ((n * self.from_rate) % self.to_rate * 2 * phases + self.to_rate) // (
            2 * self.to_rate
        )
        wrap = phase == phases
        first += wrap
        phase[wrap] = 0
        index = first[:, None] + self._taps[None, :]
        out: Float32Array = np.einsum(
            "ij,ij->i", self._buf[index - self._base], self._table[phase]
        ).astype(np.float32)
        self._produced = stop
        # Keep only what later outputs can still reach.
        keep_from = (stop * self.from_rate) // self.to_rate - self._half + 1
        drop = max(0, keep_from - self._base)
        self._buf = self._buf[drop:]
        self._base += drop
        return out


_WAV_BUFFER_BYTES = 256 * 1024


class WavWriter:
    """Writes mono float32 samples to a WAV file as they come (IEEE float: lossless).

    The header is rewritten with the final length on :meth:`close`. FFmpeg, SoX, browsers and
    :func:`decode_file` read the format; Python's ``wave`` module does not.

    Raises:
        OSError: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> None:
        self.path = os.fspath(path)
        self.sample_rate = sample_rate
        self.frames = 0
        # The server writes from its event loop, a chunk (~6 KB) at a time: a 256 KB buffer turns
        # that into one write call per ~4 s of audio instead of one per chunk.
        self._file = open(self.path, "wb", buffering=_WAV_BUFFER_BYTES)  # closed in close()
        self._file.write(self._header())

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._file.closed

    def _header(self) -> bytes:
        data = 4 * self.frames
        fmt = struct.pack("<HHIIHHH", 3, 1, self.sample_rate, 4 * self.sample_rate, 4, 32, 0)
        return b"".join(
            [
                b"RIFF",
                struct.pack("<I", 4 + (8 + len(fmt)) + 12 + (8 + data)),
                b"WAVE",
                b"fmt " + struct.pack("<I", len(fmt)) + fmt,
                b"fact" + struct.pack("<II", 4, self.frames),  # required for non-PCM formats
                b"data" + struct.pack("<I", data),
            ]
        )

    def write(self, samples: npt.ArrayLike) -> None:
        """Append samples (converted to little-endian float32)."""
        arr = np.asarray(samples, dtype="<f4").reshape(-1)
        self._file.write(arr.tobytes())
        self.frames += arr.shape[0]

    def close(self) -> None:
        """Write the final header and close the file. Idempotent."""
        if self._file.closed:
            return
        try:
            self._file.seek(0)
            self._file.write(self._header())
        finally:
            self._file.close()


def read_wav(path: str | os.PathLike[str]) -> tuple[Float32Array, int]:
    """Read a mono WAV file as written by :class:`WavWriter` (float32) or 16-bit PCM, exactly
    (:func:`decode_file` goes through 16-bit samples). Returns the samples and the sample rate.

    Raises:
        AudioError: not a mono float32 or 16-bit PCM WAV file.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise AudioError(f"cannot read {os.fspath(path)!r}: {exc}") from exc
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"not a WAV file: {os.fspath(path)!r}")
    pos, fmt, samples = 12, None, None
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if kind == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif kind == b"data":
            samples = body
        pos += 8 + size + (size & 1)
    if fmt is None or samples is None:
        raise AudioError(f"WAV file without fmt or data chunk: {os.fspath(path)!r}")
    code, channels, rate, _, _, bits = fmt
    if channels != 1 or (code, bits) not in ((3, 32), (1, 16)):
        raise AudioError(
            f"{os.fspath(path)!r}: expected mono float32 or 16-bit PCM, got format {code}, "
            f"{channels} channel(s), {bits} bits"
        )
    if code == 1:
        return pcm16_to_float32(samples[: len(samples) // 2 * 2]), rate
    return np.frombuffer(samples[: len(samples) // 4 * 4], "<f4").astype(np.float32), rate
