"""The sans-I/O streaming core: audio and results in, requests and transcript updates out."""

from .processor import ASRProcessor, ProcessorState, TranscriptUpdate

__all__ = ["ASRProcessor", "ProcessorState", "TranscriptUpdate"]
