#!/usr/bin/env python3
"""Start the transcription server (same flags as ``whisper-streaming serve``)."""

import sys

from whisper_streaming.cli import serve_main

if __name__ == "__main__":
    sys.exit(serve_main())
