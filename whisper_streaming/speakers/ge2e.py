"""Resemblyzer's GE2E speaker encoder, run with numpy: no PyTorch, no librosa.

The PyPI package ``resemblyzer`` ships its trained weights (``pretrained.pt``, 17 MB) inside its
wheel, so this works offline; but importing it imports PyTorch. This module only reads that
file (PyTorch's legacy serialization: pickles and raw float32 storages, read with
:mod:`pickle` and numpy) and runs the same network: 40 mel bands (25 ms windows, 10 ms steps),
three LSTM layers of 256, a linear layer with ReLU, L2-normalised; an utterance's embedding is
the normalised mean over 1.6 s windows at 1.3 windows per second.

Install the weights without PyTorch: ``pip install --no-deps resemblyzer``.
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio import SAMPLE_RATE, Float32Array
from ..exceptions import ConfigError
from .encoders import unit

__all__ = ["GE2EEncoder", "load_weights", "weights_path"]

_N_FFT = 400  # 25 ms
_HOP = 160  # 10 ms
_MELS = 40
_HIDDEN = 256
_LAYERS = 3
_PARTIAL_FRAMES = 160  # 1.6 s
_PARTIAL_STEP = 77  # frames between windows: 1.3 windows per second
_TARGET_DBFS = -30.0  # Resemblyzer raises quieter audio to this level


def weights_path() -> Path:
    """Where the installed ``resemblyzer`` package keeps its weights (found without importing it).

    Raises:
        ConfigError: the package is not installed.
    """
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "speaker labels need Resemblyzer's speaker encoder: "
            "pip install 'whisper-streaming[diarization]' (or, without PyTorch, which this "
            "server does not use: pip install --no-deps resemblyzer; 17 MB, the weights ship "
            "inside the package, nothing is downloaded at run time)"
        )
    return Path(spec.origin).parent / "pretrained.pt"


class _Unpickler(pickle.Unpickler):
    """Reads a PyTorch legacy checkpoint's object tree, with tensors as (storage, offset, shape,
    strides) and storages as their keys."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda storage, offset, size, stride, *_: (storage, offset, size, stride)
        if module == "torch" and name == "FloatStorage":
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the weights file")

    def persistent_load(self, pid: Any) -> Any:
        kind, storage_type, key, _location, _size, _view = pid
        if kind != "storage" or storage_type != "FloatStorage":
            raise pickle.UnpicklingError(f"unexpected storage {kind} {storage_type}")
        return key


@functools.cache
def load_weights(path: Path) -> dict[str, Float32Array]:
    """The encoder's weights from a PyTorch legacy checkpoint, as float32 arrays."""
    with open(path, "rb") as f:
        # Every pickle goes through the restricted unpickler: the file can name no code to run.
        for _ in range(3):  # magic number, protocol version, system info
            _Unpickler(f).load()
        tree = _Unpickler(f).load()
        keys = _Unpickler(f).load()
        storages = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            storages[key] = np.frombuffer(f.read(4 * count), "<f4")
    weights = {}
    for name, (key, offset, shape, strides) in tree["model_state"].items():
        flat = storages[key][offset:]
        array = np.lib.stride_tricks.as_strided(flat, tuple(shape), [4 * s for s in strides])
        weights[name] = np.ascontiguousarray(array, np.float32)
    return weights


@functools.cache
def _mel_filters() -> Float32Array:
    from faster_whisper.feature_extractor import FeatureExtractor  # Slaney mel, as librosa's

    filters: Float32Array = FeatureExtractor.get_mel_filters(SAMPLE_RATE, _N_FFT, _MELS).astype(
        np.float32
    )
    return filters


@functools.cache
def _hann() -> Float32Array:
    window: Float32Array = np.hanning(_N_FFT + 1)[:-1].astype(np.float32)  # periodic
    return window


def _mel_frames(wav: Float32Array) -> Float32Array:
    """Power mel spectrogram (not log), frames x 40, centred frames with zero padding."""
    padded = np.pad(wav, _N_FFT // 2)
    n = 1 + (padded.shape[0] - _N_FFT) // _HOP
    index = np.arange(_N_FFT)[None, :] + _HOP * np.arange(n)[:, None]
    window = _hann()
    power = np.abs(np.fft.rfft(padded[index] * window, axis=1)) ** 2
    mel: Float32Array = (power @ _mel_filters().T).astype(np.float32)
    return mel


def _sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow
    return out


class GE2EEncoder:
    """The GE2E speaker encoder (a :class:`~.encoders.SpeakerEncoder`), CPU, numpy.

    Args:
        path: the weights file (default: the installed ``resemblyzer`` package's).
    """

    name = "resemblyzer"

    def __init__(self, path: Path | None = None) -> None:
        self._w = load_weights(path or weights_path())
        # Per LSTM layer: input and recurrent weights transposed (contiguous) and the two biases
        # summed, once.
        self._layers = [
            (
                np.ascontiguousarray(self._w[f"lstm.weight_ih_l{n}"].T),
                np.ascontiguousarray(self._w[f"lstm.weight_hh_l{n}"].T),
                self._w[f"lstm.bias_ih_l{n}"] + self._w[f"lstm.bias_hh_l{n}"],
            )
            for n in range(_LAYERS)
        ]

    def embed(self, samples: Float32Array) -> Float32Array:
        wav = np.asarray(samples, np.float32)
        rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) if wav.size else 0.0
        if 0 < rms < 10 ** (_TARGET_DBFS / 20):
            wav = wav * (10 ** (_TARGET_DBFS / 20) / rms)
        mel = _mel_frames(wav)
        starts = range(0, max(1, mel.shape[0] - _PARTIAL_FRAMES + 1), _PARTIAL_STEP)
        windows = np.zeros((len(starts), _PARTIAL_FRAMES, _MELS), np.float32)
        for row, start in enumerate(starts):  # the last window may be short: zero-padded
            part = mel[start : start + _PARTIAL_FRAMES]
            windows[row, : part.shape[0]] = part
        hidden = self._lstm(windows)
        partial = np.maximum(0.0, hidden @ self._w["linear.weight"].T + self._w["linear.bias"])
        partial /= np.maximum(np.linalg.norm(partial, axis=1, keepdims=True), 1e-12)
        return unit(partial.mean(axis=0))

    def _lstm(self, x: Float32Array) -> Float32Array:
        """The last layer's final hidden state for a batch of mel windows (PyTorch's gate order:
        input, forget, cell, output)."""
        for w_ih, w_hh, bias in self._layers:
            inputs = x @ w_ih + bias
            h = np.zeros((x.shape[0], _HIDDEN), np.float32)
            c = np.zeros((x.shape[0], _HIDDEN), np.float32)
            outputs = np.empty((x.shape[0], x.shape[1], _HIDDEN), np.float32)
            for t in range(x.shape[1]):
                gates = inputs[:, t] + h @ w_hh
                # One sigmoid over all four gates (the cell gate's part is unused): fewer calls
                # in the per-frame loop, which dominates the cost.
                sig = _sigmoid(gates)
                c = sig[:, _HIDDEN : 2 * _HIDDEN] * c + sig[:, :_HIDDEN] * np.tanh(
                    gates[:, 2 * _HIDDEN : 3 * _HIDDEN]
                )
                h = sig[:, 3 * _HIDDEN :] * np.tanh(c)
                outputs[:, t] = h
            x = outputs
        last: Float32Array = x[:, -1]
        return last
