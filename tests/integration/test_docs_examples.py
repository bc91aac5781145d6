"""The README's REST examples, run as written (only the address and the file name changed)
against a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, run_python, timeout
from tests.integration.conftest import expected_text, running_server
from tests.integration.test_rest import wav_bytes

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)


def block(language: str, needle: str) -> str:
    found = [code for lang, code in BLOCKS if lang == language and needle in code]
    assert len(found) == 1, f"one {language} block with {needle!r} in the README"
    return found[0]


def test_the_readme_openai_example(tmp_path: Path) -> None:
    (tmp_path / "speech.flac").write_bytes(wav_bytes(4.0))  # PyAV reads it by content
    code = block("python", "from openai import OpenAI")
    with running_server() as srv:
        code = code.replace("http://localhost:9090", f"http://127.0.0.1:{srv.port}")
        proc = run_python(code, tmp_path, 60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected_text(4.0)


def test_the_readme_curl_example(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    (tmp_path / "speech.flac").write_bytes(wav_bytes(4.0))
    command = block("bash", "curl ")
    with running_server() as srv:
        command = command.replace("http://localhost:9090", f"http://127.0.0.1:{srv.port}")
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout(60),
        )
    assert proc.returncode == 0, proc.stderr
    assert "00:00:00,100 -->" in proc.stdout and expected_text(4.0) in proc.stdout


def test_the_protocol_doc_examples_follow_the_schemas() -> None:
    """Every JSON line in docs/protocol.md's example blocks is valid: client messages against
    the client schema (and the parser), server messages against the server schema."""
    import json

    import jsonschema

    from tests.integration.test_json_protocol import SCHEMAS
    from whisper_streaming.server.protocols import json_v1

    doc = (REPO / "docs" / "protocol.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", doc, re.S)
    assert len(blocks) == 2
    client = json.loads((SCHEMAS / "json-v1-client.json").read_text())
    server = json.loads((SCHEMAS / "json-v1-server.json").read_text())
    for line in blocks[0].splitlines():
        jsonschema.validate(json.loads(line), client)
        json_v1.parse(line)
    kinds = set()
    for line in blocks[1].splitlines():
        message = json.loads(line)
        jsonschema.validate(message, server)
        kinds.add(message["type"])
    assert kinds == {
        s["properties"]["type"]["const"]
        for s in server["$defs"].values()
        if "properties" in s and "type" in s["properties"]
    }
