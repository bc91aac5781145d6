"""The typed JSON protocol at /ws/transcribe, and the HTTP endpoints, on a real server."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

import whisper_streaming
from tests.conftest import timeout
from tests.integration.conftest import (
    expected_text,
    final_text,
    open_session,
    raw_http,
    receive_all,
    running_server,
    send_audio,
    timeline_backend,
    tone_bytes,
    ws_connect,
)
from whisper_streaming.audio import read_wav, resample
from whisper_streaming.exceptions import ConfigError


def tone(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def pcm16(samples: np.ndarray) -> bytes:
    return (samples * 32767).astype("<i2").tobytes()


SCHEMAS = Path(whisper_streaming.__file__).parent / "server" / "protocols" / "schemas"


def validated(raw: str | bytes) -> dict[str, Any]:
    """A server message, checked against the protocol's published JSON Schema."""
    import jsonschema

    message: dict[str, Any] = json.loads(raw)
    schema = json.loads((SCHEMAS / "json-v1-server.json").read_text())
    jsonschema.validate(message, schema)
    return message


def json_session(url: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = ws_connect(url.rstrip("/") + "/ws/transcribe")
    return ws, validated(ws.recv(timeout(10)))


def until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """Messages up to and including the first one of type ``kind``, each one validated."""
    out = []
    while True:
        message = validated(ws.recv(timeout(20)))
        out.append(message)
        if message["type"] == kind:
            return out


def send_chunks(ws: ClientConnection, data: bytes, chunk: int = 3200) -> None:
    for i in range(0, len(data), chunk):
        ws.send(data[i : i + chunk])


def test_recording_messages_and_a_second_recording() -> None:
    """ready, partial, transcription (words, confidence, timing), stopped; then record again."""
    with running_server() as srv:
        ws, ready = json_session(srv.url)
        assert ready["type"] == "ready" and ready["sample_rate"] == 16000
        assert set(ready) == {
            "type",
            "session_id",
            "backend",
            "model",
            "sample_rate",
            "diarization",
        }
        assert ready["diarization"] is False
        for _ in range(2):
            ws.send(json.dumps({"type": "start_recording", "config": {"encoding": "pcm_s16le"}}))
            send_chunks(ws, pcm16(tone(3.0)))
            messages = until(ws, "partial")
            ws.send(json.dumps({"type": "stop_recording"}))
            messages += until(ws, "stopped")
            finals = [m for m in messages if m["type"] == "transcription"]
            assert " ".join(m["text"] for m in finals) == expected_text(3.0)
            for m in finals:
                assert m["is_final"] is True and isinstance(m["start"], float)
                assert set(m) >= {"segment_id", "words", "confidence", "processing_time_ms"}
                assert set(m["words"][0]) == {"word", "start", "end", "probability"}
            ids = [m["segment_id"] for m in finals]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            partials = [m for m in messages if m["type"] == "partial"]
            assert set(partials[0]) == {"type", "text", "start", "end"} and partials[0]["text"]
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout(5))) == {"type": "pong"}
        ws.close()


def test_a_recording_prompt_conditions_its_decodes() -> None:
    """config.prompt is the text before the recording: the model is prompted with it."""
    backend = timeline_backend()
    with running_server(backend) as srv:
        ws, _ = json_session(srv.url)
        config = {"encoding": "pcm_s16le", "prompt": "Dr. Quickly's foxes."}
        ws.send(json.dumps({"type": "start_recording", "config": config}))
        send_chunks(ws, pcm16(tone(1.0)))
        ws.send(json.dumps({"type": "stop_recording"}))
        until(ws, "stopped")
        ws.close()
    prompts = [r.prompt for r in backend.requests if r.request_id > 0]  # not the warm-up
    assert prompts and prompts[0] == "Dr. Quickly's foxes."


