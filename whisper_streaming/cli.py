"""Command-line front ends: ``whisper-streaming serve | client | simulate``.

Each front end is a ``main(argv)`` function; nothing runs at import time.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from .config import ProcessorOptions
from .exceptions import WhisperStreamingError

__all__ = ["main", "simulate_main"]

logger = logging.getLogger(__name__)


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="tiny.en",
        help="model: 'tiny.en' (embedded, default), a CTranslate2 model directory, or a "
        "faster-whisper name such as 'small' (needs the model hub)",
    )
    parser.add_argument(
        "--backend", default="faster_whisper", help="ASR backend (default faster_whisper)"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--compute-type", default="auto", help="CTranslate2 compute type (default: auto)"
    )
    parser.add_argument("--language", default=None, help="language code (default: auto-detect)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument(
        "--min-chunk-size",
        type=float,
        default=1.0,
        help="seconds of new audio per decode (default 1.0)",
    )
    vad = parser.add_mutually_exclusive_group()
    vad.add_argument(
        "--use-vad", dest="use_vad", action="store_true", default=True, help="(default)"
    )
    vad.add_argument(
        "--no-vad", dest="use_vad", action="store_false", help="send all audio to the model"
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def _processor_options(args: argparse.Namespace) -> ProcessorOptions:
    return ProcessorOptions(
        min_chunk_s=args.min_chunk_size,
        language=args.language,
        beam_size=args.beam_size,
        use_vad=args.use_vad,
    )


def _backend_options(args: argparse.Namespace) -> dict[str, object]:
    if args.backend == "scripted":
        return {}
    return {"model": args.model, "device": args.device, "compute_type": args.compute_type}


def simulate_main(argv: Sequence[str] | None = None) -> int:
    """Stream a file through the engine with no server and print every update."""
    parser = argparse.ArgumentParser(
        prog="whisper-streaming simulate",
        description="Stream an audio file through the processor and the model, with no server "
        "(computation-unaware: feed --min-chunk-size seconds, then decode).",
    )
    parser.add_argument("file", help="any audio file FFmpeg can decode")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    _add_model_args(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )

    from .audio import decode_file
    from .backends import load_backend
    from .simulate import simulate
    from .streaming.processor import TranscriptUpdate

    def show(audio_time: float, update: TranscriptUpdate) -> None:
        if args.json:
            committed = [
                {
                    "word": w.word,
                    "start": round(w.start, 3),
                    "end": round(w.end, 3),
                    "probability": round(w.probability, 4),
                }
                for w in update.committed
            ]
            line = {
                "audio_time": round(audio_time, 3),
                "committed": committed,
                "partial": update.partial_text,
            }
            print(json.dumps(line), flush=True)
        else:
            print(
                f"[{audio_time:8.2f}s] {update.committed_text} | {update.partial_text}", flush=True
            )

    try:
        options = _processor_options(args)
        samples = decode_file(args.file)
        backend = load_backend(args.backend, **_backend_options(args))
        result = simulate(samples, backend, options, on_update=show)
    except WhisperStreamingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"final_text": result.text}), flush=True)
    else:
        print(f"final text: {result.text}", flush=True)
    return 0


_COMMANDS = {"simulate": simulate_main}


def main(argv: Sequence[str] | None = None) -> int:
    """``whisper-streaming COMMAND ...``: dispatch to a front end."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in _COMMANDS:
        names = ", ".join(_COMMANDS)
        print(f"usage: whisper-streaming {{{names}}} ...", file=sys.stderr if args else sys.stdout)
        if args and args[0] not in ("-h", "--help"):
            print(f"error: unknown command {args[0]!r}", file=sys.stderr)
            return 2
        return 0
    return _COMMANDS[args[0]](args[1:])
