"""ClientManager: admission, limits and wait estimates.

All methods run on the event loop and never await, so admission decisions are atomic: a burst of
connections can never overshoot ``max_clients``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Admission", "ClientManager"]


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to a client asking to be served."""

    admitted: bool
    wait_minutes: float = 0.0
    deadline: float = 0.0  # monotonic time at which the session must end


class ClientManager:
    """Keeps track of the sessions being served.

    Args:
        max_clients: sessions served at once.
        max_connection_time_s: how long one session may last.
        clock: monotonic clock (for tests).
    """

    def __init__(
        self,
        max_clients: int = 4,
        max_connection_time_s: float = 600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_clients = max_clients
        self.max_connection_time_s = max_connection_time_s
        self._clock = clock
        self._started: dict[str, float] = {}
        self.total_admitted = 0
        self.total_refused = 0

    @property
    def current_clients(self) -> int:
        """Sessions being served now."""
        return len(self._started)

    def try_admit(self, client_id: str, *, busy: bool = False) -> Admission:
        """Admit the client if there is room (and the model is not ``busy``: the live sessions
        use all it has); otherwise say how long to wait."""
        if client_id in self._started:
            raise KeyError(f"client {client_id!r} is already being served")
        if len(self._started) >= self.max_clients or busy:
            self.total_refused += 1
            return Admission(False, self.estimated_wait_minutes(full=True))
        now = self._clock()
        self._started[client_id] = now
        self.total_admitted += 1
        return Admission(True, 0.0, now + self.max_connection_time_s)

    def release(self, client_id: str) -> None:
        """The client's session ended (normally or not). Idempotent."""
        self._started.pop(client_id, None)

    def estimated_wait_minutes(self, *, full: bool = False) -> float:
        """Minutes until the earliest session reaches its time limit (0 if there is room;
        ``full``: as if there were none)."""
        if (len(self._started) < self.max_clients and not full) or not self._started:
            return 0.0
        now = self._clock()
        earliest_end = min(self._started.values()) + self.max_connection_time_s
        return max(0.0, earliest_end - now) / 60.0

    def get_status(self) -> dict[str, Any]:
        """Current load, as in the user's guide."""
        return {
            "current_clients": self.current_clients,
            "max_clients": self.max_clients,
            "estimated_wait_time_minutes": round(self.estimated_wait_minutes(), 2),
            "max_connection_time": self.max_connection_time_s,
            "total_admitted": self.total_admitted,
            "total_refused": self.total_refused,
        }
