"""What every connection handler shares: options, the client manager, the scheduler."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ..config import ProcessorOptions, ServerOptions
from .client_manager import ClientManager
from .metrics import ServerMetrics
from .scheduler import Scheduler

__all__ = ["ServerContext", "SessionLogger"]

_ids = itertools.count(1)


@dataclass
class ServerContext:
    """Server-wide state handed to connection handlers."""

    options: ServerOptions
    processor_options: ProcessorOptions
    manager: ClientManager
    scheduler: Scheduler
    backend_name: str
    model_name: str
    multilingual: bool
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = field(default_factory=time.monotonic)

    @staticmethod
    def new_session_id(prefix: str) -> str:
        """A process-unique session id (client uids may collide)."""
        return f"{prefix}-{next(_ids)}"


class SessionLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every log line with the session id."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{(self.extra or {}).get('session')}] {msg}", kwargs
