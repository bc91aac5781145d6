"""Batched decoding against one decode at a time: accuracy and compute, with no server.

Streams several files at once through one processor each, in lockstep (``--feed`` seconds of
audio to every session, then every due decode), so each step has a request from many sessions,
as a loaded server has. The due requests are decoded in batches of ``--batch`` sizes (1: one
by one, faster-whisper's own ``transcribe``; more: :mod:`whisper_streaming.backends.batched`),
on one model with ``--threads`` threads. Reports WER and the seconds spent decoding.

    python -m bench.batching --set longform --batch 1 2 4 --threads 2

Each run appends JSON lines to ``bench/results/batching.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import jiwer

from bench.data import DEFAULT_DATA, load_dataset, normalize
from whisper_streaming import ProcessorOptions, load_backend
from whisper_streaming.audio import SAMPLE_RATE, decode_file
from whisper_streaming.backends.base import ASRBackend, Word
from whisper_streaming.streaming.hypothesis import words_text
from whisper_streaming.streaming.processor import ASRProcessor

RESULTS = Path(__file__).resolve().parent / "results" / "batching.jsonl"


def run(
    backend: ASRBackend, audios: list[object], batch: int, feed_s: float
) -> tuple[list[str], float, int, int]:
    """Stream every audio at once; returns the texts, decode seconds, decodes and model calls."""
    import numpy as np

    procs = [ASRProcessor(ProcessorOptions()) for _ in audios]
    words: list[list[Word]] = [[] for _ in audios]
    decode_s = 0.0
    decodes = calls = 0
    step = int(feed_s * SAMPLE_RATE)
    longest = max(np.asarray(a).shape[0] for a in audios)

    def run_due(active: list[int]) -> None:
        nonlocal decode_s, decodes, calls
        while True:
            due = [(i, r) for i in active if (r := procs[i].next_request()) is not None]
            if not due:
                return
            for start in range(0, len(due), batch):
                part = due[start : start + batch]
                began = time.perf_counter()
                if len(part) == 1:
                    results = [backend.transcribe(part[0][1])]
                else:
                    results = backend.transcribe_batch([r for _, r in part])
                decode_s += time.perf_counter() - began
                calls += 1
                decodes += len(part)
                for (i, request), result in zip(part, results, strict=True):
                    words[i].extend(procs[i].apply(request, result).committed)

    for offset in range(0, longest, step):
        active = []
        for i, audio in enumerate(audios):
            samples = np.asarray(audio)
            if offset < samples.shape[0]:
                procs[i].insert_audio(samples[offset : offset + step])
                active.append(i)
        run_due(active)
    for i, proc in enumerate(procs):
        final = proc.finish()
        words[i].extend(final.committed)
        if not final.final:
            run_due([i])
    return [words_text(w) for w in words], decode_s, decodes, calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batching", description=__doc__)
    parser.add_argument("--set", default="longform", help="folder under the test data")
    parser.add_argument("--files", type=int, default=6, help="sessions streamed at once")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--feed", type=float, default=1.0, help="seconds of audio per step")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    items = load_dataset(DEFAULT_DATA / args.set)[: args.files]
    audios: list[object] = [decode_file(item.path) for item in items]
    references = [normalize(item.reference) for item in items]
    backend = load_backend("faster_whisper", model="tiny.en", cpu_threads=args.threads)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for batch in args.batch:
        texts, decode_s, decodes, calls = run(backend, audios, batch, args.feed)
        row = {
            "commit": commit,
            "set": args.set,
            "sessions": len(items),
            "batch": batch,
            "threads": args.threads,
            "wer": jiwer.wer(references, [normalize(t) for t in texts]),
            "decode_s": round(decode_s, 2),
            "decodes": decodes,
            "model_calls": calls,
            "audio_s": round(sum(len(a) for a in audios) / SAMPLE_RATE, 1),  # type: ignore[arg-type]
        }
        print(json.dumps(row), flush=True)
        with args.out.open("a") as out:
            out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
