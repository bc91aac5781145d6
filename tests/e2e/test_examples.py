"""The Node.js and Python JSON-protocol examples against the real server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, record, timeout
from tests.e2e.conftest import SERVER_WER_MARGIN, WER_MARGIN, Utterance, speech_wav, wer
from tests.integration.conftest import RunningServer, running_server
from whisper_streaming import ProcessorOptions, load_backend

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    backend = load_backend("faster_whisper", model="tiny.en", device="cpu", num_workers=2)
    with running_server(backend, processor=ProcessorOptions()) as srv:
        yield srv


@dataclass(frozen=True)
class Speech:
    """All six long-form files in one 16-bit wav (one second of silence between them): the
    engine's bound means something over ~1300 words, not over one file's ~180."""

    wav: Path
    reference: str
    offline_wer: float


@pytest.fixture(scope="module")
def speech(
    longform: list[Utterance],
    offline_texts: dict[Path, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Speech:
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    speech_wav([u.path for u in longform], path, gap_s=1.0, tail_s=1.0)
    reference = " ".join(u.reference for u in longform)
    offline = " ".join(offline_texts[u.path] for u in longform)
    return Speech(path, reference, wer([reference], [offline]))


def _check(name: str, speech: Speech, text: str) -> None:
    """The transcript of ``speech`` is within the engine's bound; kept as an artifact."""
    got = wer([speech.reference], [text])
    record(name, {"wer": got, "offline_wer": speech.offline_wer, "text": text})
    assert got <= speech.offline_wer + WER_MARGIN, (got, speech.offline_wer, text)


def test_nodejs_client_transcribes_a_wav(server: RunningServer, speech: Speech) -> None:
    """npm ci, then nodejs-client.js streams the six files (--fast): within the engine's bound."""
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
    proc = subprocess.run(
        [
            node,
            "nodejs-client.js",
            str(speech.wav),
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
    _check("nodejs_client", speech, proc.stdout.strip().splitlines()[-1])


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
    """examples/python-client.py streams a file over the JSON protocol (--fast), and --duration
    stops early. One file: a net for breakage (the Node test holds the same protocol path to
    the engine's bound over all six files)."""
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
