"""StreamSession: one client's stream on the event loop, between the socket and the scheduler.

Protocol-independent: it feeds the processor, lets the scheduler run its requests, and queues
the resulting events (transcript updates and errors) for the connection's sender task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..audio import SAMPLE_RATE, Float32Array, WavWriter
from ..backends.base import InferenceRequest, Transcription, Word
from ..exceptions import StateError
from ..speakers.tracker import SpeakerTracker, speaker_at
from ..streaming.processor import ASRProcessor, TranscriptUpdate
from ..vad import VadEvent
from .metrics import ServerMetrics
from .scheduler import Scheduler, Timing

__all__ = [
    "EventQueue",
    "SessionError",
    "SessionEvent",
    "SessionState",
    "StreamSession",
    "UpdateEvent",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class SessionState(enum.Enum):
    """Lifecycle of a :class:`StreamSession`."""

    STREAMING = "streaming"
    FINISHING = "finishing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class UpdateEvent:
    """A transcript update, with how long it took."""

    update: TranscriptUpdate
    timing: Timing | None
    audio_received_at: float  # monotonic time the newest audio of the request arrived


@dataclass(frozen=True, slots=True)
class SessionError:
    """Inference failed for this session."""

    code: str
    message: str


SessionEvent = UpdateEvent | SessionError

RETRY_DELAYS_S = (0.5, 1.0, 2.0)
"""Backoff before each retry of a failed decode; after the last one, it is given up (the
client gets one error saying what could not be transcribed)."""

MAX_QUEUED_EVENTS = 512
"""Events waiting for a client that does not read (its send blocks) before the session ends."""


def _partial_only(event: SessionEvent) -> bool:
    if not isinstance(event, UpdateEvent):
        return False
    u = event.update
    return not (u.committed or u.utterance_end or u.final or u.language or u.segment_ends)


class EventQueue:
    """A session's events for its sender. A partial-only update replaces one still waiting
    (it supersedes it), so a slow reader gets the latest partial text, every committed word, and
    a queue that grows only with committed text; past ``MAX_QUEUED_EVENTS`` it reports
    ``overflowed`` and calls ``on_overflow`` (the connection ends the session)."""

    def __init__(self) -> None:
        self._items: deque[SessionEvent] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.on_overflow: Callable[[], object] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, event: SessionEvent) -> None:
        if _partial_only(event) and self._items and _partial_only(self._items[-1]):
            self._items[-1] = event
        else:
            self._items.append(event)
        if len(self._items) > MAX_QUEUED_EVENTS and not self.overflowed:
            self.overflowed = True
            if self.on_overflow is not None:
                self.on_overflow()
        self._ready.set()

    async def get(self) -> SessionEvent:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class StreamSession:
    """Connects one processor to the shared scheduler.

    Args:
        session_id: unique id (the job id in the scheduler).
        processor: this session's processor.
        scheduler: the shared scheduler.
        recorder: where to save the audio the processor receives (closed with the session).
        speakers: labels the words with speakers (diarization), fed on the session's thread.
    """

    def __init__(
        self,
        session_id: str,
        processor: ASRProcessor,
        scheduler: Scheduler,
        metrics: ServerMetrics | None = None,
        recorder: WavWriter | None = None,
        speakers: SpeakerTracker | None = None,
    ) -> None:
        self.session_id = session_id
        self.speakers = speakers
        self._recorder = recorder
        self._metrics = metrics
        self.processor = processor
        self.state = SessionState.STREAMING
        self._scheduler = scheduler
        self.events = EventQueue()
        self.last_audio_at = time.monotonic()
        self._flushed = True
        # (stream sample index, monotonic arrival time) of recent chunks, for latency figures.
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=512)
        self._samples = 0
        self._request_arrival: float = time.monotonic()
        self.last_progress_at = time.monotonic()  # last time a decode was taken or delivered
        self._progress = asyncio.Event()  # set at each delivery
        self.held_back = False  # the connection stopped reading until the backlog drains
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"session-{session_id[:16]}")
        self._failures = 0  # decodes failed in a row
        self._retry_at = 0.0  # monotonic time before which no decode is asked for

    @property
    def job_id(self) -> str:
        """The scheduler's key for this session."""
        return self.session_id

    # -- from the connection --------------------------------------------------------------

    async def feed(
        self,
        samples: Float32Array,
        convert: Callable[[Float32Array], Float32Array] | None = None,
    ) -> None:
        """Append audio (may raise AudioError / StateError) and let the scheduler know.

        ``convert`` (a resampler) and the VAD run on this session's own worker thread, in the
        order the audio came, never on the event loop. Audio that arrives while the session is
        being ended (a time limit) is not added.
        """
        if self.state is not SessionState.STREAMING:
            raise StateError("the stream has ended; no more audio is accepted")
        samples, speech = await self.offload(self._prepare, samples, convert)
        if self.state is not SessionState.STREAMING:
            return
        self.processor.insert_audio(samples, speech=speech)
        now = time.monotonic()
        self._samples += samples.shape[0]
        self._arrivals.append((self._samples, now))
        self.last_audio_at = now
        self._scheduler.load.audio(self.session_id, samples.shape[0] / SAMPLE_RATE)
        if self._metrics is not None:
            self._metrics.audio_seconds.inc(samples.shape[0] / SAMPLE_RATE)
        self._flushed = False
        self._scheduler.notify(self)

    async def offload(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` on this session's worker thread, after everything offloaded
        before it (so a resampler or the VAD sees its audio in order, even if the caller was
        cancelled meanwhile)."""
        if self.state is SessionState.CLOSED:
            raise StateError("the session is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(fn, *args))

    def _prepare(
        self, samples: Float32Array, convert: Callable[[Float32Array], Float32Array] | None
    ) -> tuple[Float32Array, list[VadEvent] | None]:
        """On the session's thread: resample, save (``--save-audio``), run the VAD, then the
        speaker encoder on the speech it found."""
        if convert is not None:
            samples = convert(samples)
        if self._recorder is not None and self.state is SessionState.STREAMING:
            self._record(samples)
        speech = self.processor.detect_speech(samples)
        if self.speakers is not None:
            try:
                self.speakers.push(samples, speech)
            except Exception:  # the text goes on without speaker labels
                logger.exception("session %s: speaker labels stopped", self.session_id)
                self.speakers = None
        return samples, speech

    @property
    def backlog_s(self) -> float:
        """Seconds of audio received and not yet decoded for good (the processor's buffer)."""
        return self.processor.buffer_duration_s

    async def hold_back(self, limit_s: float) -> None:
        """Wait while the backlog is over ``limit_s`` (the caller stops reading its socket
        meanwhile, so TCP slows the client). Returns at once for a real-time client."""
        if self.backlog_s <= limit_s:
            return
        self.held_back = True
        try:
            while self.backlog_s > limit_s and self.state is SessionState.STREAMING:
                self._progress.clear()
                await self._progress.wait()
        finally:
            self.held_back = False
            self.last_audio_at = time.monotonic()  # the client was not idle: we were not reading

    @property
    def last_active_at(self) -> float:
        """The later of the last audio and the last decode (for the idle timeout)."""
        return max(self.last_audio_at, self.last_progress_at)

    def flush_if_quiet(self, quiet_s: float) -> bool:
        """Finalize pending text if no audio came for ``quiet_s``. Returns whether it did."""
        if (
            self.state is SessionState.STREAMING
            and not self.held_back
            and not self._flushed
            and time.monotonic() - self.last_audio_at >= quiet_s
        ):
            self._flushed = True
            self.processor.flush()
            self._scheduler.notify(self)
            return True
        return False

    def finish(self) -> None:
        """End of audio: final decodes follow; ``done`` is set after the final update."""
        if self.state is not SessionState.STREAMING:
            return
        self.state = SessionState.FINISHING
        self._stop_recording()
        if self.speakers is not None:
            self._worker.submit(self.speakers.close)  # after the audio still queued for it
        update = self.processor.finish()
        if update.final:
            self._emit(UpdateEvent(update, None, time.monotonic()))
        else:
            self._scheduler.notify(self)

    async def wait_final(
        self, sender: asyncio.Task[None], *, deadline: float, stall_s: float
    ) -> str | None:
        """After :meth:`finish`: wait for ``sender`` (which ends once it sent the final update)
        for as long as the session keeps advancing, however long its backlog.

        Returns None when the sender is done, else why the wait stopped: ``deadline`` (monotonic)
        passed, or no decode was taken or delivered for ``stall_s`` seconds.
        """
        while not sender.done():
            now = time.monotonic()
            if now >= deadline:
                return "out of time"
            stalled_at = self.last_progress_at + stall_s
            if now >= stalled_at:
                return f"no progress for {stall_s:g} s"
            await asyncio.wait({sender}, timeout=min(deadline, stalled_at) - now)
        return None

    def untranscribed(self) -> str:
        """What a final transcript that never came would miss, for an error message."""
        done = self.processor.committed_end_s
        return f"audio after {done:.1f} s (of {self.processor.stream_time_s:.1f} s received)"

    def close(self) -> None:
        """The connection is gone: drop queued work. Idempotent."""
        if self.state is not SessionState.CLOSED:
            # The recording is written on the session's thread: closed there, after the audio
            # still queued for it.
            self._worker.submit(self._stop_recording)
        self.state = SessionState.CLOSED
        self._progress.set()
        self._worker.shutdown(wait=False)
        self._scheduler.remove(self)

    def _record(self, samples: Float32Array) -> None:
        assert self._recorder is not None
        try:
            self._recorder.write(samples)
        except OSError as exc:  # a full disk must not end the session
            logger.warning("session %s: saving audio stopped: %s", self.session_id, exc)
            self._stop_recording()

    def _stop_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            try:
                recorder.close()
            except OSError as exc:
                logger.warning("session %s: saving audio failed: %s", self.session_id, exc)

    # -- from the scheduler (InferenceJob) ------------------------------------------------

    def has_work(self) -> bool:
        """Whether a request is due."""
        return (
            self.state is not SessionState.CLOSED
            and time.monotonic() >= self._retry_at
            and self.processor.has_work
        )

    def next_request(self) -> InferenceRequest | None:
        """The request to run now."""
        if self.state is SessionState.CLOSED:
            return None
        request = self.processor.next_request()
        if request is not None:
            self.last_progress_at = time.monotonic()
            self._request_arrival = self._arrivals[-1][1] if self._arrivals else time.monotonic()
        return request

    def deliver(
        self, request: InferenceRequest, result: Transcription | BaseException, timing: Timing
    ) -> None:
        """Apply the result (or the failure) and queue the update."""
        if self.state is SessionState.CLOSED:
            return
        self.last_progress_at = time.monotonic()
        lag_s = max(0.0, self.processor.stream_time_s - request.to_stream_s(request.duration_s))
        if self._metrics is not None:
            self._metrics.queue_wait.observe(timing.queued_s)
            self._metrics.inference_seconds.inc(timing.inference_s / timing.batch_size)
            self._metrics.decode_seconds.labels(request.kind.value).observe(timing.inference_s)
            self._metrics.lag_seconds.observe(lag_s)
            self._metrics.buffer_seconds.observe(self.processor.buffer_duration_s)
        if logger.isEnabledFor(logging.DEBUG):
            info = result if isinstance(result, Transcription) else Transcription()
            logger.debug(
                "session %s decode #%d %s: %.2f s of audio (encoder %.1f s), beam %d, %d tokens, "
                "%d retries, %.2f s wall, %.2f s queued, %.2f s behind",
                self.session_id,
                request.request_id,
                request.kind.value,
                request.duration_s,
                info.encoder_s,
                request.beam_size,
                info.tokens,
                info.retries,
                timing.inference_s,
                timing.queued_s,
                lag_s,
            )
        if isinstance(result, BaseException):
            update = self._failed(request, result)
        else:
            self._failures = 0
            update = self.processor.apply(request, result)
        self._emit(UpdateEvent(update, timing, self._request_arrival))
        self._progress.set()

    def _failed(self, request: InferenceRequest, error: BaseException) -> TranscriptUpdate:
        """Retry a failed decode after a backoff; after the last retry, give it up and tell
        the client once, naming the audio that was lost, if any."""
        self._failures += 1
        if self._failures <= len(RETRY_DELAYS_S):
            delay = RETRY_DELAYS_S[self._failures - 1]
            logger.warning(
                "session %s: %s decode failed (%s); retry %d in %.1f s",
                self.session_id,
                request.kind.value,
                error,
                self._failures,
                delay,
            )
            self._retry_at = time.monotonic() + delay
            asyncio.get_running_loop().call_later(delay, self._scheduler.notify, self)
            return self.processor.fail(request, give_up=False)
        self._failures = 0
        lost = self.processor.lost_by(request)
        what = f"; audio {lost[0]:.1f}-{lost[1]:.1f} s was not transcribed" if lost else ""
        message = f"transcription failed after {len(RETRY_DELAYS_S)} retries: {error}{what}"
        logger.warning("session %s: %s", self.session_id, message)
        self._emit(SessionError("inference_failed", message))
        return self.processor.fail(request, give_up=True)

    def _emit(self, event: SessionEvent) -> None:
        speakers = self.speakers  # read once: the session's thread may drop it
        if speakers is not None and isinstance(event, UpdateEvent):
            event = dataclasses.replace(event, update=_labelled(event.update, speakers))
        self.events.put_nowait(event)


def _labelled(update: TranscriptUpdate, speakers: SpeakerTracker) -> TranscriptUpdate:
    """The update with each word's speaker (from the speaker turns found so far: a cheap lookup
    in an immutable snapshot that the session's thread replaces)."""
    if not (update.committed or update.partial):
        return update
    turns = speakers.turns

    def label(words: tuple[Word, ...]) -> tuple[Word, ...]:
        return tuple(
            dataclasses.replace(w, speaker=speaker_at(turns, w.start, w.end)) for w in words
        )

    return dataclasses.replace(
        update, committed=label(update.committed), partial=label(update.partial)
    )
