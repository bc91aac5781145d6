"""Live diarization on multi-speaker conversations built from real speech.

``python -m bench.diarization [--conversations N] [--output FILE]``

Conversations are built from LibriSpeech test-other (6 speakers, in ``WHISPER_STREAMING_TESTDATA``):
2 to 4 speakers take turns of whole utterances or short pieces of one (1-2 s), with no pause,
a short one or a long one between turns, so the speaker boundaries are known. Each conversation
is streamed in 0.25 s chunks through the VAD and the speaker tracker as the server runs them,
and scored with pyannote.metrics: diarization error rate (collar 0.25 s, the usual setting) and
its parts, and the speaker-count error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DEFAULT_DATA
from whisper_streaming.audio import SAMPLE_RATE, Float32Array, decode_file
from whisper_streaming.speakers import (
    OnlineClustering,
    SpeakerEncoder,
    SpeakerTracker,
    SpeakerTurn,
)
from whisper_streaming.vad import StreamingVad

PAUSES_S = (0.0, 0.0, 0.25, 0.6, 1.2)  # between turns: back to back is the hardest case
SPEAKER_COUNTS = (2, 3, 4, 2, 3, 4, 2, 3)
CHUNK_S = 0.25
COLLAR_S = 0.25


@dataclass
class Conversation:
    """Audio with its reference turns (start, end, speaker name)."""

    name: str
    audio: Float32Array
    turns: list[tuple[float, float, str]]

    @property
    def speakers(self) -> int:
        return len({s for _, _, s in self.turns})

    def first(self, turns: int) -> Conversation:
        """The conversation's first ``turns`` turns (and 0.5 s of what follows)."""
        end = self.turns[turns - 1][1] + 0.5
        audio = self.audio[: int(end * SAMPLE_RATE)]
        return Conversation(f"{self.name}[:{turns}]", audio, self.turns[:turns])


