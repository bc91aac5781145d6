"""This server and WhisperLive 0.10.0 side by side: the same files through the same client code,
in real time, at 1, 2 and 4 streams, in one sitting.

    make bench-compare                    # both long-form sets; about 50 minutes on 2 cores
    .venv/bin/python -m bench.compare --help

WhisperLive runs from its own virtual environment (``make .venv-whisperlive``) on the same
embedded model directory (``--backend faster_whisper -fw DIR``, one shared model, CTranslate2
on one thread as its ``run_server.py`` sets it; ``--whisperlive-threads`` changes that).
Each server is started fresh for every stream count and warmed up with one short stream that is
not measured (WhisperLive loads its model at the first connection). Results go to
``bench/results/<tag>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jiwer

from bench.data import DEFAULT_DATA, Item, Reference, load_dataset, normalize, offline_reference
from bench.run import RESULTS, aggregate, clip, machine, stream_all
from bench.server import ProcessSampler, ServerProcess, WhisperLiveProcess
from bench.stream import stream_whisperlive

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("whisper_streaming", "whisperlive")


def _warm_up(url: str, ref: Reference) -> None:
    asyncio.run(stream_whisperlive(url, ref.samples[: 3 * 16000], realtime=False))


def run_level(
    server: str,
    jobs: list[tuple[Item, Reference]],
    streams: int,
    args: argparse.Namespace,
    model_dir: str,
) -> dict[str, Any]:
    """Start ``server`` fresh, warm it up, stream every job with ``streams`` at a time."""
    log = args.out / f"{args.tag}.{server}.server.log"
    proc: ServerProcess | WhisperLiveProcess
    if server == "whisperlive":
        proc = WhisperLiveProcess(
            args.whisperlive_python, model_dir, args.whisperlive_threads, log_path=log
        )
    else:
        proc = ServerProcess(args.server_args.split(), log_path=log)
    with proc as srv:
        assert srv.proc is not None
        _warm_up(srv.url, jobs[0][1])
        with ProcessSampler(srv.proc.pid) as sampler:
            results = stream_all(srv.url, jobs, streams)
    return {
        "server": server,
        "streams": streams,
        **aggregate(results),
        "cpu_percent": sampler.cpu_percent,
        "rss_mb_max": max(sampler.rss_mb),
        "per_file": {r["file"]: r["wer"] for r in results},
    }


def markdown(report: dict[str, Any]) -> str:
    def f(x: float | None) -> str:
        return "n/a" if x is None or x != x else f"{x:.1f}"

    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu']}, commit {m['commit']}; "
        f"files clipped to {report['clip_s']:g} s, streamed in real time.",
    ]
    for data in report["sets"]:
        lines += [
            "",
            f"**{data['name']}** ({len(data['files'])} files, offline WER "
            f"{100 * data['offline_wer']:.1f}%)",
            "",
            "| server | streams | WER | partial p50 / p95 (s) | final p50 / p95 / max (s) "
            "| end of audio → last final, mean (s) | lag slope (s/min) | CPU % | RSS MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in data["runs"]:
            p, fl = r["partial_latency_s"], r["final_latency_s"]
            errors = f" ({len(r['stream_errors'])} stream errors)" if r["stream_errors"] else ""
            lines.append(
                f"| {r['server']} | {r['streams']} | {100 * r['streaming_wer']:.1f}%{errors} "
                f"| {f(p['p50'])} / {f(p['p95'])} | {f(fl['p50'])} / {f(fl['p95'])} / "
                f"{f(fl['max'])} | {f(r['end_of_audio_to_last_final_s']['mean'])} "
                f"| {f(r['lag_slope_s_per_min'])} | {f(r['cpu_percent'])} "
                f"| {f(r['rss_mb_max'])} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=[DEFAULT_DATA / "longform", DEFAULT_DATA / "longform-pauses"],
        help="data sets (transcripts.tsv folders or LibriSpeech layout)",
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--clip-s", type=float, default=60.0, help="seconds of each file streamed (0: whole files)"
    )
    parser.add_argument("--files", type=int, default=6, help="files per set (default 6)")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument(
        "--whisperlive-python",
        type=Path,
        default=ROOT / ".venv-whisperlive" / "bin" / "python",
        help="the WhisperLive environment's interpreter (make .venv-whisperlive)",
    )
    parser.add_argument(
        "--whisperlive-threads",
        type=int,
        default=1,
        help="CTranslate2 threads for WhisperLive (OMP_NUM_THREADS; its run_server.py uses 1)",
    )
    parser.add_argument("--server-args", default="", help="more flags for our server")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="compare-whisperlive")
    args = parser.parse_args(argv)
    if "whisperlive" in args.servers and not args.whisperlive_python.exists():
        parser.error(f"{args.whisperlive_python} not found: run `make .venv-whisperlive` first")

    from whisper_streaming import InferenceRequest, load_backend
    from whisper_streaming.backends.models import resolve_model

    model_dir = resolve_model("tiny.en")
    args.out.mkdir(parents=True, exist_ok=True)
    backend = load_backend("faster_whisper", model="tiny.en", device="cpu")
    sets = []
    for folder in args.data:
        items = load_dataset(folder)[: max(1, args.files)]
        print(f"{folder.name}: offline reference ...", file=sys.stderr, flush=True)
        jobs = [(item, offline_reference(backend, item)) for item in items]
        if args.clip_s > 0:
            jobs = clip(jobs, args.clip_s)
        # Offline decoding (beam 5, whole) of exactly the audio that is streamed.
        offline_texts = [
            backend.transcribe(InferenceRequest(r.samples, 0.0, language="en", beam_size=5)).text
            for _, r in jobs
        ]
        offline = jiwer.wer(
            [" ".join(r.words) for _, r in jobs], [normalize(t) for t in offline_texts]
        )
        runs = []
        for streams in args.streams:
            for server in args.servers:
                print(f"  {server}, {streams} stream(s) ...", file=sys.stderr, flush=True)
                runs.append(run_level(server, jobs, streams, args, model_dir))
        sets.append(
            {
                "name": folder.name,
                "files": [i.name for i in items],
                "offline_wer": offline,
                "runs": runs,
            }
        )
    del backend
    report = {"machine": machine(), "clip_s": args.clip_s, "sets": sets}
    (args.out / f"{args.tag}.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (args.out / f"{args.tag}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
