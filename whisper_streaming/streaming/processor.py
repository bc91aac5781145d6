"""ASRProcessor: the streaming state machine (sans-I/O).

It never calls the model. The driver feeds audio, asks for requests, runs them wherever it likes
(a worker thread, a batch, a remote service) and hands the results back::

    proc.insert_audio(samples)          # float32, 16 kHz, mono
    req = proc.next_request()           # None until hypothesis_step_s of new speech has arrived
    update = proc.apply(req, backend.transcribe(req))
    proc.finish()                       # end of stream: final decodes follow
    while (req := proc.next_request()) is not None:
        update = proc.apply(req, backend.transcribe(req))   # the last one has update.final

Every decode re-transcribes a growing audio buffer, and its words are shown as partial text.
With VAD on, only speech (with a little padding) passes the gate (:mod:`.gate`) into the buffer,
and the end of an utterance asks for one final (full-beam) decode that commits everything up to
there; what else commits text is the commit policy's choice (:mod:`.policy`). The buffer keeps
already committed audio (up to ``buffer_trimming_s``) as acoustic context, so short utterances
are not decoded in isolation; where it is cut is decided in :mod:`.cuts`. At most one request is
outstanding at a time.
"""

from __future__ import annotations

import enum
import logging

import numpy.typing as npt

from ..audio import SAMPLE_RATE, Float32Array, check_samples
from ..backends.base import InferenceRequest, RequestKind, Transcription, Word
from ..config import ProcessorOptions
from ..exceptions import StateError
from ..vad import StreamingVad, VadEvent
from .cuts import EPS_S, window_cut
from .gate import SpeechDetector, SpeechGate
from .hypothesis import hear, words_text
from .planner import Plan, RequestPlanner
from .policy import make_policy
from .transcript import Transcript
from .update import TranscriptUpdate

__all__ = ["ASRProcessor", "ProcessorState", "TranscriptUpdate"]

logger = logging.getLogger(__name__)

_WHISPER_WINDOW_S = 30  # the audio one Whisper decode sees


class ProcessorState(enum.Enum):
    """Lifecycle of an :class:`ASRProcessor`."""

    STREAMING = "streaming"
    FINISHING = "finishing"
    DONE = "done"


