"""ASRProcessor: the streaming state machine (sans-I/O).

It never calls the model. The driver feeds audio, asks for requests, runs them wherever it likes
(a worker thread, a batch, a remote service) and hands the results back::

    proc.insert_audio(samples)          # float32, 16 kHz, mono
    req = proc.next_request()           # None until hypothesis_step_s of new speech has arrived
    update = proc.apply(req, backend.transcribe(req))
    proc.finish()                       # end of stream: final decodes follow
    while (req := proc.next_request()) is not None:
        update = proc.apply(req, backend.transcribe(req))   # the last one has update.final

Policy: every decode re-transcribes a growing audio buffer, and its words are shown as partial
text. With VAD on, only speech (with a little padding) enters the buffer, and the end of an
utterance asks for one final (full-beam) decode that commits everything up to there. Speech that
goes on for more than ``commit_window_s`` without a pause (or any speech without VAD) is
committed up to the last complete segment of a full-beam decode of the buffer, as offline
decoding does window by window. ``commit_policy="local_agreement"`` commits instead the longest
common prefix of the last two hypotheses (LocalAgreement-2, as whisper_streaming from UFAL
does). The buffer keeps already committed audio (up to ``buffer_trimming_s``) as acoustic
context, so short utterances are not decoded in isolation.
At most one request is outstanding at a time.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..audio import SAMPLE_RATE, Float32Array, check_samples
from ..backends.base import InferenceRequest, RequestKind, Transcription, Word
from ..config import ProcessorOptions
from ..exceptions import StateError
from ..vad import WINDOW_SAMPLES, StreamingVad, VadEvent, VadEventKind
from .buffer import SpeechBuffer
from .hypothesis import (
    agreed_prefix_length,
    drop_committed,
    find_skipped_speech,
    first_words,
    heard_segments,
    words_text,
)

__all__ = ["ASRProcessor", "ProcessorState", "TranscriptUpdate"]

logger = logging.getLogger(__name__)

_COMMITTED_TAIL_WORDS = 64
_EPS_S = 1e-3
_WHISPER_WINDOW_S = 30  # the audio one Whisper decode sees


class ProcessorState(enum.Enum):
    """Lifecycle of an :class:`ASRProcessor`."""

    STREAMING = "streaming"
    FINISHING = "finishing"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class TranscriptUpdate:
    """What changed after one step. Word times are seconds from the start of the stream.

    Attributes:
        committed: words confirmed by this step, in order; never revised later.
        partial: the whole unconfirmed tail as it stands now; replaces the previous partial.
        utterance_end: an utterance was finalized (VAD end of speech, flush or finish).
        final: the stream is finished; no more updates will come.
        language: detected language, set on the first update that knows it.
        language_probability: probability of ``language``.
        segment_ends: stream times at which the model ended a segment among ``committed``.
    """

    committed: tuple[Word, ...] = ()
    partial: tuple[Word, ...] = ()
    utterance_end: bool = False
    final: bool = False
    language: str | None = None
    language_probability: float | None = None
    segment_ends: tuple[float, ...] = ()

    @property
    def committed_text(self) -> str:
        """Text of ``committed``."""
        return words_text(self.committed)

    @property
    def partial_text(self) -> str:
        """Text of ``partial``."""
        return words_text(self.partial)


class ASRProcessor:
    """Turns a stream of audio into inference requests and transcript updates.

    Args:
        options: processing options (defaults: :class:`ProcessorOptions`).
        vad: a streaming VAD to use when ``options.use_vad``; created if not given.
    """

    def __init__(
        self, options: ProcessorOptions | None = None, *, vad: StreamingVad | None = None
    ) -> None:
        self.options = options or ProcessorOptions()
        self.state = ProcessorState.STREAMING
        self._vad = (vad or StreamingVad(self.options.vad)) if self.options.use_vad else None
        self._step_samples = int(self.options.hypothesis_step_s * SAMPLE_RATE)
        self._pad_samples = self.options.vad.speech_pad_ms * SAMPLE_RATE // 1000
        # Samples fed so far (the stream clock).
        self._stream_samples = 0
        self._buf = SpeechBuffer()  # the audio being decoded
        self._new_samples = 0  # appended since the last request
        self._dirty = False  # appended since the last final request
        self._final_until: int | None = None  # buffer index a final decode is due up to
        self._hypothesis: list[Word] = []
        # Earlier hypotheses still waiting for agreement (LocalAgreement-n keeps n - 1 of them).
        self._previous: deque[list[Word]] = deque(maxlen=self.options.agreement_n - 1)
        # Recent input, for VAD pre-roll: _history[0] is stream sample _history_start.
        self._history: Float32Array = np.zeros(0, np.float32)
        self._history_start = 0
        self._speech_from: int | None = None
        self._committed_tail: deque[Word] = deque(maxlen=_COMMITTED_TAIL_WORDS)
        self._committed_end_s = 0.0
        self._inflight: InferenceRequest | None = None
        self._inflight_window = False  # the request commits its complete segments
        self._inflight_whole = False  # ... and is the whole buffer (not a piled-up window)
        self._segment_done = False  # the last decode completed a segment past committed text
        self._uses_windows = self.options.commit_policy in ("segments", "agreement")
        self._agrees = self.options.commit_policy != "segments"
        # "agreement": only words agreeing in time too, with agreement_lead_s of right context.
        self._settled_only = self.options.commit_policy == "agreement"
        self._max_request_samples = int(self.options.max_buffer_s * SAMPLE_RATE)
        # Audio that piled up is decoded in windows of up to 30 s (Whisper's own window), each
        # committed up to its last complete segment, as offline decoding does. Measured on the
        # six long-form files sent at once: 16 s windows 15.1% WER, 30 s windows 12.8% (offline
        # 13.1%). (Repeated decodes of a growing buffer behave the other way: see
        # buffer_trimming_s.)
        self._catch_up_samples = min(self._max_request_samples, _WHISPER_WINDOW_S * SAMPLE_RATE)
        self._last_skip_s: float | None = None  # where a decode last skipped speech
        self._shorter_window = False  # decode the next piled-up window at half length
        self._next_request_id = 0
        self._language: str | None = None
        self._language_reported = False
        self._language_probability: float | None = None

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
        return self._committed_end_s

    @property
    def in_speech(self) -> bool:
        """Whether the VAD is inside speech (always true without VAD)."""
        return self._vad.triggered if self._vad is not None else True

    @property
    def partial(self) -> tuple[Word, ...]:
        """The unconfirmed words as they stand."""
        return tuple(self._hypothesis)

    @property
    def has_work(self) -> bool:
        """Whether :meth:`next_request` would return a request now."""
        if self._inflight is not None:
            return False
        return (
            self._final_until is not None
            or len(self._buf) > self._max_request_samples
            or (len(self._buf) > 0 and self._new_samples >= self._step_samples)
        )

    @property
    def has_pending_text(self) -> bool:
        """Whether some speech has not been finally decoded yet."""
        return self._dirty or bool(self._hypothesis) or self._final_until is not None

    # -- input -------------------------------------------------------------------------------

    def detect_speech(self, samples: npt.ArrayLike) -> list[VadEvent] | None:
        """Run the VAD on the next samples, for :meth:`insert_audio` to take (None without VAD).

        This is the expensive half of feeding audio (one model call per 32 ms), and it touches
        only the VAD's state, so a server runs it off its event loop. Call it, then
        ``insert_audio(samples, speech=events)``, for each chunk in order.

        Raises:
            AudioError: not 1-D, or NaN / infinite values.
        """
        if self._vad is None:
            return None
        return self._vad.process(check_samples(samples))

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
        if self._vad is None:
            self._append(arr, start)
            return
        if speech is None:
            speech = self._vad.process(arr)
        self._history = np.concatenate([self._history, arr])
        for event in speech:
            if event.kind is VadEventKind.SPEECH_START:
                self._speech_from = max(event.sample, self._history_start)
            elif self._speech_from is not None:
                self._copy_speech(event.sample)
                self._speech_from = None
                self._mark_final()
        if self._speech_from is not None:
            self._copy_speech(self._vad.speech_until)
        keep_from = self._vad.processed_samples - self._pad_samples - 2 * WINDOW_SAMPLES
        if keep_from > self._history_start:
            self._history = self._history[keep_from - self._history_start :]
            self._history_start = keep_from

    def flush(self) -> None:
        """End the current utterance now: a final decode commits everything buffered.

        Use when the client stops sending audio for a while, so pending text is not held back.
        """
        if self._vad is not None and self._speech_from is not None:
            self._copy_speech(self._stream_samples)
        self._mark_final()

    def finish(self) -> TranscriptUpdate:
        """Mark the end of the stream.

        Everything buffered gets a final decode. Keep calling :meth:`next_request` / :meth:`apply`
        until an update has ``final`` set; if nothing is pending, the returned update is final.
        """
        if self.state is ProcessorState.STREAMING:
            self.flush()
            self._speech_from = None
            self.state = ProcessorState.FINISHING
        return self._update(final=self._check_done())

    # -- requests and results -------------------------------------------------------------

    def next_request(self) -> InferenceRequest | None:
        """The next decode to run, or None if there is nothing to do (or one is outstanding)."""
        if self._inflight is not None:
            return None
        window = self._max_request_samples
        if self._final_until is not None and self._final_until <= window:
            until = self._final_until
            self._final_until = None
            self._new_samples = len(self._buf) - until
            self._dirty = self._new_samples > 0
            request = self._request(
                self._buf.samples[:until].copy(), final=True, kind=RequestKind.UTTERANCE_END
            )
        elif len(self._buf) > window:
            # Audio piled up faster than it was decoded (a slow or busy model, or a client sending
            # faster than real time): decode the oldest part, commit what it completes, and keep
            # the rest for the next request. Nothing is dropped.
            step = self._catch_up_samples // (2 if self._shorter_window else 1)
            self._shorter_window = False
            self._new_samples = len(self._buf) - step
            request = self._request(
                self._buf.samples[:step].copy(), final=False, kind=RequestKind.CATCH_UP
            )
            self._inflight_window = True
        elif len(self._buf) and self._new_samples >= self._step_samples:
            self._new_samples = 0
            # A long utterance whose last decode completed a segment: commit its complete
            # segments from a full-beam decode of the whole buffer.
            window = (
                self._uses_windows
                and self._segment_done
                and self._uncommitted_s > self.options.commit_window_s
            )
            kind = RequestKind.WINDOW if window else RequestKind.HYPOTHESIS
            request = self._request(self._buf.samples.copy(), final=False, kind=kind)
            self._inflight_window = window
            self._inflight_whole = window
        else:
            return None
        self._inflight = request
        return request

    def apply(self, request: InferenceRequest, result: Transcription) -> TranscriptUpdate:
        """Take the backend's answer to the outstanding request and advance.

        Raises:
            StateError: ``request`` is not the outstanding request.
        """
        window, whole = self._inflight_window, self._inflight_whole
        self._take_inflight(request)
        if result.language and not self._language:
            self._language = result.language
            self._language_probability = result.language_probability
        words, segment_ends, skipped_at = self._heard(request, result, catching_up=window)
        new = self._new_words(words)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "apply #%d final=%s audio %.2f s from %.2f: heard %r; new %r; committed until %.2f",
                request.request_id,
                request.final,
                request.duration_s,
                request.offset_s,
                words_text(words),
                words_text(new),
                self._committed_end_s,
            )
        if request.final:
            committed = self._commit(new)
            self._hypothesis = []
            self._previous.clear()
            if skipped_at is not None:
                self._decode_again_from(skipped_at, request)
        elif window:
            committed = self._commit_window(request, new, segment_ends, skipped_at, whole=whole)
        elif not self._agrees:
            committed = ()
            self._hypothesis = new
        else:
            committed = self._agree(new, request)
        self._segment_done = any(e > self._committed_end_s + _EPS_S for e in segment_ends[:-1])
        heard = bool(words) or skipped_at is not None  # a skip means there was speech
        catching_up = window and not whole  # a piled-up window: the hard cap waits
        committed += self._bound_buffer(segment_ends, request, heard=heard, catching_up=catching_up)
        ends = tuple(e for e in segment_ends if e <= self._committed_end_s + _EPS_S)
        return self._update(committed, ends, utterance_end=request.final, final=self._check_done())

    def fail(self, request: InferenceRequest) -> TranscriptUpdate:
        """The outstanding request failed: give it up without losing what was shown.

        A failed final decode commits the hypothesis the user last saw.
        """
        self._take_inflight(request)
        if not request.final:
            return self._update()
        committed = self._commit(self._hypothesis)
        self._hypothesis = []
        self._previous.clear()
        return self._update(committed, utterance_end=True, final=self._check_done())

    # -- internals ---------------------------------------------------------------------------

    def _agree(self, new: list[Word], request: InferenceRequest) -> tuple[Word, ...]:
        """LocalAgreement-n: commit the prefix the last n hypotheses share; with the
        ``"agreement"`` policy, only words that agree in time too and had right context."""
        full = len(self._previous) == self._previous.maxlen
        shift = self.options.agreement_shift_s if self._settled_only else None
        agreed = min(
            (agreed_prefix_length(h, new, max_shift_s=shift) for h in self._previous), default=0
        )
        if not full:
            agreed = 0
        if self._settled_only:
            settled = request.to_stream_s(request.duration_s) - self.options.agreement_lead_s
            while agreed and new[agreed - 1].end > settled:
                agreed -= 1
        committed = self._commit(new[:agreed])
        self._previous = deque((h[agreed:] for h in self._previous), maxlen=self._previous.maxlen)
        self._hypothesis = new[agreed:]
        self._previous.append(self._hypothesis)
        return committed

    def _take_inflight(self, request: InferenceRequest) -> None:
        if request is not self._inflight:
            raise StateError("apply() or fail() got a request that is not the outstanding one")
        self._inflight = None
        self._inflight_window = self._inflight_whole = False

    def _commit_window(
        self,
        request: InferenceRequest,
        new: list[Word],
        segment_ends: tuple[float, ...],
        skipped_at: float | None,
        *,
        whole: bool,
    ) -> tuple[Word, ...]:
        """Commit a full-beam decode of a window up to its last complete segment, and cut there;
        never past speech the decode skipped. The words after the cut stay as the partial text.

        The window is the whole buffer of a long utterance (``whole``), or the oldest part of an
        overfull buffer, which must move on: failing a complete segment, it commits what ends
        ``min_chunk_s`` before the window's end."""
        window_end = request.to_stream_s(request.duration_s)
        if skipped_at is not None:
            window_end = min(window_end, skipped_at + self.options.min_chunk_s)
            # The same piled-up window would skip the same way again.
            self._shorter_window = not whole
        complete = [e for e in segment_ends[:-1] if e <= window_end]
        if whole:
            # Only at a segment end past the committed text: a long utterance is never cut
            # mid-segment while it is still going (on the six long-form files: 12.4-12.9% WER,
            # against 13.2-13.5% when cut before its last words). A buffer with no complete
            # segment is left to max_buffer_s.
            complete = [e for e in complete if e > self._committed_end_s + _EPS_S]
            if not complete:
                self._hypothesis = new
                return ()
        if complete:
            cut = max(complete)
        else:
            ripe = [w.end for w in new if w.end <= window_end - self.options.min_chunk_s]
            cut = max(ripe) if ripe else window_end - self.options.min_chunk_s
        committed = self._commit([w for w in new if w.end <= cut + _EPS_S])
        self._hypothesis = [w for w in new if w.end > cut + _EPS_S]
        self._previous.clear()
        self._cut(cut)
        return committed

    def _request(self, audio: Float32Array, *, final: bool, kind: RequestKind) -> InferenceRequest:
        """A request for ``audio`` (the buffer's head). Requests that commit what they hear
        without waiting for agreement get the final beam size."""
        self._next_request_id += 1
        start_s = self._buf.start_s
        return InferenceRequest(
            audio=audio,
            offset_s=start_s,
            prompt=self._prompt(start_s),
            language=self.options.language,
            task=self.options.task,
            beam_size=(
                self.options.beam_size if kind.commits else self.options.hypothesis_beam_size
            ),
            final=final,
            request_id=self._next_request_id,
            runs=self._buf.runs_s,
            kind=kind,
        )

    def _prompt(self, before_s: float) -> str:
        if not self.options.prompt_chars:
            return ""
        text = words_text([w for w in self._committed_tail if w.end <= before_s + _EPS_S])
        return text[-self.options.prompt_chars :].lstrip()

    def _append(self, samples: Float32Array, stream_start: int) -> None:
        self._buf.append(samples, stream_start)
        self._new_samples += samples.shape[0]
        self._dirty = True

    def _copy_speech(self, until: int) -> None:
        assert self._speech_from is not None
        lo = max(self._speech_from, self._history_start)
        hi = min(until, self._history_start + self._history.shape[0])
        if hi > lo:
            self._append(self._history[lo - self._history_start : hi - self._history_start], lo)
        self._speech_from = max(self._speech_from, hi)

    def _mark_final(self) -> None:
        if self._dirty or self._hypothesis:
            self._final_until = len(self._buf)

    def _decode_again_from(self, at_s: float, request: InferenceRequest) -> None:
        """A final decode skipped speech from ``at_s``: cut the buffer there and decode the rest
        of the request's audio again (the next final decode starts at the skipped speech)."""
        until = request.audio.shape[0]  # the request was the buffer's head; nothing cut since
        self._final_until = max(self._final_until or 0, until)
        self._cut(at_s)

    def _heard(
        self, request: InferenceRequest, result: Transcription, *, catching_up: bool
    ) -> tuple[list[Word], tuple[float, ...], float | None]:
        """Words of the result in stream time, without segments that look silent or invented.

        Also returns where the model skipped speech (stream time), if it did: the words from
        there on are left out.
        """
        kept = heard_segments(
            result.segments,
            no_speech_threshold=self.options.no_speech_threshold,
            logprob_threshold=self.options.logprob_threshold,
        )
        audio_words = [w for seg_words in kept for w in seg_words]
        skip = find_skipped_speech(
            audio_words,
            request.duration_s if request.final else None,
            self.options.skipped_speech_s,
            new_from_s=request.to_audio_s(self._committed_end_s),
        )
        skipped_at = request.to_stream_s(skip[1]) if skip is not None else None
        if skipped_at is not None and (request.final or catching_up):
            # These decodes are looked at again when they skip; a second look that skips the
            # same place is taken as it is, so the stream always moves on.
            if self._last_skip_s is not None and abs(skipped_at - self._last_skip_s) < _EPS_S:
                skip = skipped_at = None
            else:
                self._last_skip_s = skipped_at
        limit = skip[0] if skip is not None else len(audio_words)
        words, ends = first_words(kept, limit, request.to_stream_s)
        if skipped_at is not None:
            logger.debug(
                "decode #%d skipped speech at %.2f s: kept %r",
                request.request_id,
                skipped_at,
                words_text(words),
            )
        return words, ends, skipped_at

    def _new_words(self, words: Sequence[Word]) -> list[Word]:
        return drop_committed(
            words,
            list(self._committed_tail),
            self._committed_end_s,
            max_overlap_words=self.options.max_overlap_words,
        )

    def _commit(self, words: Sequence[Word]) -> tuple[Word, ...]:
        for w in words:
            self._committed_tail.append(w)
            self._committed_end_s = max(self._committed_end_s, w.end)
        return tuple(words)

    @property
    def _uncommitted_s(self) -> float:
        """Seconds of buffered audio after the last committed word."""
        return self._buf.seconds_after(self._committed_end_s)

    def _bound_buffer(
        self,
        segment_ends: tuple[float, ...],
        request: InferenceRequest,
        *,
        heard: bool,
        catching_up: bool,
    ) -> tuple[Word, ...]:
        """Trim the buffer in committed territory; enforce ``max_buffer_s`` (except while
        catching up on piled-up audio, which is decoded window by window instead).

        Only audio the request decoded may be cut. Returns words committed by the hard cap.
        """
        decoded_end = request.to_stream_s(request.duration_s)
        opts = self.options
        if self.buffer_duration_s > opts.buffer_trimming_s:
            # Cut at the end of a complete segment that lies in committed text, else at the end
            # of the committed text when nothing uncommitted starts before it.
            start = self._buf.start_s
            inside = [e for e in segment_ends[:-1] if start < e <= self._committed_end_s + _EPS_S]
            if inside:
                self._cut(self._buf.snap_to_run_start(max(inside), self._committed_end_s))
            elif self._committed_end_s > start and (
                not self._hypothesis or self._hypothesis[0].start >= self._committed_end_s - _EPS_S
            ):
                self._cut(self._buf.snap_to_run_start(self._committed_end_s, self._committed_end_s))
            elif not heard and not self._hypothesis:
                # The decode heard nothing at all: drop what it covered but its last second.
                self._cut(decoded_end - opts.min_chunk_s)
        if catching_up or self.buffer_duration_s + opts.min_chunk_s <= opts.max_buffer_s:
            return ()
        # Agreement stalled: commit up to the last complete segment and cut there, and never keep
        # more than max_buffer_s - min_chunk_s.
        limit = self._buf.end_s - (opts.max_buffer_s - opts.min_chunk_s)
        if limit >= decoded_end - _EPS_S:
            # Audio piled up beyond this decode: the next request decodes the oldest window and
            # commits it (see next_request); cutting here would drop undecoded audio.
            return ()
        complete = [e for e in segment_ends[:-1] if e > self._buf.start_s]
        ripe = [w.end for w in self._hypothesis if w.end <= self._buf.end_s - opts.min_chunk_s]
        if complete:
            cut = max(complete)
        elif ripe:
            cut = max(ripe)
        else:
            cut = self._buf.end_s - opts.buffer_trimming_s
        cut = min(max(cut, limit), decoded_end)
        committed = self._commit([w for w in self._hypothesis if w.end <= cut + _EPS_S])
        self._hypothesis = [w for w in self._hypothesis if w.end > cut + _EPS_S]
        self._previous.clear()
        self._previous.append(self._hypothesis)
        self._cut(cut)
        excess = len(self._buf) - int((opts.max_buffer_s - opts.min_chunk_s) * SAMPLE_RATE)
        if excess > 0:  # the cut fell in a gap between speech runs; never cut undecoded audio
            self._cut_samples(min(excess, self._buf.index_of(decoded_end)))
        return committed

    def _cut(self, at_s: float) -> None:
        self._cut_samples(self._buf.index_of(at_s))

    def _cut_samples(self, n: int) -> None:
        n = self._buf.cut_samples(n)
        if self._final_until is not None:
            self._final_until = max(0, self._final_until - n)

    def _check_done(self) -> bool:
        if (
            self.state is ProcessorState.FINISHING
            and self._final_until is None
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
        language = probability = None
        if self._language and not self._language_reported:
            self._language_reported = True
            language, probability = self._language, self._language_probability
        return TranscriptUpdate(
            committed=committed,
            partial=() if final else self.partial,
            utterance_end=utterance_end,
            final=final,
            language=language,
            language_probability=probability,
            segment_ends=segment_ends,
        )
