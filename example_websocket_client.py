#!/usr/bin/env python3
"""Stream the microphone or a file to the server (same flags as ``whisper-streaming client``).

python example_websocket_client.py --audio-file speech.flac --output out.srt
"""

import sys

from whisper_streaming.cli import client_main

if __name__ == "__main__":
    sys.exit(client_main())
