"""Online speaker clustering and the scripted encoder (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tone
from whisper_streaming.audio import SAMPLE_RATE
from whisper_streaming.speakers import OnlineClustering, ScriptedEncoder, SpeakerTracker, speaker_at
from whisper_streaming.vad import VadEvent, VadEventKind


def test_voices_keep_their_labels_across_turns() -> None:
    """Turns of three voices, in an order with returns: each voice keeps the label it got first,
    and labels are numbered in order of first appearance."""
    encoder = ScriptedEncoder(noise=0.3)
    clustering = OnlineClustering()
    turns = [200, 400, 200, 650, 400, 650, 200, 200, 400]
    labels = [clustering.assign(encoder.embed(tone(2.0, freq_hz=f)), 2.0).speaker for f in turns]
    assert labels == [0, 1, 0, 2, 1, 2, 0, 0, 1]
    assert clustering.speakers == 3


def test_the_speaker_cap_and_short_stretches_open_no_new_speaker() -> None:
    encoder = ScriptedEncoder(noise=0.0)
    clustering = OnlineClustering(max_speakers=2)
    first = clustering.assign(encoder.embed(tone(2.0, freq_hz=200)), 2.0)
    short = clustering.assign(encoder.embed(tone(0.5, freq_hz=400)), 0.5)  # too short to open
    second = clustering.assign(encoder.embed(tone(2.0, freq_hz=400)), 2.0)
    third = clustering.assign(encoder.embed(tone(2.0, freq_hz=650)), 2.0)  # over the cap
    assert (first.new, first.speaker) == (True, 0)
    assert (short.new, short.speaker) == (False, 0) and short.similarity < 0.7
    assert (second.new, second.speaker) == (True, 1)
    assert not third.new and third.speaker in (0, 1)
    assert clustering.speakers == 2


def test_a_voice_settles_as_its_speaker_talks() -> None:
    """The voice is the duration-weighted mean: a later, noisier stretch of the same speaker is
    closer to it than to any single earlier stretch."""
    encoder = ScriptedEncoder(noise=0.6, seed=3)
    clustering = OnlineClustering(threshold=0.3)
    sims = [clustering.assign(encoder.embed(tone(2.0)), 2.0).similarity for _ in range(12)]
    assert clustering.speakers == 1
    assert np.mean(sims[6:]) > np.mean(sims[1:6])


@pytest.mark.parametrize(("threshold", "cap"), [(1.5, 8), (0.5, 0)])
def test_bad_settings_are_refused(threshold: float, cap: int) -> None:
    with pytest.raises(ValueError):
        OnlineClustering(threshold=threshold, max_speakers=cap)


def test_without_resemblyzer_the_encoder_says_how_to_get_its_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from whisper_streaming.exceptions import ConfigError
    from whisper_streaming.speakers import ge2e

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install --no-deps resemblyzer"):
        ge2e.GE2EEncoder()


# -- the tracker: turns of a stream -------------------------------------------------------------


def _speech_events(start_s: float, end_s: float) -> list[VadEvent]:
    return [
        VadEvent(VadEventKind.SPEECH_START, int(start_s * SAMPLE_RATE)),
        VadEvent(VadEventKind.SPEECH_END, int(end_s * SAMPLE_RATE)),
    ]


def _stream(tracker: SpeakerTracker, audio: np.ndarray, events: list[VadEvent] | None) -> None:
    """Push ``audio`` in 0.25 s chunks, each with the events that fall in it."""
    step = SAMPLE_RATE // 4
    for i in range(0, audio.shape[0], step):
        chunk = audio[i : i + step]
        mine = None if events is None else [e for e in events if i <= e.sample < i + step]
        tracker.push(chunk, mine)
    tracker.close()


def test_turns_without_pauses_are_split_where_the_voice_changes() -> None:
    """Three voices back to back (one speech run, no VAD pause): the turns follow the voices
    within a window, a returning voice gets its old label, and words are labelled by overlap."""
    voices = [(200, 4.0), (400, 3.0), (200, 2.5), (650, 3.5)]
    audio = np.concatenate([tone(s, freq_hz=f) for f, s in voices])
    tracker = SpeakerTracker(ScriptedEncoder(noise=0.2))
    _stream(tracker, audio, _speech_events(0.0, audio.shape[0] / SAMPLE_RATE))
    turns = tracker.turns
    assert [t.speaker for t in turns] == [1, 2, 1, 3]
    assert all(t.settled for t in turns)
    boundaries = [t.start for t in turns[1:]]
    assert np.allclose(boundaries, [4.0, 7.0, 9.5], atol=0.8), boundaries
    assert tracker.speaker_at(1.0, 1.3) == 1
    assert tracker.speaker_at(5.0, 5.2) == 2
    assert tracker.speaker_at(11.0, 11.4) == 3
    assert tracker.speaker_at(30.0, 30.5) == 3  # after the last turn: the nearest


def test_pauses_end_turns_and_short_runs_open_no_speaker() -> None:
    """Speech runs between VAD pauses: each is a turn; a run shorter than ``min_speech_s`` is
    not embedded, and a short run of a new voice (< 1 s) joins the closest speaker."""
    parts = [tone(2.0, freq_hz=200), np.zeros(SAMPLE_RATE, np.float32), tone(0.3, freq_hz=400)]
    parts += [np.zeros(SAMPLE_RATE, np.float32), tone(0.8, freq_hz=650)]
    parts += [np.zeros(SAMPLE_RATE, np.float32), tone(2.5, freq_hz=400)]
    audio = np.concatenate(parts)
    events = _speech_events(0.0, 2.0) + _speech_events(3.0, 3.3) + _speech_events(4.3, 5.1)
    events += _speech_events(6.1, 8.6)
    tracker = SpeakerTracker(ScriptedEncoder(noise=0.0))
    _stream(tracker, audio, events)
    assert [(round(t.start, 1), round(t.end, 1), t.speaker) for t in tracker.turns] == [
        (0.0, 2.0, 1),
        (4.3, 5.1, 1),  # too short to open a speaker
        (6.1, 8.6, 2),
    ]


def test_a_young_turn_has_a_provisional_label_and_no_vad_means_all_speech() -> None:
    tracker = SpeakerTracker(ScriptedEncoder(noise=0.0), settle_windows=3)
    tracker.push(tone(2.0, freq_hz=200), None)  # one window so far
    assert [(t.speaker, t.settled) for t in tracker.turns] == [(1, False)]
    tracker.push(tone(2.0, freq_hz=200), None)
    assert [(t.speaker, t.settled) for t in tracker.turns] == [(1, True)]
    assert tracker.clustering.speakers == 1
    assert speaker_at((), 0.0, 1.0) is None


def test_speaker_encoders_by_name_and_their_errors() -> None:
    """Unknown names and misplaced models are refused; pyannote without pyannote.audio (not in
    the core install) says how to get it (its model errors: test_whisperx, where it is)."""
    from whisper_streaming.exceptions import ConfigError
    from whisper_streaming.speakers import load_encoder

    with pytest.raises(ConfigError, match="available: resemblyzer, pyannote"):
        load_encoder("ecapa")
    with pytest.raises(ConfigError, match="drop --speaker-model"):
        load_encoder("resemblyzer", model="/models/x")
    try:
        import pyannote.audio  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install pyannote.audio"):
            load_encoder("pyannote", model="/models/x")


def test_a_long_stream_keeps_a_bounded_number_of_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    from whisper_streaming.speakers import tracker as tracker_module

    monkeypatch.setattr(tracker_module, "KEPT_TURNS", 5)
    tracker = SpeakerTracker(ScriptedEncoder(noise=0.0))
    run = np.concatenate([tone(0.6, freq_hz=200), np.zeros(SAMPLE_RATE // 2, np.float32)])
    for i in range(12):
        events = _speech_events(0.0, 0.6)
        shifted = [VadEvent(e.kind, e.sample + i * run.shape[0]) for e in events]
        tracker.push(run, shifted)
    assert len(tracker.turns) == 5
    assert tracker.turns[-1].start == pytest.approx(11 * 1.1, abs=0.01)


def test_a_speech_end_decided_later_ends_the_turn_where_the_speech_ended() -> None:
    """The VAD decides an end of speech ``min_silence_ms`` after it (its event comes with a
    later chunk): the turn ends at the event's time, and no window is embedded over the
    silence in between (it would read as a different voice)."""
    seen: list[float] = []

    class Recording(ScriptedEncoder):
        def embed(self, samples: np.ndarray) -> np.ndarray:
            seen.append(float(np.abs(samples).mean()))
            return super().embed(samples)

    audio = np.concatenate([tone(3.0, freq_hz=200), np.zeros(2 * SAMPLE_RATE, np.float32)])
    start = VadEvent(VadEventKind.SPEECH_START, 0)
    end = VadEvent(VadEventKind.SPEECH_END, int(3.2 * SAMPLE_RATE))  # 0.2 s pad after speech
    tracker = SpeakerTracker(Recording(noise=0.0), lookahead_s=0.8)
    step = SAMPLE_RATE // 4
    for i in range(0, audio.shape[0], step):
        events = [start] if i == 0 else [end] if i == 4 * SAMPLE_RATE else []  # 0.8 s later
        tracker.push(audio[i : i + step], events)
    tracker.close()
    assert [(t.start, round(t.end, 2), t.speaker) for t in tracker.turns] == [(0.0, 3.2, 1)]
    assert min(seen) > 0.1  # every embedded window is mostly the tone, none mostly silence
