"""LocalAgreement helpers: prefix agreement, overlap removal, hallucination filter."""

from whisper_streaming.backends.base import Segment, Word
from whisper_streaming.streaming.hypothesis import (
    agreed_prefix_length,
    drop_committed,
    is_hallucination,
    normalize_word,
)


def words(text: str, start: float = 0.0, step: float = 0.5) -> list[Word]:
    return [
        Word(" " + t, start + i * step, start + i * step + 0.4) for i, t in enumerate(text.split())
    ]


def test_normalize_ignores_case_and_punctuation() -> None:
    """Words compare equal regardless of case, punctuation and leading space."""
    assert normalize_word(" Hello,") == normalize_word("hello") == "hello"
    assert normalize_word(" don't") == "don't"


def test_agreement_is_common_prefix() -> None:
    """Only the leading words both hypotheses share agree."""
    assert agreed_prefix_length(words("a b c d"), words("a b x d")) == 2
    assert agreed_prefix_length(words("A, b."), words("a B")) == 2
    assert agreed_prefix_length([], words("a")) == 0


def test_drop_committed_without_anchor_uses_word_midpoints() -> None:
    """With no repeated committed text, words centred before the committed end are dropped."""
    committed = words("alpha beta", start=-1.0)
    new = words("one two three four")  # midpoints 0.2, 0.7, 1.2, 1.7
    kept = drop_committed(new, committed, committed_end_s=1.05)
    assert [w.word.strip() for w in kept] == ["three", "four"]


def test_drop_committed_anchors_on_text_despite_time_jitter() -> None:
    """A new word that starts before the committed end is kept when the text says it is new."""
    committed = words("margaret said mr hale", start=15.0)  # ends at 16.9
    new = [
        *words("margaret said mr hale", start=14.9),  # same words, decoded 0.1 s earlier
        Word(" as", 16.75, 16.9),
        Word(" he", 16.9, 17.1),
    ]
    kept = drop_committed(new, committed, committed_end_s=16.9)
    assert [w.word.strip() for w in kept] == ["as", "he"]


def test_drop_committed_removes_ngram_overlap() -> None:
    """A repeated n-gram at the head of the hypothesis is removed, longest first."""
    committed = words("we saw the the cat", start=0.0)
    # Timestamps moved a little later, so the time filter does not catch them.
    new = words("the the cat sat down", start=2.2)
    kept = drop_committed(new, committed, committed_end_s=2.4)
    assert [w.word.strip() for w in kept] == ["sat", "down"]


def test_drop_committed_keeps_far_words() -> None:
    """No n-gram removal when the hypothesis starts far from the committed end."""
    committed = words("the cat")
    new = words("the cat again", start=10.0)
    assert len(drop_committed(new, committed, committed_end_s=0.9)) == 3


def test_hallucination_needs_anomaly_and_doubt() -> None:
    """Zero-length improbable words in an unsure segment are a hallucination; real words are not."""
    fake = tuple(Word(w, 3.32, 3.32, 0.1) for w in (" Thank", " you", " for", " watching."))
    assert is_hallucination(Segment(3.32, 3.64, "", fake, no_speech_prob=0.5, avg_logprob=-1.1))
    assert not is_hallucination(
        Segment(3.32, 3.64, "", fake, no_speech_prob=0.01, avg_logprob=-0.2)
    )
    real = tuple(words("a grain or two perhaps is good"))
    assert not is_hallucination(Segment(0, 4, "", real, no_speech_prob=0.5, avg_logprob=-1.1))
