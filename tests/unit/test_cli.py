"""The command line: flags checked before anything loads."""

from __future__ import annotations

from typing import Any

import pytest


def test_serve_refuses_a_batch_size_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --batch-size stops the CLI before anything loads, with the flag named."""
    from whisper_streaming.cli import serve_main

    with pytest.raises(SystemExit) as exit_info:
        serve_main(["--backend", "scripted", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err


def _served(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> dict[str, object]:
    """What ``serve`` would run with (the server is built, not started)."""
    from whisper_streaming.cli import serve_main
    from whisper_streaming.server.websocket_server import WhisperStreamingServer

    seen: dict[str, object] = {}

    def run(self: WhisperStreamingServer, host: str, port: int) -> None:
        seen.update(host=host, port=port, server=self)

    monkeypatch.setattr(WhisperStreamingServer, "run", run)
    assert serve_main(argv) == 0
    return seen


def test_every_flag_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_STREAMING_PORT", "9191")
    monkeypatch.setenv("WHISPER_STREAMING_HOST", "0.0.0.0")
    monkeypatch.setenv("WHISPER_STREAMING_MAX_CLIENTS", "7")
    monkeypatch.setenv("WHISPER_STREAMING_API_KEY", "k1, k2")
    monkeypatch.setenv("WHISPER_STREAMING_NO_VAD", "true")
    monkeypatch.setenv("WHISPER_STREAMING_COMMIT_POLICY", "agreement")
    seen = _served(monkeypatch, ["--backend", "scripted"])
    server: Any = seen["server"]
    assert (seen["host"], seen["port"]) == ("0.0.0.0", 9191)
    assert server.options.max_clients == 7
    assert server.options.api_keys == ("k1", "k2")
    assert server.processor_options.use_vad is False
    assert server.processor_options.commit_policy == "agreement"
    # The command line wins.
    seen = _served(monkeypatch, ["--backend", "scripted", "--port", "9292", "--use-vad"])
    assert seen["port"] == 9292 and seen["server"].processor_options.use_vad is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WHISPER_STREAMING_PORT", "ninety"),
        ("WHISPER_STREAMING_NO_VAD", "maybe"),
        ("WHISPER_STREAMING_COMMIT_POLICY", "eventually"),
    ],
)
def test_a_bad_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    from whisper_streaming.cli import serve_main

    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        serve_main(["--backend", "scripted"])
    assert exit_info.value.code == 2 and name in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from whisper_streaming import __version__
    from whisper_streaming.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"whisper-streaming {__version__}"


def test_serve_help_groups_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from whisper_streaming.cli import serve_main

    with pytest.raises(SystemExit):
        serve_main(["--help"])
    help_text = capsys.readouterr().out
    ungrouped = help_text.split("\noptions:\n")[1].split("\n\n")[0]
    flags = [line.split()[0] for line in ungrouped.splitlines() if line.startswith("  -")]
    assert flags == ["-h,", "--version"], ungrouped  # every other flag is under a heading
    for title in ("network and limits:", "security:", "model and compute:", "streaming:"):
        assert "\n" + title + "\n" in help_text
    assert "WHISPER_STREAMING_MAX_CLIENTS" in help_text  # the environment variables
