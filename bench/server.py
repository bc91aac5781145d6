"""Start our server (or a peer's) as a subprocess for a run, and sample its CPU time and memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

_S = TypeVar("_S", bound="_Subprocess")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Subprocess:
    """A server started as a subprocess on a free loopback port, stopped on exit."""

    port: int = field(default_factory=free_port, kw_only=True)
    proc: subprocess.Popen[bytes] | None = field(default=None, kw_only=True)
    log_path: Path | None = field(default=None, kw_only=True)
    name = "server"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        """The environment to start it in (None: ours)."""
        return None

    def ready(self) -> bool:
        """Whether the server answers (polled until it does)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def __enter__(self: _S) -> _S:
        log = open(self.log_path or os.devnull, "ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.env()
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}; see its log")
            if self.ready():
                return self
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not start within 120 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # WhisperLive does not stop on SIGTERM while clients are open
                self.proc.wait(30)


@dataclass
class ServerProcess(_Subprocess):
    """Our server, started with the given CLI flags."""

    flags: list[str]

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "whisper_streaming",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-clients",
            "32",
            "--log-level",
            "WARNING",
            *self.flags,
        ]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                return True
        except OSError:
            return False


@dataclass
class WhisperLiveProcess(_Subprocess):
    """The WhisperLive server (``bench/peers/whisperlive_server.py``) run by ``python``, the
    interpreter of its own virtual environment."""

    python: Path
    model_dir: str
    threads: int = 1  # CTranslate2 threads (OMP_NUM_THREADS); its run_server.py uses 1
    name = "WhisperLive"

    def env(self) -> dict[str, str]:
        return {**os.environ, "OMP_NUM_THREADS": str(self.threads)}

    def command(self) -> list[str]:
        script = Path(__file__).resolve().parent / "peers" / "whisperlive_server.py"
        return [str(self.python), str(script), str(self.port), self.model_dir]


class ProcessSampler:
    """Samples a process's CPU time and RSS from /proc while a run is going on (Linux)."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.rss_mb: list[float] = []
        self._cpu0 = self._cpu_s()
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu_s(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _CLK_TCK
        except (OSError, IndexError, ValueError):
            return 0.0

    def _rss(self) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.rss_mb.append(self._rss())

    def __enter__(self) -> ProcessSampler:
        self._cpu0, self._t0 = self._cpu_s(), time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_percent = (
            100 * (self._cpu_s() - self._cpu0) / max(1e-9, time.monotonic() - self._t0)
        )
        self.rss_mb.append(self._rss())
        self._stop.set()
        self._thread.join()
