"""Who is speaking: a speaker-embedding seam and online clustering (pure).

An encoder turns a stretch of speech into a fixed-size voice embedding; :class:`OnlineClustering`
gives each embedding a speaker label that holds for the whole stream (a new voice gets a new
label, up to a cap). Both are synchronous and free of I/O: the server runs them off the event
loop, on speech the VAD already found.

The default encoder (Resemblyzer's GE2E model, whose weights ship inside its wheel, so it works
offline) and pyannote's come with the ``diarization`` extra; tests use :class:`ScriptedEncoder`.
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .clustering import OnlineClustering, SpeakerAssignment
from .encoders import ScriptedEncoder, SpeakerEncoder
from .tracker import SpeakerTracker, SpeakerTurn, speaker_at

__all__ = [
    "ENCODERS",
    "OnlineClustering",
    "ScriptedEncoder",
    "SpeakerAssignment",
    "SpeakerEncoder",
    "SpeakerTracker",
    "SpeakerTurn",
    "load_encoder",
    "speaker_at",
]


ENCODERS = ("resemblyzer", "pyannote")


def load_encoder(
    name: str = "resemblyzer", model: str | None = None, token: str | None = None
) -> SpeakerEncoder:
    """The speaker encoder called ``name``: ``"resemblyzer"`` (GE2E, the default: its weights
    ship in its wheel) or ``"pyannote"`` (a pyannote.audio embedding ``model``: a local path, or
    a hub name with ``token``).

    Raises:
        ConfigError: unknown name, the encoder's package is not installed, or its model is
            missing (the message says how to get it).
    """
    if name == "resemblyzer":
        if model is not None:
            raise ConfigError(
                "the resemblyzer encoder has its model built in: drop --speaker-model"
            )
        from .ge2e import GE2EEncoder

        return GE2EEncoder()
    if name == "pyannote":
        from .pyannote import PyannoteEncoder

        return PyannoteEncoder(model, token)
    raise ConfigError(f"unknown speaker encoder {name!r}; available: {', '.join(ENCODERS)}")
