"""The benchmark: quality, latency, concurrency and a parameter sweep, through a real server.

python -m bench                      # defaults: under 10 minutes on 2 CPU cores
python -m bench --url ws://host:9090/ --data /path/to/LibriSpeech/test-other
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jiwer

from bench.data import DEFAULT_DATA, Item, Reference, load_dataset, normalize, offline_reference
from bench.metrics import lag_slope_s_per_min, matched, summarize
from bench.server import ProcessSampler, ServerProcess
from bench.stream import StreamRecord, stream_whisperlive

RESULTS = Path(__file__).resolve().parent / "results"
CAPACITY_P95_S = 3.0
CAPACITY_SLOPE_S_PER_MIN = 0.5


def analyze(record: StreamRecord, ref: Reference) -> dict[str, Any]:
    """WER and per-word latencies of one stream against its offline-timed reference."""
    hyp_tokens: list[str] = []
    hyp_final_at: list[float] = []
    hyp_raw_index: list[int] = []
    for k, (word, t) in enumerate(zip(record.committed_words, record.committed_at, strict=True)):
        for token in normalize(word).split():
            hyp_tokens.append(token)
            hyp_final_at.append(t)
            hyp_raw_index.append(k)
    # When each committed word was first visible, as partial text at the same position.
    first_seen = list(record.committed_at)
    for snap in record.snapshots:
        for offset, word in enumerate(snap.partial):
            k = snap.committed + offset
            if k < len(first_seen) and normalize(word) == normalize(record.committed_words[k]):
                first_seen[k] = min(first_seen[k], snap.t)
    pairs = matched(ref.words, hyp_tokens)
    final_lat, partial_lat, audio_t = [], [], []
    for r, h in sorted(pairs.items()):
        due = record.start + ref.end_s[r]
        final_lat.append(hyp_final_at[h] - due)
        partial_lat.append(first_seen[hyp_raw_index[h]] - due)
        audio_t.append(ref.end_s[r])
    hyp_text = normalize(record.text)
    ref_text = " ".join(ref.words)
    return {
        "wer": jiwer.wer(ref_text, hyp_text) if hyp_text else 1.0,
        "ref_words": len(ref.words),
        "errors": round(jiwer.wer(ref_text, hyp_text) * len(ref.words))
        if hyp_text
        else len(ref.words),
        "final": final_lat,
        "partial": partial_lat,
        "audio_t": audio_t,
        "tail_s": (record.final_at - record.audio_end) if record.committed_at else math.nan,
        "error": record.error,
    }


async def _stream_all(
    url: str, jobs: Sequence[tuple[Item, Reference]], concurrency: int
) -> list[StreamRecord]:
    gate = asyncio.Semaphore(concurrency)

    async def one(ref: Reference) -> StreamRecord:
        async with gate:
            return await stream_whisperlive(url, ref.samples)

    return list(await asyncio.gather(*(one(ref) for _, ref in jobs)))


def stream_all(
    url: str, jobs: Sequence[tuple[Item, Reference]], concurrency: int
) -> list[dict[str, Any]]:
    records = asyncio.run(_stream_all(url, jobs, concurrency))
    return [
        analyze(rec, ref) | {"file": item.name}
        for (item, ref), rec in zip(jobs, records, strict=True)
    ]


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Corpus WER (errors over reference words) and latency summaries over several streams."""
    words = sum(r["ref_words"] for r in results)
    final = [x for r in results for x in r["final"]]
    slopes = [lag_slope_s_per_min(r["audio_t"], r["final"]) for r in results if len(r["final"]) > 1]
    return {
        "streaming_wer": sum(r["errors"] for r in results) / max(1, words),
        "final_latency_s": summarize(final).as_dict(),
        "partial_latency_s": summarize([x for r in results for x in r["partial"]]).as_dict(),
        "end_of_audio_to_last_final_s": summarize([r["tail_s"] for r in results]).as_dict(),
        "lag_slope_s_per_min": max(slopes) if slopes else 0.0,
        "stream_errors": [r["error"] for r in results if r["error"]],
    }


