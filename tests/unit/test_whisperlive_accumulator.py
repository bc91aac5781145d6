"""What a WhisperLive client keeps of the server's segments messages (no socket)."""

from __future__ import annotations

from whisper_streaming.server.protocols.whisperlive import TranscriptAccumulator, WireSegment


def seg(start: float, end: float, text: str, completed: bool = True) -> WireSegment:
    raw = {"start": f"{start:.3f}", "end": f"{end:.3f}", "text": text, "completed": completed}
    return WireSegment.from_json(raw)


def test_repeated_segments_are_kept_once_and_the_partial_follows() -> None:
    acc = TranscriptAccumulator()
    assert acc.add([seg(0, 1, " one", completed=False)]) == []
    assert acc.partial is not None and acc.partial["text"] == " one"
    new = acc.add([seg(0, 1, " one"), seg(1, 2, " two", completed=False)])
    assert [s["text"] for s in new] == [" one"]
    # WhisperLive repeats the last n completed segments with every message.
    new = acc.add([seg(0, 1, " one"), seg(1, 2, " two"), seg(2, 2.5, " thr", completed=False)])
    assert [s["text"] for s in new] == [" two"]
    assert acc.text == "one two" and acc.partial is not None
    acc.add([seg(0, 1, " one"), seg(1, 2, " two")])
    assert acc.partial is None and acc.text == "one two"


def test_a_completed_segment_that_starts_before_the_last_kept_end_is_ignored() -> None:
    acc = TranscriptAccumulator()
    acc.add([seg(0, 2, " a b")])
    assert acc.add([seg(1, 3, " b c")]) == []
    assert acc.add([seg(2, 3, " c", completed=True)])[0]["start"] == 2.0
    assert acc.text == "a b c"


def test_words_are_carried() -> None:
    acc = TranscriptAccumulator()
    words = [{"word": " a", "start": 0.0, "end": 0.5, "probability": 0.9}]
    acc.add([WireSegment.from_json({**seg(0, 0.5, " a").to_json(), "words": words})])
    assert acc.segments[0]["words"] == words
