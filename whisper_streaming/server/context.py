"""What every connection handler shares: options, the client manager, the scheduler."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ..audio import WavWriter
from ..config import ProcessorOptions, ServerOptions
from ..speakers import SpeakerEncoder
from .client_manager import ClientManager
from .metrics import ServerMetrics
from .protocols import printable
from .scheduler import Scheduler

__all__ = ["ServerContext", "SessionLogger"]

_ids = itertools.count(1)
logger = logging.getLogger(__name__)


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
    speaker_encoder: SpeakerEncoder | None = None  # with --diarization
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = field(default_factory=time.monotonic)

    @staticmethod
    def new_session_id(prefix: str) -> str:
        """A process-unique session id (client uids may collide)."""
        return f"{printable(prefix, 40)}-{next(_ids)}"

    def open_recording(self, session_id: str) -> WavWriter | None:
        """A WAV file for the session's audio when ``save_audio_dir`` is set, else None.

        A file that cannot be created is logged and skipped: the session goes on unrecorded.
        """
        folder = self.options.save_audio_dir
        if folder is None:
            return None
        name = re.sub(r"[^A-Za-z0-9._-]", "_", session_id)
        path = os.path.join(folder, f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.wav")
        try:
            writer = WavWriter(path)
        except OSError as exc:
            logger.warning("[%s] cannot save audio to %s: %s", session_id, path, exc)
            return None
        logger.info("[%s] saving audio to %s", session_id, path)
        return writer


class SessionLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every log line with the session id."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{(self.extra or {}).get('session')}] {msg}", kwargs
