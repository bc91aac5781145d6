"""ASRProcessor policy, driven by a scripted backend: no model, no socket, no thread."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.conftest import silence, tone
from tests.unit.fakes import EnergyVadModel
from whisper_streaming import (
    ASRProcessor,
    AudioError,
    ConfigError,
    ProcessorOptions,
    ScriptedBackend,
    StateError,
    Transcription,
    TranscriptUpdate,
    VadOptions,
)
from whisper_streaming.backends import timeline_from_text
from whisper_streaming.backends.base import InferenceRequest, RequestKind, Segment, Word
from whisper_streaming.simulate import simulate
from whisper_streaming.streaming.hypothesis import words_text
from whisper_streaming.vad import StreamingVad

# LocalAgreement without VAD: the policy of most tests below (commit_policy="segments", the
# default, has its own tests).
NO_VAD = {"use_vad": False, "commit_policy": "local_agreement"}


def tr(text: str, step: float = 0.3) -> Transcription:
    """A one-segment transcription whose words are laid out ``step`` seconds apart."""
    ws = tuple(Word(" " + t, i * step, i * step + 0.25, 0.9) for i, t in enumerate(text.split()))
    return Transcription((Segment(0.0, len(ws) * step, " " + text, ws),), "en", 1.0)


def vad_processor(**kw: object) -> ASRProcessor:
    options = ProcessorOptions(**kw)  # type: ignore[arg-type]
    return ASRProcessor(options, vad=StreamingVad(options.vad, model=EnergyVadModel()))


def run_due(proc: ASRProcessor, backend: ScriptedBackend, log: list[Any]) -> list[Word]:
    committed: list[Word] = []
    while (req := proc.next_request()) is not None:
        update = proc.apply(req, backend.transcribe(req))
        committed.extend(update.committed)
        log.append(update)
    return committed


def decode_at_once(
    timeline: list[Word], responder: Callable[[InferenceRequest], Transcription]
) -> tuple[ASRProcessor, ScriptedBackend, list[Word]]:
    """Feed audio for the whole timeline at once (no VAD), finish, run every decode."""
    proc = ASRProcessor(ProcessorOptions(**NO_VAD))
    backend = ScriptedBackend(responder=responder)
    proc.insert_audio(tone(timeline[-1].end + 0.3))
    proc.finish()
    return proc, backend, run_due(proc, backend, [])


def test_agreement_commits_only_the_common_prefix() -> None:
    """Words are committed only once two consecutive hypotheses agree on them."""
    proc = ASRProcessor(ProcessorOptions(**NO_VAD))
    backend = ScriptedBackend([tr("a b c"), tr("a b d e")])
    proc.insert_audio(tone(1.0))
    req = proc.next_request()
    assert req is not None
    first = proc.apply(req, backend.transcribe(req))
    assert first.committed == () and first.partial_text == "a b c"
    proc.insert_audio(tone(1.0))
    req = proc.next_request()
    assert req is not None and req.duration_s == pytest.approx(2.0)
    second = proc.apply(req, backend.transcribe(req))
    assert second.committed_text == "a b"
    assert second.partial_text == "d e"


def test_committed_words_are_not_committed_again() -> None:
    """Words the buffer still holds are filtered out of later hypotheses (time and n-gram)."""
    proc = ASRProcessor(ProcessorOptions(**NO_VAD))
    backend = ScriptedBackend([tr("a b c"), tr("a b c d"), tr("a b c d e"), tr("a b c d e")])
    texts = []
    for _ in range(4):
        proc.insert_audio(tone(1.0))
        req = proc.next_request()
        assert req is not None
        texts.append(proc.apply(req, backend.transcribe(req)).committed_text)
    assert texts == ["", "a b c", "d", "e"]


def test_request_waits_for_hypothesis_step_and_one_outstanding() -> None:
    """No request before hypothesis_step_s of new audio, and never two at once; the next one
    comes as soon as the previous returned and a step of new audio is there."""
    proc = ASRProcessor(ProcessorOptions(hypothesis_step_s=0.3, **NO_VAD))
    proc.insert_audio(tone(0.25))
    assert proc.next_request() is None
    proc.insert_audio(tone(0.1))
    req = proc.next_request()
    assert req is not None and req.kind is RequestKind.HYPOTHESIS
    proc.insert_audio(tone(1.0))
    assert proc.next_request() is None
    proc.apply(req, Transcription())
    nxt = proc.next_request()
    assert nxt is not None and nxt.duration_s == pytest.approx(1.35)
    proc.apply(nxt, Transcription())
    proc.insert_audio(tone(0.2))
    assert proc.next_request() is None


def test_trimming_keeps_committed_audio_out_of_the_buffer() -> None:
    """The buffer is cut at committed segment ends, and the transcript is still exact."""
    sentences = " ".join(f"w{i}a w{i}b w{i}c w{i}d w{i}e w{i}f." for i in range(30))
    timeline = timeline_from_text(sentences, start_s=0.3)
    backend = ScriptedBackend(timeline=timeline)
    options = ProcessorOptions(buffer_trimming_s=5.0, max_buffer_s=12.0, **NO_VAD)
    audio = tone(timeline[-1].end + 1.0)
    result = simulate(audio, backend, options)
    assert result.text == words_text(timeline)
    # Trimming happens before the cap is ever needed.
    assert result.max_buffer_s <= 5.0 + 3.0 + 1.0
    late = [r for r in backend.requests if r.offset_s > 20]
    assert late, "the buffer start must move forward"
    for req in backend.requests:
        assert req.duration_s <= 12.0


@pytest.mark.parametrize("policy", ["segments", "agreement", "local_agreement"])
def test_uneven_chunks_give_the_exact_transcript(policy: str) -> None:
    """simulate(chunks_s=...) feeds uneven chunks (as a busy server sees them); with either
    commit policy, the buffer stays trimmed and the transcript is exact."""
    sentences = " ".join(f"w{i}a w{i}b w{i}c w{i}d w{i}e w{i}f." for i in range(30))
    timeline = timeline_from_text(sentences, start_s=0.3)
    backend = ScriptedBackend(timeline=timeline)
    options = ProcessorOptions(use_vad=False, commit_policy=policy, commit_window_s=4.0)
    rng = random.Random(7)
    sizes = [rng.uniform(0.3, 2.5) for _ in range(200)]
    result = simulate(tone(timeline[-1].end + 1.0), backend, options, chunks_s=sizes)
    assert result.text == words_text(timeline)
    assert result.max_request_s <= 15.0 + 4.0 + 2.5 + 1.0
    with pytest.raises(ValueError, match="positive"):
        simulate(tone(2.0), backend, options, chunks_s=[1.0, 0.0])


def test_cap_holds_when_hypotheses_never_agree() -> None:
    """With hypotheses that never agree, text is still committed and the buffer stays capped."""
    rng = random.Random(7)

    def babble(req: InferenceRequest) -> Transcription:
        n = int(req.duration_s / 0.5)
        ws = [Word(f" x{rng.randrange(10**6)}", i * 0.5, i * 0.5 + 0.4) for i in range(n)]
        segs = tuple(
            Segment(ws[i].start, ws[min(i + 4, n - 1)].end, "", tuple(ws[i : i + 5]))
            for i in range(0, n, 5)
        )
        return Transcription(segs, "en", 1.0)

    options = ProcessorOptions(buffer_trimming_s=8.0, max_buffer_s=12.0, **NO_VAD)
    result = simulate(tone(120.0), ScriptedBackend(responder=babble), options)
    assert result.max_buffer_s <= 12.0
    assert result.max_request_s <= 12.0
    assert len(result.words) > 100
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)


def test_finish_commits_the_tail() -> None:
    """finish() runs a final decode, so the words at the very end are committed."""
    timeline = timeline_from_text("alpha beta gamma delta epsilon zeta eta theta", start_s=0.2)
    backend = ScriptedBackend(timeline=timeline)
    proc = ASRProcessor(ProcessorOptions(**NO_VAD))
    committed: list[Word] = []
    log: list[object] = []
    audio = tone(timeline[-1].end + 0.05)
    for i in range(0, audio.size, 16000):
        proc.insert_audio(audio[i : i + 16000])
        committed += run_due(proc, backend, log)
    assert words_text(committed) != words_text(timeline)
    done = proc.finish()
    assert not done.final
    committed += run_due(proc, backend, log)
    assert words_text(committed) == words_text(timeline)
    assert log[-1].final and log[-1].partial == ()  # type: ignore[attr-defined]
    assert proc.next_request() is None
    with pytest.raises(StateError):
        proc.insert_audio(tone(0.1))


def test_finish_with_nothing_pending_is_final_at_once() -> None:
    """An empty stream finishes immediately."""
    proc = ASRProcessor(ProcessorOptions(**NO_VAD))
    assert proc.finish().final


def test_failed_final_decode_commits_what_was_shown() -> None:
    """If the final decode fails, the last partial is committed instead of being lost."""
    proc = ASRProcessor(ProcessorOptions(**NO_VAD))
    proc.insert_audio(tone(1.0))
    req = proc.next_request()
    assert req is not None
    assert proc.apply(req, tr("hello world")).partial_text == "hello world"
    proc.finish()
    final_req = proc.next_request()
    assert final_req is not None and final_req.final
    update = proc.fail(final_req)
    assert update.committed_text == "hello world" and update.final


def test_vad_finalizes_each_utterance_and_skips_silence() -> None:
    """The end of speech seals the utterance at once; silence is never sent to the model."""
    timeline = [
        *timeline_from_text("one two three", start_s=0.2),
        *timeline_from_text("four five six", start_s=3.2),
    ]
    backend = ScriptedBackend(timeline=timeline)
    proc = vad_processor(min_chunk_s=0.5, vad=VadOptions(min_silence_ms=500, speech_pad_ms=200))
    audio = np.concatenate([tone(2.0), silence(1.0), tone(2.0), silence(1.0)])
    log: list[object] = []
    committed: list[Word] = []
    ends = []
    for i in range(0, audio.size, 4000):
        proc.insert_audio(audio[i : i + 4000])
        before = len(log)
        committed += run_due(proc, backend, log)
        for update in log[before:]:
            if update.utterance_end:  # type: ignore[attr-defined]
                ends.append((proc.stream_time_s, words_text(committed)))
    # Both utterances were finalized by the VAD, before the stream ended, within ~0.8 s.
    assert [text for _, text in ends] == ["one two three", "one two three four five six"]
    assert ends[0][0] <= 2.0 + 0.8
    assert proc.finish().final
    for req in backend.requests:
        # Only VAD padding may be silent: 200 ms on each side of the gap and after the end.
        assert np.count_nonzero(req.audio == 0) <= 0.6 * 16000 + 3 * 512, "silence reached"
    # The second utterance was decoded with the first as context, its words mapped to stream time.
    last = backend.requests[-1]
    assert len(last.runs) == 2 and last.runs[1][1] == pytest.approx(2.8, abs=0.05)


def test_short_utterance_is_committed_whole_by_its_final_decode() -> None:
    """Agreeing hypotheses stay partial; the end of speech commits the utterance from one final
    (full-beam) decode."""
    backend = ScriptedBackend(timeline=timeline_from_text("one two three four", start_s=0.2))
    proc = vad_processor(min_chunk_s=0.5, commit_window_s=5.0)
    log: list[TranscriptUpdate] = []
    audio = np.concatenate([tone(2.5), silence(1.5)])
    committed: list[Word] = []
    for i in range(0, audio.size, 4000):
        proc.insert_audio(audio[i : i + 4000])
        committed += run_due(proc, backend, log)
        if proc.stream_time_s <= 2.5:
            assert committed == [], proc.stream_time_s
            assert proc.partial or proc.stream_time_s < 1.0, proc.stream_time_s
    assert words_text(committed) == "one two three four"
    partials = [u for u in log if not u.utterance_end]
    finals = [u for u in log if u.utterance_end]
    assert len(partials) >= 3 and all(not u.committed for u in partials)
    assert len(finals) == 1 and finals[0].committed_text == "one two three four"
    assert [r.beam_size for r in backend.requests if r.final] == [5]


def test_long_speech_is_committed_segment_by_segment_past_the_commit_window() -> None:
    """Speech with no end commits complete segments of a full-beam decode once more than
    commit_window_s is uncommitted, and never before; nothing is lost or repeated."""
    sentences = [" ".join(f"s{i}w{j}" for j in range(5)) + "." for i in range(8)]
    backend = ScriptedBackend(timeline=timeline_from_text(" ".join(sentences), start_s=0.1))
    proc = ASRProcessor(ProcessorOptions(use_vad=False, commit_window_s=3.0))
    committed: list[Word] = []
    for _ in range(22):
        proc.insert_audio(tone(1.0))
        while (req := proc.next_request()) is not None:
            done_s = max(committed[-1].end if committed else 0.0, req.offset_s)
            uncommitted_s = req.offset_s + req.duration_s - done_s
            update = proc.apply(req, backend.transcribe(req))
            if update.committed:
                assert req.beam_size == 5 and uncommitted_s > 3.0, (uncommitted_s, req)
                assert update.committed[-1].word.endswith("."), update.committed_text
                # The words after the cut stay visible as partial text.
                assert update.partial or update.committed[-1].word == " s7w4.", update
            committed += update.committed
    assert len(committed) >= 15, "long speech was not committed before the end"
    last = proc.finish()
    committed += last.committed + tuple(run_due(proc, backend, []))
    assert words_text(committed) == " ".join(sentences)


def test_long_speech_is_never_cut_inside_a_segment() -> None:
    """Past commit_window_s, nothing is committed (nor decoded with the full beam) until a
    segment completes; a sentence that never ends waits for the end of the stream."""
    words = " ".join(f"w{i}" for i in range(26)) + "."
    backend = ScriptedBackend(timeline=timeline_from_text(words, start_s=0.1))
    proc = ASRProcessor(ProcessorOptions(use_vad=False, commit_window_s=3.0))
    committed: list[Word] = []
    for _ in range(13):
        proc.insert_audio(tone(1.0))
        committed += run_due(proc, backend, [])
    assert committed == [] and len(proc.partial) >= 20
    assert all(r.beam_size == 1 for r in backend.requests)
    committed += proc.finish().committed + tuple(run_due(proc, backend, []))
    assert words_text(committed) == words


def test_vad_silence_never_reaches_the_model() -> None:
    """A silent stream produces no request at all."""
    backend = ScriptedBackend()
    proc = vad_processor()
    for _ in range(20):
        proc.insert_audio(silence(1.0))
        assert proc.next_request() is None
    assert proc.finish().final and not backend.requests


def test_flush_finalizes_without_ending_the_stream() -> None:
    """flush() commits pending text and the stream goes on."""
    backend = ScriptedBackend(timeline=timeline_from_text("a b c d", start_s=0.1))
    proc = ASRProcessor(ProcessorOptions(**NO_VAD))
    proc.insert_audio(tone(2.5))
    log: list[object] = []
    run_due(proc, backend, log)
    proc.flush()
    assert words_text(run_due(proc, backend, log)) == "a b c d"
    proc.insert_audio(tone(1.0))
    assert proc.next_request() is not None


def test_apply_checks_the_request() -> None:
    """apply() refuses a request that is not the outstanding one."""
    proc = ASRProcessor(ProcessorOptions(**NO_VAD))
    proc.insert_audio(tone(1.0))
    req = proc.next_request()
    assert req is not None
    stranger = InferenceRequest(tone(1.0), 0.0)
    with pytest.raises(StateError):
        proc.apply(stranger, Transcription())


def test_prompt_is_committed_text_before_the_buffer() -> None:
    """The prompt carries the last committed words that lie before the buffer, at most N chars."""
    timeline = timeline_from_text(" ".join(f"word{i}." for i in range(80)), start_s=0.2)
    backend = ScriptedBackend(timeline=timeline)
    options = ProcessorOptions(prompt_chars=40, buffer_trimming_s=4.0, max_buffer_s=10.0, **NO_VAD)
    simulate(tone(timeline[-1].end + 0.5), backend, options)
    prompts = [r.prompt for r in backend.requests if r.prompt]
    assert prompts and all(len(p) <= 40 for p in prompts)
    last = backend.requests[-1]
    assert prompts[-1].split()[-1].rstrip(".") == "word" + str(
        max(int(w.word.strip()[4:-1]) for w in timeline if w.end <= last.offset_s + 1e-3)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_chunk_s": 0},
        {"min_chunk_s": -1},
        {"buffer_trimming_s": 1.0},
        {"max_buffer_s": 10.0},
        {"task": "summarize"},
        {"beam_size": 0},
        {"language": ""},
        {"prompt_chars": -1},
        {"no_speech_threshold": 2},
    ],
)
def test_invalid_processor_options_raise(kwargs: dict[str, object]) -> None:
    """Out-of-range options are refused with ConfigError."""
    with pytest.raises(ConfigError):
        ProcessorOptions(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"threshold": 1.5},
        {"min_silence_ms": 0},
        {"speech_pad_ms": -1},
        {"speech_pad_ms": 1000},
    ],
)
def test_invalid_vad_options_raise(kwargs: dict[str, object]) -> None:
    """Out-of-range VAD options are refused with ConfigError."""
    with pytest.raises(ConfigError):
        VadOptions(**kwargs)  # type: ignore[arg-type]


def test_bad_audio_is_refused() -> None:
    """NaN, infinity and multi-channel arrays raise AudioError."""
    proc = ASRProcessor(ProcessorOptions(**NO_VAD))
    with pytest.raises(AudioError):
        proc.insert_audio(np.array([0.0, np.nan], np.float32))
    with pytest.raises(AudioError):
        proc.insert_audio(np.array([0.0, np.inf], np.float32))
    with pytest.raises(AudioError):
        proc.insert_audio(np.zeros((2, 100), np.float32))


def test_local_agreement_3_needs_three_hypotheses() -> None:
    """With agreement_n=3 a word is committed only when three hypotheses in a row agree."""
    proc = ASRProcessor(ProcessorOptions(agreement_n=3, **NO_VAD))
    hyps = ["a b c", "a b d", "a x d e", "a x d e f", "a x d e f"]
    backend = ScriptedBackend([tr(h) for h in hyps])
    texts = []
    for _ in range(5):
        proc.insert_audio(tone(1.0))
        req = proc.next_request()
        assert req is not None
        texts.append(proc.apply(req, backend.transcribe(req)).committed_text)
    assert texts == ["", "", "a", "", "x d e"]


def test_audio_arriving_faster_than_decoding_is_never_dropped() -> None:
    """A minute of audio fed at once is decoded in max_buffer_s windows; every word survives."""
    timeline = timeline_from_text(" ".join(f"w{i}." for i in range(110)), start_s=0.2)
    backend = ScriptedBackend(timeline=timeline)
    options = ProcessorOptions(buffer_trimming_s=5.0, max_buffer_s=12.0, **NO_VAD)
    proc = ASRProcessor(options)
    proc.insert_audio(tone(2.0))
    first = proc.next_request()
    assert first is not None
    proc.insert_audio(tone(timeline[-1].end + 0.5 - 2.0))  # the rest arrives during the decode
    committed = list(proc.apply(first, backend.transcribe(first)).committed)
    log: list[object] = []
    committed += run_due(proc, backend, log)
    assert all(r.duration_s <= 12.0 for r in backend.requests)
    proc.finish()
    committed += run_due(proc, backend, log)
    assert words_text(committed) == words_text(timeline)


def test_final_decode_that_skips_speech_is_decoded_again_from_there() -> None:
    """A final decode that jumps over speech (one word stretched over seconds, as tiny.en does)
    commits only what precedes the jump; the rest is decoded again, so no word is lost."""
    timeline = timeline_from_text(" ".join(f"w{i}" for i in range(20)), start_s=0.2)
    skipping = [True]

    def responder(request: InferenceRequest) -> Transcription:
        heard = ScriptedBackend.hear(request, timeline)
        if not (request.final and skipping[0]):
            return heard
        skipping[0] = False
        words = list(heard.segments[0].words)
        stretched = Word(words[5].word, words[5].start, words[12].end, 0.9)
        words = [*words[:5], stretched, *words[13:]]
        return Transcription((Segment(0.0, words[-1].end, "", tuple(words)),), "en", 1.0)

    proc, backend, committed = decode_at_once(timeline, responder)
    assert words_text(committed) == words_text(timeline)
    finals = [r for r in backend.requests if r.final]
    assert len(finals) == 2
    assert finals[1].offset_s == pytest.approx(timeline[5].start, abs=0.01)


def test_final_decode_that_stops_early_is_decoded_again_for_the_tail() -> None:
    """A final decode whose words end seconds before its audio does gets a second look there."""
    timeline = timeline_from_text(" ".join(f"w{i}" for i in range(16)), start_s=0.2)
    calls = [0]

    def responder(request: InferenceRequest) -> Transcription:
        heard = ScriptedBackend.hear(request, timeline)
        calls[0] += 1
        if calls[0] > 1:
            return heard
        words = heard.segments[0].words[:8]  # the model stopped after 4 s of 8
        return Transcription((Segment(0.0, words[-1].end, "", words),), "en", 1.0)

    proc, backend, committed = decode_at_once(timeline, responder)
    assert words_text(committed) == words_text(timeline)


def test_piled_up_window_whose_decode_starts_late_is_retried_shorter() -> None:
    """A decode of piled-up audio that hears nothing for its first 20 s (tiny.en jumped ahead)
    commits nothing from there; a half-length window from the same place hears it all."""
    timeline = timeline_from_text(" ".join(f"w{i}." for i in range(90)), start_s=0.2)
    first_window = [True]

    def responder(request: InferenceRequest) -> Transcription:
        heard = ScriptedBackend.hear(request, timeline)
        if request.final or request.duration_s < 29 or not first_window[0]:
            return heard
        first_window[0] = False
        late = tuple(s for s in heard.segments if s.start >= 20.0)
        return Transcription(late, "en", 1.0)

    proc, backend, committed = decode_at_once(timeline, responder)
    assert words_text(committed) == words_text(timeline)
    assert backend.requests[0].beam_size == proc.options.beam_size  # it commits directly
    assert backend.requests[1].duration_s == pytest.approx(15.0)
    assert backend.requests[1].offset_s == backend.requests[0].offset_s


def test_request_maps_stream_time_to_audio_time_and_back() -> None:
    """to_audio_s inverts to_stream_s over VAD runs; a time in a gap maps to the next run."""
    req = InferenceRequest(np.zeros(16000 * 6, np.float32), 10.0, runs=((0.0, 10.0), (2.0, 20.0)))
    for audio_s in (0.0, 1.5, 2.0, 5.5):
        assert req.to_audio_s(req.to_stream_s(audio_s)) == pytest.approx(audio_s)
    assert req.to_audio_s(15.0) == pytest.approx(2.0)  # between the runs
    assert req.to_audio_s(5.0) == 0.0  # before the audio
    assert req.to_audio_s(99.0) == pytest.approx(6.0)  # after it


def test_agreement_commits_settled_words_before_the_utterance_ends() -> None:
    """The "agreement" policy commits, in the middle of speech, the words that two consecutive
    hypotheses agree on (text and timing) and that end agreement_lead_s before the decoded end;
    a word whose time moved between the two is not committed."""
    timeline = timeline_from_text(" ".join(f"w{i}" for i in range(40)), start_s=0.2)
    backend = ScriptedBackend(timeline=timeline)
    options = ProcessorOptions(
        use_vad=False, commit_policy="agreement", agreement_lead_s=1.0, hypothesis_step_s=0.5
    )
    proc = ASRProcessor(options)
    committed: list[Word] = []
    fed = 0.0
    while fed < 6.0:
        proc.insert_audio(tone(0.5))
        fed += 0.5
        while (req := proc.next_request()) is not None:
            update = proc.apply(req, backend.transcribe(req))
            assert req.kind is RequestKind.HYPOTHESIS
            assert all(w.end <= fed - 1.0 + 1e-6 for w in update.committed)
            committed.extend(update.committed)
    assert committed, "nothing committed before the end of the utterance"
    assert committed[-1].end >= 6.0 - 1.0 - 1.0  # within a step and the lead of the audio
    assert words_text(committed) == words_text(timeline[: len(committed)])

    # Two hypotheses that agree in text but not in time commit nothing.
    proc = ASRProcessor(options)
    proc.insert_audio(tone(4.0))
    first = proc.next_request()
    assert first is not None
    proc.apply(first, tr("a b c", step=0.3))
    proc.insert_audio(tone(0.5))
    second = proc.next_request()
    assert second is not None
    assert proc.apply(second, tr("a b c", step=0.9)).committed == (Word(" a", 0.0, 0.25, 0.9),)


def test_speech_detected_apart_gives_the_same_stream() -> None:
    """detect_speech() then insert_audio(speech=...) (the VAD off the event loop) is the same as
    insert_audio() alone."""
    audio = np.concatenate([silence(0.7), tone(1.3), silence(1.6), tone(0.9), silence(1.2)])
    together, apart = vad_processor(), vad_processor()
    for i in range(0, audio.shape[0], 1600):
        chunk = audio[i : i + 1600]
        together.insert_audio(chunk)
        apart.insert_audio(chunk, speech=apart.detect_speech(chunk))
    a, b = together.next_request(), apart.next_request()
    assert a is not None and b is not None
    assert np.array_equal(a.audio, b.audio) and a.runs == b.runs and a.kind is b.kind
    assert ASRProcessor(ProcessorOptions(use_vad=False)).detect_speech(audio) is None


def test_a_failed_decode_is_asked_for_again_or_given_up() -> None:
    """fail(give_up=False) asks for the same decode again; giving a catch-up window up drops
    its audio (lost_by says which) and the stream goes on; a final decode given up commits the
    text the user saw."""
    backend = ScriptedBackend(timeline=timeline_from_text(" ".join(f"w{i}" for i in range(90))))
    proc = ASRProcessor(ProcessorOptions(use_vad=False))
    proc.insert_audio(tone(45.0))  # piled up: more than max_buffer_s
    window = proc.next_request()
    assert window is not None and window.kind is RequestKind.CATCH_UP
    proc.fail(window, give_up=False)
    again = proc.next_request()
    assert again is not None and again.kind is RequestKind.CATCH_UP
    assert again.offset_s == window.offset_s and again.duration_s == window.duration_s
    assert ASRProcessor.lost_by(again) == (0.0, pytest.approx(30.0))
    proc.fail(again, give_up=True)
    assert proc.buffer_duration_s == pytest.approx(15.0)
    committed = run_due(proc, backend, [])
    committed += proc.finish().committed + tuple(run_due(proc, backend, []))
    assert committed and all(w.start >= 30.0 for w in committed)

    proc = ASRProcessor(ProcessorOptions(use_vad=False))
    proc.insert_audio(tone(2.0))
    hypothesis = proc.next_request()
    assert hypothesis is not None
    proc.apply(hypothesis, backend.transcribe(hypothesis))
    proc.finish()
    final = proc.next_request()
    assert final is not None and final.final and ASRProcessor.lost_by(final) is None
    assert not proc.fail(final, give_up=False).final
    retried = proc.next_request()
    assert retried is not None and retried.final and retried.duration_s == final.duration_s
    update = proc.fail(retried)
    assert update.final and update.committed_text == proc_text(backend, 2.0)


def proc_text(backend: ScriptedBackend, seconds: float) -> str:
    """What the backend hears in the first ``seconds`` of audio."""
    request = InferenceRequest(np.zeros(int(seconds * 16000), np.float32), 0.0)
    return backend.transcribe(request).text.strip()


def test_a_piled_up_window_that_keeps_nothing_is_decoded_again_at_half_length() -> None:
    """A 30 s catch-up window whose decode keeps no word (every segment filtered out) is not cut
    and lost: the same audio is decoded again as a 15 s window. A second empty look at the same
    place moves on, so the stream never stalls."""
    timeline = timeline_from_text(" ".join(f"w{i}" for i in range(90)))
    for empty_twice in (False, True):
        seen: list[tuple[RequestKind, float, float]] = []

        def responder(
            request: InferenceRequest,
            seen: list[tuple[RequestKind, float, float]] = seen,
            empties: int = 2 if empty_twice else 1,
        ) -> Transcription:
            seen.append((request.kind, request.offset_s, request.duration_s))
            if len(seen) <= empties:  # e.g. its only segment looked invented and was dropped
                return Transcription(language="en")
            return ScriptedBackend.hear(request, timeline)

        backend = ScriptedBackend(responder=responder)
        proc = ASRProcessor(ProcessorOptions(use_vad=False))
        proc.insert_audio(tone(45.0))
        committed = run_due(proc, backend, [])
        assert seen[0] == (RequestKind.CATCH_UP, 0.0, 30.0)
        assert seen[1] == (RequestKind.CATCH_UP, 0.0, 15.0)  # looked at again, shorter
        if not empty_twice:
            assert committed and committed[0].start < 1.0  # nothing lost
        else:
            assert not committed or committed[0].start > 10.0  # moved on


def test_a_partial_decode_that_hears_nothing_drops_no_speech() -> None:
    """With VAD the buffer holds speech only, so a greedy partial decode that returns nothing
    (a bad decode under load) is no reason to drop audio: the buffer keeps it for the
    full-beam decodes and every word is committed."""
    text = " ".join(f"w{i}" for i in range(60))
    timeline = timeline_from_text(text, start_s=0.1)
    blank_once = {"done": False}

    def respond(req: InferenceRequest) -> Transcription:
        heard = ScriptedBackend(timeline=timeline).transcribe(req)
        long_partial = req.kind is RequestKind.HYPOTHESIS and req.duration_s > 16.0
        if long_partial and not blank_once["done"]:
            blank_once["done"] = True
            return Transcription((), "en", 1.0)
        return heard

    backend = ScriptedBackend(responder=respond)
    proc = vad_processor(commit_window_s=60.0)  # no window commits: only the final decode
    committed: list[Word] = []
    for _ in range(int(timeline[-1].end) + 1):
        proc.insert_audio(tone(1.0))
        committed += run_due(proc, backend, [])
    proc.finish()
    committed += run_due(proc, backend, [])
    assert blank_once["done"], "the blank partial decode never happened"
    assert words_text(committed) == text
