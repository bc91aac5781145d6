"""One connection of the typed JSON protocol (path "/ws/transcribe").

A connection holds one admission slot and may record several times: ``start_recording`` opens a
recording (a new processor), ``stop_recording`` flushes it and answers ``stopped``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time

from websockets.frames import CloseCode

from ..audio import StreamingResampler
from ..exceptions import AudioError, ProtocolError, StateError
from ..streaming.processor import ASRProcessor
from .connection import Connection, ConnectionClosed
from .context import ServerContext, SessionLogger
from .protocols import json_v1 as jp
from .serve_client import (
    INTERNAL_ERROR,
    WATCHDOG_INTERVAL_S,
    EndReason,
    _Lifecycle,
    _safe_send,
    close_slow_reader,
    final_deadline,
    supervise,
)
from .session import SessionError, SessionState, StreamSession, UpdateEvent

__all__ = ["serve_json"]

# Audio frames that arrive this soon after stop_recording are the sender's last buffers, ignored
# without an error (and not counted toward the bad-frame budget).
TRAILING_AUDIO_S = 1.0

logger = logging.getLogger(__name__)


async def serve_json(ws: Connection, ctx: ServerContext) -> None:
    """Serve one JSON-protocol connection."""
    session_id = ctx.new_session_id("json")
    log = SessionLogger(logger, {"session": session_id})
    admission = ctx.manager.try_admit(session_id)
    if not admission.admitted:
        ctx.metrics.refused_total.inc()
        await _safe_send(ws, jp.wait(admission.wait_minutes))
        await ws.close(CloseCode.TRY_AGAIN_LATER, "server full")
        return
    ctx.metrics.sessions_total.labels("json").inc()
    ctx.metrics.sessions_active.inc()
    try:
        await ws.send(jp.ready(session_id, ctx.backend_name, ctx.model_name))
        await _JsonConnection(ws, ctx, session_id, admission.deadline, log).run()
    except ConnectionClosed:
        log.info("connection closed")
    finally:
        ctx.metrics.sessions_active.dec()
        ctx.manager.release(session_id)


class _Recording:
    def __init__(self, session: StreamSession, config: jp.RecordingConfig) -> None:
        self.session = session
        self.config = config
        self.resampler = StreamingResampler(config.sample_rate)
        self.sender: asyncio.Task[None] | None = None


class _JsonConnection:
    def __init__(
        self,
        ws: Connection,
        ctx: ServerContext,
        session_id: str,
        deadline: float,
        log: SessionLogger,
    ) -> None:
        self.ws = ws
        self.ctx = ctx
        self.session_id = session_id
        self.deadline = deadline
        self.log = log
        self.life = _Lifecycle()
        self.recording: _Recording | None = None
        self.last_activity = time.monotonic()
        self.bad_frames = 0
        self.stopped_at: float | None = None  # when the client last sent stop_recording
        self.trailing_frames = 0
        self.segment_id = 0
        self._recordings = 0

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._watch())]
        for task in tasks:
            supervise(task, self.life, self.log)
        try:
            await self.life.ended.wait()
            reason = self.life.reason
            self.log.info("ending: %s", reason.value if reason else "?")
            if reason is EndReason.PROTOCOL:
                await self.ws.close(CloseCode.POLICY_VIOLATION, "too many malformed messages")
                return
            if reason is EndReason.CLOSED:
                return
            if reason is EndReason.SLOW_READER:
                await close_slow_reader(self.ws)
                return
            if reason is EndReason.ERROR:
                self.ctx.metrics.errors.labels("internal").inc()
                await _safe_send(self.ws, jp.error("internal", INTERNAL_ERROR))
                await self.ws.close(CloseCode.INTERNAL_ERROR, "internal error")
                return
            if not await self._stop_recording(wait=True, reason=reason):
                await self.ws.close(CloseCode.INTERNAL_ERROR, "final transcript incomplete")
                return
            if reason is EndReason.TIME_LIMIT:
                await _safe_send(self.ws, jp.error("time_limit", "maximum connection time reached"))
            elif reason is EndReason.IDLE:
                await _safe_send(self.ws, jp.error("idle_timeout", "no audio for too long"))
            code = (
                CloseCode.GOING_AWAY if reason is EndReason.SHUTDOWN else CloseCode.NORMAL_CLOSURE
            )
            await self.ws.close(code)
        finally:
            if self.recording is not None:
                self.recording.session.close()
                if self.recording.sender is not None:
                    tasks.append(self.recording.sender)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self) -> None:
        options = self.ctx.options
        while not self.life.ended.is_set():
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            now = time.monotonic()
            if self.recording is not None:
                self.recording.session.flush_if_quiet(options.quiet_flush_s)
                if self.recording.session.events.overflowed:
                    self.life.end(EndReason.SLOW_READER)
                self.last_activity = max(self.last_activity, self.recording.session.last_active_at)
            if self.ctx.shutting_down.is_set():
                self.life.end(EndReason.SHUTDOWN)
            elif now >= self.deadline:
                self.life.end(EndReason.TIME_LIMIT)
            elif now - self.last_activity >= options.idle_timeout_s:
                self.life.end(EndReason.IDLE)

    async def _receive(self) -> None:
        try:
            async for message in self.ws:
                try:
                    if isinstance(message, str):
                        await self._on_text(message)
                    else:
                        await self._on_audio(message)
                        if self.recording is not None:
                            await self.recording.session.hold_back(self.ctx.options.max_backlog_s)
                except (ProtocolError, AudioError, StateError) as exc:
                    code = getattr(exc, "code", "bad_audio")
                    self.bad_frames += 1
                    self.ctx.metrics.errors.labels(code).inc()
                    await self.ws.send(jp.error(code, str(exc)))
                    if self.bad_frames >= self.ctx.options.max_bad_frames:
                        self.life.end(EndReason.PROTOCOL)
                        return
        except ConnectionClosed:
            pass
        self.life.end(EndReason.CLOSED)

    async def _on_text(self, raw: str) -> None:
        message = jp.parse(raw)
        self.last_activity = time.monotonic()
        if isinstance(message, jp.Ping):
            await self.ws.send(jp.pong())
        elif isinstance(message, jp.StartRecording):
            if self.recording is not None:
                raise ProtocolError(
                    "a recording is already running; send stop_recording first",
                    code="already_started",
                )
            self._start(message.config)
        else:
            if self.recording is None:
                raise ProtocolError("no recording to stop", code="not_started")
            self.stopped_at = time.monotonic()
            await self._stop_recording(wait=False, reason=EndReason.END_OF_AUDIO)

    def _start(self, config: jp.RecordingConfig) -> None:
        options = dataclasses.replace(
            self.ctx.processor_options,
            language=config.language if self.ctx.multilingual else "en",
            task=config.task if self.ctx.multilingual else "transcribe",
            initial_prompt=config.prompt or self.ctx.processor_options.initial_prompt,
        )
        self._recordings += 1
        session_id = f"{self.session_id}.{self._recordings}"
        session = StreamSession(
            session_id,
            ASRProcessor(options),
            self.ctx.scheduler,
            self.ctx.metrics,
            recorder=self.ctx.open_recording(session_id),
        )
        recording = _Recording(session, config)
        recording.sender = asyncio.create_task(self._send(recording))
        supervise(recording.sender, self.life, self.log)
        self.recording = recording

    async def _on_audio(self, data: bytes) -> None:
        recording = self.recording
        if recording is None or recording.session.state is not SessionState.STREAMING:
            since_stop = time.monotonic() - (self.stopped_at or -math.inf)
            if since_stop <= TRAILING_AUDIO_S:
                # A browser's audio worklet still delivers the buffers it held when the page
                # said stop: they are after the end of the recording, not errors.
                self.trailing_frames += 1
                self.log.debug("audio after stop_recording ignored (%d)", self.trailing_frames)
                return
            raise ProtocolError("send start_recording before audio", code="not_started")
        samples = jp.decode_audio(data, recording.config.encoding)
        await recording.session.feed(samples, recording.resampler.process)

    async def _stop_recording(self, *, wait: bool, reason: EndReason | None) -> bool:
        """Finish the recording; with ``wait``, wait for its final transcript. Returns False
        when that never came (the client was told what is missing)."""
        recording = self.recording
        if recording is None:
            return True
        # The last 2 ms, held back for the filter (after any audio still being resampled).
        tail = await recording.session.offload(recording.resampler.flush)
        if tail.size and recording.session.state is SessionState.STREAMING:
            await recording.session.feed(tail)
        recording.session.finish()
        if not wait or recording.sender is None:
            return True
        missing = await recording.session.wait_final(
            recording.sender,
            deadline=final_deadline(reason, self.deadline, self.ctx),
            stall_s=self.ctx.options.final_stall_s,
        )
        if missing is None:
            return True
        text = f"final transcript incomplete ({missing}): {recording.session.untranscribed()}"
        self.log.warning("%s", text)
        self.ctx.metrics.errors.labels("incomplete").inc()
        await _safe_send(self.ws, jp.error("incomplete", text))
        return False

    async def _send(self, recording: _Recording) -> None:
        session = recording.session
        last_partial = ""
        while True:
            event = await session.events.get()
            if isinstance(event, SessionError):
                self.ctx.metrics.errors.labels(event.code).inc()
                await self.ws.send(jp.error(event.code, event.message))
                continue
            assert isinstance(event, UpdateEvent)
            update = event.update
            if update.language:
                await self.ws.send(jp.language(update.language, update.language_probability))
            if update.committed:
                ms = 1000 * event.timing.inference_s if event.timing else 0.0
                await self.ws.send(
                    jp.transcription(
                        self.segment_id,
                        update.committed,
                        ms,
                        with_words=recording.config.word_timestamps,
                    )
                )
                self.segment_id += 1
            partial = jp.partial(update.partial)
            if partial != last_partial and (update.partial or last_partial):
                await self.ws.send(partial)
                last_partial = partial
            if event.timing is not None and (update.committed or update.partial):
                self.ctx.metrics.update_latency.observe(time.monotonic() - event.audio_received_at)
            if update.final:
                session.close()
                if self.recording is recording:
                    self.recording = None
                await self.ws.send(jp.stopped())
                return
