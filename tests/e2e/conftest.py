"""End-to-end fixtures: the real embedded model and the shared real speech."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from tests.conftest import write_wav
from whisper_streaming.audio import SAMPLE_RATE, decode_file
from whisper_streaming.backends import load_backend
from whisper_streaming.backends.base import ASRBackend, InferenceRequest, Transcription

_normalizer = EnglishTextNormalizer()

WER_MARGIN = 0.015
"""The engine's bound: streaming may be at most this much worse than offline decoding of the same
files (all six long-form files). It applies to the engine fed 1 s chunks (issue #2), to three
WhisperLive clients at once through the server, to whole files sent through the server (--fast),
to the demo page in three browsers at once (real time), and to the Node example streaming the
six files over the JSON protocol."""

AUDIO_PATH_LIMIT = 0.05
"""The demo page's test checks the engine's bound against offline decoding of the audio the server
actually received (saved with --save-audio): Chromium's fake microphone and the two resamplings
change the audio, and tiny.en's offline WER moves by one to two points under such changes
(session 4: 16 -> 44.1 -> 16 kHz 12.07%, gain 0.9 12.83%, white noise at -50 dB 12.36%, source
13.12%; the pages' received audio: 14.4-15.6% in five runs of session 5). This net keeps that
baseline honest: the received audio's offline WER may be at most this much worse than the
source files' (lost or mangled audio shows as tens of points)."""

SERVER_WER_MARGIN = 0.08
"""Single-file checks (the Python example) use this wider net for breakage (lost audio, a wrong
sample rate): one file is 150-200 words, so 1.5 points is under 3 words, less than the spread
between runs (the engine itself, fed 1688 in 1 s chunks, is 2.3 points over offline on it).
The engine's bound is checked on all six files above."""


def normalize(text: str) -> str:
    """Whisper's English text normalizer."""
    return str(_normalizer(text))


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER after normalisation."""
    return float(jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses]))


def lost_spans(reference: str, hypothesis: str, min_words: int = 6) -> list[str]:
    """Runs of at least ``min_words`` reference words the hypothesis lacks (deleted, or
    replaced by fewer words): what lost audio looks like, as opposed to misheard words."""
    out = jiwer.process_words(normalize(reference), normalize(hypothesis))
    spans = []
    for chunk in out.alignments[0]:
        ref_n = chunk.ref_end_idx - chunk.ref_start_idx
        hyp_n = chunk.hyp_end_idx - chunk.hyp_start_idx
        if chunk.type in ("delete", "substitute") and ref_n - hyp_n >= min_words:
            spans.append(" ".join(out.references[0][chunk.ref_start_idx : chunk.ref_end_idx]))
    return spans


@dataclass(frozen=True)
class Utterance:
    path: Path
    reference: str

    @property
    def duration_s(self) -> float:
        return _duration_s(self.path)


@functools.cache
def _duration_s(path: Path) -> float:
    return decode_file(path).shape[0] / SAMPLE_RATE


JFK = (
    "And so, my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
"""The reference text of testdata/jfk/jfk.flac."""


def speech_wav(paths: list[Path], out: Path, *, gap_s: float, tail_s: float) -> float:
    """The audio files one after the other, ``gap_s`` of silence between them and ``tail_s``
    after the last, as a 16 kHz 16-bit mono wav. Returns its duration in seconds."""
    parts: list[np.ndarray] = []
    for i, path in enumerate(paths):
        silence = tail_s if i == len(paths) - 1 else gap_s
        parts += [decode_file(path), np.zeros(int(silence * SAMPLE_RATE), np.float32)]
    samples = np.concatenate(parts)
    write_wav(out, samples)
    return samples.shape[0] / SAMPLE_RATE


def balanced_groups(utts: list[Utterance], count: int) -> list[list[Utterance]]:
    """``utts`` split into ``count`` groups of about equal total duration (longest first into
    the shortest group), each kept in the original order: real-time tests then end together."""
    groups: list[list[Utterance]] = [[] for _ in range(count)]
    totals = [0.0] * count
    for utt in sorted(utts, key=lambda u: u.duration_s, reverse=True):
        i = totals.index(min(totals))
        groups[i].append(utt)
        totals[i] += utt.duration_s
    order = {u.path: n for n, u in enumerate(utts)}
    return [sorted(g, key=lambda u: order[u.path]) for g in groups if g]


@pytest.fixture(scope="session")
def backend() -> ASRBackend:
    """The embedded tiny.en on the CPU, loaded once."""
    return load_backend("faster_whisper", model="tiny.en", device="cpu")


@pytest.fixture(scope="session")
def longform(testdata: Path) -> list[Utterance]:
    """Long-form files with references; WHISPER_STREAMING_E2E_FILES=N takes the first N."""
    folder = testdata / "longform"
    rows = [line.split("\t", 1) for line in (folder / "transcripts.tsv").read_text().splitlines()]
    items = [Utterance(folder / name, ref) for name, ref in sorted(rows)]
    count = int(os.environ.get("WHISPER_STREAMING_E2E_FILES", "6"))
    return items[:count]


@pytest.fixture(scope="session")
def offline_results(backend: ASRBackend, longform: list[Utterance]) -> dict[Path, Transcription]:
    """Offline decodes (whole file, beam 5) of the long-form files, as the baseline."""
    return {
        utt.path: backend.transcribe(InferenceRequest(decode_file(utt.path), 0.0, language="en"))
        for utt in longform
    }


@pytest.fixture(scope="session")
def offline_texts(offline_results: dict[Path, Transcription]) -> dict[Path, str]:
    """Offline transcripts of the long-form files, as the WER baseline."""
    return {path: result.text for path, result in offline_results.items()}
