"""Commit policies: when words of a hypothesis (a greedy decode of the growing buffer) become
final (pure).

Every policy shares what the processor does anyway: the end of an utterance commits a full-beam
decode of it, and a buffer that reaches ``max_buffer_s`` is cut. A policy decides the rest:

- ``segments`` (the default) commits nothing from hypotheses; speech longer than
  ``commit_window_s`` is committed window by window (complete segments of full-beam decodes).
- ``local_agreement`` commits the longest prefix the last ``agreement_n`` hypotheses share
  (LocalAgreement-n, Machacek et al. 2023, as UFAL's whisper_streaming does).
- ``agreement`` commits, on top of ``segments``' windows, the words two hypotheses agree on in
  text and in time (``agreement_shift_s``) that end ``agreement_lead_s`` before the decoded
  audio does, so every committed word had some right context.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from ..backends.base import Word
from ..config import ProcessorOptions
from .hypothesis import agreed_prefix_length

__all__ = ["Agreement", "CommitPolicy", "Segments", "make_policy"]


class CommitPolicy(Protocol):
    """What the processor asks a commit policy."""

    @property
    def commits_windows(self) -> bool:
        """Whether long speech is committed window by window (full-beam decodes of the buffer,
        up to their last complete segment)."""
        ...

    def on_hypothesis(self, words: Sequence[Word], decoded_end_s: float) -> int:
        """How many leading words of a new hypothesis to commit now. ``words`` excludes text
        already committed; ``decoded_end_s`` is the stream time where the decoded audio ends."""
        ...

    def reset(self, shown: Sequence[Word] | None = None) -> None:
        """Forget earlier hypotheses (text was committed another way); ``shown``, if given, is
        the partial text that still stands, as the latest hypothesis."""
        ...


class Segments:
    """Hypotheses are only shown; text becomes final at utterance ends and in windows."""

    commits_windows = True

    def on_hypothesis(self, words: Sequence[Word], decoded_end_s: float) -> int:
        return 0

    def reset(self, shown: Sequence[Word] | None = None) -> None:
        return None


class Agreement:
    """Commit the prefix the last ``n`` hypotheses share.

    Args:
        n: hypotheses that must agree (2: the new one and the one before).
        max_shift_s: also require the words' times to agree within this (None: text only).
        lead_s: commit only words that end at least this long before the decoded audio does
            (None: no such rule).
        windows: also commit long speech window by window, as :class:`Segments` does.
    """

    def __init__(
        self,
        n: int,
        *,
        max_shift_s: float | None = None,
        lead_s: float | None = None,
        windows: bool,
    ) -> None:
        self.commits_windows = windows
        self._max_shift_s = max_shift_s
        self._lead_s = lead_s
        # Earlier hypotheses still waiting for agreement (n - 1 of them), without committed text.
        self._previous: deque[list[Word]] = deque(maxlen=n - 1)

    def on_hypothesis(self, words: Sequence[Word], decoded_end_s: float) -> int:
        previous = self._previous
        agreed = 0
        if len(previous) == previous.maxlen:
            agreed = min(
                (agreed_prefix_length(h, words, max_shift_s=self._max_shift_s) for h in previous),
                default=0,
            )
        if self._lead_s is not None:
            settled = decoded_end_s - self._lead_s
            while agreed and words[agreed - 1].end > settled:
                agreed -= 1
        self._previous = deque((h[agreed:] for h in previous), maxlen=previous.maxlen)
        self._previous.append(list(words[agreed:]))
        return agreed

    def reset(self, shown: Sequence[Word] | None = None) -> None:
        self._previous.clear()
        if shown is not None:
            self._previous.append(list(shown))


def make_policy(options: ProcessorOptions) -> CommitPolicy:
    """The policy ``options.commit_policy`` names."""
    factories: dict[str, Callable[[], CommitPolicy]] = {
        "segments": Segments,
        "local_agreement": lambda: Agreement(options.agreement_n, windows=False),
        "agreement": lambda: Agreement(
            options.agreement_n,
            max_shift_s=options.agreement_shift_s,
            lead_s=options.agreement_lead_s,
            windows=True,
        ),
    }
    return factories[options.commit_policy]()
