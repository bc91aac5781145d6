"""OpenAI-compatible REST: ``POST /v1/audio/transcriptions``, ``POST /v1/audio/translations``
and ``GET /v1/models``, on the same port as the WebSocket protocols.

An upload is decoded (PyAV, off the event loop), then transcribed window by window through the
shared scheduler (:class:`~.file_job.FileJob`), taking turns with the live sessions. Errors have
OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Message

from ..audio import SAMPLE_RATE, decode_file
from ..backends.base import Segment
from ..client.outputs import render
from ..exceptions import AudioError, BackendError
from .context import ServerContext
from .file_job import FileJob

__all__ = ["ALIASES", "RestError", "error_response", "models", "transcribe"]

logger = logging.getLogger(__name__)

FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")
ALIASES = ("whisper-1",)
"""Model names clients send that mean the model this server serves."""
_FIELDS = {
    "file",
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "timestamp_granularities",
    "stream",
}
_LANGUAGE_NAMES = {"en": "english"}


class RestError(Exception):
    """A request the REST API refuses: an HTTP status and OpenAI's error fields."""

    def __init__(
        self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code


def error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> JSONResponse:
    """OpenAI's error body."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status)


@dataclass(frozen=True)
class Params:
    """The form fields of a transcription request, checked."""

    upload: UploadFile
    language: str | None
    prompt: str
    response_format: str
    granularities: tuple[str, ...]
    stream: bool


def models(ctx: ServerContext) -> JSONResponse:
    """``GET /v1/models``: the model served, and the names that mean it."""
    names = [ctx.model_name, *ALIASES]
    data = [
        {"id": n, "object": "model", "created": 0, "owned_by": "whisper-streaming"} for n in names
    ]
    return JSONResponse({"object": "list", "data": data})


async def transcribe(request: Request, ctx: ServerContext, *, task: str) -> Response:
    """``POST /v1/audio/transcriptions`` (``task="transcribe"``) or ``/translations``."""
    try:
        form = await _form(request, ctx.options.max_upload_bytes)
        try:
            params = _params(form, ctx, task)
            audio = await _decode(params.upload, ctx.options.max_upload_duration_s)
        finally:
            await form.close()  # the upload's temporary file
        return await _answer(params, audio, ctx, task)
    except RestError as exc:
        return error_response(exc.status, str(exc), param=exc.param, code=exc.code)


async def _form(request: Request, limit: int) -> FormData:
    """The multipart form, refused with 413 past ``limit`` bytes (by its Content-Length, or
    while it arrives when it has none)."""
    length = request.headers.get("content-length", "")
    too_large = RestError(
        f"the upload is larger than {limit // 2**20} MiB", status=413, code="upload_too_large"
    )
    if length.isdigit() and int(length) > limit:
        raise too_large
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large
        return message

    limited = Request(request.scope, receive)
    try:
        return await limited.form(max_files=1, max_fields=len(_FIELDS) + 8)
    except RestError:
        raise
    except HTTPException as exc:  # Starlette's answer to a malformed form
        raise RestError(f"cannot read the form: {exc.detail}", status=exc.status_code) from exc
    except Exception as exc:
        raise RestError(f"cannot read the form: {exc}") from exc


def _params(form: FormData, ctx: ServerContext, task: str) -> Params:
    unknown = sorted(set(form.keys()) - _FIELDS)
    if unknown:
        raise RestError(
            f"unknown parameter {unknown[0]!r}", param=unknown[0], code="unknown_parameter"
        )
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise RestError("'file' is required: the audio file, as a multipart upload", param="file")
    model = _field(form, "model")
    if not model:
        raise RestError("'model' is required", param="model")
    if model not in (ctx.model_name, *ALIASES):
        raise RestError(
            f"model {model!r} is not served here; use {ctx.model_name!r} (GET /v1/models)",
            param="model",
            code="model_not_found",
            status=404,
        )
    response_format = _field(form, "response_format") or "json"
    if response_format not in FORMATS:
        raise RestError(
            f"response_format must be one of {', '.join(FORMATS)}, not {response_format!r}",
            param="response_format",
        )
    language = _field(form, "language") or None
    if task == "translate" and not ctx.multilingual:
        raise RestError(
            f"{ctx.model_name!r} is English-only and cannot translate; serve a multilingual "
            "model (for example --model small) or use /v1/audio/transcriptions",
            param="model",
            code="translation_unavailable",
        )
    if task == "translate":
        language = None  # the source language is detected
    elif language is not None and not ctx.multilingual and language != "en":
        raise RestError(
            f"{ctx.model_name!r} is English-only: language {language!r} is not supported",
            param="language",
        )
    temperature = _field(form, "temperature") or "0"
    try:
        value = float(temperature)
    except ValueError:
        raise RestError(
            f"temperature must be a number, not {temperature!r}", param="temperature"
        ) from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise RestError("temperature must be between 0 and 1", param="temperature")
    if value != 0.0:
        raise RestError(
            "only temperature 0 is supported: decoding is deterministic (beam search)",
            param="temperature",
        )
    granularities = tuple(
        str(g)
        for g in form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
    ) or ("segment",)
    for g in granularities:
        if g not in GRANULARITIES:
            raise RestError(
                f"timestamp_granularities[] must be 'word' or 'segment', not {g!r}",
                param="timestamp_granularities[]",
            )
    if "word" in granularities and response_format != "verbose_json":
        raise RestError(
            "word timestamps need response_format 'verbose_json'", param="timestamp_granularities[]"
        )
    stream = (_field(form, "stream") or "false").lower()
    if stream not in ("true", "false"):
        raise RestError(f"stream must be true or false, not {stream!r}", param="stream")
    if stream == "true" and response_format not in ("json", "text"):
        raise RestError(
            "stream=true answers text events: use response_format json or text", param="stream"
        )
    return Params(
        upload=upload,
        language=language,
        prompt=_field(form, "prompt"),
        response_format=response_format,
        granularities=granularities,
        stream=stream == "true",
    )


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RestError(f"{name!r} must be a text field, not a file", param=name)
    return value.strip()


async def _decode(upload: UploadFile, max_duration_s: float) -> Any:
    """The upload as 16 kHz mono float32, decoded on a thread. A file whose container says it
    is longer than ``max_duration_s`` is refused before it is decoded (a small, highly
    compressed file can hold many hours: decoded, gigabytes)."""
    loop = asyncio.get_running_loop()
    declared = await loop.run_in_executor(None, _declared_duration_s, upload.file)
    if declared is not None and declared > max_duration_s:
        raise _too_long(declared, max_duration_s)
    upload.file.seek(0)
    try:
        return await loop.run_in_executor(None, decode_file, upload.file)
    except AudioError as exc:
        name = upload.filename or "the file"
        raise RestError(
            f"cannot decode {name!r} as audio: {exc}", param="file", code="unsupported_format"
        ) from exc


def _declared_duration_s(file: Any) -> float | None:
    """The duration a file's container declares (None: unknown, or not a media file)."""
    import av

    file.seek(0)
    try:
        with av.open(file, mode="r") as container:
            if container.duration is None:
                return None
            return float(container.duration) / av.time_base
    except Exception:  # not readable here: decode_file gives the error
        return None


def _too_long(duration: float, limit: float) -> RestError:
    return RestError(
        f"the audio is {duration:.0f} s long; at most {limit:.0f} s are accepted",
        param="file",
        code="audio_too_long",
    )


async def _answer(params: Params, audio: Any, ctx: ServerContext, task: str) -> Response:
    duration = len(audio) / SAMPLE_RATE
    limit = ctx.options.max_upload_duration_s
    if duration > limit:
        raise _too_long(duration, limit)
    if params.stream:
        return StreamingResponse(
            _events(audio, params, ctx, task),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    job = FileJob(audio, ctx.scheduler, language=params.language, task=task, prompt=params.prompt)
    try:
        segments = await job.result()
    except BackendError as exc:
        raise RestError(f"transcription failed: {exc}", status=500, code="backend_error") from exc
    return _render(params, segments, job.language or params.language or "en", duration, task)


def _render(
    params: Params,
    segments: Sequence[Segment],
    language: str,
    duration: float,
    task: str,
) -> Response:
    text = "".join(s.text for s in segments).strip()
    fmt = params.response_format
    if fmt == "json":
        return JSONResponse({"text": text})
    if fmt == "text":
        return PlainTextResponse(text + "\n")
    if fmt in ("srt", "vtt"):
        rows = [{"start": s.start, "end": s.end, "text": s.text} for s in segments]
        return PlainTextResponse(render(rows, fmt))
    body: dict[str, Any] = {
        "task": "translate" if task == "translate" else "transcribe",
        "language": _LANGUAGE_NAMES.get(language, language),
        "duration": round(duration, 3),
        "text": text,
        "usage": {"type": "duration", "seconds": math.ceil(duration)},
    }
    if "segment" in params.granularities:
        body["segments"] = [
            {
                "id": i,
                "seek": int(s.start * 100),
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": 0.0,
                "no_speech_prob": s.no_speech_prob,
            }
            for i, s in enumerate(segments)
        ]
    if "word" in params.granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for s in segments
            for w in s.words
        ]
    return JSONResponse(body)


async def _events(audio: Any, params: Params, ctx: ServerContext, task: str) -> AsyncIterator[str]:
    """Server-sent events as OpenAI streams a transcription: a ``transcript.text.delta`` per
    decoded window, then ``transcript.text.done`` with the whole text."""
    queue: asyncio.Queue[list[Segment]] = asyncio.Queue()
    job = FileJob(
        audio,
        ctx.scheduler,
        language=params.language,
        task=task,
        prompt=params.prompt,
        on_segments=queue.put_nowait,
    )
    result = asyncio.ensure_future(job.result())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, result}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                delta = "".join(s.text for s in getter.result())
                yield _event({"type": "transcript.text.delta", "delta": delta})
                continue
            getter.cancel()
            while not queue.empty():
                delta = "".join(s.text for s in queue.get_nowait())
                yield _event({"type": "transcript.text.delta", "delta": delta})
            try:
                segments = result.result()
            except BackendError as exc:
                error = {"message": f"transcription failed: {exc}", "type": "server_error"}
                yield "event: error\n" + _event({"error": error})
                return
            text = "".join(s.text for s in segments).strip()
            yield _event({"type": "transcript.text.done", "text": text})
            return
    finally:
        result.cancel()


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
