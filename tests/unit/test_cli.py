"""The command line: flags checked before anything loads."""

from __future__ import annotations

import pytest


def test_serve_refuses_a_batch_size_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --batch-size stops the CLI before anything loads, with the flag named."""
    from whisper_streaming.cli import serve_main

    with pytest.raises(SystemExit) as exit_info:
        serve_main(["--backend", "scripted", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err
