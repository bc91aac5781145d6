"""SegmentBuilder grouping and the SRT / WebVTT / JSON / text writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from whisper_streaming import TranscriptUpdate
from whisper_streaming.backends import timeline_from_text
from whisper_streaming.client.outputs import format_timestamp, render, write_transcript
from whisper_streaming.streaming.segments import SegmentBuilder


def test_segments_close_at_sentence_ends_and_utterance_end() -> None:
    """Committed words form completed segments; the rest is one incomplete segment."""
    words = timeline_from_text("Hello there. How are you today my friend")
    builder = SegmentBuilder()
    done = builder.add(TranscriptUpdate(committed=tuple(words[:4]), partial=tuple(words[4:6])))
    assert [s.text for s in done] == ["Hello there."]
    current = builder.current()
    assert current is not None and not current.completed
    assert current.text == "How are you today"
    done = builder.add(TranscriptUpdate(committed=tuple(words[4:]), utterance_end=True))
    assert [s.text for s in done] == ["How are you today my friend"]
    assert builder.current() is None
    assert [s.index for s in builder.recent(10)] == [0, 1]


def test_segments_never_overlap_and_respect_max_length() -> None:
    """A long run of words is split at max_segment_s; segment times never go backwards."""
    words = timeline_from_text(" ".join(f"w{i}" for i in range(40)))
    builder = SegmentBuilder(max_segment_s=5.0)
    done = builder.add(TranscriptUpdate(committed=tuple(words), final=True))
    assert len(done) >= 3
    for a, b in zip(done, done[1:], strict=False):
        assert b.start >= a.end
        assert a.end - a.start <= 5.0 + 0.5


SEGMENTS = [
    {"start": 0.0, "end": 1.5, "text": " Hello there."},
    {"start": 3661.25, "end": 3662.0, "text": " Bye."},
]


def test_srt_and_vtt_layout() -> None:
    """SRT numbers blocks with comma decimals; WebVTT has a header and dot decimals."""
    assert format_timestamp(3661.25) == "01:01:01,250"
    srt = render(SEGMENTS, "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n01:01:01,250")
    vtt = render(SEGMENTS, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n")


def test_write_transcript_by_extension(tmp_path: Path) -> None:
    """The extension picks the format; an unknown one is refused."""
    assert write_transcript(tmp_path / "a.json", SEGMENTS) == "json"
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["text"] == "Hello there. Bye." and len(data["segments"]) == 2
    write_transcript(tmp_path / "a.txt", SEGMENTS)
    assert (tmp_path / "a.txt").read_text() == "Hello there.\nBye.\n"
    with pytest.raises(ValueError):
        write_transcript(tmp_path / "a.doc", SEGMENTS)


def test_speaker_labels_in_every_output_format() -> None:
    """[Speaker N] in SRT and text, WebVTT voice spans (<v Speaker N>, text escaped), the
    speaker field in JSON; unlabelled segments stay as they were."""
    segments = [
        {"start": 0.0, "end": 1.5, "text": " Hello there.", "speaker": 1},
        {"start": 1.6, "end": 3.0, "text": " Fish & <chips>?", "speaker": 2},
        {"start": 3.1, "end": 4.0, "text": " Unlabelled."},
    ]
    srt = render(segments, "srt")
    assert "00:00:00,000 --> 00:00:01,500\n[Speaker 1] Hello there.\n" in srt
    assert "[Speaker 2] Fish & <chips>?" in srt and "\nUnlabelled.\n" in srt
    vtt = render(segments, "vtt")
    assert "<v Speaker 1>Hello there.\n" in vtt
    assert "<v Speaker 2>Fish &amp; &lt;chips>?\n" in vtt and "\nUnlabelled.\n" in vtt
    assert render(segments, "txt").splitlines() == [
        "[Speaker 1] Hello there.",
        "[Speaker 2] Fish & <chips>?",
        "Unlabelled.",
    ]
    assert [s.get("speaker") for s in json.loads(render(segments, "json"))["segments"]] == [
        1,
        2,
        None,
    ]


def test_segments_split_where_the_speaker_changes() -> None:
    from whisper_streaming.backends.base import Word

    words = tuple(
        Word(f" w{i}", i * 0.3, i * 0.3 + 0.25, speaker=1 if i < 3 else 2) for i in range(5)
    )
    done = SegmentBuilder().add(TranscriptUpdate(committed=words, utterance_end=True))
    assert [(s.text, s.speaker) for s in done] == [("w0 w1 w2", 1), ("w3 w4", 2)]
