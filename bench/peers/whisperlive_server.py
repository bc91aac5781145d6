"""Start the WhisperLive 0.10.0 server (its ``run_server.py`` is not in the wheel).

Run with the WhisperLive virtual environment's Python (``make .venv-whisperlive``), not ours:

    .venv-whisperlive/bin/python bench/peers/whisperlive_server.py PORT MODEL_DIR

It serves the faster_whisper backend on 127.0.0.1 with one shared model (``single_model``),
as WhisperLive's own ``run_server.py --backend faster_whisper -fw MODEL_DIR`` does; like that
script it runs CTranslate2 on ``OMP_NUM_THREADS`` threads, 1 unless set. Nothing is downloaded:
MODEL_DIR is a CTranslate2 model with its tokenizer.json, and the hub is switched off.
"""

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")  # run_server.py's default
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    port, model_dir = int(sys.argv[1]), sys.argv[2]
    max_clients = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    from whisper_live.server import TranscriptionServer

    TranscriptionServer().run(
        "127.0.0.1",
        port=port,
        backend="faster_whisper",
        faster_whisper_custom_model_path=str(model_dir),  # a str: the backend calls .endswith()
        single_model=True,
        max_clients=max_clients,
        max_connection_time=3600,
    )


if __name__ == "__main__":
    main()
