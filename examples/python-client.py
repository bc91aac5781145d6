#!/usr/bin/env python3
"""Stream an audio file to whisper_streaming's JSON protocol with asyncio websockets.

    python examples/python-client.py speech.flac [--url ws://localhost:9090/ws/transcribe]
                                                 [--duration 30] [--fast]

Any format PyAV decodes is accepted; audio is sent as 16 kHz PCM16 in 100 ms chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import numpy as np
from websockets.asyncio.client import connect

from whisper_streaming.audio import decode_file, float32_to_pcm16


async def stream(url: str, samples: np.ndarray, fast: bool) -> list[str]:
    finals: list[str] = []
    async with connect(url, compression=None) as ws:
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise SystemExit(f"server refused: {ready}")
        await ws.send(
            json.dumps(
                {
                    "type": "start_recording",
                    "config": {"sample_rate": 16000, "encoding": "pcm_s16le"},
                }
            )
        )

        async def send() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            for i in range(0, samples.shape[0], 1600):
                await ws.send(float32_to_pcm16(samples[i : i + 1600]))
                if not fast:
                    await asyncio.sleep(max(0.0, start + (i + 1600) / 16000 - loop.time()))
            await ws.send(json.dumps({"type": "stop_recording"}))

        sender = asyncio.create_task(send())
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "partial" and message["text"]:
                print(f"\r\033[K… {message['text'][-100:]}", end="", file=sys.stderr, flush=True)
            elif message["type"] == "transcription":
                finals.append(message["text"])
                print(
                    f"\r\033[K[{message['start']:.2f}-{message['end']:.2f}] {message['text']}",
                    file=sys.stderr,
                    flush=True,
                )
            elif message["type"] == "error":
                print(f"server error ({message['code']}): {message['message']}", file=sys.stderr)
            elif message["type"] == "stopped":
                break
        await sender
    return finals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="audio file to stream")
    parser.add_argument("--url", default="ws://localhost:9090/ws/transcribe")
    parser.add_argument(
        "--duration", type=float, default=None, help="stream only this many seconds"
    )
    parser.add_argument("--fast", action="store_true", help="do not pace in real time")
    args = parser.parse_args()
    samples = decode_file(args.file)
    if args.duration:
        samples = samples[: int(args.duration * 16000)]
    try:
        finals = asyncio.run(stream(args.url, samples, args.fast))
    except OSError as exc:
        print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    print(" ".join(finals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
