"""Stream one file to a server over the WhisperLive protocol and record when each word arrives."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from whisper_streaming.server.protocols.whisperlive import TranscriptAccumulator, WireSegment

SAMPLE_RATE = 16_000
CHUNK_S = 0.1


@dataclass
class Snapshot:
    """What the client showed at one moment: committed words, then the partial words."""

    t: float
    committed: int  # number of committed words at that moment
    partial: list[str]


@dataclass
class StreamRecord:
    """Everything measured for one stream (wall-clock times from time.monotonic())."""

    start: float = 0.0
    audio_end: float = 0.0
    final_at: float = 0.0
    committed_words: list[str] = field(default_factory=list)
    committed_at: list[float] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def text(self) -> str:
        return " ".join(s["text"].strip() for s in self.segments)


async def stream_whisperlive(
    url: str, samples: np.ndarray, *, realtime: bool = True, final_timeout_s: float = 120.0
) -> StreamRecord:
    """Stream ``samples`` (16 kHz float32) paced in real time; record every word's arrival."""
    record = StreamRecord()
    transcript = TranscriptAccumulator()
    record.segments = transcript.segments
    uid = str(uuid.uuid4())
    ready = asyncio.Event()

    def on_message(message: dict[str, Any], now: float) -> None:
        if message.get("message") == "SERVER_READY":
            ready.set()
        elif message.get("status") in ("WAIT", "ERROR"):
            record.error = f"{message['status']}: {message.get('message')}"
            ready.set()
        elif "segments" in message:
            for item in transcript.add([WireSegment.from_json(s) for s in message["segments"]]):
                words = item["text"].split()
                record.committed_words += words
                record.committed_at += [now] * len(words)
            partial = transcript.partial["text"].split() if transcript.partial else []
            record.snapshots.append(Snapshot(now, len(record.committed_words), partial))

    async with connect(url, max_size=2**22, compression=None, open_timeout=30) as ws:
        await ws.send(
            json.dumps(
                {
                    "uid": uid,
                    "language": "en",
                    "task": "transcribe",
                    "model": "tiny.en",
                    "use_vad": True,
                }
            )
        )

        async def receive() -> None:
            async for raw in ws:
                if isinstance(raw, str):
                    on_message(json.loads(raw), time.monotonic())

        receiver = asyncio.create_task(receive())
        try:
            await asyncio.wait_for(ready.wait(), 60)
            if record.error:
                return record
            chunk = int(CHUNK_S * SAMPLE_RATE)
            record.start = time.monotonic()
            for i in range(0, samples.shape[0], chunk):
                await ws.send(samples[i : i + chunk].astype("<f4").tobytes())
                if realtime:
                    delay = record.start + (i + chunk) / SAMPLE_RATE - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
            record.audio_end = time.monotonic()
            await ws.send(b"END_OF_AUDIO")
            try:
                await asyncio.wait_for(receiver, final_timeout_s)
            except (TimeoutError, asyncio.TimeoutError):
                record.error = "no close within the final timeout"
        finally:
            receiver.cancel()
    record.final_at = record.committed_at[-1] if record.committed_at else time.monotonic()
    return record
