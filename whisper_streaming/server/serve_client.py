"""One connection's life: receive audio, drive the session, send updates.

The receive loop, the send loop and a watchdog (quiet flush, idle timeout, time limit, server
shutdown) run as separate tasks; whichever ends the session first decides how it closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from typing import Any

from websockets.frames import CloseCode

from ..config import ProcessorOptions
from ..exceptions import AudioError, ProtocolError, StateError
from ..streaming.processor import ASRProcessor
from ..streaming.segments import SegmentBuilder
from .connection import Connection, ConnectionClosed
from .context import ServerContext, SessionLogger
from .protocols import whisperlive as wl
from .session import SessionError, SessionState, StreamSession, UpdateEvent

__all__ = ["INTERNAL_ERROR", "EndReason", "serve_whisperlive", "supervise"]

logger = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 0.1
INTERNAL_ERROR = "internal server error; this session ended (the server log has the details)"


class EndReason(enum.Enum):
    """Why a session ended."""

    END_OF_AUDIO = "end_of_audio"
    CLOSED = "closed"
    TIME_LIMIT = "time_limit"
    IDLE = "idle"
    SHUTDOWN = "shutdown"
    PROTOCOL = "protocol"
    SLOW_READER = "slow_reader"
    ERROR = "error"  # a task of the connection failed


def supervise(task: asyncio.Task[None], life: _Lifecycle, log: logging.LoggerAdapter[Any]) -> None:
    """End the session at once (``EndReason.ERROR``) if ``task`` dies of an exception."""

    def done(t: asyncio.Task[None]) -> None:
        if t.cancelled() or t.exception() is None:
            return
        exc = t.exception()
        if isinstance(exc, ConnectionClosed):
            life.end(EndReason.CLOSED)
            return
        log.error("connection task failed; ending the session", exc_info=exc)
        life.end(EndReason.ERROR)

    task.add_done_callback(done)


class _Lifecycle:
    """Records the first reason a session ends."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()
        self.reason: EndReason | None = None

    def end(self, reason: EndReason) -> None:
        if self.reason is None:
            self.reason = reason
            self.ended.set()


async def watch(
    session: StreamSession, ctx: ServerContext, deadline: float, life: _Lifecycle
) -> None:
    """Flush after a quiet period; end the session on idle, time limit or shutdown."""
    options = ctx.options
    while not life.ended.is_set():
        await asyncio.sleep(WATCHDOG_INTERVAL_S)
        now = time.monotonic()
        session.flush_if_quiet(options.quiet_flush_s)
        if session.events.overflowed:
            life.end(EndReason.SLOW_READER)
        elif ctx.shutting_down.is_set():
            life.end(EndReason.SHUTDOWN)
        elif now >= deadline:
            life.end(EndReason.TIME_LIMIT)
        elif now - session.last_active_at >= options.idle_timeout_s:
            life.end(EndReason.IDLE)


def final_deadline(
    reason: EndReason | None, connection_deadline: float, ctx: ServerContext
) -> float:
    """Until when the final transcript is waited for: the connection's time limit after the end
    of audio (at least ``shutdown_timeout_s`` from now), ``shutdown_timeout_s`` after a time
    limit, an idle timeout or a server shutdown."""
    grace = time.monotonic() + ctx.options.shutdown_timeout_s
    if reason is EndReason.END_OF_AUDIO:
        return max(connection_deadline, grace)
    return grace


async def close_slow_reader(ws: Connection) -> None:
    """End a connection whose client stopped reading (its messages piled up): close without
    waiting for a closing handshake it would not read either."""
    logger.warning("client does not read its messages; closing")
    ws.abort()


async def _safe_send(ws: Connection, message: str) -> bool:
    try:
        await ws.send(message)
        return True
    except ConnectionClosed:
        return False


async def _refuse(ws: Connection, message: str, code: CloseCode, reason: str) -> None:
    await _safe_send(ws, message)
    await ws.close(code, reason)


