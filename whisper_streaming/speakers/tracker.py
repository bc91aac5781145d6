"""Live speaker turns for one stream (pure, no I/O, no threads).

:class:`SpeakerTracker` takes the stream's audio with the VAD's events, embeds its speech in
overlapping windows as it comes, splits it into turns where the voice changes (or at a pause),
and labels each turn with :class:`~.clustering.OnlineClustering`. Words are labelled afterwards
with :meth:`SpeakerTracker.speaker_at`: the turn that overlaps them most.

A turn's label is settled once the turn holds ``settle_windows`` windows (or ends): before that
it is provisional (what the clustering would say now). Labels are 1, 2, ... in order of first
appearance; a new voice gets the next one, up to the clustering's cap.

The owner calls :meth:`push` from one thread; :attr:`turns` is an immutable snapshot replaced
at the end of each call, so another thread may read it (and call :meth:`speaker_at`) meanwhile.
It holds the last ``KEPT_TURNS`` turns: words are labelled when they are committed, at most a
few minutes after they were spoken, so older turns are not needed (and a long stream's memory
stays bounded).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE, Float32Array
from ..vad import VadEvent, VadEventKind
from .clustering import OnlineClustering
from .encoders import SpeakerEncoder, unit

__all__ = ["KEPT_TURNS", "SpeakerTracker", "SpeakerTurn", "speaker_at"]

KEPT_TURNS = 1000


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """A stretch of one speaker's speech (seconds from the start of the stream)."""

    start: float
    end: float
    speaker: int  # 1, 2, ...
    settled: bool  # the label is final (else provisional: the turn is young)


@dataclass(slots=True)
class _Turn:
    start: float
    end: float
    total: Float32Array  # sum of the window embeddings
    windows: int = 1
    speaker: int | None = None  # settled label
    provisional: int = 0