def test_audio_right_after_stop_recording_is_not_an_error() -> None:
    """A worklet's last buffers, sent just after stop_recording, are ignored: no error, no
    strike toward the bad-frame budget; audio long after the stop is still an error."""
    with running_server(max_bad_frames=3) as srv:
        ws, _ = json_session(srv.url)
        ws.send(json.dumps({"type": "start_recording", "config": {"encoding": "pcm_s16le"}}))
        send_chunks(ws, pcm16(tone(2.0)))
        ws.send(json.dumps({"type": "stop_recording"}))
        for _ in range(5):  # more than the budget
            ws.send(pcm16(tone(0.1)))
        messages = until(ws, "stopped")
        assert not [m for m in messages if m["type"] == "error"], messages
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout(5))) == {"type": "pong"}
        time.sleep(1.2)
        ws.send(pcm16(tone(0.1)))
        assert json.loads(ws.recv(timeout(5)))["code"] == "not_started"
        ws.close()


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_other_sample_rates_are_resampled(rate: int) -> None:
    """float32 audio at 8 to 48 kHz is resampled to 16 kHz on the server."""
    with running_server() as srv:
        ws, _ = json_session(srv.url)
        ws.send(
            json.dumps(
                {
                    "type": "start_recording",
                    "config": {"sample_rate": rate, "encoding": "float32le"},
                }
            )
        )
        send_chunks(ws, tone(3.2, rate).astype("<f4").tobytes(), chunk=rate // 10 * 4)
        ws.send(json.dumps({"type": "stop_recording"}))
        finals = [m for m in until(ws, "stopped") if m["type"] == "transcription"]
        assert " ".join(m["text"] for m in finals) == expected_text(3.2)
        ws.close()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "bad_message"),
        (json.dumps({"type": "dance"}), "bad_message"),
        (json.dumps([1, 2]), "bad_message"),
        (json.dumps({"type": "stop_recording"}), "not_started"),
        (b"\x00\x01" * 10, "not_started"),
        (
            json.dumps({"type": "start_recording", "config": {"sample_rate": 96000}}),
            "unsupported_rate",
        ),
        (json.dumps({"type": "start_recording", "config": {"encoding": "mp3"}}), "bad_config"),
        (json.dumps({"type": "start_recording", "config": {"prompt": 7}}), "bad_config"),
        # Hostile input: each used to end the handler with a traceback and leave the client
        # without an answer.
        ('{"type": "start_recording", "config": ' + "[" * 5000 + "]" * 5000 + "}", "bad_message"),
        (
            '{"type": "start_recording", "config": {"sample_rate": 1' + "0" * 5000 + "}}",
            "bad_message",
        ),
        (json.dumps({"type": "ping", "pad": "x" * 70_000}), "bad_message"),
        (json.dumps({"type": "x\n[forged] log line" * 1000}), "bad_message"),
    ],
)
def test_bad_input_gets_a_typed_error(message: str | bytes, code: str) -> None:
    """Each bad input gets an error with its code; the connection stays usable."""
    with running_server() as srv:
        ws, _ = json_session(srv.url)
        ws.send(message)
        reply = json.loads(ws.recv(timeout(5)))
        assert reply["type"] == "error" and reply["code"] == code and reply["message"]
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout(5))) == {"type": "pong"}
        ws.close()


@pytest.mark.parametrize(
    "audio",
    [
        b"\x01\x02\x03",
        np.array([np.nan, 0.0], "<f4").tobytes(),
        np.array([np.inf, 0.0], "<f4").tobytes(),
    ],
)
def test_bad_audio_gets_bad_audio(audio: bytes) -> None:
    """Odd PCM16 byte counts and NaN / inf floats are refused with bad_audio."""
    encoding = "pcm_s16le" if len(audio) % 2 else "float32le"
    with running_server() as srv:
        ws, _ = json_session(srv.url)
        ws.send(json.dumps({"type": "start_recording", "config": {"encoding": encoding}}))
        ws.send(audio)
        reply = json.loads(ws.recv(timeout(5)))
        assert reply["type"] == "error" and reply["code"] == "bad_audio"
        ws.close()


def test_full_server_answers_wait_status() -> None:
    """Over max_clients a JSON client gets a wait status and a close."""
    with running_server(max_clients=1) as srv:
        first, _ = json_session(srv.url)
        second, reply = json_session(srv.url)
        assert reply["type"] == "status" and reply["status"] == "wait"
        assert isinstance(reply["estimated_wait_minutes"], float)
        with pytest.raises(ConnectionClosed):
            second.recv(timeout(5))
        first.close()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout(5)) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, "", b""


