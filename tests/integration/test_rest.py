"""The OpenAI-compatible REST API against a real server (scripted backend), driven by the
official ``openai`` Python client and by raw requests for what the client would not send."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import uuid
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import timeout
from tests.integration.conftest import (
    TEXT,
    english_backend,
    expected_text,
    running_server,
    timeline_backend,
)
from whisper_streaming import ScriptedBackend
from whisper_streaming.backends import timeline_from_text

openai = pytest.importorskip("openai")


def wav_bytes(seconds: float) -> bytes:
    """A 16 kHz PCM16 WAV tone (the scripted backend hears its timeline, not the audio)."""
    t = np.arange(int(seconds * 16000)) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)
    return out.getvalue()


def client(port: int) -> Any:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=60)


def post_form(
    port: int, path: str, fields: dict[str, str], file: bytes | None, name: str = "a.wav"
) -> tuple[int, Any, bytes]:
    """A multipart POST built by hand: status, headers (case-insensitive) and body."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    if file is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + file
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout(30)) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def test_openai_client_gets_every_response_format(tmp_path: Path) -> None:
    """json, text, srt, vtt and verbose_json (segments and words) through the official client;
    the subtitles parse back to the same text."""
    audio = tmp_path / "speech.wav"
    audio.write_bytes(wav_bytes(8.0))
    expected = expected_text(8.0)
    with running_server() as srv, client(srv.port) as api:
        with audio.open("rb") as f:
            result = api.audio.transcriptions.create(model="tiny.en", file=f)
        assert result.text.strip() == expected
        with audio.open("rb") as f:
            text = api.audio.transcriptions.create(
                model="whisper-1", file=f, response_format="text"
            )
        assert text.strip() == expected
        for fmt in ("srt", "vtt"):
            with audio.open("rb") as f:
                subtitles = api.audio.transcriptions.create(
                    model="tiny.en", file=f, response_format=fmt
                )
            lines = [
                line
                for line in subtitles.splitlines()
                if line and "-->" not in line and not line.isdigit() and line != "WEBVTT"
            ]
            assert " ".join(lines) == expected, subtitles
            assert ("WEBVTT" in subtitles) == (fmt == "vtt")
        with audio.open("rb") as f:
            verbose = api.audio.transcriptions.create(
                model="tiny.en",
                file=f,
                response_format="verbose_json",
                timestamp_granularities=["word", "segment"],
            )
        assert verbose.language == "english" and verbose.duration == pytest.approx(8.0)
        assert verbose.text.strip() == expected
        words = [w.word for w in verbose.words]
        assert " ".join(words) == expected
        assert all(0 <= w.start <= w.end <= 8.0 for w in verbose.words)
        assert verbose.segments and verbose.segments[0].start == pytest.approx(
            verbose.words[0].start, abs=0.5
        )


def test_openai_client_streams_text_events(tmp_path: Path) -> None:
    """stream=true: text deltas as windows are decoded (a 70 s file is three windows), then
    the whole text."""
    audio = tmp_path / "long.wav"
    audio.write_bytes(wav_bytes(70.0))
    timeline = timeline_from_text(TEXT * 3, start_s=0.1)  # speech through the whole file
    backend = ScriptedBackend(timeline=timeline, model_name="tiny.en")
    with running_server(backend) as srv, client(srv.port) as api, audio.open("rb") as f:
        events = list(api.audio.transcriptions.create(model="tiny.en", file=f, stream=True))
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and kinds.count("transcript.text.delta") >= 3
    deltas = "".join(e.delta for e in events[:-1])
    assert deltas.strip() == events[-1].text
    expected = [w.word.strip() for w in timeline if w.end <= 70.0]
    assert events[-1].text.split() == expected


def test_translation_on_an_english_model_is_refused_and_passed_through_on_a_multilingual_one() -> (
    None
):
    """/v1/audio/translations: 400 on an English-only model (it would only transcribe); on a
    multilingual model the task reaches the model, with the language left to detection."""
    with running_server(english_backend()) as srv:
        status, _, body = post_form(
            srv.port, "/v1/audio/translations", {"model": "tiny.en"}, wav_bytes(4.0)
        )
    error = json.loads(body)["error"]
    assert status == 400 and error["code"] == "translation_unavailable", body
    assert "English-only" in error["message"] and error["param"] == "model"
    backend = timeline_backend()
    with running_server(backend) as srv:
        status, _, body = post_form(
            srv.port, "/v1/audio/translations", {"model": "tiny.en"}, wav_bytes(4.0)
        )
    assert status == 200 and json.loads(body)["text"].strip() == expected_text(4.0)
    asked = list(backend.requests)[1:]  # after the warm-up decode
    assert asked and all(r.task == "translate" and r.language is None for r in asked)


