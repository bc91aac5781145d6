"""A short run of the benchmark against our server on two utterances."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, timeout

pytestmark = pytest.mark.e2e

SUMMARY_KEYS = {"count", "mean", "p50", "p90", "p95", "max"}


def test_bench_smoke_run_writes_every_field(testdata: Path, tmp_path: Path) -> None:
    """python -m bench on two utterances writes JSON with every figure and a Markdown table."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--data",
            str(testdata / "librispeech-test-other"),
            "--files",
            "2",
            "--concurrency",
            "1",
            "--clip-s",
            "6",
            "--out",
            str(tmp_path),
            "--tag",
            "smoke",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout(400),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert set(report) >= {
        "machine",
        "data",
        "files",
        "offline_wer",
        "quality",
        "concurrency",
        "capacity",
    }
    assert set(report["machine"]) >= {"cpu", "cores", "memory_gb", "gpu", "versions", "commit"}
    assert len(report["files"]) == 2 and 0 <= report["offline_wer"] < 0.5
    (quality,) = report["quality"]
    assert set(quality) >= {
        "config",
        "streaming_wer",
        "final_latency_s",
        "partial_latency_s",
        "end_of_audio_to_last_final_s",
        "lag_slope_s_per_min",
        "cpu_percent",
        "rss_mb_max",
        "per_file",
    }
    assert set(quality["final_latency_s"]) == SUMMARY_KEYS
    assert quality["final_latency_s"]["count"] > 5
    assert 0 <= quality["streaming_wer"] < 0.5 and quality["rss_mb_max"] > 50
    (level,) = report["concurrency"]
    assert level["streams"] == 1 and "within_capacity" in level
    assert "| config |" in (tmp_path / "smoke.md").read_text()