def test_health_metrics_and_static_files(tmp_path: Any) -> None:
    """/health fields, Prometheus /metrics that move after a session, static files and traversal."""
    from prometheus_client.parser import text_string_to_metric_families

    with running_server() as srv:
        base = f"http://127.0.0.1:{srv.port}"
        status, ctype, body = _get(base + "/health")
        health = json.loads(body)
        assert status == 200 and ctype.startswith("application/json")
        assert set(health) >= {
            "status",
            "websocket_enabled",
            "active_connections",
            "max_clients",
            "backend",
            "model",
            "model_loaded",
            "gpu_available",
            "uptime_s",
        }

        def metric(name: str, text: str) -> float:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == name:
                        return float(sample.value)
            return 0.0

        before = _get(base + "/metrics")[2].decode()
        ws, _ = json_session(srv.url)
        ws.send(json.dumps({"type": "start_recording"}))
        send_chunks(ws, pcm16(tone(2.0)))
        ws.send(json.dumps({"type": "stop_recording"}))
        until(ws, "stopped")
        ws.send("garbage")
        ws.recv(timeout(5))
        ws.close()
        time.sleep(0.3)  # the event-loop lag probe observes every 250 ms
        status, ctype, body = _get(base + "/metrics")
        after = body.decode()
        assert status == 200 and ctype.startswith("text/plain")
        assert (
            metric("whisper_streaming_sessions_total", after)
            == metric("whisper_streaming_sessions_total", before) + 1
        )
        assert metric("whisper_streaming_audio_seconds_total", after) == pytest.approx(2.0)
        assert metric("whisper_streaming_inference_seconds_total", after) > 0
        assert metric("whisper_streaming_queue_wait_seconds_count", after) > 0
        assert metric("whisper_streaming_update_latency_seconds_count", after) > 0
        assert 'whisper_streaming_decode_seconds_count{kind="hypothesis"}' in after
        assert 'whisper_streaming_decode_seconds_count{kind="utterance_end"}' in after
        assert metric("whisper_streaming_lag_seconds_count", after) > 0
        assert metric("whisper_streaming_event_loop_lag_seconds_count", after) > 0
        assert "whisper_streaming_errors_total" in after and 'code="bad_message"' in after

        static = tmp_path / "static"
        static.mkdir()
        (static / "index.html").write_text("<h1>hi</h1>")
        (static / "app.js").write_text("console.log(1)")
        srv.server.static_dir = static
        assert _get(base + "/static/index.html")[:2] == (200, "text/html; charset=utf-8")
        assert "javascript" in _get(base + "/static/app.js")[1]
        for bad in (
            "/static/../pyproject.toml",
            "/static/%2e%2e/pyproject.toml",
            "/static/..%2fpyproject.toml",
            "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
            "/static/",
            "/static/missing.css",
        ):
            assert _get(base + bad)[0] == 404, bad
        # A browser opening "/" is sent to the demo page.
        assert _get(base + "/")[2] == b"<h1>hi</h1>"


