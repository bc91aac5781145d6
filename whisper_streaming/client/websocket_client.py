"""TranscriptionClient: stream audio to a whisper_streaming (or WhisperLive) server.

Speaks the WhisperLive protocol, so it works with either server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..audio import SAMPLE_RATE, Float32Array, decode_file, pcm16_to_float32
from ..exceptions import ProtocolError, WhisperStreamingError
from ..server.protocols import whisperlive as wl
from .outputs import labelled, write_transcript

__all__ = ["ClientError", "ServerBusyError", "TranscriptionClient"]

logger = logging.getLogger(__name__)

END_OF_AUDIO = b"END_OF_AUDIO"
Callback = Callable[[str, list[dict[str, Any]]], None]


class ClientError(WhisperStreamingError):
    """The server refused us, failed, or could not be reached."""


class ServerBusyError(ClientError):
    """The server is full (WAIT)."""

    def __init__(self, wait_minutes: float) -> None:
        super().__init__(f"server is full; estimated wait {wait_minutes:.1f} minutes")
        self.wait_minutes = wait_minutes


class TranscriptionClient:
    """Streams audio and collects the transcript.

    Args:
        host: server host.
        port: server port.
        language: language code, or None to let the server detect it.
        model: model name to ask for (the server may answer WARNING and use its own).
        translate: ask for translation to English.
        use_vad: ask the server to use its VAD.
        transcription_callback: called as ``callback(text, segments)`` on every update.
        output: write the transcript here when done (.srt, .vtt, .json or .txt).
        fast: send audio as fast as the connection takes it instead of in real time.
        chunk_s: seconds of audio per message.
        show: print live text (and a progress bar for files) to this stream; None for quiet.
        final_timeout_s: how long to wait for the final segments after the audio ends.
        api_key: sent as ``Authorization: Bearer KEY`` (servers started with ``--api-key``).
        use_wss: connect with TLS (``wss://``).
        ca_file: with ``use_wss``, trust the certificates this PEM file holds (a private CA, or
            a self-signed server certificate) instead of the system's.
        diarization: ask for speaker labels (True), none (False), or what the server does by
            default (None). Labelled segments print as ``[Speaker 1] text``.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 9090,
        language: str | None = None,
        model: str = "tiny.en",
        translate: bool = False,
        use_vad: bool = True,
        transcription_callback: Callback | None = None,
        *,
        output: str | None = None,
        fast: bool = False,
        chunk_s: float = 0.1,
        show: TextIO | None = sys.stderr,
        final_timeout_s: float = 120.0,
        api_key: str | None = None,
        use_wss: bool = False,
        ca_file: str | None = None,
        diarization: bool | None = None,
    ) -> None:
        self.url = f"{'wss' if use_wss or ca_file else 'ws'}://{host}:{port}/"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._ssl: ssl.SSLContext | None = None
        if ca_file is not None:
            self._ssl = ssl.create_default_context(cafile=ca_file)
        self.language = language
        self.model = model
        self.task = "translate" if translate else "transcribe"
        self.use_vad = use_vad
        self.diarization = diarization
        self.callback = transcription_callback
        self.output = output
        self.fast = fast
        self.chunk_samples = max(1, int(chunk_s * SAMPLE_RATE))
        self.show = show
        self.final_timeout_s = final_timeout_s
        self.uid = str(uuid.uuid4())
        self._transcript = wl.TranscriptAccumulator()
        self.segments: list[dict[str, Any]] = self._transcript.segments
        self.partial: dict[str, Any] | None = None
        self.language_detected: str | None = None
        self.warnings: list[str] = []
        self.last_audio_sent_at = 0.0
        self.final_received_at = 0.0
        self._ready = asyncio.Event()
        self._failure: ClientError | None = None

    # -- public API ------------------------------------------------------------------------

    def __call__(self, audio: str | None = None) -> list[dict[str, Any]]:
        """Transcribe a file (any format), or the microphone when ``audio`` is None."""
        if audio is None:
            return asyncio.run(self.transcribe_microphone())
        return asyncio.run(self.transcribe_file(audio))

    async def transcribe_file(self, path: str) -> list[dict[str, Any]]:
        """Decode ``path`` and stream it; return the completed segments."""
        samples = decode_file(path)
        return await self.transcribe_samples(samples)

    async def transcribe_samples(self, samples: Float32Array) -> list[dict[str, Any]]:
        """Stream mono 16 kHz float32 samples; return the completed segments."""
        async with self._connect() as ws:
            await ws.send(json.dumps(self._config()))
            receiver = asyncio.create_task(self._receive(ws))
            try:
                await self._wait_ready(receiver)
                await self._send_samples(ws, samples)
                await ws.send(END_OF_AUDIO)
                await asyncio.wait_for(receiver, self.final_timeout_s)
            finally:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
        return self._finish()

    async def transcribe_microphone(self) -> list[dict[str, Any]]:
        """Stream the default microphone until Ctrl-C; return the completed segments."""
        mic = _open_microphone(self.chunk_samples)
        loop = asyncio.get_running_loop()
        async with self._connect() as ws:
            await ws.send(json.dumps(self._config()))
            receiver = asyncio.create_task(self._receive(ws))
            try:
                await self._wait_ready(receiver)
                self._print("recording; press Ctrl-C to stop\n")
                while not receiver.done():
                    data = await loop.run_in_executor(None, mic.read, self.chunk_samples)
                    await ws.send(pcm16_to_float32(data).astype("<f4").tobytes())
                    self.last_audio_sent_at = time.monotonic()
            except (KeyboardInterrupt, asyncio.CancelledError):
                pass
            finally:
                mic.close()
                try:
                    await ws.send(END_OF_AUDIO)
                    await asyncio.wait_for(receiver, self.final_timeout_s)
                except (ConnectionClosed, TimeoutError, asyncio.TimeoutError):
                    pass
                receiver.cancel()
        return self._finish()

    @property
    def text(self) -> str:
        """The completed transcript as one string."""
        return " ".join(s["text"].strip() for s in self.segments)

    # -- internals ---------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "language": self.language,
            "task": self.task,
            "model": self.model,
            "use_vad": self.use_vad,
            "send_last_n_segments": 10,
            "word_timestamps": True,
        } | ({} if self.diarization is None else {"enable_diarization": self.diarization})

    def _connect(self) -> Any:
        try:
            return connect(
                self.url,
                max_size=2**22,
                open_timeout=10,
                compression=None,
                additional_headers=self._headers,
                ssl=self._ssl,
            )
        except InvalidURI as exc:
            raise ClientError(f"bad server address {self.url}: {exc}") from exc

    async def _wait_ready(self, receiver: asyncio.Task[None]) -> None:
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait(
            {ready, receiver}, timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        ready.cancel()
        if self._failure is not None:
            raise self._failure
        if receiver in done:
            receiver.result()
            raise ClientError("server closed the connection before it was ready")
        if not done:
            raise ClientError("server did not answer SERVER_READY within 30 s")

    async def _send_samples(self, ws: ClientConnection, samples: Float32Array) -> None:
        total = samples.shape[0]
        started = time.monotonic()
        last_progress = 0.0
        for i in range(0, total, self.chunk_samples):
            if self._failure is not None:
                raise self._failure
            chunk = samples[i : i + self.chunk_samples]
            await ws.send(chunk.astype("<f4").tobytes())
            self.last_audio_sent_at = time.monotonic()
            sent_s = (i + chunk.shape[0]) / SAMPLE_RATE
            if not self.fast:
                delay = started + sent_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self.last_audio_sent_at - last_progress >= 0.5 or i + chunk.shape[0] >= total:
                last_progress = self.last_audio_sent_at
                self._progress(sent_s, total / SAMPLE_RATE)

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                self._handle(raw)
        except ConnectionClosed as exc:
            if not self._ready.is_set() and self._failure is None:
                self._failure = ClientError(f"server closed the connection: {exc}")
        self.final_received_at = time.monotonic()

    def _handle(self, raw: str) -> None:
        try:
            message = wl.parse_server_message(raw)
        except ProtocolError as exc:
            logger.warning("unexpected server message: %s", exc)
            return
        if message.uid not in (self.uid, None):
            return
        if isinstance(message, wl.Wait):
            self._failure = ServerBusyError(message.minutes)
        elif isinstance(message, wl.Error):
            if not self._ready.is_set():
                self._failure = ClientError(f"server error: {message.message}")
            else:
                logger.warning("server error: %s", message.message)
                self.warnings.append(message.message)
        elif isinstance(message, wl.WarningMessage):
            logger.warning("server warning: %s", message.message)
            self.warnings.append(message.message)
        elif isinstance(message, wl.ServerReady):
            self._ready.set()
        elif isinstance(message, wl.Disconnect):
            logger.info("server ended the session (time limit)")
        elif isinstance(message, wl.Language):
            self.language_detected = message.language
        else:
            self._segments(message.segments)

    def _segments(self, segments: Sequence[wl.WireSegment]) -> None:
        for item in self._transcript.add(segments):
            self._print_line(labelled(item))
        self.partial = self._transcript.partial
        if self.partial is not None:
            self._print_partial(self.partial["text"].strip())
        if self.callback is not None:
            texts = [s.text.strip() for s in segments]
            self.callback(" ".join(texts), [s.to_json() for s in segments])

    def _finish(self) -> list[dict[str, Any]]:
        if self._failure is not None:
            raise self._failure
        if self.partial is not None and self.partial["text"].strip():
            # The server completes everything on END_OF_AUDIO; keep a leftover partial anyway.
            self.segments.append(self.partial)
            self.partial = None
        if self.output:
            fmt = write_transcript(self.output, self.segments)
            self._print(f"wrote {len(self.segments)} segments to {self.output} ({fmt})\n")
        return self.segments

    # -- terminal ----------------------------------------------------------------------------

    def _print(self, text: str) -> None:
        if self.show is not None:
            self.show.write(text)
            self.show.flush()

    def _print_line(self, text: str) -> None:
        self._print("\r\033[K" + text + "\n" if self._tty else text + "\n")

    def _print_partial(self, text: str) -> None:
        if self._tty:
            self._print("\r\033[K\033[2m" + text[-100:] + "\033[0m")

    def _progress(self, done_s: float, total_s: float) -> None:
        if self.show is None:
            return
        width = 30
        filled = int(width * done_s / total_s) if total_s else width
        bar = "#" * filled + "-" * (width - filled)
        line = f"[{bar}] {100 * done_s / max(total_s, 1e-9):5.1f}% {done_s:6.1f}/{total_s:.1f} s"
        if self._tty:
            self._print("\r\033[K" + line)
        elif done_s >= total_s:
            self._print(line + "\n")

    @property
    def _tty(self) -> bool:
        return self.show is not None and self.show.isatty()


def _open_microphone(chunk_samples: int) -> Any:
    """Open the default input device as 16 kHz mono int16 (PyAudio, extra ``mic``)."""
    try:
        import pyaudio
    except ImportError as exc:
        raise ClientError(
            "the microphone needs PyAudio: pip install 'whisper-streaming[mic]' "
            "(Debian/Ubuntu: apt-get install portaudio19-dev first)"
        ) from exc
    audio = pyaudio.PyAudio()
    try:
        stream = audio.open(
            format=pyaudio.paInt16,
            channels=1,
            rate=SAMPLE_RATE,
            input=True,
            frames_per_buffer=chunk_samples,
        )
    except OSError as exc:
        audio.terminate()
        raise ClientError(f"no usable microphone: {exc}") from exc

    class _Mic:
        def read(self, n: int) -> bytes:
            return bytes(stream.read(n, exception_on_overflow=False))

        def close(self) -> None:
            stream.stop_stream()
            stream.close()
            audio.terminate()

    return _Mic()


def connection_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the server could not be reached."""
    return (OSError, InvalidHandshake, TimeoutError, asyncio.TimeoutError)
