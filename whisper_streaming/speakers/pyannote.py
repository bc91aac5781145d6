"""pyannote.audio's speaker-embedding models as a :class:`~.encoders.SpeakerEncoder` (an option).

The models (such as ``pyannote/wespeaker-voxceleb-resnet34-LM``) live on the Hugging Face hub,
some behind terms that need a token: give a local copy's directory, or the hub name and a token
on a machine that can download. Needs ``pip install pyannote.audio`` (brings PyTorch).
The clustering thresholds were tuned with the default encoder (Resemblyzer's GE2E); this one's
similarities sit elsewhere, so measure with ``python -m bench.diarization`` before relying on it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE, Float32Array
from ..exceptions import ConfigError
from .encoders import unit

__all__ = ["PyannoteEncoder"]

_EXAMPLE = "pyannote/wespeaker-voxceleb-resnet34-LM"


class PyannoteEncoder:
    """Embeds speech with a pyannote.audio embedding model (whole-window inference).

    Args:
        model: a local model directory (or checkpoint file), or a hub name (needs ``token``
            and a network).
        token: Hugging Face token, for gated models on the hub.
        device: "cpu" or "cuda".

    Raises:
        ConfigError: pyannote.audio is missing, or the model cannot be found or loaded (the
            message says what to download and where to put it).
    """

    name = "pyannote"

    def __init__(self, model: str | None, token: str | None = None, device: str = "cpu") -> None:
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # no usage reports
        try:
            import torch
            from pyannote.audio import Inference, Model
        except ImportError as exc:
            raise ConfigError(
                "the pyannote speaker encoder needs pyannote.audio: pip install pyannote.audio "
                "(brings PyTorch); the default encoder (resemblyzer) needs neither"
            ) from exc
        download = (
            f"on a machine with access to the hub, accept the model's terms on huggingface.co, "
            f"then huggingface-cli download {_EXAMPLE} --local-dir DIR and pass "
            "--speaker-model DIR"
        )
        if not model:
            raise ConfigError(f"the pyannote speaker encoder needs --speaker-model: {download}")
        if not os.path.exists(model) and not token:
            raise ConfigError(
                f"speaker model {model!r} is not a local directory or file, and no Hugging "
                f"Face token was given (--hf-token) to fetch it: {download}"
            )
        try:
            loaded = Model.from_pretrained(model, token=token)
        except Exception as exc:
            message = f"cannot load the speaker model {model!r}: {exc}. {download}"
            raise ConfigError(message) from exc
        if loaded is None:
            raise ConfigError(f"cannot load the speaker model {model!r}. {download}")
        self._torch: Any = torch
        self._inference = Inference(loaded, window="whole", device=torch.device(device))
        self._lock = threading.Lock()  # one inference at a time: sessions share the model

    def embed(self, samples: Float32Array) -> Float32Array:
        waveform = self._torch.from_numpy(np.ascontiguousarray(samples, np.float32)[None, :])
        with self._lock:
            vector = self._inference({"waveform": waveform, "sample_rate": SAMPLE_RATE})
        return unit(np.asarray(vector, np.float32).ravel())
