"""The Node.js and Python JSON-protocol examples against the real server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, timeout
from tests.e2e.conftest import SERVER_WER_MARGIN, Utterance, wer
from tests.integration.conftest import RunningServer, running_server
from whisper_streaming import ProcessorOptions, load_backend
from whisper_streaming.audio import decode_file, float32_to_pcm16

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    backend = load_backend("faster_whisper", model="tiny.en", device="cpu", num_workers=2)
    with running_server(backend, processor=ProcessorOptions()) as srv:
        yield srv


def _wav(utt: Utterance, folder: Path) -> Path:
    path = folder / "speech.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(float32_to_pcm16(decode_file(utt.path)))
    return path


def test_nodejs_client_transcribes_a_wav(
    server: RunningServer,
    longform: list[Utterance],
    offline_texts: dict[Path, str],
    tmp_path: Path,
) -> None:
    """npm ci, then nodejs-client.js streams a wav; its transcript is within the WER bound."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the Node client test")
        pytest.skip("node / npm not installed")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--silent"],
        cwd=EXAMPLES,
        check=True,
        timeout=timeout(300),
    )
    utt = longform[1]
    proc = subprocess.run(
        [
            node,
            "nodejs-client.js",
            str(_wav(utt, tmp_path)),
            "--fast",
            "--url",
            f"ws://127.0.0.1:{server.port}/ws/transcribe",
        ],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=timeout(300),
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.strip().splitlines()[-1]
    offline_wer = wer([utt.reference], [offline_texts[utt.path]])
    assert wer([utt.reference], [text]) <= offline_wer + SERVER_WER_MARGIN, text


def test_nodejs_client_errors_clearly(tmp_path: Path) -> None:
    """A non-wav file and an unreachable server give a message and a non-zero exit."""
    node = shutil.which("node")
    if not node or not (EXAMPLES / "node_modules").is_dir():
        pytest.skip("needs node and `npm ci` in examples/ (the test above runs it)")
    bad = subprocess.run(
        [node, "nodejs-client.js", str(REPO / "README.md")],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )
    assert bad.returncode == 2 and "not a WAV file" in bad.stderr
    mic = subprocess.run(
        [node, "nodejs-client.js", "--mic", "--url", "ws://127.0.0.1:9/x"],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )
    assert mic.returncode == 1 and "error:" in mic.stderr


def test_python_example_transcribes_a_file(
    server: RunningServer, longform: list[Utterance], offline_texts: dict[Path, str]
) -> None:
    """examples/python-client.py streams a file over the JSON protocol (with --duration)."""
    utt = longform[2]
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "python-client.py"),
            str(utt.path),
            "--fast",
            "--url",
            f"ws://127.0.0.1:{server.port}/ws/transcribe",
        ],
        capture_output=True,
        text=True,
        timeout=timeout(300),
    )
    assert proc.returncode == 0, proc.stderr
    offline_wer = wer([utt.reference], [offline_texts[utt.path]])
    assert wer([utt.reference], [proc.stdout.strip()]) <= offline_wer + SERVER_WER_MARGIN
    short = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "python-client.py"),
            str(utt.path),
            "--fast",
            "--duration",
            "5",
            "--url",
            f"ws://127.0.0.1:{server.port}/ws/transcribe",
        ],
        capture_output=True,
        text=True,
        timeout=timeout(120),
    )
    assert short.returncode == 0 and 0 < len(short.stdout.split()) < 25
