"""Online speaker clustering and the scripted encoder (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import tone
from whisper_streaming.speakers import OnlineClustering, ScriptedEncoder


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
    assert (short.new, short.speaker) == (False, 0) and short.similarity < 0.75
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
