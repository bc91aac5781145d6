"""The committed transcript as the processor needs it: its tail (to remove overlap and to prompt
the next decode), where it ends, and the detected language (pure)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ..backends.base import Transcription, Word
from .cuts import EPS_S
from .hypothesis import drop_committed, words_text

__all__ = ["Transcript"]

_TAIL_WORDS = 64


class Transcript:
    """Committed words (the last ``64`` kept) and the language, reported once."""

    def __init__(
        self, *, prompt_chars: int, max_overlap_words: int, initial_prompt: str = ""
    ) -> None:
        self._prompt_chars = prompt_chars
        self._initial_prompt = initial_prompt.strip()
        self._max_overlap_words = max_overlap_words
        self._tail: deque[Word] = deque(maxlen=_TAIL_WORDS)
        self.end_s = 0.0
        """Stream time at which the last committed word ends."""
        self._language: tuple[str, float | None] | None = None
        self._language_reported = False

    def commit(self, words: Sequence[Word]) -> tuple[Word, ...]:
        """Add words at the end; returns them."""
        for w in words:
            self._tail.append(w)
            self.end_s = max(self.end_s, w.end)
        return tuple(words)

    def new_words(self, words: Sequence[Word]) -> list[Word]:
        """``words`` of a decode without the text already committed."""
        return drop_committed(
            words, list(self._tail), self.end_s, max_overlap_words=self._max_overlap_words
        )

    def prompt(self, before_s: float) -> str:
        """The last ``prompt_chars`` of the initial prompt and the text committed before a
        stream time."""
        if not self._prompt_chars:
            return ""
        text = words_text([w for w in self._tail if w.end <= before_s + EPS_S])
        if self._initial_prompt and len(text) < self._prompt_chars:
            text = self._initial_prompt + " " + text.lstrip()
        return text.strip()[-self._prompt_chars :].lstrip()

    def note_language(self, result: Transcription) -> None:
        """Keep the first language a decode reports."""
        if result.language and self._language is None:
            self._language = (result.language, result.language_probability)

    def language_news(self) -> tuple[str | None, float | None]:
        """The language and its probability the first time they are known, else (None, None)."""
        if self._language is None or self._language_reported:
            return None, None
        self._language_reported = True
        return self._language
