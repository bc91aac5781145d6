"""SpeechBuffer: speech runs laid end to end and mapped back to stream time."""

from __future__ import annotations

import pytest

from tests.conftest import tone
from whisper_streaming.streaming.buffer import SpeechBuffer


def test_cutting_inside_an_earlier_speech_run_maps_to_the_right_sample() -> None:
    """Stream times map to buffer positions run by run (a cut in run 1 stays in run 1)."""
    buf = SpeechBuffer()
    for start_s in (0.0, 3.0, 6.0):  # three 2 s speech runs, 1 s of silence left out between
        buf.append(tone(2.0), int(start_s * 16000))
    assert buf.runs_s == ((0.0, 0.0), (2.0, 3.0), (4.0, 6.0))
    assert buf.index_of(3.5) == 2 * 16000 + 8000
    assert buf.index_of(5.8) == 4 * 16000  # in a gap: the next run's start
    assert buf.seconds_after(3.5) == pytest.approx(1.5 + 2.0)
    assert buf.snap_to_run_start(3.5, committed_end_s=4.9) == pytest.approx(6.0)
    assert buf.snap_to_run_start(3.5, committed_end_s=4.0) == pytest.approx(3.5)
    assert buf.cut_samples(buf.index_of(3.5)) == 2 * 16000 + 8000
    assert buf.start_s == pytest.approx(3.5) and buf.end_s == pytest.approx(8.0)
    assert buf.runs_s == ((0.0, 3.5), (1.5, 6.0))
    assert buf.duration_s == pytest.approx(3.5)
