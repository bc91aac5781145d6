"""A real server on port 0, in a background thread, with a scripted backend."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import run_python, timeout
from whisper_streaming import ProcessorOptions, ScriptedBackend
from whisper_streaming.backends import timeline_from_text
from whisper_streaming.backends.base import ASRBackend
from whisper_streaming.config import ServerOptions
from whisper_streaming.server.protocols.whisperlive import TranscriptAccumulator, WireSegment
from whisper_streaming.server.websocket_server import WhisperStreamingServer
from whisper_streaming.speakers import SpeakerEncoder

TEXT = "the quick brown fox jumps over the lazy dog. " * 6
TIMELINE = timeline_from_text(TEXT, start_s=0.1)


def timeline_backend(**kw: Any) -> ScriptedBackend:
    """A backend that 'hears' TEXT laid out over time."""
    return ScriptedBackend(timeline=TIMELINE, **{"model_name": "tiny.en", **kw})


def english_backend() -> ScriptedBackend:
    """The scripted backend as tiny.en: English-only."""
    backend = timeline_backend()
    backend.is_multilingual = False  # type: ignore[attr-defined]
    return backend


def expected_text(seconds: float) -> str:
    """The TEXT words that end within the first ``seconds``."""
    return " ".join(w.word.strip() for w in TIMELINE if w.end <= seconds)


@dataclass
class RunningServer:
    server: WhisperStreamingServer
    port: int
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def call(self, coro: Any, wait_s: float = 30.0) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout(wait_s))

    def wait_for_clients(self, count: int, wait_s: float = 10.0) -> int:
        """Poll until ``count`` sessions are being served; return the last count seen."""
        deadline = time.monotonic() + timeout(wait_s)
        while (current := self.status()["current_clients"]) != count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return int(current)

    def status(self) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            return self.server.client_manager.get_status()

        return dict(self.call(get()))


@contextmanager
def running_server(
    backend: ASRBackend | None = None,
    *,
    processor: ProcessorOptions | None = None,
    port: int = 0,
    tls: tuple[str, str] | None = None,
    encoder: SpeakerEncoder | None = None,
    **server_kw: Any,
) -> Iterator[RunningServer]:
    """Start a server on 127.0.0.1 (port 0: any free one); shut it down afterwards."""
    options = ServerOptions(**{"quiet_flush_s": 30.0, **server_kw})
    server = WhisperStreamingServer(
        backend or timeline_backend(),
        processor_options=processor or ProcessorOptions(use_vad=False, min_chunk_s=0.5),
        server_options=options,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
        speaker_encoder=encoder,
    )
    loop = asyncio.new_event_loop()
    started = threading.Event()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", port), loop).result(timeout(30))
    started.set()
    running = RunningServer(server, server.port, loop)
    try:
        yield running
    finally:
        running.call(server.shutdown(), 60)  # a no-op when a test already shut it down
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout(10))
        loop.close()


def raw_http(port: int, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes as an HTTP request; the status code (0: none) and the answer, read to its
    ``Content-Length`` (the connection may stay open), to the end of the headers of a 101 (a
    WebSocket opened), or to the close."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout(5)) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            head, sep, body = answer.partition(b"\r\n\r\n")
            lengths = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")[1:]
                if line.lower().startswith(b"content-length:")
            ]
            if sep and (answer.startswith(b"HTTP/1.1 101") or lengths and len(body) >= lengths[0]):
                break
    return (int(answer.split(b" ", 2)[1]) if answer else 0), answer


def tone_bytes(seconds: float, amplitude: float = 0.3) -> bytes:
    """A tone as the float32 bytes WhisperLive clients send."""
    t = np.arange(int(seconds * 16000)) / 16000
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<f4").tobytes()


def ws_connect(url: str) -> ClientConnection:
    """A client connection (entered as a context manager, as websockets >= 17.1 wants)."""
    ws = connect(url, open_timeout=timeout(10), compression=None, max_size=2**22)
    return ws.__enter__()


def open_session(
    url: str, uid: str = "test-uid", **config: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect, send the config, return the connection and the first reply."""
    ws = ws_connect(url)
    ws.send(json.dumps({"uid": uid, "use_vad": False, **config}))
    return ws, json.loads(ws.recv(timeout(10)))


def send_audio(ws: ClientConnection, data: bytes, frame_bytes: int = 4096 * 4) -> None:
    """Send audio in WhisperLive-sized frames."""
    for i in range(0, len(data), frame_bytes):
        ws.send(data[i : i + frame_bytes])


def receive_all(ws: ClientConnection, wait_s: float = 30.0) -> list[dict[str, Any]]:
    """Every message until the server closes the connection."""
    messages = []
    try:
        while True:
            messages.append(json.loads(ws.recv(timeout(wait_s))))
    except ConnectionClosed:
        pass
    return messages


def final_text(messages: list[dict[str, Any]]) -> str:
    """The transcript of the last segments message, as a WhisperLive client would keep it."""
    transcript = TranscriptAccumulator()
    for m in messages:
        transcript.add([WireSegment.from_json(s) for s in m.get("segments", [])])
    return transcript.text


def receive_transcript(ws: ClientConnection, wait_s: float = 120.0) -> TranscriptAccumulator:
    """Read until the server closes, keeping only what a WhisperLive client keeps (not every
    message: for long streams, where the messages would weigh on this process's memory)."""
    transcript = TranscriptAccumulator()
    try:
        while True:
            message = json.loads(ws.recv(timeout(wait_s)))
            transcript.add([WireSegment.from_json(s) for s in message.get("segments", [])])
    except ConnectionClosed:
        pass
    return transcript


def tone_session(
    url: str, uid: str = "test-uid", seconds: float = 2.0, wait_s: float = 30.0
) -> list[dict[str, Any]]:
    """One whole WhisperLive stream of a tone (config, audio, END_OF_AUDIO): every message the
    server sent after SERVER_READY, to the close."""
    ws, _ = open_session(url, uid=uid)
    send_audio(ws, tone_bytes(seconds))
    ws.send(b"END_OF_AUDIO")
    return receive_all(ws, wait_s=wait_s)


def stream_tone(url: str, uid: str, seconds: float = 2.0) -> str:
    """One whole WhisperLive stream of a tone: its final text (``expected_text(seconds)`` when
    the server works)."""
    return final_text(tone_session(url, uid, seconds))


def run_stock_client(port: int | str, audio: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The unmodified whisper_live 0.10 client streaming ``audio`` (no VAD) to 127.0.0.1:port;
    skipped when it is not installed (failed under CI: make test installs it)."""
    try:
        import pyaudio  # noqa: F401
        import whisper_live.client  # noqa: F401
    except ImportError:
        message = "whisper-live / PyAudio not installed (make test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    script = f"""
        from whisper_live.client import TranscriptionClient
        client = TranscriptionClient(
            "127.0.0.1", "{port}", lang="en", use_vad=False, mute_audio_playback=True
        )
        # It busy-waits 15 s after the last message before it disconnects; 1 s will do.
        client.client.disconnect_if_no_response_for = 1
        client({str(audio)!r})
        """
    return run_python(script, cwd, 120)
