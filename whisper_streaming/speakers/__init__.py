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
    "OnlineClustering",
    "ScriptedEncoder",
    "SpeakerAssignment",
    "SpeakerEncoder",
    "SpeakerTracker",
    "SpeakerTurn",
    "load_encoder",
    "speaker_at",
]


def load_encoder(name: str = "resemblyzer") -> SpeakerEncoder:
    """The speaker encoder called ``name`` (``"resemblyzer"``: GE2E, the default).

    Raises:
        ConfigError: unknown name, or the encoder's package is not installed (says how to
            install it).
    """
    if name == "resemblyzer":
        from .ge2e import GE2EEncoder

        return GE2EEncoder()
    raise ConfigError(f"unknown speaker encoder {name!r}; available: resemblyzer")