class SpeakerTracker:
    """Speaker turns of one stream, as its audio arrives.

    Args:
        encoder: the speaker encoder (16 kHz float32 -> unit embedding).
        clustering: the stream's clustering (default: :class:`OnlineClustering` defaults).
        window_s: audio per embedding.
        hop_s: step between windows (windows overlap by ``window_s - hop_s``).
        change_threshold: a window less similar (cosine) than this to its turn's voice so far
            starts a new turn.
        settle_windows: windows after which a turn's label is settled.
        min_speech_s: speech runs shorter than this are not embedded; their words take the
            nearest turn's speaker.
        lookahead_s: how long after its audio the VAD may still end the speech before it
            (its ``min_silence_ms - speech_pad_ms``): windows wait that long, so they are not
            embedded over the silence after the last word. 0 without a VAD.
    """

    def __init__(
        self,
        encoder: SpeakerEncoder,
        clustering: OnlineClustering | None = None,
        *,
        window_s: float = 1.6,
        hop_s: float = 0.8,
        change_threshold: float = 0.7,
        settle_windows: int = 5,
        min_speech_s: float = 0.4,
        lookahead_s: float = 0.8,
    ) -> None:
        if not 0 < hop_s <= window_s:
            raise ValueError(f"need 0 < hop_s <= window_s, got {hop_s} and {window_s}")
        self.encoder = encoder
        self.clustering = clustering or OnlineClustering()
        self._window = round(window_s * SAMPLE_RATE)
        self._hop = round(hop_s * SAMPLE_RATE)
        self._min_speech = round(min_speech_s * SAMPLE_RATE)
        self._lookahead = round(lookahead_s * SAMPLE_RATE)
        self.change_threshold = change_threshold
        self.settle_windows = settle_windows
        self._pos = 0  # samples pushed so far
        self._in_speech = False
        self._run: list[Float32Array] = []  # the current speech run's audio from _run_at on
        self._run_at = 0  # stream index of _run's first sample
        self._run_start = 0  # stream index where the current run began
        self._next_window = 0  # stream index of the next window's start
        self._covered = 0  # stream index where the run's last window ended
        self._closed: deque[SpeakerTurn] = deque(maxlen=KEPT_TURNS)
        self._turn: _Turn | None = None
        self.turns: tuple[SpeakerTurn, ...] = ()
        """The turns so far (the last ``KEPT_TURNS``), oldest first; the last may be open and
        provisional."""

    # -- audio ------------------------------------------------------------------------------

    def push(self, samples: Float32Array, events: list[VadEvent] | None) -> None:
        """The next audio of the stream and the VAD events it produced (``None``: no VAD, all of
        it is speech)."""
        start = self._pos
        self._pos += samples.shape[0]
        if events is None:
            if not self._in_speech:
                self._begin_run(start, start)
            self._extend(samples, lookahead=0)
        else:
            cursor = 0
            for event in events:
                # Events may lie before this chunk (a start is padded back; an end is decided
                # min_silence_ms after it): times take the event, audio what was kept.
                at = min(max(event.sample - start, cursor), samples.shape[0])
                if self._in_speech:
                    self._extend(samples[cursor:at])
                cursor = at
                if event.kind is VadEventKind.SPEECH_START and not self._in_speech:
                    self._begin_run(min(event.sample, start + at), start + at)
                elif event.kind is VadEventKind.SPEECH_END and self._in_speech:
                    self._end_run(max(event.sample, self._run_start))
            if self._in_speech:
                self._extend(samples[cursor:])
        self._publish()

    def close(self) -> None:
        """The stream ended: the speech still open ends here."""
        if self._in_speech:
            self._end_run(self._pos)
        if self._turn is not None:
            self._close_turn()
        self._publish()

    def _begin_run(self, start: int, audio_at: int) -> None:
        """Speech from ``start``; its audio is kept from ``audio_at``."""
        self._in_speech = True
        self._run = []
        self._run_start = start
        self._run_at = self._next_window = self._covered = audio_at

    def _buffered_end(self) -> int:
        return self._run_at + sum(int(part.shape[0]) for part in self._run)

    def _extend(self, samples: Float32Array, lookahead: int | None = None) -> None:
        if samples.shape[0] == 0:
            return
        self._run.append(samples)
        self._embed_until(
            self._buffered_end() - (self._lookahead if lookahead is None else lookahead)
        )

    def _embed_until(self, limit: int) -> None:
        """Embed every window of the run that ends by ``limit``."""
        while self._next_window + self._window <= limit:
            end = self._next_window + self._window
            self._add_window(self._next_window, end, self._take(self._next_window, end))
            self._covered = end
            self._next_window += self._hop
            self._drop_before(self._next_window)

    def _end_run(self, at: int) -> None:
        """A speech run ended at ``at``: embed what no window covered yet (the run's tail, or
        the whole of a run shorter than a window), then end its turn."""
        self._in_speech = False
        end = min(at, self._buffered_end()) if self._run else self._covered
        self._embed_until(end)
        if end - self._covered >= self._min_speech:
            first = max(self._run_at, end - self._window)
            self._add_window(first, end, self._take(first, end))
        if self._turn is not None:
            self._turn.end = max(self._turn.start, at / SAMPLE_RATE)  # where the speech ended
            self._close_turn()
        self._run = []

    def _take(self, start: int, end: int) -> Float32Array:
        audio = np.concatenate(self._run) if len(self._run) > 1 else self._run[0]
        self._run = [audio]
        return audio[start - self._run_at : end - self._run_at]

    def _drop_before(self, index: int) -> None:
        if not self._run or index <= self._run_at:
            return
        audio = np.concatenate(self._run) if len(self._run) > 1 else self._run[0]
        cut = min(index - self._run_at, audio.shape[0])
        self._run = [audio[cut:]]
        self._run_at += cut

    # -- turns ------------------------------------------------------------------------------

    def _add_window(self, start: int, end: int, audio: Float32Array) -> None:
        embedding = unit(np.asarray(self.encoder.embed(audio), np.float32))
        turn = self._turn
        start_s, end_s = start / SAMPLE_RATE, end / SAMPLE_RATE
        if turn is not None and float(unit(turn.total) @ embedding) < self.change_threshold:
            # The last window was mostly the old voice and this one mostly the new: the change
            # is put halfway between their middles.
            boundary = max(turn.start, start_s + (self._window - self._hop) / 2 / SAMPLE_RATE)
            turn.end = boundary
            self._close_turn()
            turn = _Turn(boundary, end_s, embedding.copy())
            self._turn = turn
        elif turn is None:
            turn = _Turn(self._run_start / SAMPLE_RATE, end_s, embedding.copy())
            self._turn = turn
        else:
            turn.total = turn.total + embedding
            turn.windows += 1
            turn.end = end_s
        if turn.speaker is None and turn.windows >= self.settle_windows:
            self._settle(turn)
        elif turn.speaker is None:
            turn.provisional = self.clustering.peek(turn.total, turn.end - turn.start).speaker + 1

    def _settle(self, turn: _Turn) -> None:
        turn.speaker = self.clustering.assign(turn.total, turn.end - turn.start).speaker + 1

    def _close_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is None:
            return
        if turn.speaker is None:
            self._settle(turn)
        assert turn.speaker is not None
        self._closed.append(SpeakerTurn(turn.start, turn.end, turn.speaker, True))

    def _publish(self) -> None:
        turns = list(self._closed)
        turn = self._turn
        if turn is not None:
            speaker = turn.speaker if turn.speaker is not None else turn.provisional
            turns.append(SpeakerTurn(turn.start, turn.end, speaker, turn.speaker is not None))
        self.turns = tuple(turns)

    # -- labels -----------------------------------------------------------------------------

    def speaker_at(self, start_s: float, end_s: float) -> int | None:
        """The speaker of ``[start_s, end_s]``: the turn overlapping it most, else the nearest
        turn (None before any turn)."""
        return speaker_at(self.turns, start_s, end_s)


def speaker_at(turns: Sequence[SpeakerTurn], start_s: float, end_s: float) -> int | None:
    """The speaker of ``[start_s, end_s]`` among ``turns`` (in time order, not overlapping): the
    turn overlapping it most, else the nearest one (see :meth:`SpeakerTracker.speaker_at`)."""
    after = bisect.bisect_right(turns, end_s, key=lambda t: t.start)  # turns[after:] start later
    best: SpeakerTurn | None = None
    best_key = (0.0, -math.inf)
    for turn in turns[max(0, after - 4) : after + 1]:
        overlap = max(0.0, min(end_s, turn.end) - max(start_s, turn.start))
        distance = max(turn.start - end_s, start_s - turn.end, 0.0)
        key = (overlap, -distance)
        if best is None or key > best_key:
            best, best_key = turn, key
    return best.speaker if best is not None else None
