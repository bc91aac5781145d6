"""Python client: stream a microphone or any audio file, write SRT / WebVTT / JSON / text."""

from .outputs import write_transcript
from .websocket_client import ClientError, ServerBusyError, TranscriptionClient

__all__ = ["ClientError", "ServerBusyError", "TranscriptionClient", "write_transcript"]
