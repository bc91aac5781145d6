"""The event loop's lag while live streams are served: our server (embedded tiny.en) with N
long-form files streamed in real time at once; afterwards its own ``event_loop_lag_seconds``
histogram (a 0.25 s timer's lateness, sampled for the whole run) and the WER of the streams.

    python -m bench.loop_lag --streams 4 --clip-s 60

Writes ``bench/results/loop-lag.json`` (the commit, the histogram, p50 / p99 / max bounds).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from bench.data import load_dataset, offline_reference
from bench.run import aggregate, clip, stream_all
from bench.server import ProcessSampler, ServerProcess

RESULTS = Path(__file__).resolve().parent / "results"
METRIC = "whisper_streaming_event_loop_lag_seconds"


def _histogram(text: str) -> dict[str, float]:
    """The loop-lag histogram's cumulative bucket counts, by upper bound."""
    out = {}
    for line in text.splitlines():
        if line.startswith(METRIC + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[le] = float(line.rsplit(" ", 1)[1])
    return out


def _quantile_bound(buckets: dict[str, float], q: float) -> str:
    """The smallest bucket bound below which a ``q`` share of the samples lie ("<= 0.01")."""
    total = buckets["+Inf"]
    for le, count in buckets.items():
        if count >= q * total:
            return f"<= {le} s"
    return "> largest bucket"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loop_lag", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/testdata/longform"))
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--clip-s", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "loop-lag.json")
    args = parser.parse_args(argv)
    from whisper_streaming import load_backend

    backend = load_backend("faster_whisper", model="tiny.en", device="cpu")
    items = load_dataset(args.data)
    jobs = [(item, offline_reference(backend, item)) for item in items[: args.streams]]
    del backend
    jobs = clip(jobs, args.clip_s)
    with ServerProcess([]) as srv:
        assert srv.proc is not None
        with ProcessSampler(srv.proc.pid) as sampler:
            results = stream_all(srv.url, jobs, len(jobs))
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics", timeout=10) as r:
            buckets = _histogram(r.read().decode())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    agg = aggregate(results)
    report = {
        "commit": commit,
        "command": "python -m bench.loop_lag " + " ".join(argv or sys.argv[1:]),
        "streams": len(jobs),
        "audio_s_per_stream": args.clip_s,
        "samples": buckets.get("+Inf", 0),
        "p50": _quantile_bound(buckets, 0.5),
        "p99": _quantile_bound(buckets, 0.99),
        "max": _quantile_bound(buckets, 1.0),
        "buckets": buckets,
        "streaming_wer": agg["streaming_wer"],
        "final_latency_s": agg["final_latency_s"],
        "stream_errors": agg["stream_errors"],
        "cpu_percent": sampler.cpu_percent,
        "rss_mb_max": max(sampler.rss_mb),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "buckets"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
