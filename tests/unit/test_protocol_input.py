"""Client input that reaches error messages and log lines: parsed safely, shown safely."""

from __future__ import annotations

import pytest

from whisper_streaming.exceptions import ProtocolError
from whisper_streaming.server.context import ServerContext
from whisper_streaming.server.protocols import json_v1, load_object, printable, shown, whisperlive
from whisper_streaming.server.websocket_server import origin_allowed


def test_printable_escapes_control_characters_and_cuts() -> None:
    assert printable("a\nb\r\x1b[31mc") == "a\\nb\\r\\x1b[31mc"
    assert printable("é ü 中") == "é ü 中"
    assert printable("x" * 500, 10) == "x" * 9 + "…"
    assert shown(["a\n"]) == "['a\\n']"


def test_a_session_id_cannot_forge_a_log_line() -> None:
    session_id = ServerContext.new_session_id("uid\n2026-01-01 INFO [admin] forged")
    assert "\n" not in session_id and "\\n" in session_id


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"n": 1' + "0" * 5000 + "}", "not valid JSON"),
        ("x" * 70_000, "too long"),
        ("[1, 2]", "JSON object"),
        ("\udcff", "not valid JSON"),
        ('{"uid": "\\udcff"}', "lone surrogate"),  # valid JSON, but echoing it back would fail
    ],
)
def test_hostile_json_is_a_protocol_error(raw: str, needle: str) -> None:
    with pytest.raises(ProtocolError, match=needle):
        load_object(raw, "message")
    with pytest.raises(ProtocolError):
        json_v1.parse(raw)
    with pytest.raises(ProtocolError):
        whisperlive.parse_config(raw)


def test_reflected_values_are_short_and_printable() -> None:
    with pytest.raises(ProtocolError) as info:
        json_v1.parse('{"type": "start_recording", "config": {"encoding": "' + "\\n" * 900 + '"}}')
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "public", "ok"),
    [
        (None, "x:9090", (), False, True),  # not a browser
        ("http://localhost:3000", "localhost:9090", (), False, True),
        ("http://127.0.0.1:9090", "127.0.0.1:9090", (), False, True),
        ("http://10.0.0.5:9090", "10.0.0.5:9090", (), True, True),  # own page, by IP
        ("http://gpu-box:9090", "gpu-box:9090", (), True, True),  # own page, public server
        ("http://evil.example:9090", "evil.example:9090", (), False, False),  # DNS rebinding
        ("http://evil.example:9090", "evil.example:9090", ("https://app.x",), False, False),
        ("https://evil.example", "gpu-box:9090", (), True, False),  # another site
        ("https://app.x", "gpu-box:9090", ("https://app.x",), True, True),
        ("https://any.example", "gpu-box:9090", ("*",), False, True),
        ("http://[::1", "x", (), True, False),  # malformed
    ],
)
def test_origin_policy(
    origin: str | None, host: str, allowed: tuple[str, ...], public: bool, ok: bool
) -> None:
    assert origin_allowed(origin, host, allowed, public=public) is ok
