"""The server's own cost per message, with no model: JSON-protocol ping -> pong round trips and
``GET /health`` requests against a server with the scripted backend, on loopback.

    python -m bench.overhead --count 2000

Prints one JSON line (round-trip p50 / p95 / mean in milliseconds). Run it on two commits in
one sitting to compare servers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
import urllib.request

from tests.integration.conftest import running_server


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "p50_ms": round(_percentile(ms, 0.5), 3),
        "p95_ms": round(_percentile(ms, 0.95), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args(argv)
    from websockets.sync.client import connect

    with running_server() as srv:
        pings = []
        with connect(f"ws://127.0.0.1:{srv.port}/ws/transcribe", compression=None) as ws:
            json.loads(ws.recv(10))  # ready
            for _ in range(args.count):
                started = time.perf_counter()
                ws.send('{"type": "ping"}')
                ws.recv(10)
                pings.append(time.perf_counter() - started)
        health = []
        for _ in range(max(1, args.count // 10)):
            started = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/health", timeout=10) as r:
                r.read()
            health.append(time.perf_counter() - started)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    row = {"commit": commit, "ping": _summary(pings), "health": _summary(health)}
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
