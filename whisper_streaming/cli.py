"""Command-line front ends: ``whisper-streaming serve | client | simulate``.

Each front end is a ``main(argv)`` function; nothing runs at import time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .config import COMMIT_POLICIES, ProcessorOptions
from .exceptions import ConfigError, WhisperStreamingError

__all__ = ["client_main", "main", "serve_main", "simulate_main"]

logger = logging.getLogger(__name__)

_DEFAULTS = ProcessorOptions()


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
    parser.add_argument(
        "--beam-size", type=int, default=5, help="beam width of final decodes (default 5)"
    )
    parser.add_argument(
        "--hypothesis-beam-size",
        type=int,
        default=1,
        help="beam width of intermediate decodes (default 1: greedy)",
    )
    parser.add_argument(
        "--min-chunk-size",
        type=float,
        default=1.0,
        help="margin (s) kept before the end of a decoded window when text is cut there "
        "(default 1.0)",
    )
    parser.add_argument(
        "--hypothesis-step",
        type=float,
        default=_DEFAULTS.hypothesis_step_s,
        help="seconds of new speech before the next partial decode, which runs as soon as the "
        f"previous one returned (default {_DEFAULTS.hypothesis_step_s:g})",
    )
    parser.add_argument(
        "--agreement-lead",
        type=float,
        default=_DEFAULTS.agreement_lead_s,
        help="with --commit-policy agreement: right context (s) a word needs before it is "
        f"committed (default {_DEFAULTS.agreement_lead_s:g})",
    )
    parser.add_argument(
        "--align-model",
        metavar="DIR",
        help="whisperx backend: a local wav2vec2 model directory for word alignment in "
        "--language (default: word times estimated from each chunk)",
    )
    parser.add_argument(
        "--encoder-min",
        type=float,
        default=4.0,
        help="faster-whisper: shortest audio (s) the encoder runs on for partial decodes; "
        "30 always encodes Whisper's full window (default 4)",
    )
    parser.add_argument(
        "--commit-policy",
        choices=COMMIT_POLICIES,
        default="segments",
        help="when text becomes final: 'segments' (default: end of each utterance, and complete "
        "segments of speech longer than --commit-window), 'agreement' (as segments, and words "
        "two partial decodes agree on once --agreement-lead seconds follow them) or "
        "'local_agreement' (as soon as two hypotheses agree: earliest, least accurate)",
    )
    parser.add_argument(
        "--commit-window",
        type=float,
        default=10.0,
        help="seconds of uncommitted speech that trigger a commit with --commit-policy "
        "segments (default 10)",
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
        hypothesis_beam_size=args.hypothesis_beam_size,
        use_vad=args.use_vad,
        commit_policy=args.commit_policy,
        commit_window_s=args.commit_window,
        hypothesis_step_s=args.hypothesis_step,
        agreement_lead_s=args.agreement_lead,
    )


def _backend_options(args: argparse.Namespace) -> dict[str, object]:
    if args.backend == "scripted":
        return {}
    options: dict[str, object] = {
        "model": args.model,
        "device": args.device,
        "compute_type": args.compute_type,
    }
    if args.backend == "faster_whisper":
        options["encoder_min_s"] = args.encoder_min
    if args.backend == "whisperx":
        options["language"] = args.language
        if args.align_model:
            options["align_model"] = args.align_model
    elif args.align_model:
        raise ConfigError("--align-model is an option of the whisperx backend (--backend whisperx)")
    return options


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


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # faster-whisper logs every decode at INFO.
    logging.getLogger("faster_whisper").setLevel(max(logging.WARNING, logging.getLogger().level))


ENV_PREFIX = "WHISPER_STREAMING_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


_SERVE_GROUPS = {
    "network and limits": (
        "host port max_clients max_connection_time idle_timeout quiet_flush "
        "refuse_when_full max_load cors_origins"
    ),
    "security": "api_key api_keys_file open_whisperlive ssl_certfile ssl_keyfile",
    "model and compute": (
        "model backend device compute_type workers cpu_threads batch_size align_model"
    ),
    "streaming": (
        "language beam_size hypothesis_beam_size min_chunk_size hypothesis_step agreement_lead "
        "encoder_min commit_policy commit_window use_vad"
    ),
    "output": "save_audio log_level",
    "speakers": "diarization max_speakers speaker_encoder speaker_model hf_token",
}


def _group_flags(parser: argparse.ArgumentParser, groups: dict[str, str]) -> None:
    """Show the flags in ``--help`` under headings (argparse keeps each flag in the group it was
    added to; this moves them, which changes nothing but the help)."""
    default = parser._optionals  # argparse has no public way to regroup its flags
    for title, dests in groups.items():
        group = parser.add_argument_group(title)
        wanted = dests.split()
        for action in [a for a in default._group_actions if a.dest in wanted]:
            default._group_actions.remove(action)
            group._group_actions.append(action)


def _environment_defaults(parser: argparse.ArgumentParser) -> None:
    """Let every long flag take its default from ``WHISPER_STREAMING_<FLAG>`` (``--max-clients``:
    ``WHISPER_STREAMING_MAX_CLIENTS``), so a container needs no command-line edits; a flag given
    on the command line still wins (a repeatable flag adds to the variable's list). Switches
    take 1/true/yes/on or 0/false/no/off; repeatable flags take a comma-separated list. A bad
    value stops the CLI naming the variable."""
    for action in parser._actions:  # argparse has no public list of its actions
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or action.dest in ("help", "version"):
            continue
        name = ENV_PREFIX + longs[0][2:].upper().replace("-", "_")
        raw = os.environ.get(name)
        if raw is None:
            continue
        try:
            value = _env_value(action, raw)
        except (TypeError, ValueError) as exc:
            parser.error(f"environment variable {name}={raw!r}: {exc}")
        parser.set_defaults(**{action.dest: value})  # every flag of that dest (--use/--no-vad)


def _env_value(action: argparse.Action, raw: str) -> object:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        word = raw.strip().lower()
        if word not in _TRUE + _FALSE:
            raise ValueError("use 1/true/yes/on or 0/false/no/off")
        on = word in _TRUE
        return on if isinstance(action, argparse._StoreTrueAction) else not on
    if isinstance(action, argparse._AppendAction):
        return [v.strip() for v in raw.split(",") if v.strip()]
    value = action.type(raw) if callable(action.type) else raw
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}")
    return value


def serve_main(argv: Sequence[str] | None = None) -> int:
    """Run the WebSocket server until SIGINT / SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="whisper-streaming serve",
        description="Real-time transcription server over WebSocket, with an OpenAI-compatible "
        "REST API on the same port.",
        epilog="Every flag can also come from an environment variable: --max-clients 8 is "
        f"{ENV_PREFIX}MAX_CLIENTS=8, --no-vad is {ENV_PREFIX}NO_VAD=1, repeated --api-key is "
        f"{ENV_PREFIX}API_KEY=key1,key2. A flag on the command line wins.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--host", default="localhost", help="interface to listen on (default localhost)"
    )
    parser.add_argument("--port", "-p", type=int, default=9090, help="port (default 9090)")
    parser.add_argument("--max-clients", type=int, default=4, help="sessions at once (default 4)")
    parser.add_argument(
        "--max-connection-time", type=float, default=600, help="seconds per session (default 600)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=60,
        help="end a session after this many seconds without audio (default 60)",
    )
    parser.add_argument(
        "--quiet-flush",
        type=float,
        default=1.5,
        help="finalize pending text after this many seconds without audio (default 1.5)",
    )
    parser.add_argument(
        "--cors-origins",
        default=None,
        help="comma-separated browser origins allowed to open WebSockets (https://app.example), "
        "or '*' for any; pages on localhost and this server's own pages reached by IP address "
        "are always allowed, pages reached by host name must be listed",
    )
    parser.add_argument(
        "--save-audio",
        metavar="DIR",
        default=None,
        help="save each session's audio, as the model receives it, to DIR/<time>-<session>.wav "
        "(16 kHz float32 WAV)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="parallel decodes (default: 2 on CPU, 1 on GPU)"
    )
    parser.add_argument(
        "--cpu-threads", type=int, default=0, help="threads per decode on CPU (0: automatic)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="decodes of different sessions run in one model call, at most (faster_whisper: "
        "one encoder and one generate call for requests that can share them; pays on a GPU)",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="require this API key (repeatable): 'Authorization: Bearer KEY', or ?token=KEY on "
        "a WebSocket URL; /health, /metrics and the demo page stay open",
    )
    parser.add_argument(
        "--api-keys-file", metavar="FILE", help="more API keys, one per line (# comments)"
    )
    parser.add_argument(
        "--open-whisperlive",
        action="store_true",
        help="with API keys, leave the WhisperLive path (/) open: the stock WhisperLive client "
        "cannot send a header (it can send ?token=KEY as part of its port: 9090/?token=KEY)",
    )
    parser.add_argument(
        "--refuse-when-full",
        action="store_true",
        help="behind a load balancer: answer a new WebSocket with HTTP 503 when every slot is "
        "taken (the balancer tries another instance) instead of WAIT",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=0.9,
        metavar="SHARE",
        help="tell a new session to WAIT when one more live session would use more than this "
        "share of the model's capacity, so the running ones stay real time (default 0.9; 0: off)",
    )
    parser.add_argument(
        "--diarization",
        action="store_true",
        help="label who speaks (Speaker 1, 2, ...) in every session that does not opt out; "
        "needs the diarization extra (pip install 'whisper-streaming[diarization]')",
    )
    parser.add_argument(
        "--max-speakers",
        type=int,
        default=8,
        metavar="N",
        help="most speakers one session's diarization tells apart (default 8)",
    )
    parser.add_argument(
        "--speaker-encoder",
        default="resemblyzer",
        choices=["resemblyzer", "pyannote"],
        help="speaker embeddings for --diarization: resemblyzer (default; its model ships in "
        "its package) or pyannote (pyannote.audio and --speaker-model)",
    )
    parser.add_argument(
        "--speaker-model",
        metavar="DIR",
        help="the pyannote encoder's model: a local directory, or a hub name with --hf-token",
    )
    parser.add_argument(
        "--hf-token",
        metavar="TOKEN",
        default=os.environ.get("HF_TOKEN"),
        help="Hugging Face token for a gated pyannote model (default: $HF_TOKEN)",
    )
    parser.add_argument("--ssl-certfile", metavar="PEM", help="serve TLS: certificate chain")
    parser.add_argument("--ssl-keyfile", metavar="PEM", help="serve TLS: private key")
    _add_model_args(parser)
    _group_flags(parser, _SERVE_GROUPS)
    _environment_defaults(parser)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    _setup_logging(args.log_level)

    from .config import ServerOptions
    from .server.websocket_server import WhisperStreamingServer

    try:
        api_keys = list(args.api_key)
        if args.api_keys_file:
            from .server.auth import read_keys_file

            api_keys += read_keys_file(args.api_keys_file)
        backend_options = _backend_options(args)
        if args.backend == "faster_whisper":
            workers = args.workers or (1 if args.device == "cuda" else 2)
            backend_options.update(num_workers=workers, cpu_threads=args.cpu_threads)
        server = WhisperStreamingServer(
            backend_name=args.backend,
            backend_options=backend_options,
            processor_options=_processor_options(args),
            server_options=ServerOptions(
                max_clients=args.max_clients,
                max_connection_time_s=args.max_connection_time,
                idle_timeout_s=args.idle_timeout,
                quiet_flush_s=args.quiet_flush,
                allowed_origins=(
                    tuple(o.strip() for o in args.cors_origins.split(",") if o.strip())
                    if args.cors_origins
                    else None
                ),
                save_audio_dir=args.save_audio,
                api_keys=tuple(api_keys),
                open_whisperlive=args.open_whisperlive,
                refuse_when_full=args.refuse_when_full,
                max_load=args.max_load,
                diarization=args.diarization,
                max_speakers=args.max_speakers,
                speaker_encoder=args.speaker_encoder,
                speaker_model=args.speaker_model,
                hf_token=args.hf_token,
            ),
            max_batch_size=args.batch_size,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
        )
        server.run(args.host, args.port)
    except WhisperStreamingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


def client_main(argv: Sequence[str] | None = None) -> int:
    """Stream a file or the microphone to a server and print / save the transcript."""
    parser = argparse.ArgumentParser(
        prog="whisper-streaming client",
        description="Stream the microphone or an audio file to a transcription server.",
    )
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", "-p", type=int, default=9090)
    parser.add_argument("--language", "-l", default=None, help="language code (default: detect)")
    parser.add_argument("--model", "-m", default="tiny.en", help="model to ask the server for")
    parser.add_argument("--translate", "-t", action="store_true", help="translate to English")
    speakers = parser.add_mutually_exclusive_group()
    speakers.add_argument(
        "--diarization",
        dest="diarization",
        action="store_true",
        default=None,
        help="label who speaks ([Speaker 1] ...; the server needs --diarization)",
    )
    speakers.add_argument(
        "--no-diarization",
        dest="diarization",
        action="store_false",
        help="no speaker labels even if the server gives them by default",
    )
    parser.add_argument(
        "--audio-file", "-f", default=None, help="file to send (default: microphone)"
    )
    vad = parser.add_mutually_exclusive_group()
    vad.add_argument("--use-vad", dest="use_vad", action="store_true", default=True)
    vad.add_argument("--no-vad", dest="use_vad", action="store_false")
    parser.add_argument(
        "--use-callback", action="store_true", help="print every update through a callback"
    )
    parser.add_argument("--output", "-o", default=None, help="write .srt, .vtt, .json or .txt")
    parser.add_argument(
        "--fast", action="store_true", help="send as fast as the server takes it, not in real time"
    )
    parser.add_argument("--api-key", default=None, help="API key, for servers that need one")
    parser.add_argument("--wss", action="store_true", help="connect with TLS (wss://)")
    parser.add_argument(
        "--ca-file", default=None, help="trust this CA (PEM) for wss:// (implies --wss)"
    )
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)

    from .client import ClientError, TranscriptionClient
    from .client.outputs import FORMATS
    from .client.websocket_client import connection_errors

    if args.output and args.output.rsplit(".", 1)[-1].lower() not in FORMATS:
        print(f"error: --output must end in one of: {', '.join(FORMATS)}", file=sys.stderr)
        return 2

    def callback(text: str, segments: list[dict[str, object]]) -> None:
        print(f"[callback] {text}", flush=True)

    client = TranscriptionClient(
        args.host,
        args.port,
        language=args.language,
        model=args.model,
        translate=args.translate,
        use_vad=args.use_vad,
        transcription_callback=callback if args.use_callback else None,
        output=args.output,
        fast=args.fast,
        api_key=args.api_key,
        use_wss=args.wss,
        ca_file=args.ca_file,
        diarization=args.diarization,
    )
    try:
        client(args.audio_file)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except connection_errors() as exc:
        print(f"error: cannot reach {client.url}: {exc}", file=sys.stderr)
        return 1
    except WhisperStreamingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if not args.output:
        if any("speaker" in s for s in client.segments):
            from .client.outputs import render

            print(render(client.segments, "txt"), end="")
        else:
            print(client.text)
    return 0


_COMMANDS = {"serve": serve_main, "client": client_main, "simulate": simulate_main}


def main(argv: Sequence[str] | None = None) -> int:
    """``whisper-streaming COMMAND ...``: dispatch to a front end."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("--version", "-V"):
        print(f"whisper-streaming {__version__}")
        return 0
    if not args or args[0] in ("-h", "--help") or args[0] not in _COMMANDS:
        names = ", ".join(_COMMANDS)
        print(f"usage: whisper-streaming {{{names}}} ...", file=sys.stderr if args else sys.stdout)
        if args and args[0] not in ("-h", "--help"):
            print(f"error: unknown command {args[0]!r}", file=sys.stderr)
            return 2
        return 0
    return _COMMANDS[args[0]](args[1:])