def _trim(samples: Float32Array, floor_db: float = -40.0) -> Float32Array:
    """Cut leading and trailing silence (10 ms frames below ``floor_db`` of the peak frame)."""
    frames = samples[: samples.shape[0] // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > level.max() + floor_db)
    return samples[loud[0] * 160 : (loud[-1] + 1) * 160] if loud.size else samples


def build_conversations(folder: Path, count: int = 8, seed: int = 0) -> list[Conversation]:
    """``count`` conversations of 10-12 turns, from the utterances of ``folder`` (LibriSpeech
    layout: one folder per speaker)."""
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*/**/*.flac")):
        by_speaker.setdefault(path.name.split("-")[0], []).append(path)
    cache: dict[Path, Float32Array] = {}
    conversations = []
    for n in range(count):
        people = list(
            rng.choice(sorted(by_speaker), SPEAKER_COUNTS[n % len(SPEAKER_COUNTS)], False)
        )
        parts: list[Float32Array] = []
        turns: list[tuple[float, float, str]] = []
        at = 0.0
        previous = ""
        for turn in range(int(rng.integers(10, 13))):
            speaker = str(rng.choice([p for p in people if p != previous]))
            if turn < len(people):
                speaker = people[turn]  # everyone speaks early on
            previous = speaker
            path = by_speaker[speaker][int(rng.integers(len(by_speaker[speaker])))]
            if path not in cache:
                cache[path] = _trim(decode_file(path))
            audio = cache[path]
            if rng.random() < 0.3:  # a short turn: a piece of an utterance
                length = int(rng.uniform(1.0, 2.0) * SAMPLE_RATE)
                first = int(rng.integers(0, max(1, audio.shape[0] - length)))
                audio = audio[first : first + length]
            elif audio.shape[0] > 12 * SAMPLE_RATE:
                audio = audio[: 12 * SAMPLE_RATE]
            pause = float(rng.choice(PAUSES_S)) if turn else 0.3
            parts.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
            at += pause
            parts.append(audio)
            turns.append((at, at + audio.shape[0] / SAMPLE_RATE, speaker))
            at += audio.shape[0] / SAMPLE_RATE
        parts.append(np.zeros(SAMPLE_RATE // 2, np.float32))
        conversations.append(Conversation(f"conv{n + 1}", np.concatenate(parts), turns))
    return conversations


def diarize(audio: Float32Array, tracker: SpeakerTracker) -> tuple[SpeakerTurn, ...]:
    """Stream ``audio`` through the VAD and ``tracker`` as a session does; its turns."""
    vad = StreamingVad()
    step = int(CHUNK_S * SAMPLE_RATE)
    for i in range(0, audio.shape[0], step):
        chunk = audio[i : i + step]
        tracker.push(chunk, vad.process(chunk))
    tracker.close()
    return tracker.turns


def score(conversation: Conversation, turns: Sequence[SpeakerTurn]) -> dict[str, float]:
    """DER and its parts (pyannote.metrics), and the speaker-count error."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference = Annotation()
    for start, end, speaker in conversation.turns:
        reference[Segment(start, end)] = speaker
    hypothesis = Annotation()
    for turn in turns:
        if turn.end > turn.start:
            hypothesis[Segment(turn.start, turn.end)] = f"S{turn.speaker}"
    metric = DiarizationErrorRate(collar=COLLAR_S, skip_overlap=True)
    uem = Timeline([Segment(0.0, conversation.audio.shape[0] / SAMPLE_RATE)])
    parts = metric(reference, hypothesis, uem=uem, detailed=True)
    total = parts["total"]
    return {
        "der": float(parts["diarization error rate"]),
        "confusion": float(parts["confusion"] / total),
        "missed": float(parts["missed detection"] / total),
        "false_alarm": float(parts["false alarm"] / total),
        "speakers": conversation.speakers,
        "found": len({t.speaker for t in turns}),
        "seconds": conversation.audio.shape[0] / SAMPLE_RATE,
    }


def run(
    conversations: Sequence[Conversation], encoder: SpeakerEncoder, **tracker: Any
) -> dict[str, Any]:
    """Diarize and score every conversation; the table and the totals."""
    rows = []
    started = time.process_time()
    for conversation in conversations:
        turns = diarize(conversation.audio, SpeakerTracker(encoder, OnlineClustering(), **tracker))
        rows.append({"name": conversation.name, **score(conversation, turns)})
    seconds = sum(r["seconds"] for r in rows)
    return {
        "conversations": rows,
        # DER over all conversations: each weighted by its length.
        "der": sum(r["der"] * r["seconds"] for r in rows) / seconds,
        "confusion": sum(r["confusion"] * r["seconds"] for r in rows) / seconds,
        "speaker_count_exact": sum(r["found"] == r["speakers"] for r in rows) / len(rows),
        "speaker_count_error_mean": sum(abs(r["found"] - r["speakers"]) for r in rows) / len(rows),
        "audio_s": seconds,
        "cpu_s_per_audio_s": (time.process_time() - started) / seconds,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| conversation | speakers | found | DER | confusion | missed | false alarm |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["conversations"]:
        lines.append(
            f"| {r['name']} ({r['seconds']:.0f} s) | {r['speakers']} | {r['found']} | "
            f"{100 * r['der']:.1f}% | {100 * r['confusion']:.1f}% | {100 * r['missed']:.1f}% | "
            f"{100 * r['false_alarm']:.1f}% |"
        )
    lines.append(
        f"| **all** ({report['audio_s']:.0f} s) | | exact in "
        f"{100 * report['speaker_count_exact']:.0f}% | **{100 * report['der']:.1f}%** | "
        f"{100 * report['confusion']:.1f}% | | |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.diarization", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "librispeech-test-other")
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[1, 0],
        help="which sets of conversations (default: 1, held out, and 0, on which the tracker's "
        "thresholds were chosen)",
    )
    parser.add_argument("--encoder", default="resemblyzer", help="resemblyzer or pyannote")
    parser.add_argument("--speaker-model", help="the pyannote encoder's model directory")
    parser.add_argument("--output", type=Path, default=Path("bench/results/diarization"))
    args = parser.parse_args(argv)
    from whisper_streaming.speakers import load_encoder

    encoder = load_encoder(args.encoder, args.speaker_model)
    reports = {}
    tables = []
    for seed in args.seeds:
        report = run(build_conversations(args.data, args.conversations, seed), encoder)
        reports[f"seed {seed}"] = report
        role = "held out" if seed != 0 else "the set the thresholds were chosen on"
        tables.append(f"### Conversations of seed {seed} ({role})\n\n{markdown(report)}\n")
        cpu = report["cpu_s_per_audio_s"]
        tables.append(f"Encoder {encoder.name}: {cpu:.3f} CPU s per audio second.\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(reports, indent=2) + "\n")
    text = "\n".join(tables)
    args.output.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
