"""The project as a user installs it: a wheel, in a fresh virtual environment outside the
checkout, serves the demo page, the simple client page and /health, and transcribes jfk.flac
through ``whisper-streaming`` and ``python -m whisper_streaming``.

The wheel is built with pip (``pip wheel --no-deps .``) and installed without its
dependencies; the new environment borrows them from this one through a ``.pth`` line (which
adds the folder to ``sys.path`` without running this environment's editable-install hook), so
the package itself, its data files and its entry points come from the wheel alone. The test
checks that they do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, timeout
from tests.e2e.conftest import JFK, wer

pytestmark = pytest.mark.e2e

CHECK_REQUIREMENTS = """
import sys
from importlib.metadata import PackageNotFoundError, requires, version
from packaging.requirements import Requirement
unmet = []
for line in requires("whisper-streaming") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue  # an extra's requirement
    try:
        found = version(req.name)
    except PackageNotFoundError:
        unmet.append(line)
        continue
    if found not in req.specifier:
        unmet.append(f"{line} (found {found})")
print(unmet)
sys.exit(1 if unmet else 0)
"""


def run(command: list[str], cwd: Path, seconds: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout(seconds), env=env
    )


def test_the_wheel_works_installed(tmp_path: Path, testdata: Path) -> None:
    built = run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", "dist"],
        tmp_path,
        300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("whisper_streaming-*.whl")
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], tmp_path, 120)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], tmp_path, 120
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    site = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        tmp_path,
        30,
    )
    (Path(site.stdout.strip()) / "borrowed-deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    where = run(
        [str(python), "-c", "import whisper_streaming as w; print(w.__file__)"], tmp_path, 60
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    # The wheel's own requirements (its metadata) are all met by what the environment sees.
    checked = run([str(python), "-c", CHECK_REQUIREMENTS], tmp_path, 60)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    jfk = testdata / "jfk" / "jfk.flac"
    simulated = run(
        [str(python), "-m", "whisper_streaming", "simulate", str(jfk), "--json"], tmp_path, 180
    )
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    text = json.loads(simulated.stdout.strip().splitlines()[-1])["final_text"]
    assert wer([JFK], [text]) <= 0.2, text

    port = free_port()
    server = subprocess.Popen(
        [str(venv / "bin" / "whisper-streaming"), "serve", "--host", "127.0.0.1"]
        + ["--port", str(port), "--log-level", "WARNING"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout(120)
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as resp:
                    assert json.loads(resp.read())["status"] == "ok"
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.2)
        for path, needle in (
            ("/static/index.html", b"app.js"),
            ("/static/app.js", b"WebSocket"),
            ("/examples/simple-client.html", b"/ws/transcribe"),
        ):
            with urllib.request.urlopen(base + path, timeout=5) as resp:
                assert needle in resp.read(), path
        client = run(
            [str(venv / "bin" / "whisper-streaming"), "client", "--port", str(port)]
            + ["--host", "127.0.0.1", "--audio-file", str(jfk), "--fast"],
            tmp_path,
            180,
        )
        assert client.returncode == 0, client.stderr[-3000:]
        assert wer([JFK], [client.stdout.strip()]) <= 0.2, client.stdout
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=timeout(30))
    assert server.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
