"""Shared fixtures: test data location, timeouts, synthetic audio."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from whisper_streaming.audio import SAMPLE_RATE

REPO = Path(__file__).resolve().parent.parent
TESTDATA = Path(os.environ.get("WHISPER_STREAMING_TESTDATA", REPO.parent / "shared" / "testdata"))
TIMEOUT_SCALE = float(os.environ.get("WHISPER_STREAMING_TIMEOUT_SCALE", "1.0"))
"""Every test timeout is multiplied by this; raise it on slow machines."""


ARTIFACTS = REPO / "test-artifacts"


def record(name: str, data: object) -> None:
    """Keep a measurement as a test artifact (test-artifacts/NAME.json)."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(data, indent=2))


def timeout(seconds: float) -> float:
    """A test timeout scaled by TIMEOUT_SCALE."""
    return seconds * TIMEOUT_SCALE


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The shared real-speech test data (override with WHISPER_STREAMING_TESTDATA)."""
    if not TESTDATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"test data not found at {TESTDATA} (set WHISPER_STREAMING_TESTDATA)")
        pytest.skip(f"test data not found at {TESTDATA}")
    return TESTDATA


def tone(seconds: float, amplitude: float = 0.3, freq_hz: float = 220.0) -> np.ndarray:
    """A sine tone, float32 at 16 kHz."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    """Digital silence, float32 at 16 kHz."""
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """``samples`` (float32, 16 kHz, mono) as a 16-bit PCM WAV file."""
    import wave

    from whisper_streaming.audio import float32_to_pcm16

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(float32_to_pcm16(samples))
    return path


def run_python(script: str, cwd: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run a Python script (dedented) in a fresh interpreter of this environment."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout(timeout_s),
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