@pytest.mark.parametrize(
    ("fields", "file", "status", "param"),
    [
        ({"model": "large-v3"}, wav_bytes(1.0), 404, "model"),
        ({}, wav_bytes(1.0), 400, "model"),
        ({"model": "tiny.en"}, None, 400, "file"),
        ({"model": "tiny.en", "response_format": "xml"}, wav_bytes(1.0), 400, "response_format"),
        ({"model": "tiny.en", "temperature": "0.4"}, wav_bytes(1.0), 400, "temperature"),
        ({"model": "tiny.en", "temperature": "nan"}, wav_bytes(1.0), 400, "temperature"),
        ({"model": "tiny.en", "language": "de"}, wav_bytes(1.0), 400, "language"),
        ({"model": "tiny.en", "speed": "2"}, wav_bytes(1.0), 400, "speed"),
        (
            {"model": "tiny.en", "timestamp_granularities[]": "word"},
            wav_bytes(1.0),
            400,
            "timestamp_granularities[]",
        ),
        ({"model": "tiny.en", "stream": "yes"}, wav_bytes(1.0), 400, "stream"),
        ({"model": "tiny.en"}, b"this is not audio at all", 400, "file"),
    ],
)
def test_bad_requests_get_openai_shaped_errors(
    fields: dict[str, str], file: bytes | None, status: int, param: str
) -> None:
    with running_server(english_backend()) as srv:
        got, headers, body = post_form(srv.port, "/v1/audio/transcriptions", fields, file)
        assert got == status, body
        error = json.loads(body)["error"]
        assert error["param"] == param and error["message"] and error["type"]
        # The server goes on serving.
        ok, _, body = post_form(
            srv.port, "/v1/audio/transcriptions", {"model": "tiny.en"}, wav_bytes(2.0)
        )
        assert ok == 200, body


def test_upload_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past max_upload_bytes: 413 (by Content-Length, before reading the body); past
    max_upload_duration_s: 400, from the duration the container declares, before decoding;
    GET on the endpoint: 405; /v1/models lists the model."""
    from whisper_streaming.server import rest

    def no_decoding(*args: Any) -> Any:
        raise AssertionError("a file declared too long was decoded")

    monkeypatch.setattr(rest, "decode_file", no_decoding)
    with running_server(max_upload_bytes=200_000, max_upload_duration_s=5.0) as srv:
        status, _, body = post_form(
            srv.port, "/v1/audio/transcriptions", {"model": "tiny.en"}, wav_bytes(7.0)
        )
        assert status == 413 and json.loads(body)["error"]["code"] == "upload_too_large"
        status, _, body = post_form(
            srv.port, "/v1/audio/transcriptions", {"model": "tiny.en"}, wav_bytes(5.5)
        )
        assert status == 400 and json.loads(body)["error"]["code"] == "audio_too_long"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(
                f"http://127.0.0.1:{srv.port}/v1/audio/transcriptions", timeout=timeout(5)
            )
        assert err.value.code == 405
        err.value.close()
        with client(srv.port) as api:
            models = api.models.list()
        assert {m.id for m in models.data} >= {"tiny.en", "whisper-1"}


def _preflight(port: int, origin: str) -> tuple[int, str | None]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/audio/transcriptions",
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout(5)) as resp:
            return resp.status, resp.headers.get("Access-Control-Allow-Origin")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("Access-Control-Allow-Origin")


def test_cors_for_web_pages() -> None:
    """Browser pages on localhost may call the REST API; other sites only when listed
    (--cors-origins), the same rule as for WebSockets."""
    with running_server() as srv:
        assert _preflight(srv.port, "http://localhost:5173") == (200, "http://localhost:5173")
        assert _preflight(srv.port, "http://127.0.0.1:8080")[0] == 200
        assert _preflight(srv.port, "https://evil.example")[0] == 400
        assert _preflight(srv.port, "http://localhost.evil.example")[0] == 400
    with running_server(allowed_origins=("https://app.example",)) as srv:
        assert _preflight(srv.port, "https://app.example") == (200, "https://app.example")
        assert _preflight(srv.port, "https://evil.example")[0] == 400


def test_openapi_document_matches_what_the_api_accepts() -> None:
    """GET /openapi.json describes the endpoints, and every form field the transcription
    endpoint accepts (and only those) is in its request schema."""
    from whisper_streaming.server import rest

    with running_server() as srv:
        url = f"http://127.0.0.1:{srv.port}/openapi.json"
        with urllib.request.urlopen(url, timeout=timeout(5)) as resp:
            spec = json.loads(resp.read())
    assert spec["openapi"].startswith("3.")
    assert {"/v1/audio/transcriptions", "/v1/audio/translations", "/v1/models"} <= set(
        spec["paths"]
    )
    post = spec["paths"]["/v1/audio/transcriptions"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    accepted = rest._FIELDS - {"timestamp_granularities"}  # the [] spelling is documented
    assert set(form["properties"]) == accepted
    assert form["properties"]["response_format"]["enum"] == list(rest.FORMATS)
