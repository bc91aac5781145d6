"""API keys: who may use the server, checked before a WebSocket upgrade or a REST request.

Off unless keys are given. A client presents a key as ``Authorization: Bearer KEY`` or, from a
browser (which cannot set headers on a WebSocket), as ``?token=KEY`` in the URL. Keys are
compared in constant time and never logged.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Iterable
from pathlib import Path

from ..exceptions import ConfigError

__all__ = ["ApiKeys", "Verdict", "read_keys_file"]


class Verdict(enum.Enum):
    """What a request's credentials are worth."""

    OK = "ok"
    MISSING = "missing"  # 401
    WRONG = "wrong"  # 403

    @property
    def message(self) -> str:
        if self is Verdict.MISSING:
            return "an API key is required: send 'Authorization: Bearer KEY' (or ?token=KEY)"
        return "the API key is not valid"


class ApiKeys:
    """The keys the server accepts (none: everyone is let in)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        cleaned = [k.strip() for k in keys]
        if any(not k for k in cleaned):
            raise ConfigError("an API key must not be empty")
        self._keys = tuple(k.encode() for k in cleaned)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: str | None, token: str | None) -> Verdict:
        """The verdict on a request's ``Authorization`` header and ``token`` query value."""
        if not self._keys:
            return Verdict.OK
        presented = token
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                presented = value.strip()
        if not presented:
            return Verdict.MISSING
        candidate = presented.encode()
        matched = False
        for key in self._keys:  # every key, so the time does not say which one nearly matched
            matched |= hmac.compare_digest(key, candidate)
        return Verdict.OK if matched else Verdict.WRONG


def read_keys_file(path: str) -> list[str]:
    """Keys from a file, one per line (blank lines and ``#`` comments skipped).

    Raises:
        ConfigError: the file cannot be read or holds no key.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the API keys file {path!r}: {exc}") from exc
    keys = [line.strip() for line in text.splitlines()]
    keys = [k for k in keys if k and not k.startswith("#")]
    if not keys:
        raise ConfigError(f"the API keys file {path!r} holds no key")
    return keys
