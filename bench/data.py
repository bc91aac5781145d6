"""Data sets and the offline reference: transcripts, and word end times from an offline decode."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from whisper_normalizer.english import EnglishTextNormalizer

from bench.metrics import align
from whisper_streaming.audio import decode_file
from whisper_streaming.backends.base import ASRBackend, InferenceRequest

_normalizer = EnglishTextNormalizer()

DEFAULT_DATA = Path(
    os.environ.get(
        "WHISPER_STREAMING_TESTDATA",
        Path(__file__).resolve().parents[1].parent / "shared" / "testdata",
    )
)


def normalize(text: str) -> str:
    """Whisper's English text normalizer."""
    return str(_normalizer(text))


@dataclass
class Item:
    """One audio file with its reference transcript."""

    path: Path
    reference: str

    @property
    def name(self) -> str:
        return self.path.name


def load_dataset(folder: Path) -> list[Item]:
    """A folder with ``transcripts.tsv`` (file<TAB>text), or in LibriSpeech layout."""
    tsv = folder / "transcripts.tsv"
    if tsv.is_file():
        rows = [line.split("\t", 1) for line in tsv.read_text().splitlines() if line.strip()]
        return [Item(folder / name, text) for name, text in sorted(rows)]
    items = []
    for trans in sorted(folder.rglob("*.trans.txt")):
        for line in trans.read_text().splitlines():
            utt_id, _, text = line.partition(" ")
            for ext in (".flac", ".wav"):
                audio = trans.parent / f"{utt_id}{ext}"
                if audio.is_file():
                    items.append(Item(audio, text))
                    break
    if not items:
        raise SystemExit(f"no transcripts found in {folder} (transcripts.tsv or *.trans.txt)")
    return items


@dataclass
class Reference:
    """Normalised reference words, their end times in the audio, and the offline transcript."""

    words: list[str]
    end_s: list[float]
    offline_text: str
    samples: np.ndarray


def offline_reference(backend: ASRBackend, item: Item) -> Reference:
    """Decode the whole file offline (beam 5) and give every reference word an end time.

    Reference words matched by the offline words take their end time; the others are
    interpolated between their matched neighbours.
    """
    samples = decode_file(item.path)
    result = backend.transcribe(InferenceRequest(samples, 0.0, language="en", beam_size=5))
    hyp_words: list[str] = []
    hyp_end: list[float] = []
    for seg in result.segments:
        for w in seg.words:
            for token in normalize(w.word).split():
                hyp_words.append(token)
                hyp_end.append(w.end)
    ref_words = normalize(item.reference).split()
    ends: list[float | None] = [None] * len(ref_words)
    for r, h in align(ref_words, hyp_words):
        if r is not None and h is not None:
            ends[r] = hyp_end[h]
    duration = samples.shape[0] / 16000
    known = [(i, e) for i, e in enumerate(ends) if e is not None]
    filled: list[float] = []
    for i, e in enumerate(ends):
        if e is not None:
            filled.append(e)
            continue
        before = [(j, x) for j, x in known if j < i]
        after = [(j, x) for j, x in known if j > i]
        lo = before[-1] if before else (-1, 0.0)
        hi = after[0] if after else (len(ends), duration)
        filled.append(lo[1] + (hi[1] - lo[1]) * (i - lo[0]) / (hi[0] - lo[0]))
    return Reference(ref_words, filled, result.text, samples)
