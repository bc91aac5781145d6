"""One WebSocket connection's life, for every wire protocol.

The driver owns what every protocol shares: admission, metrics, a receive task and a send task
under one supervisor (when one fails, the session ends at once with a reason and the others are
cancelled), the time limit, idle timeout and quiet flush as timers (no polling), end reasons
mapped to farewells and close codes, and the bad-frame budget. What differs between protocols
is a sans-I/O adapter (``protocols/base.py``): client messages in, actions out; session events
in, typed messages out.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from websockets.frames import CloseCode

from ..audio import SAMPLE_RATE, StreamingResampler
from ..config import ProcessorOptions
from ..exceptions import AudioError, ProtocolError, StateError
from ..speakers import OnlineClustering, SpeakerTracker
from ..streaming.processor import ASRProcessor
from .connection import Connection, ConnectionClosed
from .context import ServerContext, SessionLogger
from .protocols.base import (
    Action,
    Audio,
    Begin,
    EndReason,
    Finish,
    Send,
    ServerInfo,
    ServerMessage,
    WireAdapter,
)
from .session import SessionError, SessionState, StreamSession, UpdateEvent

__all__ = ["INTERNAL_ERROR", "Alarm", "Lifecycle", "serve", "supervise"]

logger = logging.getLogger(__name__)

IN_FLIGHT_QUIET_S = 0.1
IN_FLIGHT_MAX_S = 1.0

INTERNAL_ERROR = "internal server error; this session ended (the server log has the details)"


class Lifecycle:
    """Records the first reason a session ends."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()
        self.reason: EndReason | None = None

    def end(self, reason: EndReason) -> None:
        if self.reason is None:
            self.reason = reason
            self.ended.set()


def supervise(task: asyncio.Task[None], life: Lifecycle, log: logging.LoggerAdapter[Any]) -> None:
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


class Alarm:
    """Calls ``callback`` once the monotonic clock reaches the time last :meth:`set`.

    Setting it later than a pending wake-up does not reschedule: the wake-up finds it early and
    sleeps again until the new time. So a timer pushed back on every audio frame wakes the loop
    about once per period, not once per frame.
    """

    def __init__(self, callback: Callable[[], object]) -> None:
        self._callback = callback
        self._at = math.inf
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = math.inf

    def set(self, at: float) -> None:
        self._at = at
        if self._handle is None or self._handle_at > at:
            self._schedule()

    def cancel(self) -> None:
        self._at = math.inf
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle_at = self._at
        delay = max(0.0, self._at - time.monotonic())
        self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self._at == math.inf:
            return
        if time.monotonic() < self._at:
            self._schedule()
            return
        self._at = math.inf
        self._callback()


class _Stream:
    """One stream of audio (a WhisperLive session, or one JSON recording)."""

    def __init__(self, session: StreamSession, sample_rate: int, quiet: Alarm) -> None:
        self.session = session
        self.resampler = StreamingResampler(sample_rate) if sample_rate != SAMPLE_RATE else None
        self.quiet = quiet
        self.sender: asyncio.Task[None] | None = None


async def serve(ws: Connection, ctx: ServerContext, adapter: WireAdapter) -> None:
    """Serve one accepted WebSocket with ``adapter``'s protocol, from first message to close."""
    await _Driver(ws, ctx, adapter).run()


