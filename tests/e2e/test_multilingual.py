"""Translation and language detection with a real multilingual model, where one is installed.

The embedded model (tiny.en) is English-only, and this machine cannot download another: set
``WHISPER_STREAMING_MULTILINGUAL_MODEL`` to a multilingual CTranslate2 model directory (such as
faster-whisper's ``tiny``) to run these.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import JFK, wer
from tests.integration.conftest import open_session, receive_all, running_server, send_audio
from tests.integration.test_json_protocol import json_session, pcm16, send_chunks, until
from whisper_streaming import ProcessorOptions, load_backend
from whisper_streaming.audio import decode_file

MODEL = os.environ.get("WHISPER_STREAMING_MULTILINGUAL_MODEL")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not MODEL,
        reason="needs a multilingual model: WHISPER_STREAMING_MULTILINGUAL_MODEL=DIR "
        "(the embedded tiny.en is English-only)",
    ),
]


def test_both_protocols_translate_and_report_the_detected_language(testdata: Path) -> None:
    """English speech asked to be translated (to English) comes back as English text, with the
    detected language and its probability, and no warning, in both protocols."""
    backend = load_backend("faster_whisper", model=MODEL, device="cpu")
    audio = decode_file(testdata / "jfk" / "jfk.flac")
    silence = np.zeros(16000, np.float32)
    with running_server(backend, processor=ProcessorOptions(), quiet_flush_s=1.5) as srv:
        ws, _ = json_session(srv.url)
        ws.send(json.dumps({"type": "start_recording", "config": {"task": "translate"}}))
        send_chunks(ws, pcm16(np.concatenate([audio, silence])))
        ws.send(json.dumps({"type": "stop_recording"}))
        messages = until(ws, "stopped")
        ws.close()
        ws, _ = open_session(srv.url, task="translate", use_vad=True)
        send_audio(ws, np.concatenate([audio, silence]).tobytes())
        ws.send(b"END_OF_AUDIO")
        wl_messages = receive_all(ws, 120)
    text = " ".join(m["text"] for m in messages if m["type"] == "transcription")
    languages = [m for m in messages if m["type"] == "language"]
    assert languages and languages[0]["language"] == "en" and languages[0]["probability"] > 0.5
    assert not [m for m in messages if m["type"] == "warning"]
    assert wer([JFK], [text]) <= 0.3, text
    wl_languages = [m for m in wl_messages if "language" in m]
    assert wl_languages and wl_languages[0]["language"] == "en"
    assert not [m for m in wl_messages if m.get("status") == "WARNING"]