class ASRProcessor:
    """Turns a stream of audio into inference requests and transcript updates.

    Args:
        options: processing options (defaults: :class:`ProcessorOptions`).
        vad: the speech detector to gate audio with when ``options.use_vad``; without one,
            Silero's (:class:`~whisper_streaming.vad.StreamingVad`) with ``options.vad``.
    """

    def __init__(
        self, options: ProcessorOptions | None = None, *, vad: SpeechDetector | None = None
    ) -> None:
        self.options = options or ProcessorOptions()
        self.state = ProcessorState.STREAMING
        self._gate: SpeechGate | None = None
        if self.options.use_vad:
            pad_samples = self.options.vad.speech_pad_ms * SAMPLE_RATE // 1000
            self._gate = SpeechGate(vad or StreamingVad(self.options.vad), pad_samples)
        self._policy = make_policy(self.options)
        # Samples fed so far (the stream clock).
        self._stream_samples = 0
        max_request = int(self.options.max_buffer_s * SAMPLE_RATE)
        # Audio that piled up is decoded in windows of up to 30 s (Whisper's own window), each
        # committed up to its last complete segment, as offline decoding does. Measured on the
        # six long-form files sent at once: 16 s windows 15.1% WER, 30 s windows 12.8% (offline
        # 13.1%). (Repeated decodes of a growing buffer behave the other way: see
        # buffer_trimming_s.)
        self._plan = RequestPlanner(
            step_samples=int(self.options.hypothesis_step_s * SAMPLE_RATE),
            max_request_samples=max_request,
            catch_up_samples=min(max_request, _WHISPER_WINDOW_S * SAMPLE_RATE),
        )
        self._buf = self._plan.buffer  # the audio being decoded
        self._hypothesis: list[Word] = []
        self._text = Transcript(
            prompt_chars=self.options.prompt_chars,
            max_overlap_words=self.options.max_overlap_words,
            initial_prompt=self.options.initial_prompt,
        )
        self._inflight: InferenceRequest | None = None
        self._segment_done = False  # the last decode completed a segment past committed text
        self._last_skip_s: float | None = None  # where a decode last skipped speech
        self._next_request_id = 0

    # -- observation -------------------------------------------------------------------------

    @property
    def stream_time_s(self) -> float:
        """Seconds of audio fed so far."""
        return self._stream_samples / SAMPLE_RATE

    @property
    def buffer_duration_s(self) -> float:
        """Seconds of audio in the buffer (what the next decode would see)."""
        return self._buf.duration_s

    @property
    def committed_end_s(self) -> float:
        """Stream time at which the last committed word ends."""
        return self._text.end_s

    @property
    def in_speech(self) -> bool:
        """Whether the VAD is inside speech (always true without VAD)."""
        return self._gate.in_speech if self._gate is not None else True

    @property
    def partial(self) -> tuple[Word, ...]:
        """The unconfirmed words as they stand."""
        return tuple(self._hypothesis)

    @property
    def has_work(self) -> bool:
        """Whether :meth:`next_request` would return a request now."""
        return self._inflight is None and self._plan.has_work

    @property
    def has_pending_text(self) -> bool:
        """Whether some speech has not been finally decoded yet."""
        return self._plan.dirty or bool(self._hypothesis) or self._plan.final_until is not None

    # -- input -------------------------------------------------------------------------------

    def detect_speech(self, samples: npt.ArrayLike) -> list[VadEvent] | None:
        """Run the VAD on the next samples, for :meth:`insert_audio` to take (None without VAD).

        This is the expensive half of feeding audio (one model call per 32 ms), and it touches
        only the VAD's state, so a server runs it off its event loop. Call it, then
        ``insert_audio(samples, speech=events)``, for each chunk in order.

        Raises:
            AudioError: not 1-D, or NaN / infinite values.
        """
        if self._gate is None:
            return None
        return self._gate.detect(check_samples(samples))

    def insert_audio(self, samples: npt.ArrayLike, *, speech: list[VadEvent] | None = None) -> None:
        """Append mono float32 samples at 16 kHz.

        Args:
            speech: what :meth:`detect_speech` returned for these samples; the VAD runs here
                when it is not given.

        Raises:
            AudioError: not 1-D, or NaN / infinite values.
            StateError: the stream was finished.
        """
        if self.state is not ProcessorState.STREAMING:
            raise StateError(f"cannot insert audio in state {self.state.value}")
        arr = check_samples(samples)
        if arr.size == 0:
            return
        start = self._stream_samples
        self._stream_samples += arr.shape[0]
        if self._gate is None:
            self._append(arr, start)
            return
        for piece in self._gate.push(arr, speech):
            if piece.samples.size:
                self._append(piece.samples, piece.start)
            if piece.ends_utterance:
                self._mark_final()

    def flush(self) -> None:
        """End the current utterance now: a final decode commits everything buffered.

        Use when the client stops sending audio for a while, so pending text is not held back.
        """
        piece = self._gate.flush(self._stream_samples) if self._gate is not None else None
        if piece is not None and piece.samples.size:
            self._append(piece.samples, piece.start)
        self._mark_final()

    def finish(self) -> TranscriptUpdate:
        """Mark the end of the stream.

        Everything buffered gets a final decode. Keep calling :meth:`next_request` / :meth:`apply`
        until an update has ``final`` set; if nothing is pending, the returned update is final.
        """
        if self.state is ProcessorState.STREAMING:
            self.flush()
            if self._gate is not None:
                self._gate.close()
            self.state = ProcessorState.FINISHING
        return self._update(final=self._check_done())

    # -- requests and results -------------------------------------------------------------

    def next_request(self) -> InferenceRequest | None:
        """The next decode to run, or None if there is nothing to do (or one is outstanding)."""
        if self._inflight is not None:
            return None
        plan = self._plan.plan(self._window_due)
        if plan is None:
            return None
        self._inflight = self._request(plan)
        return self._inflight

    def apply(self, request: InferenceRequest, result: Transcription) -> TranscriptUpdate:
        """Take the backend's answer to the outstanding request and advance.

        Raises:
            StateError: ``request`` is not the outstanding request.
        """
        # Windows commit their complete segments: the whole buffer of a long utterance, or the
        # oldest part of audio that piled up.
        whole = request.kind is RequestKind.WINDOW
        window = whole or request.kind is RequestKind.CATCH_UP
        self._take_inflight(request)
        self._text.note_language(result)
        words, segment_ends, skipped_at = self._heard(request, result, catching_up=window)
        new = self._text.new_words(words)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "apply #%d final=%s audio %.2f s from %.2f: heard %r; new %r; committed until %.2f",
                request.request_id,
                request.final,
                request.duration_s,
                request.offset_s,
                words_text(words),
                words_text(new),
                self._text.end_s,
            )
        if request.final:
            committed = self._text.commit(new)
            self._hypothesis = []
            self._policy.reset()
            if skipped_at is not None:
                self._decode_again_from(skipped_at, request)
        elif window:
            committed = self._commit_window(request, new, segment_ends, skipped_at, whole=whole)
        else:
            agreed = self._policy.on_hypothesis(new, request.to_stream_s(request.duration_s))
            committed = self._text.commit(new[:agreed])
            self._hypothesis = new[agreed:]
        self._segment_done = any(e > self._text.end_s + EPS_S for e in segment_ends[:-1])
        # A decode that heard nothing lets the buffer drop what it covered (silence, without
        # VAD). With VAD the buffer holds speech only: a partial (greedy) decode that returns
        # nothing is a bad decode, not silence, and its audio waits for a full-beam decode.
        heard = (
            bool(words)
            or skipped_at is not None  # a skip means there was speech
            or (self._gate is not None and not request.kind.commits)
        )
        catching_up = window and not whole  # a piled-up window: the hard cap waits
        committed += self._bound_buffer(segment_ends, request, heard=heard, catching_up=catching_up)
        ends = tuple(e for e in segment_ends if e <= self._text.end_s + EPS_S)
        return self._update(committed, ends, utterance_end=request.final, final=self._check_done())

    def fail(self, request: InferenceRequest, *, give_up: bool = True) -> TranscriptUpdate:
        """The outstanding request failed.

        Without ``give_up``, the same decode is asked for again by :meth:`next_request` (the
        driver decides when: after a backoff). Giving up loses as little as possible: a final
        decode commits the hypothesis the user last saw; a catch-up window's audio is dropped
        (:meth:`lost_by` says which); other decodes lose nothing, their audio stays buffered.
        """
        self._take_inflight(request)
        if not give_up:
            self._plan.again(request.kind, request.audio.shape[0])
            return self._update()
        if request.kind is RequestKind.CATCH_UP:
            end = request.to_stream_s(request.duration_s)
            self._hypothesis = [w for w in self._hypothesis if w.start >= end]
            self._policy.reset()
            self._cut(end)
            return self._update()
        if not request.final:
            return self._update()
        committed = self._text.commit(self._hypothesis)
        self._hypothesis = []
        self._policy.reset()
        return self._update(committed, utterance_end=True, final=self._check_done())

    @staticmethod
    def lost_by(request: InferenceRequest) -> tuple[float, float] | None:
        """The stream seconds whose audio :meth:`fail` drops when it gives ``request`` up."""
        if request.kind is not RequestKind.CATCH_UP:
            return None
        return request.offset_s, request.to_stream_s(request.duration_s)

    # -- internals ---------------------------------------------------------------------------

    def _take_inflight(self, request: InferenceRequest) -> None:
        if request is not self._inflight:
            raise StateError("apply() or fail() got a request that is not the outstanding one")
        self._inflight = None

    def _commit_window(
        self,
        request: InferenceRequest,
        new: list[Word],
        segment_ends: tuple[float, ...],
        skipped_at: float | None,
        *,
        whole: bool,
    ) -> tuple[Word, ...]:
        """Commit a full-beam decode of a window up to its last complete segment and cut there
        (see :func:`~.cuts.window_cut`); never past speech the decode skipped. The words after
        the cut stay as the partial text."""
        window_end = request.to_stream_s(request.duration_s)
        if skipped_at is not None:
            window_end = min(window_end, skipped_at + self.options.min_chunk_s)
            # The same piled-up window would skip the same way again.
            self._plan.shorter_window(not whole)
        cut = window_cut(
            new,
            segment_ends,
            window_end_s=window_end,
            committed_end_s=self._text.end_s,
            whole=whole,
            margin_s=self.options.min_chunk_s,
        )
        if cut is None:
            self._hypothesis = new
            return ()
        committed = self._commit_until(new, cut)
        self._policy.reset()
        self._cut(cut)
        return committed

    def _window_due(self) -> bool:
        """A long utterance whose last decode completed a segment: commit its complete segments
        from a full-beam decode of the whole buffer."""
        return (
            self._policy.commits_windows
            and self._segment_done
            and self._uncommitted_s > self.options.commit_window_s
        )

    def _request(self, plan: Plan) -> InferenceRequest:
        """A request for the buffer's head. Requests that commit what they hear without
        waiting for agreement get the final beam size."""
        self._next_request_id += 1
        start_s = self._buf.start_s
        kind = plan.kind
        return InferenceRequest(
            audio=self._buf.samples[: plan.samples].copy(),
            offset_s=start_s,
            prompt=self._text.prompt(start_s),
            language=self.options.language,
            task=self.options.task,
            beam_size=(
                self.options.beam_size if kind.commits else self.options.hypothesis_beam_size
            ),
            final=plan.final,
            request_id=self._next_request_id,
            runs=self._buf.runs_s,
            kind=kind,
        )

    def _append(self, samples: Float32Array, stream_start: int) -> None:
        self._buf.append(samples, stream_start)
        self._plan.append(samples.shape[0])

    def _mark_final(self) -> None:
        self._plan.mark_final(bool(self._hypothesis))

    def _decode_again_from(self, at_s: float, request: InferenceRequest) -> None:
        """A final decode skipped speech from ``at_s``: cut the buffer there and decode the rest
        of the request's audio again (the next final decode starts at the skipped speech)."""
        # The request was the buffer's head; nothing was cut since.
        self._plan.again(RequestKind.UTTERANCE_END, request.audio.shape[0])
        self._cut(at_s)

    def _heard(
        self, request: InferenceRequest, result: Transcription, *, catching_up: bool
    ) -> tuple[list[Word], tuple[float, ...], float | None]:
        """:func:`~.hypothesis.hear`; a final or catch-up decode that skips speech is decoded
        again, and a second look that skips the same place is taken as it is, so the stream
        always moves on."""
        opts = self.options
        rechecked = request.final or catching_up
        heard = hear(
            request,
            result,
            no_speech_threshold=opts.no_speech_threshold,
            logprob_threshold=opts.logprob_threshold,
            skipped_speech_s=opts.skipped_speech_s,
            committed_end_s=self._text.end_s,
            ignore_skip_at=self._last_skip_s if rechecked else None,
            # A piled-up window that kept nothing (every segment filtered, or a decode that
            # gave up) would be cut and lost whole: it is looked at again, at half length.
            empty_is_skip=request.kind is RequestKind.CATCH_UP,
        )
        if heard.skipped_at is not None and rechecked:
            self._last_skip_s = heard.skipped_at
        return heard.words, heard.segment_ends, heard.skipped_at

    @property
    def _uncommitted_s(self) -> float:
        """Seconds of buffered audio after the last committed word."""
        return self._buf.seconds_after(self._text.end_s)

    def _bound_buffer(
        self,
        segment_ends: tuple[float, ...],
        request: InferenceRequest,
        *,
        heard: bool,
        catching_up: bool,
    ) -> tuple[Word, ...]:
        """Trim and cap the buffer (:meth:`.RequestPlanner.bound`); returns the words the hard
        cap committed."""
        opts = self.options
        cut = self._plan.bound(
            segment_ends,
            self._hypothesis,
            committed_end_s=self._text.end_s,
            decoded_end_s=request.to_stream_s(request.duration_s),
            heard=heard,
            capped=not catching_up,
            trim_s=opts.buffer_trimming_s,
            max_s=opts.max_buffer_s,
            margin_s=opts.min_chunk_s,
        )
        if cut is None:
            return ()
        # Agreement stalled: what the cap cut off is committed.
        committed = self._commit_until(self._hypothesis, cut)
        self._policy.reset(self._hypothesis)
        return committed

    def _commit_until(self, words: list[Word], at_s: float) -> tuple[Word, ...]:
        """Commit the words that end by ``at_s``; the rest become the hypothesis."""
        committed = self._text.commit([w for w in words if w.end <= at_s + EPS_S])
        self._hypothesis = [w for w in words if w.end > at_s + EPS_S]
        return committed

    def _cut(self, at_s: float) -> None:
        self._plan.cut(self._buf.index_of(at_s))

    def _check_done(self) -> bool:
        if (
            self.state is ProcessorState.FINISHING
            and self._plan.final_until is None
            and self._inflight is None
        ):
            self.state = ProcessorState.DONE
        return self.state is ProcessorState.DONE

    def _update(
        self,
        committed: tuple[Word, ...] = (),
        segment_ends: tuple[float, ...] = (),
        *,
        utterance_end: bool = False,
        final: bool = False,
    ) -> TranscriptUpdate:
        language, probability = self._text.language_news()
        return TranscriptUpdate(
            committed=committed,
            partial=() if final else self.partial,
            utterance_end=utterance_end,
            final=final,
            language=language,
            language_probability=probability,
            segment_ends=segment_ends,
        )