async def serve_whisperlive(ws: Connection, ctx: ServerContext) -> None:
    """Serve one WhisperLive-protocol connection from configuration to close."""
    try:
        raw = await asyncio.wait_for(ws.recv(), ctx.options.config_timeout_s)
    except (TimeoutError, asyncio.TimeoutError):
        await _refuse(
            ws,
            wl.error(None, f"no configuration message within {ctx.options.config_timeout_s:g} s"),
            CloseCode.POLICY_VIOLATION,
            "no configuration",
        )
        return
    except ConnectionClosed:
        return
    try:
        config = wl.parse_config(raw)
    except ProtocolError as exc:
        await _refuse(ws, wl.error(None, str(exc)), CloseCode.POLICY_VIOLATION, exc.code)
        return
    session_id = ctx.new_session_id(config.uid[:40])
    log = SessionLogger(logger, {"session": session_id})
    admission = ctx.manager.try_admit(session_id)
    if not admission.admitted:
        log.info("refused: %d clients already", ctx.manager.current_clients)
        ctx.metrics.refused_total.inc()
        await _refuse(
            ws,
            wl.wait(config.uid, admission.wait_minutes),
            CloseCode.TRY_AGAIN_LATER,
            "server full",
        )
        return
    session: StreamSession | None = None
    try:
        options, warnings = _session_options(config, ctx)
        session = StreamSession(
            session_id,
            ASRProcessor(options),
            ctx.scheduler,
            ctx.metrics,
            recorder=ctx.open_recording(session_id),
        )
        ctx.metrics.sessions_total.labels("whisperlive").inc()
        ctx.metrics.sessions_active.inc()
        for text in warnings:
            await ws.send(wl.warning(config.uid, text))
        await ws.send(wl.server_ready(config.uid, ctx.backend_name))
        log.info("streaming (vad=%s, language=%s)", options.use_vad, options.language)
        await _WhisperLiveConnection(ws, config, session, ctx, admission.deadline, log).run()
    except ConnectionClosed:
        log.info("connection closed")
    finally:
        if session is not None:
            session.close()
            ctx.metrics.sessions_active.dec()
        ctx.manager.release(session_id)


def _session_options(
    config: wl.ClientConfig, ctx: ServerContext
) -> tuple[ProcessorOptions, list[str]]:
    warnings = []
    if config.model and config.model != ctx.model_name:
        warnings.append(
            f"model {config.model!r} is not served here; using {ctx.model_name!r} instead"
        )
    language = config.language or ctx.processor_options.language
    task = config.task
    if not ctx.multilingual:
        if language not in (None, "en"):
            warnings.append(f"{ctx.model_name!r} is English-only; language {language!r} ignored")
        if task == "translate":
            warnings.append(f"{ctx.model_name!r} cannot translate; transcribing instead")
        language, task = "en", "transcribe"
    if config.unsupported:
        names = ", ".join(config.unsupported)
        warnings.append(f"not supported by this server, ignored: {names}")
    options = dataclasses.replace(
        ctx.processor_options,
        language=language,
        task=task,
        use_vad=config.use_vad,
        initial_prompt=config.initial_prompt or ctx.processor_options.initial_prompt,
    )
    return options, warnings