def _opens(url: str, origin: str | None) -> bool:
    """Whether a WebSocket with this Origin header is accepted; 403 otherwise."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        ws = connect(
            url,
            origin=origin,
            open_timeout=timeout(5),  # type: ignore[arg-type]
        ).__enter__()
    except InvalidStatus as exc:
        assert exc.response.status_code == 403
        return False
    assert json.loads(ws.recv(timeout(5)))["type"] == "ready"
    ws.close()
    return True


def _rebinding_opens(port: int) -> bool:
    """A DNS rebinding page: the attacker's name (resolving to this server) in both the Host
    and the Origin header of the upgrade request."""
    name = f"evil.example:{port}"
    request = (
        f"GET /ws/transcribe HTTP/1.1\r\nHost: {name}\r\nOrigin: http://{name}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()
    status, _ = raw_http(port, request)
    assert status in (101, 403), status
    return status == 101


def test_origins_by_default() -> None:
    """By default: non-browser clients, pages on localhost and the server's own page reached by
    IP address connect; other sites, and a DNS rebinding page (its name in both Origin and
    Host), are refused with 403."""
    with running_server() as srv:
        url = srv.url.rstrip("/") + "/ws/transcribe"
        assert _opens(url, None)
        assert _opens(url, "http://localhost:3000") and _opens(url, "http://[::1]:8080")
        assert _opens(url, f"http://127.0.0.1:{srv.port}")
        assert not _opens(url, "https://evil.example")
        assert not _rebinding_opens(srv.port)
        assert not _opens(url, "http://[::1")  # malformed: refused, not a 500


def test_origin_allow_list() -> None:
    """With allowed_origins, listed origins connect too; '*' lets every origin in."""
    with running_server(allowed_origins=("https://app.example",)) as srv:
        url = srv.url.rstrip("/") + "/ws/transcribe"
        assert not _opens(url, "https://evil.example")
        assert _opens(url, "https://app.example")
        assert _opens(url, f"http://127.0.0.1:{srv.port}")
        assert not _rebinding_opens(srv.port)
    with running_server(allowed_origins=("*",)) as srv:
        assert _opens(srv.url.rstrip("/") + "/ws/transcribe", "https://anywhere.example")


def test_demo_page_and_simple_client_are_served() -> None:
    """The packaged demo page, its scripts and the minimal example page are served."""
    with running_server() as srv:
        base = f"http://127.0.0.1:{srv.port}"
        status, ctype, body = _get(base + "/")
        assert status == 200 and b"AudioWorklet" not in body and b"app.js" in body
        for name, kind in (
            ("app.js", "javascript"),
            ("pcm-worklet.js", "javascript"),
            ("style.css", "text/css"),
        ):
            status, ctype, _ = _get(f"{base}/static/{name}")
            assert status == 200 and kind in ctype, name
        status, ctype, body = _get(base + "/examples/simple-client.html")
        assert status == 200 and b"/ws/transcribe" in body


def test_save_audio_writes_what_the_model_received(tmp_path: Any) -> None:
    """--save-audio: one 16 kHz WAV per recording (JSON, after resampling) and per WhisperLive
    session, holding exactly the audio the processor got; the page learns its session id."""
    folder = tmp_path / "heard"
    source = tone(2.0, 48000)
    with running_server(save_audio_dir=str(folder)) as srv:
        ws, ready = json_session(srv.url)
        for _ in range(2):
            ws.send(
                json.dumps(
                    {
                        "type": "start_recording",
                        "config": {"sample_rate": 48000, "encoding": "float32le"},
                    }
                )
            )
            send_chunks(ws, source.astype("<f4").tobytes(), chunk=4800 * 4)
            ws.send(json.dumps({"type": "stop_recording"}))
            until(ws, "stopped")
        ws.close()
        wl, _ = open_session(srv.url, uid="a/b c")
        send_audio(wl, tone_bytes(1.5))
        wl.send(b"END_OF_AUDIO")
        receive_all(wl)
    files = sorted(folder.glob("*.wav"))
    names = sorted(f.name.split("-", 2)[2] for f in files)  # after the date and time
    sid = ready["session_id"]
    assert names[1:] == [f"{sid}.1.wav", f"{sid}.2.wav"]
    assert re.fullmatch(r"a_b_c-\d+\.wav", names[0])  # the uid, made safe for a file name
    wl_file = next(f for f in files if "a_b_c" in f.name)
    heard, rate = read_wav(wl_file)
    assert rate == 16000
    np.testing.assert_array_equal(heard, np.frombuffer(tone_bytes(1.5), "<f4"))
    for f in files:
        if f != wl_file:
            heard, _ = read_wav(f)
            np.testing.assert_allclose(heard, resample(source, 48000), atol=1e-6)


def test_save_audio_to_an_unusable_folder_is_a_clear_error(tmp_path: Any) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create the folder to save audio in"):
        with running_server(save_audio_dir=str(tmp_path / "file" / "heard")):
            pass


def test_session_goes_on_when_its_audio_cannot_be_saved(tmp_path: Any) -> None:
    """A folder that vanished after start-up: logged, and the session is transcribed anyway."""
    folder = tmp_path / "heard"
    with running_server(save_audio_dir=str(folder)) as srv:
        folder.rmdir()
        ws, _ = open_session(srv.url)
        send_audio(ws, tone_bytes(2.0))
        ws.send(b"END_OF_AUDIO")
        assert final_text(receive_all(ws)) == expected_text(2.0)
    assert not folder.exists()


def test_the_client_schema_matches_what_the_server_accepts() -> None:
    """The published client schema's choices are the parser's, and its examples parse."""
    import jsonschema

    from whisper_streaming.server.protocols import json_v1 as jp

    schema = json.loads((SCHEMAS / "json-v1-client.json").read_text())
    start = schema["oneOf"][0]["properties"]["config"]["properties"]
    assert start["encoding"]["enum"] == list(jp.ENCODINGS)
    assert (start["sample_rate"]["minimum"], start["sample_rate"]["maximum"]) == (
        jp.MIN_SAMPLE_RATE,
        jp.MAX_SAMPLE_RATE,
    )
    assert start["prompt"]["maxLength"] == jp.MAX_PROMPT_CHARS
    config = {"sample_rate": 48000, "encoding": "float32le", "language": "en", "prompt": "Hi."}
    for message in ({"type": "start_recording", "config": config}, {"type": "ping"}):
        jsonschema.validate(message, schema)
        jp.parse(json.dumps(message))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "start_recording", "config": {"encoding": "mp3"}}, schema)
