"""API keys on all three endpoints (WhisperLive and JSON WebSockets, REST), and TLS end to end."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from tests.conftest import timeout
from tests.integration.conftest import (
    expected_text,
    final_text,
    receive_all,
    run_stock_client,
    running_server,
    send_audio,
    tone_bytes,
)
from tests.integration.test_rest import post_form, wav_bytes
from whisper_streaming.client import TranscriptionClient
from whisper_streaming.server.auth import ApiKeys, Verdict, read_keys_file

KEYS = ("key-one", "key-two")


def whisperlive_stream(url: str, headers: dict[str, str] | None = None) -> str:
    """A whole WhisperLive stream of a 2 s tone: its final text."""
    with connect(url, additional_headers=headers, open_timeout=timeout(10)) as ws:
        ws.send(json.dumps({"uid": "auth", "use_vad": False}))
        assert json.loads(ws.recv(timeout(10)))["message"] == "SERVER_READY"
        send_audio(ws, tone_bytes(2.0))
        ws.send(b"END_OF_AUDIO")
        return final_text(receive_all(ws))


def refused_status(url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=headers, open_timeout=timeout(10)).__enter__()
    return int(refused.value.response.status_code)


def test_api_key_rules() -> None:
    keys = ApiKeys(KEYS)
    assert keys.check("Bearer key-two", None) is Verdict.OK
    assert keys.check(None, "key-one") is Verdict.OK
    assert keys.check("bearer key-one", "wrong") is Verdict.OK  # the header wins
    assert keys.check(None, None) is Verdict.MISSING
    assert keys.check("Basic a2V5LW9uZQ==", None) is Verdict.MISSING
    assert keys.check("Bearer key-on", None) is Verdict.WRONG
    assert keys.check(None, "key-one ") is Verdict.WRONG
    assert ApiKeys().check(None, None) is Verdict.OK


def test_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# team keys\nkey-one\n\n  key-two  \n")
    assert read_keys_file(str(path)) == ["key-one", "key-two"]
    path.write_text("# none\n")
    with pytest.raises(Exception, match="holds no key"):
        read_keys_file(str(path))


def test_websockets_need_a_key() -> None:
    """Both WebSocket paths: no key 401, a wrong key 403 (before the upgrade: no audio is
    taken), the key as a Bearer header or as ?token= streams; a browser (it sends an Origin,
    and cannot read a refused upgrade's status) is told in a close frame instead."""
    with running_server(api_keys=KEYS) as srv:
        base = f"ws://127.0.0.1:{srv.port}"
        for path in ("/", "/ws/transcribe"):
            assert refused_status(base + path) == 401
            assert refused_status(base + path, {"Authorization": "Bearer nope"}) == 403
            assert refused_status(base + path + "?token=nope") == 403
        assert whisperlive_stream(base + "/", {"Authorization": "Bearer key-two"}) == (
            expected_text(2.0)
        )
        assert whisperlive_stream(base + "/?token=key-one") == expected_text(2.0)
        with connect(base + "/ws/transcribe?token=key-one", open_timeout=timeout(10)) as ws:
            assert json.loads(ws.recv(timeout(10)))["type"] == "ready"
        with connect(
            base + "/ws/transcribe", origin="http://localhost:8000", open_timeout=timeout(10)
        ) as ws:
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout(10))
            assert ws.close_code == 1008 and "API key" in (ws.close_reason or "")
        # The key never reaches the log: uvicorn's access lines (with the query) are off.
        assert srv.server.api_keys.enabled


def test_open_whisperlive_leaves_only_that_path_open() -> None:
    with running_server(api_keys=KEYS, open_whisperlive=True) as srv:
        base = f"ws://127.0.0.1:{srv.port}"
        assert whisperlive_stream(base + "/") == expected_text(2.0)
        assert refused_status(base + "/ws/transcribe") == 401


def test_rest_needs_a_key() -> None:
    """REST: 401 without a key, 403 with a wrong one (OpenAI's error shape), the official
    client with the key works; /health stays open for load balancers."""
    import openai

    with running_server(api_keys=KEYS) as srv:
        status, headers, body = post_form(
            srv.port, "/v1/audio/transcriptions", {"model": "tiny.en"}, wav_bytes(2.0)
        )
        assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
        assert headers.get("WWW-Authenticate") == "Bearer"
        base_url = f"http://127.0.0.1:{srv.port}/v1"
        with openai.OpenAI(base_url=base_url, api_key="nope") as api:
            with pytest.raises(openai.PermissionDeniedError):
                api.models.list()
        with openai.OpenAI(base_url=base_url, api_key="key-one") as api:
            result = api.audio.transcriptions.create(
                model="tiny.en", file=("a.wav", wav_bytes(2.0))
            )
        assert result.text.strip() == expected_text(2.0)
        url = f"http://127.0.0.1:{srv.port}/health"
        with urllib.request.urlopen(url, timeout=timeout(5)) as resp:
            assert resp.status == 200


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """A throwaway CA and a certificate it signed for 127.0.0.1: (cert, key, CA) PEM files."""
    import trustme

    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = (folder / "cert.pem", folder / "key.pem", folder / "ca.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(str(paths[0]))
    cert.private_key_pem.write_to_path(str(paths[1]))
    ca.cert_pem.write_to_path(str(paths[2]))
    return str(paths[0]), str(paths[1]), str(paths[2])


def test_tls_end_to_end(tls_files: tuple[str, str, str], tmp_path: Path) -> None:
    """With a certificate: the Python client transcribes over wss:// trusting the test's CA,
    https:// serves /health on the same port, and a client that does not trust the CA (or
    speaks plain ws://) does not get in."""
    cert, key, ca = tls_files
    audio = tmp_path / "tone.wav"
    audio.write_bytes(wav_bytes(2.0))
    with running_server(tls=(cert, key)) as srv:
        client = TranscriptionClient(
            "127.0.0.1", srv.port, use_vad=False, ca_file=ca, fast=True, show=None
        )
        assert client.url.startswith("wss://")
        segments = client(str(audio))
        assert " ".join(s["text"].strip() for s in segments) == expected_text(2.0)
        context = ssl.create_default_context(cafile=ca)
        url = f"https://127.0.0.1:{srv.port}/health"
        with urllib.request.urlopen(url, timeout=timeout(5), context=context) as resp:
            assert json.loads(resp.read())["status"] == "ok"
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=timeout(5))  # the system does not trust it
        with pytest.raises(InvalidHandshake):
            connect(f"ws://127.0.0.1:{srv.port}/", open_timeout=timeout(5)).__enter__()


def test_stock_whisperlive_client_can_send_a_key_through_its_port(tmp_path: Path) -> None:
    """The unmodified whisper_live 0.10 client cannot set headers, but it builds its URL as
    ``ws://{host}:{port}``, so ``port="PORT/?token=KEY"`` sends the key (docs/deployment.md)."""
    audio = tmp_path / "tone.wav"
    audio.write_bytes(wav_bytes(3.0))
    with running_server(api_keys=KEYS) as srv:
        proc = run_stock_client(f"{srv.port}/?token=key-two", audio, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Server Ready!" in proc.stdout
    assert expected_text(3.0) in proc.stdout  # its live display