class _WhisperLiveConnection:
    def __init__(
        self,
        ws: Connection,
        config: wl.ClientConfig,
        session: StreamSession,
        ctx: ServerContext,
        deadline: float,
        log: SessionLogger,
    ) -> None:
        self.ws = ws
        self.config = config
        self.session = session
        self.ctx = ctx
        self.deadline = deadline
        self.log = log
        self.life = _Lifecycle()
        self.builder = SegmentBuilder()
        self._last_sent = ""

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._receive()),
            asyncio.create_task(watch(self.session, self.ctx, self.deadline, self.life)),
        ]
        sender = asyncio.create_task(self._send())
        for task in (*tasks, sender):
            supervise(task, self.life, self.log)
        try:
            await self.life.ended.wait()
            reason = self.life.reason
            self.log.info("ending: %s", reason.value if reason else "?")
            if reason in (EndReason.CLOSED, EndReason.PROTOCOL, EndReason.SLOW_READER):
                if reason is EndReason.PROTOCOL:
                    await self.ws.close(CloseCode.POLICY_VIOLATION, "too many malformed frames")
                elif reason is EndReason.SLOW_READER:
                    await close_slow_reader(self.ws)
                return
            if reason is EndReason.ERROR:
                self.ctx.metrics.errors.labels("internal").inc()
                await _safe_send(self.ws, wl.error(self.config.uid, INTERNAL_ERROR))
                await self.ws.close(CloseCode.INTERNAL_ERROR, "internal error")
                return
            # Flush: the final decodes run and their segments are sent before we close.
            self.session.finish()
            missing = await self.session.wait_final(
                sender,
                deadline=final_deadline(reason, self.deadline, self.ctx),
                stall_s=self.ctx.options.final_stall_s,
            )
            if missing is not None:
                text = f"final transcript incomplete ({missing}): {self.session.untranscribed()}"
                self.log.warning("%s", text)
                self.ctx.metrics.errors.labels("incomplete").inc()
                await _safe_send(self.ws, wl.error(self.config.uid, text))
                await self.ws.close(CloseCode.INTERNAL_ERROR, "final transcript incomplete")
                return
            if reason in (EndReason.TIME_LIMIT, EndReason.IDLE):
                await _safe_send(self.ws, wl.disconnect(self.config.uid))
            code = (
                CloseCode.GOING_AWAY if reason is EndReason.SHUTDOWN else CloseCode.NORMAL_CLOSURE
            )
            await self.ws.close(code)
        finally:
            for task in (*tasks, sender):
                task.cancel()
            await asyncio.gather(*tasks, sender, return_exceptions=True)

    async def _receive(self) -> None:
        bad_frames = 0
        try:
            async for message in self.ws:
                if self.session.state is not SessionState.STREAMING:
                    continue  # audio after END_OF_AUDIO is ignored
                if isinstance(message, bytes) and message == wl.END_OF_AUDIO:
                    self.life.end(EndReason.END_OF_AUDIO)
                    continue
                try:
                    if isinstance(message, str):
                        raise ProtocolError(
                            "unexpected text message: send binary audio frames, then END_OF_AUDIO"
                        )
                    await self.session.feed(wl.decode_audio(message, self.config.audio_format))
                    await self.session.hold_back(self.ctx.options.max_backlog_s)
                except (ProtocolError, AudioError, StateError) as exc:
                    bad_frames += 1
                    self.log.info("bad frame %d: %s", bad_frames, exc)
                    self.ctx.metrics.errors.labels(getattr(exc, "code", "bad_audio")).inc()
                    await self.ws.send(wl.error(self.config.uid, str(exc)))
                    if bad_frames >= self.ctx.options.max_bad_frames:
                        self.life.end(EndReason.PROTOCOL)
                        return
        except ConnectionClosed:
            pass
        self.life.end(EndReason.CLOSED)

    async def _send(self) -> None:
        uid = self.config.uid
        n = self.config.send_last_n_segments
        with_words = self.config.word_timestamps
        while True:
            event = await self.session.events.get()
            if isinstance(event, SessionError):
                self.ctx.metrics.errors.labels(event.code).inc()
                await self.ws.send(wl.error(uid, event.message))
                continue
            assert isinstance(event, UpdateEvent)
            update = event.update
            if update.language:
                await self.ws.send(wl.language(uid, update.language, update.language_probability))
            done = self.builder.add(update)
            # WhisperLive sends the last n completed segments with each update; when one update
            # completes more (a burst of piled-up audio decoded at once), send the older ones
            # first, n at a time, or the client never sees them.
            if n > 0:
                for i in range(0, len(done) - n, n):
                    await self.ws.send(
                        wl.segments(uid, done[i : min(i + n, len(done) - n)], with_words=with_words)
                    )
            segs = self.builder.recent(n)
            current = self.builder.current()
            if current is not None:
                segs.append(current)
            elif done and segs:
                # The stock WhisperLive client keeps the last incomplete segment it was sent and
                # writes it after the completed ones unless the texts are equal. That partial
                # was the whole utterance, which the final decode may split into several
                # segments: show the last one as incomplete first, so the client's copy is
                # current (otherwise its SRT ends with the utterance twice).
                preview = [*segs[:-1], dataclasses.replace(segs[-1], completed=False)]
                await self.ws.send(wl.segments(uid, preview, with_words=with_words))
            if segs:
                message = wl.segments(uid, segs, with_words=with_words)
                if message != self._last_sent:
                    await self.ws.send(message)
                    self._last_sent = message
                    if event.timing is not None:
                        latency = time.monotonic() - event.audio_received_at
                        self.ctx.metrics.update_latency.observe(latency)
            if update.final:
                return
