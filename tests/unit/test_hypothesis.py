"""LocalAgreement helpers: prefix agreement, overlap removal, hallucination filter."""

from whisper_streaming.backends.base import Segment, Word
from whisper_streaming.streaming.hypothesis import (
    agreed_prefix_length,
    drop_committed,
    find_skipped_speech,
    first_words,
    heard_segments,
    is_hallucination,
    normalize_word,
    squeezed_tail,
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


def test_drop_committed_follows_words_moved_over_skipped_speech() -> None:
    """Committed words a decode placed at the end of speech it skipped are still recognised.

    Seen on real speech: one decode heard only "The best" for 4 s of speech and timed it at
    64.8-65.3 s; the next decode heard the whole sentence with "The best" at 61.3-61.6 s. The
    words after the repeated run are new, although they lie before the committed end.
    """
    committed = [
        *words("inform the police", start=60.0),
        Word(" The", 64.8, 65.28),
        Word(" best", 65.28, 65.28),
    ]
    new = [
        *words("inform the police", start=60.0),
        *words("the best emetic is that which is at hand", start=61.3, step=0.45),
    ]
    kept = drop_committed(new, committed, committed_end_s=65.28)
    assert " ".join(w.word.strip() for w in kept) == "emetic is that which is at hand"


def test_drop_committed_single_word_anchor_stays_near() -> None:
    """One repeated word far from the committed end is not an anchor (it is a new "the")."""
    committed = words("over the", start=10.0)  # ends at 10.9
    new = [*words("the cat sat", start=5.0), *words("on the mat", start=10.0)]
    kept = drop_committed(new, committed, committed_end_s=10.9)
    assert [w.word.strip() for w in kept] == ["mat"]


def test_hallucination_filter_keeps_confident_real_speech() -> None:
    """Short improbable words in a segment the decoder was fairly sure of are kept.

    Real case: "If Car to a case, suppose there's a spectacle..." (no-speech 0.02, average
    log-probability -0.79) was dropped by a -0.7 cut-off, losing the first words of a file.
    """
    quick = tuple(
        Word(w, i * 0.1, i * 0.1 + 0.05, 0.1) for i, w in enumerate(" If Car to a".split())
    )
    assert not is_hallucination(Segment(0, 1, "", quick, no_speech_prob=0.02, avg_logprob=-0.79))
    assert is_hallucination(Segment(0, 1, "", quick, no_speech_prob=0.02, avg_logprob=-1.2))


def test_find_skipped_speech() -> None:
    """A stretched word, a long gap and a long silent tail each mark skipped speech."""
    ws = words("a b c d e f")  # 0.4 s words every 0.5 s, ending at 2.9 s
    assert find_skipped_speech(ws, 3.2, 2.0) is None
    stretched = [*ws[:3], Word(" d", 1.5, 6.0), *words("e f", start=6.0)]
    assert find_skipped_speech(stretched, None, 2.0) == (3, 1.5)
    gap = [*ws[:3], *words("d e f", start=5.0)]
    assert find_skipped_speech(gap, None, 2.0) == (3, ws[2].end)
    assert find_skipped_speech(ws, 6.0, 2.0) == (6, ws[-1].end)
    assert find_skipped_speech(ws, None, 2.0) is None
    # A long first word at the very start: decoding again from there would not move forward.
    assert find_skipped_speech([Word(" a", 0.0, 3.0), *words("b", start=3.0)], None, 2.0) is None


def _segment(text: str, start: float, **kw: float) -> Segment:
    ws = tuple(words(text, start))
    return Segment(ws[0].start, ws[-1].end, text, ws, **kw)


def test_heard_segments_drops_silent_and_invented_segments_and_bare_punctuation() -> None:
    """Whisper's silence rule needs both a high no-speech probability and a low log-probability;
    invented segments go by the hallucination filter; punctuation alone is not a word."""
    speech = _segment("hello there", 0.0, no_speech_prob=0.9, avg_logprob=-0.2)
    silent = _segment("thank you", 2.0, no_speech_prob=0.9, avg_logprob=-1.5)
    fake = tuple(Word(" Thank", 3.32, 3.32, 0.01) for _ in range(4))
    invented = Segment(3.32, 3.64, "", fake, no_speech_prob=0.5, avg_logprob=-1.1)
    dots = Segment(4.0, 5.0, "yes ...", (Word(" yes", 4.0, 4.4), Word(" ...", 4.5, 4.9)))
    kept = heard_segments(
        [speech, silent, invented, dots], no_speech_threshold=0.6, logprob_threshold=-1.0
    )
    assert [[w.word.strip() for w in seg] for seg in kept] == [["hello", "there"], ["yes"]]


def test_first_words_maps_times_and_reports_segment_ends() -> None:
    """Words after the limit are left out, and so is the end of a segment that keeps none."""
    segs = [words("a b", 0.0), words("c d", 2.0), words("e", 4.0)]
    kept, ends = first_words(segs, 3, lambda t: t + 10.0)
    assert [(w.word.strip(), w.start) for w in kept] == [("a", 10.0), ("b", 10.5), ("c", 12.0)]
    assert ends == (10.9, 12.4)
    assert first_words(segs, 0, lambda t: t) == ([], ())


def test_drop_committed_keeps_new_speech_that_repeats_the_committed_words() -> None:
    """A window that starts at the committed end and says the last committed words again (a
    repeated sentence) is all new: the repeat lies after the committed end."""
    committed = words("the quick brown fox jumps over the lazy dog", start=0.0)
    again = words("the quick brown fox jumps over the lazy dog", start=4.6)
    assert drop_committed(again, committed, committed[-1].end) == again


def _timed(spec: list[tuple[str, float, float]]) -> tuple[Word, ...]:
    return tuple(Word(" " + w, s, e, 0.95) for w, s, e in spec)


def test_a_sentence_repeated_into_no_time_at_the_end_is_dropped() -> None:
    """tiny.en on a buffer that ends in a pause (real decode, browser audio): the last sentence
    again, every word at the same instant, confidently. Only the squeezed copy goes."""
    real = [
        ("The", 0.0, 1.42),
        ("later", 1.42, 1.62),
        ("traditions", 1.62, 2.26),
        ("tend", 2.26, 2.88),
        ("to", 2.88, 2.96),
        ("extend", 2.96, 3.42),
        ("the", 3.42, 3.66),
        ("period.", 3.66, 4.02),
    ]
    copy = [(w, 4.02, 4.02) for w, _, _ in real[:6]] + [
        ("the", 4.02, 4.66),
        ("period.", 4.66, 4.66),
    ]
    assert squeezed_tail(_timed(real + copy)) == len(copy)
    one_segment = Segment(0.0, 4.66, "", _timed(real + copy), avg_logprob=-0.37)
    kept = heard_segments([one_segment], no_speech_threshold=0.6, logprob_threshold=-1.0)
    assert [w.word.strip() for w in kept[0]] == [w for w, _, _ in real]
    own_segment = [Segment(0.0, 4.02, "", _timed(real)), Segment(4.02, 4.66, "", _timed(copy))]
    kept = heard_segments(own_segment, no_speech_threshold=0.6, logprob_threshold=-1.0)
    assert len(kept) == 1 and len(kept[0]) == len(real)


def test_real_speech_with_a_few_short_words_is_kept() -> None:
    # Two squeezed words at the end, or squeezed words followed by real ones: not a tail to drop.
    assert squeezed_tail(_timed([("a", 0.0, 0.5), ("b", 0.5, 0.5), ("c", 0.5, 0.5)])) == 0
    spec = [("a", 0.0, 0.0), ("b", 0.0, 0.0), ("c", 0.0, 0.0), ("d", 0.1, 0.5), ("e", 0.5, 0.9)]
    assert squeezed_tail(_timed(spec)) == 0
    assert squeezed_tail(()) == 0