def machine() -> dict[str, Any]:
    """CPU, cores, memory, GPU, versions, commit."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    from importlib.metadata import version

    from whisper_streaming.backends.faster_whisper import cuda_available

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "gpu": cuda_available(),
        "python": platform.python_version(),
        "commit": commit,
        "versions": {
            p: version(p) for p in ("faster-whisper", "ctranslate2", "websockets", "numpy")
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def clip(jobs: Sequence[tuple[Item, Reference]], clip_s: float) -> list[tuple[Item, Reference]]:
    """The first ``clip_s`` seconds of each file, with the reference words that end in them."""
    out = []
    n = int(clip_s * 16000)
    for item, ref in jobs:
        keep = [i for i, e in enumerate(ref.end_s) if e <= clip_s - 0.5]
        words = [ref.words[i] for i in keep]
        ends = [ref.end_s[i] for i in keep]
        out.append((item, Reference(words, ends, ref.offline_text, ref.samples[:n])))
    return out


def server_flags(config: dict[str, Any]) -> list[str]:
    flags = [
        "--model",
        config["model"],
        "--min-chunk-size",
        str(config["min_chunk_s"]),
        "--beam-size",
        str(config["beam_size"]),
        "--hypothesis-beam-size",
        str(config.get("hypothesis_beam_size", 1)),
    ]
    if not config["vad"]:
        flags.append("--no-vad")
    flags += config.get("server_args", [])
    return flags


def run_quality(
    url: str | None, config: dict[str, Any], jobs: list[tuple[Item, Reference]], log: Path
) -> dict[str, Any]:
    if url:
        results = stream_all(url, jobs, 1)
        usage: dict[str, Any] = {}
    else:
        with ServerProcess(server_flags(config), log_path=log) as srv:
            assert srv.proc is not None
            with ProcessSampler(srv.proc.pid) as sampler:
                results = stream_all(srv.url, jobs, 1)
            usage = {"cpu_percent": sampler.cpu_percent, "rss_mb_max": max(sampler.rss_mb)}
    return {
        "config": config,
        **aggregate(results),
        **usage,
        "per_file": {r["file"]: r["wer"] for r in results},
    }


def run_concurrency(
    url: str | None,
    config: dict[str, Any],
    jobs: list[tuple[Item, Reference]],
    levels: list[int],
    log: Path,
    *,
    keep_going: bool = False,
) -> list[dict[str, Any]]:
    out = []
    for n in levels:
        batch = [jobs[i % len(jobs)] for i in range(n)]
        print(f"  concurrency {n} ...", file=sys.stderr, flush=True)
        if url:
            results = stream_all(url, batch, n)
            usage: dict[str, Any] = {}
        else:
            with ServerProcess(server_flags(config), log_path=log) as srv:
                assert srv.proc is not None
                with ProcessSampler(srv.proc.pid) as sampler:
                    results = stream_all(srv.url, batch, n)
                usage = {"cpu_percent": sampler.cpu_percent, "rss_mb_max": max(sampler.rss_mb)}
        agg = aggregate(results)
        ok = (
            agg["final_latency_s"]["p95"] <= CAPACITY_P95_S
            and agg["lag_slope_s_per_min"] <= CAPACITY_SLOPE_S_PER_MIN
            and not agg["stream_errors"]
        )
        out.append({"streams": n, **agg, **usage, "within_capacity": ok})
        if not ok and not keep_going:
            break
    return out


def markdown(report: dict[str, Any]) -> str:
    def f(x: float) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"

    lines = [
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"GPU: {report['machine']['gpu']}, commit {report['machine']['commit']}",
        "",
    ]
    lines += [
        "| config | files | offline WER | streaming WER | final p50 / p95 (s) | partial p50 (s) "
        "| end→last final p50 (s) | CPU % | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for q in report["quality"]:
        c = q["config"]
        vad = "on" if c["vad"] else "off"
        beams = f"{c.get('hypothesis_beam_size', 1)}/{c['beam_size']}"
        name = f"{c['model']} chunk {c['min_chunk_s']} s, VAD {vad}, beam {beams}"
        if c.get("server_args"):
            name += " " + " ".join(c["server_args"])
        lines.append(
            f"| {name} | {len(q['per_file'])} | {100 * report['offline_wer']:.1f}% | "
            f"{100 * q['streaming_wer']:.1f}% | {f(q['final_latency_s']['p50'])} / "
            f"{f(q['final_latency_s']['p95'])} | {f(q['partial_latency_s']['p50'])} | "
            f"{f(q['end_of_audio_to_last_final_s']['p50'])} | {f(q.get('cpu_percent'))} | "
            f"{f(q.get('rss_mb_max'))} |"
        )
    if report["concurrency"]:
        lines += [
            "",
            "| streams | WER | partial p50 / p95 (s) | final p50 / p95 (s) | lag slope (s/min) "
            "| CPU % | RSS MB | within capacity |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in report["concurrency"]:
            lines.append(
                f"| {c['streams']} | {100 * c['streaming_wer']:.1f}% "
                f"| {f(c['partial_latency_s']['p50'])} / {f(c['partial_latency_s']['p95'])} "
                f"| {f(c['final_latency_s']['p50'])} / "
                f"{f(c['final_latency_s']['p95'])} "
                f"| {f(c['lag_slope_s_per_min'])} | {f(c.get('cpu_percent'))} | "
                f"{f(c.get('rss_mb_max'))} | {'yes' if c['within_capacity'] else 'no'} |"
            )
        lines += [
            "",
            f"Capacity (largest N with final p95 <= {CAPACITY_P95_S:g} s and no lag growth): "
            f"{report['capacity']}",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url", help="benchmark this running server (WhisperLive protocol) instead"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA / "longform",
        help="transcripts.tsv folder or LibriSpeech layout (default: longform)",
    )
    parser.add_argument(
        "--files", type=int, default=2, help="files for the quality run (default 2)"
    )
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--min-chunk-size", type=float, nargs="+", default=[1.0])
    parser.add_argument(
        "--beam-size", type=int, nargs="+", default=[5], help="beam width of final decodes"
    )
    parser.add_argument(
        "--hypothesis-beam-size",
        type=int,
        nargs="+",
        default=[1],
        help="beam width of intermediate decodes",
    )
    parser.add_argument("--vad", choices=["on", "off", "both"], default="on")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="*",
        default=[1, 2, 4, 8],
        help="stream counts to try, stopping at the first over capacity",
    )
    parser.add_argument(
        "--clip-s",
        type=float,
        default=60.0,
        help="seconds of each file streamed in the concurrency run (default 60)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument("--tag", default="latest", help="result file name stem")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="try every --concurrency level, even past the first over capacity",
    )
    parser.add_argument(
        "--server-args",
        default="",
        help="more flags for our server, as one string ('--commit-policy agreement')",
    )
    args = parser.parse_args(argv)

    from whisper_streaming import load_backend

    items = load_dataset(args.data)[: max(1, args.files)]
    print(f"offline reference for {len(items)} file(s) ...", file=sys.stderr, flush=True)
    backend = load_backend("faster_whisper", model=args.model, device="cpu")
    jobs = [(item, offline_reference(backend, item)) for item in items]
    offline = jiwer.wer(
        [" ".join(r.words) for _, r in jobs], [normalize(r.offline_text) for _, r in jobs]
    )
    del backend
    vads = {"on": [True], "off": [False], "both": [True, False]}[args.vad]
    configs = [
        {
            "model": args.model,
            "min_chunk_s": c,
            "beam_size": b,
            "hypothesis_beam_size": h,
            "vad": v,
            "server_args": args.server_args.split(),
        }
        for c in args.min_chunk_size
        for b in args.beam_size
        for h in args.hypothesis_beam_size
        for v in vads
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / f"{args.tag}.server.log"
    quality = []
    for config in configs:
        print(f"quality + latency: {config} ...", file=sys.stderr, flush=True)
        quality.append(run_quality(args.url, config, jobs, log))
    concurrency: list[dict[str, Any]] = []
    if args.concurrency:
        clipped = clip(jobs, args.clip_s)
        print("concurrency:", file=sys.stderr, flush=True)
        concurrency = run_concurrency(
            args.url, configs[0], clipped, sorted(args.concurrency), log, keep_going=args.keep_going
        )
    capacity = max([c["streams"] for c in concurrency if c["within_capacity"]], default=0)
    report = {
        "machine": machine(),
        "data": str(args.data),
        "files": [i.name for i in items],
        "offline_wer": offline,
        "quality": quality,
        "concurrency": concurrency,
        "capacity": capacity,
        "url": args.url,
    }
    (args.out / f"{args.tag}.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (args.out / f"{args.tag}.md").write_text(table)
    print(table)
    return 0
