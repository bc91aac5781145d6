"""A scripted backend: the public fake for tests and demos.

It needs no model. Either it plays back a list of answers in order, calls a function for each
request, or (the most useful mode) it "hears" a fixed timeline of words: a request returns the
words of the timeline that lie inside its audio window, as a perfect recogniser would.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from .base import InferenceRequest, Segment, Transcription, Word

__all__ = ["ScriptedBackend", "timeline_from_text"]

Responder = Callable[[InferenceRequest], Transcription]
_SENTENCE_END = re.compile(r"[.?!]$")


def timeline_from_text(
    text: str, *, start_s: float = 0.0, word_s: float = 0.4, gap_s: float = 0.1
) -> list[Word]:
    """Lay out the words of ``text`` one after another, ``word_s`` long with ``gap_s`` between."""
    words = []
    t = start_s
    for token in text.split():
        words.append(Word(" " + token, round(t, 3), round(t + word_s, 3), 0.9))
        t += word_s + gap_s
    return words


class ScriptedBackend:
    """Answers requests from a script instead of a model.

    Args:
        responses: answers returned in order (an :class:`Exception` in the list is raised);
            after the last one, empty transcriptions.
        responder: a function called for each request (takes precedence over ``responses``).
        timeline: words with absolute stream times; a request gets those inside its window.
        delay_s: sleep this long in each call, to mimic inference time.
        max_concurrency: how many threads may call it at once.
        keep_requests: how many of the latest requests ``requests`` keeps (None: all; each
            holds its audio, so a long stream needs a limit).

    Attributes:
        requests: every request received, in order.
    """

    name = "scripted"

    def __init__(
        self,
        responses: Iterable[Transcription | Exception] = (),
        *,
        responder: Responder | None = None,
        timeline: Sequence[Word] | None = None,
        delay_s: float = 0.0,
        max_concurrency: int = 1,
        model_name: str = "scripted",
        keep_requests: int | None = None,
    ) -> None:
        self._responses = list(responses)
        self._responder = responder
        self._timeline = tuple(timeline) if timeline is not None else None
        self.delay_s = delay_s
        self.max_concurrency = max_concurrency
        self.model_name = model_name
        self.requests: deque[InferenceRequest] = deque(maxlen=keep_requests)
        self._lock = threading.Lock()

    def transcribe(self, request: InferenceRequest) -> Transcription:
        """Answer one request from the script."""
        with self._lock:
            self.requests.append(request)
            response: Transcription | Exception | None = None
            if self._responder is None and self._timeline is None and self._responses:
                response = self._responses.pop(0)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self._responder is not None:
            return self._responder(request)
        if self._timeline is not None:
            return self.hear(request, self._timeline)
        if isinstance(response, Exception):
            raise response
        return response if response is not None else Transcription(language="en")

    def transcribe_batch(self, requests: Sequence[InferenceRequest]) -> list[Transcription]:
        """Answer several requests one after another."""
        return [self.transcribe(r) for r in requests]

    @staticmethod
    def hear(request: InferenceRequest, timeline: Sequence[Word]) -> Transcription:
        """Return the timeline words lying wholly inside the request's audio window.

        Words are grouped into segments that end at sentence punctuation; times become relative.
        """
        bounds = [0.0, *(a for a, _ in request.runs[1:]), request.duration_s]
        heard: list[Word] = []
        for i in range(len(bounds) - 1):
            lo = request.to_stream_s(bounds[i])
            hi = lo + bounds[i + 1] - bounds[i]
            shift = bounds[i] - lo
            heard += [
                w.shifted(shift) for w in timeline if w.start >= lo - 1e-6 and w.end <= hi + 1e-6
            ]
        segments: list[Segment] = []
        current: list[Word] = []
        for w in heard:
            current.append(w)
            if _SENTENCE_END.search(w.word):
                segments.append(_make_segment(current))
                current = []
        if current:
            segments.append(_make_segment(current))
        return Transcription(tuple(segments), "en", 1.0)


def _make_segment(words: list[Word]) -> Segment:
    return Segment(words[0].start, words[-1].end, "".join(w.word for w in words), tuple(words))
