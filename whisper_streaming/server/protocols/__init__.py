"""Wire protocols, as parse / serialize functions over typed messages."""

from __future__ import annotations

import json
from typing import Any

from ...exceptions import ProtocolError

__all__ = [
    "MAX_AUDIO_FRAME_BYTES",
    "MAX_TEXT_CHARS",
    "check_frame",
    "load_object",
    "printable",
    "shown",
]

MAX_TEXT_CHARS = 65_536  # a client's JSON message; real ones are a few hundred characters
MAX_AUDIO_FRAME_BYTES = 2**20
"""One binary audio frame (16 s of float32 at 16 kHz, 11 s of 16-bit PCM at 48 kHz); clients
send 0.1-0.3 s per frame. A larger one is refused with an error: it would hold up the session's
audio path (decoding, resampling and the speech detector take it whole)."""


def check_frame(data: bytes, bytes_per_second: int) -> None:
    """Refuse an audio frame over :data:`MAX_AUDIO_FRAME_BYTES`, saying how much audio it held.

    Raises:
        ProtocolError: ``frame_too_large``.
    """
    if len(data) > MAX_AUDIO_FRAME_BYTES:
        raise ProtocolError(
            f"audio frame of {len(data)} bytes (~{len(data) / bytes_per_second:.0f} s of audio) is "
            f"over the limit of {MAX_AUDIO_FRAME_BYTES} bytes; send at most a few seconds per "
            "frame (0.1-1 s is usual); this frame was not used",
            code="frame_too_large",
        )


def load_object(raw: str, what: str) -> dict[str, Any]:
    """Parse a client's JSON text frame that must hold one object.

    Hostile input gets a :class:`ProtocolError` (never another exception): too long, not JSON,
    nested deeper than the parser goes, integers longer than Python converts, strings that are
    not text (lone surrogates), or not an object.
    """
    if len(raw) > MAX_TEXT_CHARS:
        raise ProtocolError(f"{what} is too long: {len(raw)} characters, at most {MAX_TEXT_CHARS}")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, int digit limit
        raise ProtocolError(f"{what} is not valid JSON: {printable(str(exc), 200)}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    try:  # "\udcff" is valid JSON but no valid text: echoed back (a uid), it cannot be sent
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ProtocolError(f"{what} holds a lone surrogate (\\ud800-\\udfff): not text") from None
    return data


def printable(text: str, limit: int = 80) -> str:
    """``text`` safe for a log line or an error message: control characters escaped (a client
    cannot forge log lines), cut to ``limit`` characters."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return out if len(out) <= limit else out[: limit - 1] + "…"


def shown(value: object) -> str:
    """A client's value quoted in an error message: its repr, made :func:`printable`."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<a deeply nested {type(value).__name__}>"
    return printable(text)