class _Driver:
    def __init__(self, ws: Connection, ctx: ServerContext, adapter: WireAdapter) -> None:
        self.ws = ws
        self.ctx = ctx
        self.adapter = adapter
        self.life = Lifecycle()
        self.log: logging.LoggerAdapter[Any] = SessionLogger(logger, {"session": "?"})
        self.session_id = ""
        self.deadline = math.inf
        self.stream: _Stream | None = None
        self.last_message_at = time.monotonic()
        self.bad_frames = 0
        self.idle = Alarm(self._check_idle)
        self._feeding = asyncio.Lock()  # held while audio is on its way into the stream

    async def run(self) -> None:
        if self.adapter.expects_config and not await self._configure():
            return
        ctx = self.ctx
        self.session_id = ctx.new_session_id(self.adapter.session_name())
        self.log = SessionLogger(logger, {"session": self.session_id})
        load = ctx.scheduler.load.overloaded(ctx.options.max_load) if ctx.options.max_load else None
        admission = ctx.manager.try_admit(self.session_id, busy=load is not None)
        if not admission.admitted:
            if load is not None:
                self.log.info(
                    "refused: %d live session(s) use %.0f%% of the model; one more: %.0f%%",
                    load.realtime_sessions,
                    100 * load.used / load.capacity,
                    100 * load.with_one_more,
                )
            else:
                self.log.info("refused: %d clients already", ctx.manager.current_clients)
            ctx.metrics.refused_total.inc()
            why = "server busy" if load is not None else "server full"
            await self._refuse(
                self.adapter.wait(admission.wait_minutes), CloseCode.TRY_AGAIN_LATER, why
            )
            return
        self.deadline = admission.deadline
        ctx.metrics.sessions_total.labels(self.adapter.name).inc()
        ctx.metrics.sessions_active.inc()
        try:
            await self._serve()
        except ConnectionClosed:
            self.log.info("connection closed")
        finally:
            ctx.metrics.sessions_active.dec()
            ctx.manager.release(self.session_id)

    async def _configure(self) -> bool:
        """Read the configuration message; refuse the connection without a good one."""
        timeout_s = self.ctx.options.config_timeout_s
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout_s)
        except (TimeoutError, asyncio.TimeoutError):
            message = f"no configuration message within {timeout_s:g} s"
            await self._refuse(
                self.adapter.error("no_config", message),
                CloseCode.POLICY_VIOLATION,
                "no configuration",
            )
            return False
        except ConnectionClosed:
            return False
        try:
            self.adapter.configure(raw)
        except ProtocolError as exc:
            await self._refuse(
                self.adapter.error(exc.code, str(exc)), CloseCode.POLICY_VIOLATION, exc.code
            )
            return False
        return True

    async def _serve(self) -> None:
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        time_limit = loop.call_later(
            max(0.0, self.deadline - time.monotonic()), self.life.end, EndReason.TIME_LIMIT
        )
        self.idle.set(time.monotonic() + ctx.options.idle_timeout_s)
        tasks: list[asyncio.Task[None]] = []
        try:
            info = ServerInfo(
                self.session_id,
                ctx.backend_name,
                ctx.model_name,
                ctx.multilingual,
                ctx.processor_options,
                diarization=ctx.speaker_encoder is not None,
            )
            for action in self.adapter.opened(info):
                await self._do(action)
            tasks = [
                asyncio.create_task(self._receive()),
                asyncio.create_task(self._watch_shutdown()),
            ]
            for task in tasks:
                supervise(task, self.life, self.log)
            await self.life.ended.wait()
            reason = self.life.reason
            assert reason is not None
            self.log.info("ending: %s", reason.value)
            await self._end(reason)
        finally:
            time_limit.cancel()
            self.idle.cancel()
            if self.stream is not None:
                self.stream.quiet.cancel()
                self.stream.session.close()
                if self.stream.sender is not None:
                    tasks.append(self.stream.sender)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- ending ------------------------------------------------------------------------------

    async def _end(self, reason: EndReason) -> None:
        """Carry out ``reason``: flush the stream and say goodbye, or close at once."""
        if reason is EndReason.CLOSED:
            return
        if reason is EndReason.PROTOCOL:
            await self.ws.close(CloseCode.POLICY_VIOLATION, "too many malformed frames")
            return
        if reason is EndReason.SLOW_READER:
            # A close frame would wait behind the data the client does not read.
            self.log.warning("client does not read its messages; closing")
            self.ws.abort()
            return
        if reason is EndReason.ERROR:
            self.ctx.metrics.errors.labels("internal").inc()
            await self._safe_send(self.adapter.error("internal", INTERNAL_ERROR))
            await self.ws.close(CloseCode.INTERNAL_ERROR, "internal error")
            return
        if reason is EndReason.SHUTDOWN:
            await self._take_audio_in_flight()
        stream = self.stream
        if stream is not None and stream.sender is not None:
            # The final decodes run and their text is sent before the connection closes.
            await self._finish(stream)
            missing = await stream.session.wait_final(
                stream.sender,
                deadline=self._final_deadline(reason),
                stall_s=self.ctx.options.final_stall_s,
            )
            if missing is not None:
                text = f"final transcript incomplete ({missing}): {stream.session.untranscribed()}"
                self.log.warning("%s", text)
                self.ctx.metrics.errors.labels("incomplete").inc()
                await self._safe_send(self.adapter.error("incomplete", text))
                await self.ws.close(CloseCode.INTERNAL_ERROR, "final transcript incomplete")
                return
        farewell = self.adapter.farewell(reason)
        if farewell is not None:
            await self._safe_send(farewell)
        code = CloseCode.GOING_AWAY if reason is EndReason.SHUTDOWN else CloseCode.NORMAL_CLOSURE
        await self.ws.close(code)

    async def _take_audio_in_flight(self) -> None:
        """At a shutdown, audio the client sent just before it is still read (until the
        connection has been quiet for ``IN_FLIGHT_QUIET_S``, at most ``IN_FLIGHT_MAX_S``): the
        final transcript covers what was said up to the shutdown, not up to the last frame the
        server happened to have read."""
        until = time.monotonic() + IN_FLIGHT_MAX_S
        while (now := time.monotonic()) < until:
            quiet_at = self.last_message_at + IN_FLIGHT_QUIET_S
            if now >= quiet_at:
                return
            await asyncio.sleep(min(quiet_at, until) - now)

    def _final_deadline(self, reason: EndReason) -> float:
        """Until when the final transcript is waited for: the connection's time limit after the
        end of audio (at least ``shutdown_timeout_s`` from now), ``shutdown_timeout_s`` after a
        time limit, an idle timeout or a server shutdown."""
        grace = time.monotonic() + self.ctx.options.shutdown_timeout_s
        if reason is EndReason.END_OF_AUDIO:
            return max(self.deadline, grace)
        return grace

    async def _watch_shutdown(self) -> None:
        await self.ctx.shutting_down.wait()
        self.life.end(EndReason.SHUTDOWN)

    def _check_idle(self) -> None:
        active = self.last_message_at
        if self.stream is not None:
            active = max(active, self.stream.session.last_active_at)
        due = active + self.ctx.options.idle_timeout_s
        if time.monotonic() >= due:
            self.life.end(EndReason.IDLE)
        else:
            self.idle.set(due)

    # -- receiving ---------------------------------------------------------------------------

    async def _receive(self) -> None:
        try:
            async for message in self.ws:
                now = time.monotonic()
                self.last_message_at = now
                try:
                    for action in self.adapter.receive(message, now):
                        await self._do(action)
                except (ProtocolError, AudioError, StateError) as exc:
                    if await self._bad_frame(exc):
                        return
        except ConnectionClosed:
            pass
        self.life.end(EndReason.CLOSED)

    async def _bad_frame(self, exc: ProtocolError | AudioError | StateError) -> bool:
        """Tell the client what was wrong; returns True once the budget is spent."""
        code = getattr(exc, "code", "bad_audio")
        self.bad_frames += 1
        self.log.info("bad frame %d: %s", self.bad_frames, exc)
        self.ctx.metrics.errors.labels(code).inc()
        await self.ws.send(self.adapter.error(code, str(exc)).serialize())
        if self.bad_frames >= self.ctx.options.max_bad_frames:
            self.life.end(EndReason.PROTOCOL)
            return True
        return False

    async def _do(self, action: Action) -> None:
        if isinstance(action, Send):
            await self.ws.send(action.message.serialize())
        elif isinstance(action, Audio):
            await self._feed(action)
        elif isinstance(action, Begin):
            self._begin(action)
        elif isinstance(action, Finish):
            if action.last:
                self.life.end(EndReason.END_OF_AUDIO)
            elif self.stream is not None:
                await self._finish(self.stream)

    def _begin(self, begin: Begin) -> None:
        ctx = self.ctx
        name = f"{self.session_id}{begin.name}"
        session = StreamSession(
            name,
            ASRProcessor(begin.options),
            ctx.scheduler,
            ctx.metrics,
            recorder=ctx.open_recording(name),
            speakers=self._speaker_tracker(begin.options) if begin.diarize else None,
        )
        session.events.on_overflow = lambda: self.life.end(EndReason.SLOW_READER)
        quiet_s = ctx.options.quiet_flush_s
        stream = _Stream(session, begin.sample_rate, Alarm(lambda: session.flush_if_quiet(quiet_s)))
        stream.sender = asyncio.create_task(self._send(stream))
        supervise(stream.sender, self.life, self.log)
        self.stream = stream
        self.log.info(
            "streaming %s (vad=%s, language=%s, %d Hz, speakers=%s)",
            name,
            begin.options.use_vad,
            begin.options.language,
            begin.sample_rate,
            session.speakers is not None,
        )

    def _speaker_tracker(self, options: ProcessorOptions) -> SpeakerTracker | None:
        encoder = self.ctx.speaker_encoder
        if encoder is None:
            return None  # the adapter warned the client
        vad = options.vad
        return SpeakerTracker(
            encoder,
            OnlineClustering(max_speakers=self.ctx.options.max_speakers),
            lookahead_s=max(0, vad.min_silence_ms - vad.speech_pad_ms) / 1000,
        )

    async def _feed(self, audio: Audio) -> None:
        stream = self.stream
        if stream is None or stream.session.state is not SessionState.STREAMING:
            if self.life.ended.is_set():
                return  # the session is being ended (a time limit): audio after its end
            raise StateError("the stream has ended; no more audio is accepted")
        session = stream.session
        convert = stream.resampler.process if stream.resampler is not None else None
        async with self._feeding:
            await session.feed(audio.samples, convert)
        # Stop reading while the backlog is too long: TCP slows the client down.
        await session.hold_back(self.ctx.options.max_backlog_s)
        stream.quiet.set(session.last_audio_at + self.ctx.options.quiet_flush_s)

    async def _finish(self, stream: _Stream) -> None:
        """End of the stream's audio: the resampler's held-back tail, then the final decodes."""
        session = stream.session
        stream.quiet.cancel()
        async with self._feeding:  # audio already being prepared belongs to the stream
            pass
        if session.state is not SessionState.STREAMING:
            return
        if stream.resampler is not None:
            tail = await session.offload(stream.resampler.flush)
            if tail.size and session.state is SessionState.STREAMING:
                await session.feed(tail)
        session.finish()

    # -- sending -----------------------------------------------------------------------------

    async def _send(self, stream: _Stream) -> None:
        """Send the stream's events until its final transcript."""
        session = stream.session
        metrics = self.ctx.metrics
        while True:
            event = await session.events.get()
            if isinstance(event, SessionError):
                metrics.errors.labels(event.code).inc()
            messages = self.adapter.event(event)
            for message in messages:
                await self.ws.send(message.serialize())
            if not isinstance(event, UpdateEvent):
                continue
            if messages and event.timing is not None:
                metrics.update_latency.observe(time.monotonic() - event.audio_received_at)
            if event.update.final:
                session.close()
                if self.stream is stream:
                    self.stream = None
                return

    async def _safe_send(self, message: ServerMessage) -> None:
        try:
            await self.ws.send(message.serialize())
        except ConnectionClosed:
            pass

    async def _refuse(self, message: ServerMessage, code: CloseCode, reason: str) -> None:
        await self._safe_send(message)
        await self.ws.close(code, reason)
