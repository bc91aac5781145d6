"""The WhisperX backend with the real ``whisperx`` package, on the embedded model and real speech.

``make test-whisperx`` runs these in their own environment (whisperx on PyTorch's CPU build);
``make test``'s environment has no PyTorch, so there they are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import record
from tests.e2e.conftest import JFK, WER_MARGIN, Utterance, wer
from whisper_streaming import ProcessorOptions, load_backend
from whisper_streaming.audio import decode_file
from whisper_streaming.backends.base import ASRBackend, InferenceRequest
from whisper_streaming.exceptions import BackendError, ConfigError
from whisper_streaming.simulate import simulate

pytest.importorskip("whisperx", reason="WhisperX is not installed here: make test-whisperx")

pytestmark = [
    pytest.mark.e2e,
    # PyTorch, Lightning and pyannote.audio warn at import (no torchcodec; an old checkpoint
    # format): not ours to fix.
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


@pytest.fixture(scope="module")
def whisperx_backend() -> ASRBackend:
    return load_backend("whisperx", model="tiny.en", device="cpu")


def test_whisperx_streams_within_the_engines_bound(
    whisperx_backend: ASRBackend,
    longform: list[Utterance],
    offline_texts: dict[Path, str],
) -> None:
    """The six long-form files streamed through the engine in 1 s chunks with the WhisperX
    backend: WER within WER_MARGIN of WhisperX's own offline decode (the bound faster-whisper
    meets in test_engine), and WhisperX offline close to faster-whisper offline."""

    def stream(utt: Utterance) -> str:
        options = ProcessorOptions(min_chunk_s=1.0, hypothesis_step_s=1.0)
        return simulate(decode_file(utt.path), whisperx_backend, options).text

    with ThreadPoolExecutor(2) as pool:  # one decode at a time inside; the VAD overlaps
        streamed = list(pool.map(stream, longform))
    offline = [
        whisperx_backend.transcribe(InferenceRequest(decode_file(u.path), 0.0)).text
        for u in longform
    ]
    refs = [u.reference for u in longform]
    stream_wer = wer(refs, streamed)
    offline_wer = wer(refs, offline)
    faster_whisper_wer = wer(refs, [offline_texts[u.path] for u in longform])
    record(
        "whisperx_wer",
        {
            "files": [u.path.name for u in longform],
            "streaming_wer_1s_vad": stream_wer,
            "offline_wer": offline_wer,
            "faster_whisper_offline_wer": faster_whisper_wer,
            "per_file": {
                u.path.name: wer([u.reference], [t])
                for u, t in zip(longform, streamed, strict=True)
            },
        },
    )
    assert stream_wer <= offline_wer + WER_MARGIN, (stream_wer, offline_wer)
    assert offline_wer <= faster_whisper_wer + 0.03, (offline_wer, faster_whisper_wer)


@pytest.fixture
def decoder_options(whisperx_backend: ASRBackend) -> Iterator[list[Any]]:
    """The options of every decoder call WhisperX makes (its batched generate)."""
    model = whisperx_backend._pipeline.model  # type: ignore[attr-defined]
    seen: list[Any] = []
    real = model.generate_segment_batched

    def spy(features: Any, tokenizer: Any, options: Any, *args: Any, **kw: Any) -> Any:
        seen.append((options, tokenizer.task, tokenizer.language_code))
        return real(features, tokenizer, options, *args, **kw)

    model.generate_segment_batched = spy
    try:
        yield seen
    finally:
        model.generate_segment_batched = real


def test_prompt_beam_size_language_and_task_reach_the_decoder(
    whisperx_backend: ASRBackend, decoder_options: list[Any], testdata: Path
) -> None:
    """Per request: the prompt and beam size are WhisperX's options for that decode only; on
    the English-only model, language is English and translate is transcribe (the server warns
    the client; see the protocol tests)."""
    audio = decode_file(testdata / "jfk" / "jfk.flac")
    request = InferenceRequest(audio, 0.0, prompt="Kennedy, 1961.", beam_size=3, task="translate")
    text = whisperx_backend.transcribe(request).text
    plain = whisperx_backend.transcribe(InferenceRequest(audio, 0.0, beam_size=1)).text
    prompted, default = decoder_options[0], decoder_options[-1]
    assert (prompted[0].initial_prompt, prompted[0].beam_size) == ("Kennedy, 1961.", 3)
    assert prompted[1] != "translate" and prompted[2] == "en"  # no task token on English-only
    assert (default[0].initial_prompt, default[0].beam_size) == (None, 1)
    assert wer([JFK], [text]) <= 0.2 and wer([JFK], [plain]) <= 0.2, (text, plain)
    segment = whisperx_backend.transcribe(request).segments[0]
    times = [(w.start, w.end) for w in segment.words]
    assert times == sorted(times) and segment.start <= times[0][0] and times[-1][1] <= 11.1


def test_options_it_lacks_and_missing_alignment_models_fail_when_loading(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="no option encoder_min_s"):
        load_backend("whisperx", model="tiny.en", device="cpu", encoder_min_s=4.0)
    with pytest.raises(ConfigError, match="huggingface-cli download facebook/wav2vec2"):
        load_backend("whisperx", device="cpu", align_model=str(tmp_path / "missing"))
    # A folder that is there: next comes NLTK's sentence data, or the model itself.
    with pytest.raises(ConfigError, match="punkt_tab|cannot load the alignment model"):
        load_backend("whisperx", device="cpu", align_model=str(tmp_path))


def _local_model(variable: str, what: str) -> tuple[str | None, pytest.MarkDecorator]:
    """The model directory ``variable`` names, and a mark that skips the test without it."""
    path = os.environ.get(variable)
    reason = f"needs {what} ({variable}=DIR); this machine cannot download it"
    return path, pytest.mark.skipif(not path, reason=reason)


ALIGN_MODEL, needs_align_model = _local_model(
    "WHISPER_STREAMING_ALIGN_MODEL",
    "a local wav2vec2 alignment model, e.g. facebook/wav2vec2-base-960h, and NLTK's punkt_tab",
)


@needs_align_model
def test_aligned_word_times(testdata: Path) -> None:
    backend = load_backend("whisperx", device="cpu", align_model=ALIGN_MODEL)
    result = backend.transcribe(InferenceRequest(decode_file(testdata / "jfk" / "jfk.flac"), 0.0))
    words = [w for s in result.segments for w in s.words]
    assert wer([JFK], [result.text]) <= 0.2
    assert words[0].start < 1.0 and words[-1].end > 9.5
    assert all(w.end - w.start < 1.5 for w in words)


def test_the_pyannote_speaker_encoder_says_what_to_download(tmp_path: Path) -> None:
    """pyannote.audio is here (WhisperX brings it); its embedding models are not, and cannot be
    fetched: a missing model names the model and the command, before any audio."""
    from whisper_streaming.speakers import load_encoder

    with pytest.raises(ConfigError, match="--speaker-model"):
        load_encoder("pyannote")
    with pytest.raises(ConfigError, match="huggingface-cli download pyannote/wespeaker"):
        load_encoder("pyannote", model=str(tmp_path / "missing"))


PYANNOTE_EMBEDDING, needs_pyannote_embedding = _local_model(
    "WHISPER_STREAMING_PYANNOTE_EMBEDDING",
    "a local pyannote embedding model, e.g. pyannote/wespeaker-voxceleb-resnet34-LM",
)


@needs_pyannote_embedding
def test_the_pyannote_encoder_tells_speakers_apart(testdata: Path) -> None:
    from bench.diarization import build_conversations, run
    from whisper_streaming.speakers import load_encoder

    conversations = build_conversations(testdata / "librispeech-test-other", 4, seed=1)
    report = run(conversations, load_encoder("pyannote", model=PYANNOTE_EMBEDDING))
    record("diarization_pyannote", report)
    assert report["der"] <= 0.3, report


def _untrained_pyannote_model(folder: Path) -> Path:
    """A pyannote.audio WeSpeaker ResNet34 with random weights, saved as its checkpoints are:
    the trained one cannot be downloaded here, but this exercises the loading and inference
    code with the real library."""
    import lightning
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    model = WeSpeakerResNet34()
    model.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0
    )
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, folder / "pytorch_model.bin")
    return folder


def test_a_server_with_the_pyannote_encoder_labels_speech(tmp_path: Path) -> None:
    """--diarization --speaker-encoder pyannote --speaker-model DIR: the server loads the model
    at startup and labels a session's words (an untrained model: labels, not accuracy)."""
    import json

    from tests.integration.conftest import running_server
    from tests.integration.test_diarization import two_voices
    from tests.integration.test_json_protocol import json_session, pcm16, send_chunks, until

    model = _untrained_pyannote_model(tmp_path / "wespeaker")
    with running_server(
        diarization=True, speaker_encoder="pyannote", speaker_model=str(model)
    ) as srv:
        assert srv.server.speaker_encoder is not None
        assert srv.server.speaker_encoder.name == "pyannote"
        ws, ready = json_session(srv.url)
        assert ready["diarization"] is True
        ws.send(json.dumps({"type": "start_recording", "config": {}}))
        send_chunks(ws, pcm16(two_voices()))
        ws.send(json.dumps({"type": "stop_recording"}))
        finals = [m for m in until(ws, "stopped") if m["type"] == "transcription"]
        ws.close()
    assert finals and all(isinstance(m["speaker"], int) and m["speaker"] >= 1 for m in finals)
