"""The sans-I/O streaming core: audio and results in, requests and transcript updates out.

The public names live in :mod:`whisper_streaming` (and in :mod:`.processor`); this package
imports nothing itself, so the backend seam can use :mod:`.timeline` without an import cycle.
"""

__all__: list[str] = []
