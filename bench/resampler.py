"""The numpy streaming resampler this project had (below, as it was at d4db323) against
soxr's ``ResampleStream`` (libsoxr, C; what ``audio.StreamingResampler`` now uses): accuracy
in the speech band, rejection of what would alias, cost per second of audio, all fed in the
chunks a browser sends; and the offline WER of one long-form file sent 16 kHz -> 48 kHz ->
16 kHz through each.

    python -m bench.resampler --data ../shared/testdata/longform

Writes ``bench/results/resampler.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from whisper_streaming.audio import SAMPLE_RATE, Float32Array, decode_file
from whisper_streaming.exceptions import AudioError

RESULTS = Path(__file__).resolve().parent / "results"
CHUNK = 4096  # samples per frame at the input rate (the demo page's worklet sends 4096)

Stream = tuple[Callable[[np.ndarray], np.ndarray], Callable[[], np.ndarray]]


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


class NumpyResampler:
    """The windowed-sinc numpy resampler this project used before soxr (kept here to compare).

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


def ours(rate_in: int, rate_out: int) -> Stream:
    r = NumpyResampler(rate_in, rate_out)
    return r.process, r.flush


def soxr_hq(rate_in: int, rate_out: int) -> Stream:
    import soxr

    r = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")
    return (
        lambda x: r.resample_chunk(x.astype(np.float32)),
        lambda: r.resample_chunk(np.zeros(0, np.float32), last=True),
    )


def run(
    make: Callable[[int, int], Stream], x: np.ndarray, rate_in: int, rate_out: int
) -> tuple[np.ndarray, float]:
    process, flush = make(rate_in, rate_out)
    started = time.perf_counter()
    parts = [process(x[i : i + CHUNK]) for i in range(0, x.shape[0], CHUNK)]
    parts.append(flush())
    return np.concatenate(parts), time.perf_counter() - started


def tone_error_db(make: Callable[[int, int], Stream], freq: float) -> float:
    """Error of a 48 kHz tone resampled to 16 kHz against the exact 16 kHz tone, in dB of the
    tone's power (the edges left out)."""
    seconds = 2.0
    t_in = np.arange(int(seconds * 48000)) / 48000
    out, _ = run(make, (0.5 * np.sin(2 * np.pi * freq * t_in)).astype(np.float32), 48000, 16000)
    t_out = np.arange(out.shape[0]) / 16000
    exact = 0.5 * np.sin(2 * np.pi * freq * t_out)
    inner = slice(1600, out.shape[0] - 1600)
    best = min(  # the filters' delays differ: compare at the best alignment (in samples)
        float(np.mean((np.roll(out, s)[inner] - exact[inner]) ** 2)) for s in range(-40, 41)
    )
    return 10 * np.log10(best / np.mean(exact[inner] ** 2) + 1e-20)


def alias_db(make: Callable[[int, int], Stream], freq: float) -> float:
    """Power left of a tone above the 16 kHz output's Nyquist frequency, in dB."""
    t_in = np.arange(2 * 48000) / 48000
    out, _ = run(make, (0.5 * np.sin(2 * np.pi * freq * t_in)).astype(np.float32), 48000, 16000)
    inner = out[1600:-1600]
    return 10 * np.log10(float(np.mean(inner**2)) / 0.125 + 1e-20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.resampler", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/testdata/longform"))
    parser.add_argument("--out", type=Path, default=RESULTS / "resampler.json")
    args = parser.parse_args(argv)
    import jiwer

    from bench.data import load_dataset, normalize
    from whisper_streaming import InferenceRequest, load_backend

    item = load_dataset(args.data)[0]
    speech = decode_file(item.path)
    backend = load_backend("faster_whisper", model="tiny.en", device="cpu")
    report: dict[str, object] = {
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "chunk_samples": CHUNK,
    }
    for name, make in (("numpy (before)", ours), ("soxr_hq", soxr_hq)):
        up, _ = run(make, speech, SAMPLE_RATE, 48000)
        down, seconds = run(make, up, 48000, SAMPLE_RATE)
        text = backend.transcribe(InferenceRequest(down, 0.0, language="en", beam_size=5)).text
        report[name] = {
            "tone_error_db": {f: round(tone_error_db(make, f), 1) for f in (300, 1000, 3000, 7000)},
            "alias_db": {f: round(alias_db(make, f), 1) for f in (8500, 12000, 20000)},
            "cpu_ms_per_audio_s_48k_to_16k": round(1000 * seconds / (up.shape[0] / 48000), 3),
            "round_trip_samples": [int(speech.shape[0]), int(down.shape[0])],
            "offline_wer_after_round_trip": jiwer.wer(normalize(item.reference), normalize(text)),
        }
    report["offline_wer_source"] = jiwer.wer(
        normalize(item.reference),
        normalize(
            backend.transcribe(InferenceRequest(speech, 0.0, language="en", beam_size=5)).text
        ),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
