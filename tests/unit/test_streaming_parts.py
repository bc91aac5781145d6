"""The processor's parts on their own: timeline, speech gate, commit policies, cut rules, request
planner."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import silence, tone
from tests.unit.fakes import EnergyVadModel
from whisper_streaming import ProcessorOptions, VadOptions
from whisper_streaming.backends.base import InferenceRequest, RequestKind, Word
from whisper_streaming.streaming.cuts import cap_cut, trim_cut, window_cut
from whisper_streaming.streaming.gate import SpeechGate
from whisper_streaming.streaming.planner import Plan, RequestPlanner
from whisper_streaming.streaming.policy import Agreement, Segments, make_policy
from whisper_streaming.streaming.timeline import Timeline
from whisper_streaming.vad import StreamingVad


def words(*spec: tuple[str, float, float]) -> list[Word]:
    return [Word(" " + w, s, e) for w, s, e in spec]


# -- timeline ---------------------------------------------------------------------------------


def test_timeline_maps_both_ways_across_runs_and_gaps() -> None:
    """Two runs: audio 0-2 s is stream 10-12 s, audio 2-6 s is stream 20-24 s."""
    t = Timeline(((0.0, 10.0), (2.0, 20.0)), 6.0)
    assert t.to_stream_s(1.0) == 11.0 and t.to_stream_s(2.5) == 20.5
    for audio_s in (0.0, 0.7, 1.99, 2.0, 3.3, 6.0):
        assert t.to_audio_s(t.to_stream_s(audio_s)) == pytest.approx(audio_s)
    assert t.to_audio_s(15.0) == 2.0  # in the gap: the later run's start
    assert t.to_audio_s(5.0) == 0.0 and t.to_audio_s(99.0) == 6.0  # clamped
    assert Timeline.of(3.0, 1.0).to_stream_s(0.5) == 3.5


def test_a_request_and_the_buffer_share_the_timeline() -> None:
    """InferenceRequest maps through the same Timeline as the buffer it was cut from."""
    req = InferenceRequest(np.zeros(16000 * 6, np.float32), 10.0, runs=((0.0, 10.0), (2.0, 20.0)))
    assert req.timeline == Timeline(((0.0, 10.0), (2.0, 20.0)), 6.0)
    assert req.to_stream_s(2.5) == 20.5 and req.to_audio_s(15.0) == 2.0
    plain = InferenceRequest(np.zeros(16000, np.float32), 4.0)
    assert plain.timeline == Timeline.of(4.0, 1.0)


# -- speech gate ------------------------------------------------------------------------------


def _gate() -> SpeechGate:
    options = VadOptions(min_silence_ms=300, speech_pad_ms=100)
    return SpeechGate(StreamingVad(options, model=EnergyVadModel()), pad_samples=1600)


def test_gate_lets_speech_through_with_padding_and_ends_utterances() -> None:
    """1 s silence, 1 s tone, 1 s silence: the tone passes (with up to 100 ms of padding each
    side), the silence before it does not, and the utterance ends once 300 ms were quiet."""
    gate = _gate()
    audio = np.concatenate([silence(1.0), tone(1.0), silence(1.0)])
    pieces = []
    for i in range(0, audio.shape[0], 1600):  # 100 ms chunks, detector run separately
        chunk = audio[i : i + 1600]
        pieces += gate.push(chunk, gate.detect(chunk))
    passed = sum(p.samples.shape[0] for p in pieces) / 16000
    assert 1.0 <= passed <= 1.25, passed
    assert pieces[0].start == pytest.approx(16000 - 1600, abs=512)
    assert [p.ends_utterance for p in pieces].count(True) == 1 and pieces[-1].ends_utterance
    assert not gate.in_speech


def test_gate_flush_hands_over_speech_in_progress() -> None:
    gate = _gate()
    pieces = gate.push(tone(1.0), None)
    assert gate.in_speech and not any(p.ends_utterance for p in pieces)
    seen = sum(p.samples.shape[0] for p in pieces)
    rest = gate.flush(16000)
    assert rest is not None and seen + rest.samples.shape[0] == 16000
    gate.close()
    assert gate.flush(16000) is None


# -- commit policies --------------------------------------------------------------------------


def test_segments_policy_never_commits_hypotheses() -> None:
    policy = Segments()
    hyp = words(("a", 0, 0.3), ("b", 0.4, 0.7))
    assert policy.on_hypothesis(hyp, 5.0) == 0 and policy.on_hypothesis(hyp, 6.0) == 0
    assert policy.commits_windows


def test_local_agreement_commits_the_shared_prefix_once() -> None:
    policy = Agreement(2, windows=False)
    first = words(("the", 0, 0.3), ("cat", 0.4, 0.7), ("sat", 0.8, 1.0))
    assert policy.on_hypothesis(first, 1.0) == 0  # nothing to agree with yet
    second = words(("the", 0, 0.3), ("cat", 0.4, 0.7), ("sang", 0.8, 1.1))
    assert policy.on_hypothesis(second, 1.2) == 2
    # The next hypothesis no longer holds the committed words: "sang" is compared with it.
    assert policy.on_hypothesis(words(("sang", 0.8, 1.1), ("on", 1.2, 1.4)), 1.5) == 1
    policy.reset()
    assert policy.on_hypothesis(words(("on", 1.2, 1.4)), 1.6) == 0


def test_agreement_policy_wants_time_agreement_and_right_context() -> None:
    """ "agreement": words must end at about the same time in both hypotheses, and at least
    ``lead_s`` before the decoded audio ends."""
    policy = Agreement(2, max_shift_s=0.1, lead_s=1.0, windows=True)
    a = words(("one", 0, 0.3), ("two", 0.4, 0.7), ("three", 0.8, 1.0), ("four", 1.1, 1.9))
    policy.on_hypothesis(a, 2.0)
    b = words(("one", 0, 0.3), ("two", 0.4, 0.95), ("three", 0.8, 1.0), ("four", 1.1, 1.9))
    assert policy.on_hypothesis(b, 2.0) == 1  # "two" moved 0.25 s
    policy.reset(b[1:])
    assert policy.on_hypothesis(b[1:], 2.5) == 2  # "four" ends within 1 s of 2.5: not yet
    assert make_policy(ProcessorOptions(commit_policy="agreement")).commits_windows
    assert not make_policy(ProcessorOptions(commit_policy="local_agreement")).commits_windows


# -- cut rules --------------------------------------------------------------------------------


def test_window_cut_prefers_a_complete_segment_past_the_committed_text() -> None:
    ws = words(("a", 0, 1), ("b", 1, 2), ("c", 2, 3), ("d", 8, 9))
    kw = {"window_end_s": 10.0, "margin_s": 1.0}
    assert window_cut(ws, (2.0, 3.0, 9.0), committed_end_s=0.0, whole=True, **kw) == 3.0
    assert window_cut(ws, (2.0, 9.0), committed_end_s=2.5, whole=True, **kw) is None
    # A piled-up window must move on: without a complete segment, the last ripe word.
    assert window_cut(ws, (9.5,), committed_end_s=0.0, whole=False, **kw) == 9.0
    assert window_cut([], (), committed_end_s=0.0, whole=False, **kw) == 9.0


def test_trim_cut_stays_in_committed_text() -> None:
    hyp = words(("x", 6.0, 6.5))
    kw = {"buffer_start_s": 0.0, "decoded_end_s": 8.0, "margin_s": 1.0}
    assert trim_cut((3.0, 7.0), hyp, committed_end_s=5.0, heard=True, **kw) == (3.0, True)
    assert trim_cut((7.0,), hyp, committed_end_s=5.0, heard=True, **kw) == (5.0, True)
    late = words(("y", 4.0, 4.5))  # uncommitted speech before the committed end: no cut
    assert trim_cut((7.0,), late, committed_end_s=5.0, heard=True, **kw) is None
    assert trim_cut((), [], committed_end_s=0.0, heard=False, **kw) == (7.0, False)


def test_cap_cut_bounds_the_buffer_but_never_cuts_undecoded_audio() -> None:
    hyp = words(("p", 20.0, 21.0), ("q", 27.0, 28.0))
    kw = {"buffer_start_s": 0.0, "keep_s": 29.0, "margin_s": 1.0, "trim_s": 15.0}
    assert cap_cut((), hyp, buffer_end_s=31.0, decoded_end_s=31.0, **kw) == 28.0
    assert cap_cut((5.0, 30.0), hyp, buffer_end_s=31.0, decoded_end_s=31.0, **kw) == 5.0
    # Never keep more than keep_s: the cut is at least buffer_end - keep_s.
    assert cap_cut((1.0, 30.0), hyp, buffer_end_s=31.0, decoded_end_s=31.0, **kw) == 2.0
    # Audio piled up past the decoded part: no cut here (the catch-up windows take it).
    assert cap_cut((), hyp, buffer_end_s=60.0, decoded_end_s=30.0, **kw) is None


# -- request planner --------------------------------------------------------------------------


def planner() -> RequestPlanner:
    """Steps of 1 s, requests of at most 10 s, piled-up audio in 4 s windows."""
    return RequestPlanner(step_samples=16000, max_request_samples=160000, catch_up_samples=64000)


def feed(p: RequestPlanner, seconds: float, start_s: float) -> None:
    n = int(seconds * 16000)
    p.buffer.append(np.zeros(n, np.float32), int(start_s * 16000))
    p.append(n)


def test_planner_asks_for_a_decode_per_step_and_a_window_when_told() -> None:
    p = planner()
    feed(p, 0.5, 0.0)
    assert not p.has_work and p.plan(lambda: False) is None
    feed(p, 0.5, 0.5)
    assert p.has_work
    assert p.plan(lambda: False) == Plan(RequestKind.HYPOTHESIS, 16000)
    assert not p.has_work  # nothing new since
    feed(p, 1.0, 1.0)
    assert p.plan(lambda: True) == Plan(RequestKind.WINDOW, 32000)


def test_planner_final_decode_comes_first_and_follows_cuts() -> None:
    p = planner()
    feed(p, 3.0, 0.0)
    p.mark_final(pending_text=False)
    feed(p, 0.5, 3.0)
    p.cut(16000)  # 1 s committed and dropped: the final mark moves with the audio
    plan = p.plan(lambda: False)
    assert plan == Plan(RequestKind.UTTERANCE_END, 32000) and plan.final
    assert p.dirty  # 0.5 s arrived after the utterance's end
    p.again(RequestKind.UTTERANCE_END, 32000)  # it failed: asked for again
    assert p.plan(lambda: False) == Plan(RequestKind.UTTERANCE_END, 32000)


def test_planner_decodes_piled_up_audio_window_by_window() -> None:
    p = planner()
    feed(p, 12.0, 0.0)
    assert p.plan(lambda: False) == Plan(RequestKind.CATCH_UP, 64000)
    p.again(RequestKind.CATCH_UP, 64000)  # a full window failed: the same again
    assert p.plan(lambda: False) == Plan(RequestKind.CATCH_UP, 64000)
    p.shorter_window()  # it skipped speech: half a window next
    assert p.plan(lambda: False) == Plan(RequestKind.CATCH_UP, 32000)


def test_planner_bound_trims_committed_audio_and_caps_the_buffer() -> None:
    p = planner()
    feed(p, 9.0, 0.0)
    hypothesis = words(("a", 6.0, 6.5), ("b", 6.5, 8.9))

    def bound(segment_ends: tuple[float, ...], capped: bool = True) -> float | None:
        return p.bound(
            segment_ends,
            hypothesis,
            committed_end_s=4.2,
            decoded_end_s=9.0,
            heard=True,
            capped=capped,
            trim_s=5.0,
            max_s=10.0,
            margin_s=1.0,
        )

    # Trim: past 5 s of buffer, cut at the complete segment inside committed text (4 s).
    assert bound((4.0, 8.9)) is None and p.buffer.start_s == pytest.approx(4.0)
    feed(p, 6.0, 9.0)  # 11 s buffered, over the 10 s cap
    assert bound((), capped=False) is None  # catching up: piled-up audio is decoded in windows
    # Capped: cut at the last word the decode heard (never in undecoded audio past 9 s), and
    # the caller commits the hypothesis up to there.
    assert bound(()) == 8.9
    assert p.buffer.start_s == pytest.approx(8.9)


def test_transcript_prompt_starts_with_the_initial_prompt() -> None:
    from whisper_streaming.streaming.transcript import Transcript

    text = Transcript(prompt_chars=30, max_overlap_words=5, initial_prompt=" Names: Ada. ")
    assert text.prompt(0.0) == "Names: Ada."
    text.commit(words(("hello", 0.0, 0.5), ("there", 0.5, 1.0)))
    assert text.prompt(1.0) == "Names: Ada. hello there"
    text.commit(words(*((f"w{i}", 1.0 + i, 1.5 + i) for i in range(10))))
    # Committed text as long as the prompt pushes the initial prompt out.
    committed = "hello there " + " ".join(f"w{i}" for i in range(10))
    assert text.prompt(20.0) == committed[-30:].lstrip()


def test_whisperx_chunks_get_word_times_in_proportion_to_length() -> None:
    """WhisperX decodes VAD chunks without timestamps: its words are laid over the chunk."""
    from whisper_streaming.backends.whisperx import spread_words

    words = spread_words(" Ask not what", 1.0, 3.0, 0.9)
    assert [w.word for w in words] == [" Ask", " not", " what"]
    assert words[0].start == 1.0 and words[-1].end == 3.0
    assert all(a.end == b.start for a, b in zip(words, words[1:], strict=False))
    assert words[2].end - words[2].start > words[1].end - words[1].start  # longer word
    assert spread_words("  ", 0.0, 1.0) == ()
