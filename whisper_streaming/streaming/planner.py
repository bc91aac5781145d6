"""The buffer's bookkeeping: which decode it owes next and what it may drop (pure).

The planner holds the buffer and the marks that decide the next request: new audio since the
last request, a final decode due up to some point (an utterance ended), audio that piled up
past one request. The processor asks :meth:`RequestPlanner.plan` for the next decode, builds
the request and applies the result; after each decode :meth:`RequestPlanner.bound` keeps the
buffer short (the rules are in :mod:`.cuts`), and every cut goes through
:meth:`RequestPlanner.cut` so the marks follow the audio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..audio import SAMPLE_RATE
from ..backends.base import RequestKind, Word
from .buffer import SpeechBuffer
from .cuts import cap_cut, trim_cut

__all__ = ["Plan", "RequestPlanner"]


@dataclass(frozen=True, slots=True)
class Plan:
    """The next decode: its kind and how many of the buffer's first samples it hears."""

    kind: RequestKind
    samples: int

    @property
    def final(self) -> bool:
        """Whether the processor commits everything the decode returns."""
        return self.kind is RequestKind.UTTERANCE_END


class RequestPlanner:
    """Decides the next request from the buffer's state.

    Args:
        step_samples: new audio that makes a new decode due.
        max_request_samples: audio one request may hear; more than this has piled up.
        catch_up_samples: the window piled-up audio is decoded in.
    """

    def __init__(
        self, *, step_samples: int, max_request_samples: int, catch_up_samples: int
    ) -> None:
        self.buffer = SpeechBuffer()
        self._step = step_samples
        self.max_request_samples = max_request_samples
        self.catch_up_samples = catch_up_samples
        self._new = 0  # appended since the last request
        self.dirty = False  # appended since the last final request
        self.final_until: int | None = None  # buffer index a final decode is due up to
        self._shorter_window = False  # decode the next piled-up window at half length

    @property
    def has_work(self) -> bool:
        """Whether :meth:`plan` would return a decode (none may be in flight)."""
        n = len(self.buffer)
        return (
            self.final_until is not None
            or n > self.max_request_samples
            or (n > 0 and self._new >= self._step)
        )

    def append(self, samples_len: int) -> None:
        """``samples_len`` samples were appended to the buffer."""
        self._new += samples_len
        self.dirty = True

    def mark_final(self, pending_text: bool) -> None:
        """The utterance ended: a final decode is due up to here (if anything is pending)."""
        if self.dirty or pending_text:
            self.final_until = len(self.buffer)

    def plan(self, commits_window: Callable[[], bool]) -> Plan | None:
        """The next decode, or None. ``commits_window`` says whether a regular decode should be
        a full-beam window that commits complete segments (asked only when one is due)."""
        n = len(self.buffer)
        if self.final_until is not None and self.final_until <= self.max_request_samples:
            until = self.final_until
            self.final_until = None
            self._new = n - until
            self.dirty = self._new > 0
            return Plan(RequestKind.UTTERANCE_END, until)
        if n > self.max_request_samples:
            # Audio piled up faster than it was decoded (a slow or busy model, or a client
            # sending faster than real time): decode the oldest part, commit what it completes,
            # and keep the rest for the next request. Nothing is dropped.
            step = self.catch_up_samples // (2 if self._shorter_window else 1)
            self._shorter_window = False
            self._new = n - step
            return Plan(RequestKind.CATCH_UP, step)
        if n and self._new >= self._step:
            self._new = 0
            kind = RequestKind.WINDOW if commits_window() else RequestKind.HYPOTHESIS
            return Plan(kind, n)
        return None

    def again(self, kind: RequestKind, samples: int) -> None:
        """A decode of the buffer's first ``samples`` failed: ask for it again."""
        if kind is RequestKind.UTTERANCE_END:
            self.final_until = max(self.final_until or 0, samples)
        elif kind is RequestKind.CATCH_UP:
            self.shorter_window(samples < self.catch_up_samples)

    def shorter_window(self, shorter: bool = True) -> None:
        """Decode the next piled-up window at half length (the last one skipped speech)."""
        self._shorter_window = shorter

    def cut(self, n: int) -> None:
        """Drop the buffer's first ``n`` samples; the marks move with the audio."""
        n = self.buffer.cut_samples(n)
        if self.final_until is not None:
            self.final_until = max(0, self.final_until - n)

    def bound(
        self,
        segment_ends: Sequence[float],
        hypothesis: Sequence[Word],
        *,
        committed_end_s: float,
        decoded_end_s: float,
        heard: bool,
        capped: bool,
        trim_s: float,
        max_s: float,
        margin_s: float,
    ) -> float | None:
        """After a decode: trim a buffer longer than ``trim_s`` in committed territory, and
        (when ``capped``; not while catching up on piled-up audio, which is decoded window by
        window instead) cut one that would exceed ``max_s``, even mid-hypothesis. Only audio
        the decode heard is cut. Returns the cap's cut (stream seconds): the hypothesis up to
        it must be committed; None when the cap did not cut."""
        buf = self.buffer
        if buf.duration_s > trim_s:
            trim = trim_cut(
                segment_ends,
                hypothesis,
                buffer_start_s=buf.start_s,
                committed_end_s=committed_end_s,
                heard=heard,
                decoded_end_s=decoded_end_s,
                margin_s=margin_s,
            )
            if trim is not None:
                at, snap = trim
                self.cut(buf.index_of(buf.snap_to_run_start(at, committed_end_s) if snap else at))
        if not capped or buf.duration_s + margin_s <= max_s:
            return None
        keep_s = max_s - margin_s  # never keep more than this
        cut = cap_cut(
            segment_ends,
            hypothesis,
            buffer_start_s=buf.start_s,
            buffer_end_s=buf.end_s,
            decoded_end_s=decoded_end_s,
            keep_s=keep_s,
            margin_s=margin_s,
            trim_s=trim_s,
        )
        if cut is None:
            return None
        self.cut(buf.index_of(cut))
        excess = len(buf) - int(keep_s * SAMPLE_RATE)
        if excess > 0:  # the cut fell in a gap between speech runs; never cut undecoded audio
            self.cut(min(excess, buf.index_of(decoded_end_s)))
        return cut
