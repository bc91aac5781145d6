"""Engine sweep: the streaming engine with no server, one configuration per run.

Streams every file of a data set through ``simulate`` (computation-unaware: audio is fed in
``--feed`` second steps and every due decode runs before the next step) and reports the WER and
how long after its end in the audio each committed word was committed (stream time, so the
decode time is not in it). It isolates what a commit policy costs in accuracy and gains in
delay; ``python -m bench`` measures the same through a real server in real time.

    python -m bench.engine --policy agreement --set longform --extra '{"agreement_lead_s": 1.0}'

Each run appends one JSON line to ``bench/results/engine.jsonl``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from bench.data import DEFAULT_DATA, load_dataset, normalize
from whisper_streaming import ProcessorOptions, load_backend
from whisper_streaming.audio import decode_file
from whisper_streaming.backends.base import InferenceRequest
from whisper_streaming.config import VadOptions
from whisper_streaming.simulate import simulate

RESULTS = Path(__file__).resolve().parent / "results" / "engine.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--set", default="longform", help="folder under the test data")
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--policy", default="segments")
    parser.add_argument("--feed", type=float, default=1.0, help="seconds of audio per step")
    parser.add_argument("--encoder-min", type=float, default=4.0)
    parser.add_argument("--parallel", type=int, default=2, help="files streamed at once")
    parser.add_argument(
        "--extra", default="{}", help='more ProcessorOptions as JSON ({"vad": {...}} too)'
    )
    parser.add_argument("--offline", action="store_true", help="also decode each file whole")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    items = load_dataset(DEFAULT_DATA / args.set)[: args.files]
    backend = load_backend(
        "faster_whisper",
        model="tiny.en",
        cpu_threads=1,
        num_workers=args.parallel,
        encoder_min_s=args.encoder_min,
    )
    extra: dict[str, Any] = json.loads(args.extra)
    if "vad" in extra:
        extra["vad"] = VadOptions(**extra["vad"])
    options = ProcessorOptions(commit_policy=args.policy, **extra)

    def run(path: Path) -> tuple[str, list[float], int, float, str]:
        audio = decode_file(path)
        delays: list[float] = []

        def on_update(fed_s: float, update: Any) -> None:
            delays.extend(fed_s - w.end for w in update.committed)

        started = time.perf_counter()
        result = simulate(
            audio, backend, options, on_update=on_update, chunks_s=itertools.repeat(args.feed)
        )
        compute = time.perf_counter() - started
        offline = ""
        if args.offline:
            offline = backend.transcribe(InferenceRequest(audio, 0.0, language="en")).text
        return result.text, delays, result.decodes, compute, offline

    with ThreadPoolExecutor(args.parallel) as pool:
        out = list(pool.map(run, [item.path for item in items]))
    refs = [normalize(item.reference) for item in items]
    delays = [d for o in out for d in o[1]]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    row: dict[str, Any] = {
        "commit": commit,
        "set": args.set,
        "files": len(items),
        "policy": args.policy,
        "feed_s": args.feed,
        "encoder_min_s": args.encoder_min,
        "extra": json.loads(args.extra),
        "wer": round(100 * jiwer.wer(refs, [normalize(o[0]) for o in out]), 2),
        "commit_delay_p50_s": round(float(np.percentile(delays, 50)), 2),
        "commit_delay_p95_s": round(float(np.percentile(delays, 95)), 2),
        "decodes": sum(o[2] for o in out),
        "compute_s": round(sum(o[3] for o in out), 1),
        "per_file_wer": [
            round(100 * jiwer.wer([r], [normalize(o[0])]), 1)
            for r, o in zip(refs, out, strict=True)
        ],
    }
    if args.offline:
        row["offline_wer"] = round(100 * jiwer.wer(refs, [normalize(o[4]) for o in out]), 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
