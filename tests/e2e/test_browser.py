"""The demo page in real headless Chromium, with a fake microphone playing real speech."""

from __future__ import annotations

import os
import shutil
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import timeout
from tests.e2e.conftest import ARTIFACTS, SERVER_WER_MARGIN, Utterance, record, wer
from tests.integration.conftest import RunningServer, running_server
from whisper_streaming import ProcessorOptions, load_backend
from whisper_streaming.audio import decode_file, float32_to_pcm16

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
TRAILING_SILENCE_S = 3.0


def _require_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright; no browser download needed)")
    if missing:
        message = "browser test needs " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    backend = load_backend("faster_whisper", model="tiny.en", device="cpu", num_workers=2)
    with running_server(backend, processor=ProcessorOptions(), quiet_flush_s=1.5) as srv:
        yield srv


def _speech_wav(utt: Utterance, folder: Path) -> tuple[Path, float]:
    """The utterance as 16-bit mono wav with trailing silence (the fake mic loops the file)."""
    samples = decode_file(utt.path)
    samples = np.concatenate([samples, np.zeros(int(TRAILING_SILENCE_S * 16000), np.float32)])
    path = folder / "speech.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(float32_to_pcm16(samples))
    return path, samples.shape[0] / 16000


_CANVAS_INK = """() => {
  const c = document.getElementById('wave');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const rows = new Set();
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) rows.add(Math.floor((i - 3) / 4 / c.width));
  return rows.size;
}"""


def test_demo_page_transcribes_the_fake_microphone(
    server: RunningServer,
    longform: list[Utterance],
    offline_texts: dict[Path, str],
    tmp_path: Path,
) -> None:
    """Chromium's fake microphone plays speech into the page: final text, a live waveform, and
    the page's latency figure. One file is ~180 words, so its WER is held to SERVER_WER_MARGIN
    (a net for breakage); the engine's bound is checked over six files by the server tests and
    the JSON-protocol examples (test_examples.py)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    utt = longform[0]
    wav, duration = _speech_wav(utt, tmp_path)
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-gpu",
        "--no-first-run",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"http://127.0.0.1:{server.port}/")
            assert page.url.endswith("/static/index.html")
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('Ready')",
                timeout=timeout(30) * 1000,
            )
            page.click("#mic")
            started = time.monotonic()
            ink_rows = 0
            # The fake microphone plays the file (then loops it): stop in the trailing silence.
            shot = False
            while (elapsed := time.monotonic() - started) < duration - TRAILING_SILENCE_S + 1.0:
                ink = page.evaluate(_CANVAS_INK)
                ink_rows = max(ink_rows, ink)
                if not shot and elapsed > 0.75 * duration and ink > 10:
                    # Mid-speech: live waveform, final and partial text (the README's picture).
                    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
                    shot = True
                time.sleep(0.5)
            if not shot:
                page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            page.click("#mic")
            page.wait_for_selector("body[data-stopped=true]", timeout=timeout(60) * 1000)
            text = page.inner_text("#final")
            metrics = page.evaluate("window.demoMetrics")
            page.screenshot(path=str(tmp_path / "page-stopped.png"), full_page=True)
        finally:
            browser.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "page.png", ARTIFACTS / "demo-page.png")
    shutil.copy(tmp_path / "page-stopped.png", ARTIFACTS / "demo-page-stopped.png")
    stream_wer = wer([utt.reference], [text])
    offline_wer = wer([utt.reference], [offline_texts[utt.path]])
    record(
        "browser_demo",
        {
            "file": utt.path.name,
            "wer": stream_wer,
            "offline_wer": offline_wer,
            "metrics": metrics,
            "canvas_ink_rows": ink_rows,
            "text": text,
        },
    )
    assert ink_rows > 10, "the waveform canvas is blank"
    assert metrics["words"] > 50 and metrics["averageLatencyS"] is not None
    assert stream_wer <= offline_wer + SERVER_WER_MARGIN, (stream_wer, offline_wer, text)
