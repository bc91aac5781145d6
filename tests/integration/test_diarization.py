"""Speaker labels, translation and language over both protocols (scripted backend and encoder).

The scripted encoder hears a tone's frequency as its voice: 4 s at 200 Hz, then 4 s at 650 Hz
are two speakers talking in turn; the scripted backend hears its timeline of words.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import write_wav
from tests.integration.conftest import (
    TIMELINE,
    english_backend,
    expected_text,
    open_session,
    receive_all,
    run_stock_client,
    running_server,
    send_audio,
)
from tests.integration.test_json_protocol import json_session, pcm16, send_chunks, until
from whisper_streaming import ScriptedBackend, Transcription
from whisper_streaming.backends.base import InferenceRequest
from whisper_streaming.speakers import ScriptedEncoder

TURN_S = 4.0
DIARIZING: set[str] = set()  # servers started with diarization


def two_voices(turn_s: float = TURN_S) -> np.ndarray:
    t = np.arange(int(turn_s * 16000)) / 16000
    return np.concatenate(
        [(0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (200.0, 650.0)]
    )


def _json_recording(url: str, **config: Any) -> list[dict[str, Any]]:
    ws, ready = json_session(url)
    assert ready["diarization"] is (url in DIARIZING)
    ws.send(json.dumps({"type": "start_recording", "config": config}))
    send_chunks(ws, pcm16(two_voices()))
    ws.send(json.dumps({"type": "stop_recording"}))
    messages = until(ws, "stopped")
    ws.close()
    return messages


def test_the_stock_whisperlive_client_ignores_the_speaker_field(tmp_path: Path) -> None:
    """The unmodified whisper_live 0.10 client on a diarizing server (its segments carry
    ``speaker``): it connects, shows the text and ends as usual."""
    audio = write_wav(tmp_path / "two-voices.wav", two_voices(2.5))
    with running_server(encoder=ScriptedEncoder(noise=0.1), diarization=True) as srv:
        proc = run_stock_client(srv.port, audio, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Server Ready!" in proc.stdout
    assert expected_text(2.0) in proc.stdout  # its live display


def test_json_transcriptions_carry_the_speaker_and_split_where_it_changes() -> None:
    with running_server(encoder=ScriptedEncoder(noise=0.1), diarization=True) as srv:
        DIARIZING.add(srv.url)
        messages = _json_recording(srv.url)
        opted_out = _json_recording(srv.url, diarization=False)
    finals = [m for m in messages if m["type"] == "transcription"]
    assert finals and all("speaker" in m for m in finals)
    for m in finals:
        assert {w["speaker"] for w in m["words"]} == {m["speaker"]}
        # Each transcription lies inside its speaker's turn (a word may straddle the change).
        middle = (m["start"] + m["end"]) / 2
        assert m["speaker"] == (1 if middle < TURN_S else 2) or abs(middle - TURN_S) < 1.0, m
    assert [m["speaker"] for m in finals] == sorted(m["speaker"] for m in finals)
    assert {m["speaker"] for m in finals} == {1, 2}
    changes = [m for m in finals if m["speaker"] == 2]
    assert abs(changes[0]["start"] - TURN_S) < 1.0, changes[0]
    plain = [m for m in opted_out if m["type"] == "transcription"]
    assert plain and not any("speaker" in m or "speaker" in m["words"][0] for m in plain)
    assert " ".join(m["text"] for m in plain) == " ".join(m["text"] for m in finals)


def test_whisperlive_segments_carry_the_speaker() -> None:
    audio = two_voices().tobytes()
    with running_server(encoder=ScriptedEncoder(noise=0.1), diarization=True) as srv:
        ws, ready = open_session(srv.url, word_timestamps=True)
        assert ready["message"] == "SERVER_READY"
        send_audio(ws, audio)
        ws.send(b"END_OF_AUDIO")
        messages = receive_all(ws)
        ws, _ = open_session(srv.url, enable_diarization=False)
        send_audio(ws, audio)
        ws.send(b"END_OF_AUDIO")
        opted_out = receive_all(ws)
    last = [m for m in messages if "segments" in m][-1]["segments"]
    assert {s["speaker"] for s in last} == {1, 2}
    for seg in last:
        assert {w["speaker"] for w in seg["words"]} == {seg["speaker"]}
    assert not any("speaker" in s for m in opted_out for s in m.get("segments", []))


@pytest.mark.parametrize("protocol", ["json", "whisperlive"])
def test_asking_for_what_the_server_lacks_gets_a_warning_not_silence(protocol: str) -> None:
    """An English-only model asked to translate, or to use another language, and speaker labels
    on a server without them: a warning for each, then the session goes on (transcribing)."""
    with running_server(english_backend()) as srv:
        if protocol == "json":
            messages = _json_recording(srv.url, task="translate", language="de", diarization=True)
            warnings = {m["code"]: m["message"] for m in messages if m["type"] == "warning"}
            assert set(warnings) == {
                "translation_unavailable",
                "language_unavailable",
                "diarization_unavailable",
            }
            assert any(m["type"] == "transcription" for m in messages)
            assert not any("speaker" in m for m in messages)
            texts = list(warnings.values())
        else:
            ws, first = open_session(
                srv.url, task="translate", language="de", enable_diarization=True
            )
            messages = [first, *receive_until_ready(ws)]
            texts = [m["message"] for m in messages if m.get("status") == "WARNING"]
            ws.close()
    assert len(texts) == 3, texts
    assert any("cannot translate" in t for t in texts)
    assert any("'de'" in t for t in texts)
    assert any("--diarization" in t for t in texts)


def receive_until_ready(ws: Any) -> list[dict[str, Any]]:
    out = []
    while True:
        message = json.loads(ws.recv(10))
        out.append(message)
        if message.get("message") == "SERVER_READY":
            return out


def test_diarization_without_the_encoder_fails_at_startup_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from whisper_streaming.exceptions import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "resemblyzer" else real(name)
    )
    with pytest.raises(ConfigError, match=r"whisper-streaming\[diarization\]"):
        with running_server(diarization=True):
            pass


def _german_backend() -> ScriptedBackend:
    """A multilingual scripted model that detects German (p = 0.93) when no language is set."""

    def respond(request: InferenceRequest) -> Transcription:
        heard = ScriptedBackend.hear(request, TIMELINE)
        language = request.language or "de"
        return dataclasses.replace(heard, language=language, language_probability=0.93)

    return ScriptedBackend(responder=respond, model_name="small")


@pytest.mark.parametrize("protocol", ["json", "whisperlive"])
def test_translation_reaches_a_multilingual_model_and_the_detected_language_is_reported(
    protocol: str,
) -> None:
    backend = _german_backend()
    with running_server(backend) as srv:
        if protocol == "json":
            messages = _json_recording(srv.url, task="translate")
            languages = [
                (m["language"], m["probability"]) for m in messages if m["type"] == "language"
            ]
            warnings = [m for m in messages if m["type"] == "warning"]
        else:
            ws, _ = open_session(srv.url, task="translate", language=None)
            send_audio(ws, two_voices().tobytes())
            ws.send(b"END_OF_AUDIO")
            messages = receive_all(ws)
            languages = [(m["language"], m["language_prob"]) for m in messages if "language" in m]
            warnings = [m for m in messages if m.get("status") == "WARNING"]
    assert languages == [("de", 0.93)], messages
    assert not warnings, warnings
    asked = list(backend.requests)[1:]  # after the warm-up decode
    assert asked and all(r.task == "translate" and r.language is None for r in asked)
