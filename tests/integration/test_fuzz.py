"""Fuzzing both wire protocols with mutated frames, against a real server on loopback.

Every frame is followed by a probe that must be answered within a second (a ping on the JSON
protocol; on the WhisperLive protocol the connection must either answer the next frame or be
closed with a close code), the server must log no traceback, and afterwards it must still
transcribe a real stream. ``WHISPER_STREAMING_FUZZ_FRAMES`` sets the frame count per protocol
(``make stress`` runs 5,000 each; ``make test`` a quick 300).
"""

from __future__ import annotations

import json
import logging
import os
import random
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from tests.conftest import timeout
from tests.integration.conftest import (
    expected_text,
    running_server,
    stream_tone,
    ws_connect,
)

FRAMES = int(os.environ.get("WHISPER_STREAMING_FUZZ_FRAMES", "300"))
# Close codes a server may end a fuzzed connection with: normal, going away, policy, too big.
CLOSE_CODES = {1000, 1001, 1003, 1007, 1008, 1009}

_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    16000,
    2**63,
    10**400,
    1e308,
    -0.0,
    "",
    "en",
    "x" * 300,
    "\n\r\x1b[31m",
    "\udcff",
    [],
    {},
    [[[[[]]]]],
    {"a": {"b": {"c": None}}},
]


def _mutate(message: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy with some keys dropped, retyped or added."""
    out = dict(message)
    for key in list(out):
        roll = rng.random()
        if roll < 0.2:
            del out[key]
        elif roll < 0.6:
            out[key] = rng.choice(_VALUES)
        elif isinstance(out[key], dict):
            out[key] = _mutate(out[key], rng)
    if rng.random() < 0.3:
        out[rng.choice(["extra", "type", "uid", "config", "\x00"])] = rng.choice(_VALUES)
    return out


def _dump(value: Any, rng: random.Random) -> str:
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate can only travel escaped
        text = json.dumps(value)
    roll = rng.random()
    if roll < 0.1:
        return text[: rng.randrange(len(text) + 1)]  # truncated
    if roll < 0.15:
        return "[" * 3000 + "]" * 3000  # nested past the parser's limit
    if roll < 0.2:
        return '{"type": "start_recording", "config": {"sample_rate": 1' + "0" * 6000 + "}}"
    return text


def _frame(rng: random.Random, valid: dict[str, Any]) -> str | bytes:
    """A hostile frame: mutated JSON, garbage text, or binary of odd sizes and contents."""
    roll = rng.random()
    if roll < 0.5:
        return _dump(_mutate(valid, rng), rng)
    if roll < 0.6:
        return rng.choice(["", " ", "null", "not json", "{", "\x00" * 10, "🎤" * 50])
    size = rng.choice([0, 1, 2, 3, 5, 7, 4096, 4097, 32000, 65537])
    if rng.random() < 0.3:
        return b"\xff\xff\xc0\x7f" * (size // 4 + 1)  # NaN samples
    return rng.randbytes(size)


def _ping_answered(ws: ClientConnection) -> bool:
    """Whether the JSON connection is alive: a ping gets its pong within a second (errors for
    the fuzzed frame may come first). False when the server closed it with a known code."""
    try:
        ws.send(json.dumps({"type": "ping"}))
        while True:
            reply = json.loads(ws.recv(timeout(1.0)))
            assert reply["type"] in (
                "pong",
                "error",
                "partial",
                "transcription",
                "stopped",
                "language",
            )
            if reply["type"] == "error":
                assert reply["code"] and reply["message"]
            if reply["type"] == "pong":
                return True
    except ConnectionClosed:
        assert ws.close_code in CLOSE_CODES, ws.close_code
        return False


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [(r.name, r.getMessage()[:200]) for r in bad[:5]]


def test_fuzzing_the_json_protocol(caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(20261207)
    valid = {
        "type": "start_recording",
        "config": {"sample_rate": 16000, "encoding": "pcm_s16le", "language": "en"},
    }
    caplog.set_level(logging.WARNING)
    with running_server(max_clients=2) as srv:
        url = srv.url.rstrip("/") + "/ws/transcribe"
        ws = ws_connect(url)
        assert json.loads(ws.recv(timeout(5)))["type"] == "ready"
        connections = 1
        for _ in range(FRAMES):
            ws.send(_frame(rng, valid if rng.random() < 0.7 else {"type": "stop_recording"}))
            if not _ping_answered(ws):
                ws = ws_connect(url)
                assert json.loads(ws.recv(timeout(5)))["type"] == "ready"
                connections += 1
        ws.close()
        assert srv.wait_for_clients(0) == 0
        assert stream_tone(srv.url, "after-fuzz") == expected_text(2.0)
    _no_tracebacks(caplog)
    assert connections < FRAMES  # the budget of bad frames closes some, not every one


def test_fuzzing_the_whisperlive_protocol(caplog: pytest.LogCaptureFixture) -> None:
    """Mutated configs (answered with SERVER_READY, WARNING or ERROR + close), then hostile
    frames inside a session (answered with ERROR, or a close with a code)."""
    rng = random.Random(7)
    valid = {"uid": "fuzz", "language": "en", "task": "transcribe", "model": "tiny.en"}
    caplog.set_level(logging.WARNING)
    sent = 0
    with running_server(max_clients=2) as srv:
        while sent < FRAMES:
            ws = ws_connect(srv.url)
            ws.send(_dump(_mutate(valid, rng), rng) if rng.random() < 0.5 else json.dumps(valid))
            sent += 1
            try:
                first = json.loads(ws.recv(timeout(1.0)))
            except ConnectionClosed:
                assert ws.close_code in CLOSE_CODES, ws.close_code
                continue
            if first.get("status") == "WARNING":
                first = json.loads(ws.recv(timeout(1.0)))
            if first.get("status") == "ERROR":
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout(1.0))
                assert ws.close_code in CLOSE_CODES
                continue
            assert first["message"] == "SERVER_READY", first
            for _ in range(rng.randrange(1, 15)):
                frame = _frame(rng, valid)
                sent += 1
                try:
                    ws.send(frame)
                    if isinstance(frame, str) or len(frame) % 4:
                        reply = json.loads(ws.recv(timeout(1.0)))  # not audio: an ERROR
                        assert reply.get("status") == "ERROR", reply
                except ConnectionClosed:
                    assert ws.close_code in CLOSE_CODES, (ws.close_code, repr(frame)[:300])
                    break
            ws.close()
        assert srv.wait_for_clients(0) == 0
        assert stream_tone(srv.url, "after-fuzz") == expected_text(2.0)
    _no_tracebacks(caplog)
