"""Live diarization on real multi-speaker speech: the diarization error rate on conversations
built from LibriSpeech test-other, the Python client through the server, and the demo page."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.diarization import Conversation, build_conversations, run
from tests.conftest import ARTIFACTS, record, timeout, write_wav
from tests.integration.conftest import RunningServer, running_server
from whisper_streaming import ProcessorOptions, load_backend
from whisper_streaming.audio import SAMPLE_RATE

pytestmark = pytest.mark.e2e

SEED = 1
"""The conversations the test scores. The tracker's thresholds were chosen on seed 0's (bench:
7.1% DER); these are held out."""
MAX_DER = 0.22  # measured 14.4% (collar 0.25 s), bench/results/diarization.json
MIN_COUNT_EXACT = 4  # of 8 conversations with the right number of speakers (measured 5)


@pytest.fixture(scope="module")
def conversations(testdata: Path) -> list[Conversation]:
    return build_conversations(testdata / "librispeech-test-other", 8, seed=SEED)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """The embedded model and the default speaker encoder, with --diarization."""
    backend = load_backend("faster_whisper", model="tiny.en", device="cpu", num_workers=2)
    with running_server(
        backend, processor=ProcessorOptions(), quiet_flush_s=1.5, diarization=True
    ) as srv:
        yield srv


def test_live_diarization_error_rate_on_real_conversations(
    conversations: list[Conversation],
) -> None:
    """8 conversations (2-4 speakers, 38-76 s, turns of whole utterances or 1-2 s pieces, back
    to back or with pauses) streamed in 0.25 s chunks through the VAD and the speaker tracker
    with the default encoder: DER (pyannote.metrics, collar 0.25 s) and speaker counts."""
    from whisper_streaming.speakers import load_encoder

    report = run(conversations, load_encoder())
    record("diarization", {**report, "seed": SEED})
    exact = sum(r["found"] == r["speakers"] for r in report["conversations"])
    assert report["der"] <= MAX_DER, report
    assert exact >= MIN_COUNT_EXACT, report["conversations"]
    assert report["speaker_count_error_mean"] <= 0.75, report["conversations"]


def _wav(conversation: Conversation, path: Path, tail_s: float = 0.0) -> Path:
    tail = np.zeros(int(tail_s * SAMPLE_RATE), np.float32)
    return write_wav(path, np.concatenate([conversation.audio, tail]))


def _speaker_at(conversation: Conversation, t: float) -> str | None:
    return next((s for a, b, s in conversation.turns if a <= t <= b), None)


def _attributed(conversation: Conversation, labelled: list[tuple[float, int]]) -> float:
    """The share of (time, label) points whose label is their speaker's, under the best
    one-to-one mapping of labels to speakers."""
    from scipy.optimize import linear_sum_assignment

    points = [(s, label) for t, label in labelled if (s := _speaker_at(conversation, t))]
    speakers = sorted({s for s, _ in points})
    labels = sorted({label for _, label in points})
    counts = np.zeros((len(labels), len(speakers)))
    for s, label in points:
        counts[labels.index(label), speakers.index(s)] += 1
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / max(1, len(points)))


def test_the_client_labels_who_spoke_through_the_server(
    server: RunningServer, conversations: list[Conversation], tmp_path: Path
) -> None:
    """``whisper-streaming client --diarization`` on a 3-speaker conversation, sent as fast as
    the server takes it: every segment and word has a speaker in the JSON file it writes (and
    in WebVTT voices when rendered as a .vtt), and the words are attributed to their speaker
    (best label mapping)."""
    from whisper_streaming.client.outputs import render

    conversation = next(c for c in conversations if c.speakers == 3 and c.name == "conv8")
    wav = _wav(conversation, tmp_path / "conversation.wav")
    out = tmp_path / "conversation.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "whisper_streaming",
            "client",
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--audio-file",
            str(wav),
            "--diarization",
            "--fast",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=timeout(300),
    )
    assert proc.returncode == 0, proc.stderr
    segments = json.loads(out.read_text())["segments"]
    words = [w for s in segments for w in s["words"]]
    assert segments and all("speaker" in s for s in segments)
    assert all(w["speaker"] == s["speaker"] for s in segments for w in s["words"])
    word_accuracy = _attributed(
        conversation, [((w["start"] + w["end"]) / 2, w["speaker"]) for w in words]
    )
    found = len({s["speaker"] for s in segments})
    lines = render(segments, "vtt").splitlines()  # what --output x.vtt writes
    vtt_voices = {line.split(">")[0] for line in lines if line.startswith("<v ")}
    record(
        "diarization_client",
        {
            "conversation": conversation.name,
            "speakers": conversation.speakers,
            "found": found,
            "words": len(words),
            "words_attributed": word_accuracy,
            "transcript": [f"[{s['speaker']}] {s['text'].strip()}" for s in segments],
        },
    )
    assert found == conversation.speakers, found
    assert word_accuracy >= 0.85, word_accuracy
    assert vtt_voices == {f"<v Speaker {n}" for n in range(1, found + 1)}, vtt_voices


def test_the_demo_page_shows_who_spoke(
    server: RunningServer, conversations: list[Conversation], tmp_path: Path
) -> None:
    """The first five turns of a 2-speaker conversation played by Chromium's fake microphone
    into the demo page: "Who spoke" is on (the server diarizes), the final text comes in
    labelled, coloured turns, and the turns follow the speakers."""
    from tests.e2e.test_browser import CHROMIUM, _chromium_args, _open_demo, _require_browser

    _require_browser()
    from playwright.sync_api import sync_playwright

    conversation = next(c for c in conversations if c.speakers == 2 and c.name == "conv1")
    conversation = conversation.first(5)
    wav = _wav(conversation, tmp_path / "conversation.wav", tail_s=3.0)
    duration = conversation.audio.shape[0] / SAMPLE_RATE
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=_chromium_args(wav)
        )
        try:
            page = _open_demo(browser, server.port, viewport={"width": 1100, "height": 900})
            assert page.is_checked("#speakers") and not page.is_disabled("#speakers")
            page.click("#mic")
            time.sleep(duration + 1.0)
            page.click("#mic")
            page.wait_for_selector("body[data-stopped=true]", timeout=timeout(60) * 1000)
            turns: list[dict[str, Any]] = page.eval_on_selector_all(
                "#final .turn",
                "els => els.map(e => ({speaker: e.dataset.speaker, text: e.textContent,"
                " colour: getComputedStyle(e).borderLeftColor}))",
            )
            page.screenshot(path=str(tmp_path / "speakers.png"), full_page=True)
        finally:
            browser.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "demo-page-speakers.png").write_bytes((tmp_path / "speakers.png").read_bytes())
    record("diarization_demo_page", {"conversation": conversation.name, "turns": turns})
    speakers = {t["speaker"] for t in turns}
    assert speakers == {"Speaker 1", "Speaker 2"}, turns
    colours = {t["speaker"]: t["colour"] for t in turns}
    assert len(set(colours.values())) == 2, colours
    # Turns alternate as often as the speakers did, give or take one.
    changes = sum(a["speaker"] != b["speaker"] for a, b in zip(turns, turns[1:], strict=False))
    true_changes = len(conversation.turns) - 1
    assert abs(changes - true_changes) <= 2, (changes, true_changes, turns)
