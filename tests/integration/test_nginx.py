"""Scale-out, for real: nginx (Debian's package) with ``deploy/nginx/whisper-streaming.conf``
in front of two server instances on loopback. Sessions spread over both; a full instance
sends new sessions to the other; a draining instance finishes its open session while new ones
go elsewhere; both WebSocket protocols work through the proxy."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, timeout
from tests.integration.conftest import (
    RunningServer,
    expected_text,
    final_text,
    open_session,
    receive_all,
    run_stock_client,
    running_server,
    send_audio,
    timeline_backend,
    tone_bytes,
    ws_connect,
)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONFIG = REPO / "deploy" / "nginx" / "whisper-streaming.conf"


@contextmanager
def nginx(tmp_path: Path, upstreams: list[int]) -> Iterator[int]:
    """nginx in the foreground with the deploy configuration, its upstream ports and listen
    port replaced; yields the port it listens on."""
    if not Path(NGINX).exists():
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed (make test installs it with apt as root)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    port = free_port()
    site = CONFIG.read_text()
    servers = re.findall(r"server 127\.0\.0\.1:\d+", site)
    assert len(servers) == len(upstreams), servers
    for old, new in zip(servers, upstreams, strict=True):
        site = site.replace(old, f"server 127.0.0.1:{new}", 1)
    site = re.sub(r"listen \d+;", f"listen 127.0.0.1:{port};", site)
    (tmp_path / "site.conf").write_text(site)
    for folder in ("logs", "tmp"):
        (tmp_path / folder).mkdir(exist_ok=True)
    (tmp_path / "nginx.conf").write_text(
        "daemon off;\nworker_processes 1;\npid nginx.pid;\nerror_log logs/error.log warn;\n"
        "events { worker_connections 256; }\nhttp {\n"
        "  access_log off;\n  client_body_temp_path tmp;\n  proxy_temp_path tmp;\n"
        "  fastcgi_temp_path tmp;\n  uwsgi_temp_path tmp;\n  scgi_temp_path tmp;\n"
        f"  include {tmp_path / 'site.conf'};\n}}\n"
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout(10)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout(10))
        if proc.stderr is not None:
            proc.stderr.close()


@contextmanager
def two_servers(*max_clients: int) -> Iterator[list[RunningServer]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                running_server(timeline_backend(delay_s=0.05), max_clients=n, refuse_when_full=True)
            )
            for n in max_clients
        ]


def sessions_on(servers: list[RunningServer]) -> list[int]:
    return [s.status()["current_clients"] for s in servers]


def test_sessions_spread_and_a_full_instance_sends_new_ones_to_the_other(tmp_path: Path) -> None:
    with two_servers(1, 3) as servers, nginx(tmp_path, [s.port for s in servers]) as port:
        url = f"ws://127.0.0.1:{port}/"
        opened = [open_session(url, uid=f"s{i}") for i in range(4)]
        assert all(reply["message"] == "SERVER_READY" for _, reply in opened), opened
        # The first instance took one (its only slot); every other session, including those
        # nginx first offered to the full one (503, next upstream), is on the second.
        assert sessions_on(servers) == [1, 3]
        for ws, _ in opened:
            send_audio(ws, tone_bytes(1.0))
            ws.send(b"END_OF_AUDIO")
            assert final_text(receive_all(ws)) == expected_text(1.0)


def test_two_instances_share_sessions_evenly(tmp_path: Path) -> None:
    with two_servers(4, 4) as servers, nginx(tmp_path, [s.port for s in servers]) as port:
        opened = [open_session(f"ws://127.0.0.1:{port}/", uid=f"e{i}") for i in range(4)]
        assert sessions_on(servers) == [2, 2]
        # The JSON protocol through the proxy too.
        ws = ws_connect(f"ws://127.0.0.1:{port}/ws/transcribe")
        assert json.loads(ws.recv(timeout(10)))["type"] == "ready"
        ws.close()
        for session, _ in opened:
            session.close()


def test_a_draining_instance_finishes_its_session_while_new_ones_go_elsewhere(
    tmp_path: Path,
) -> None:
    import asyncio

    with two_servers(4, 4) as servers, nginx(tmp_path, [s.port for s in servers]) as port:
        url = f"ws://127.0.0.1:{port}/"
        first, _ = open_session(url, uid="draining")
        on = sessions_on(servers)
        draining, other = (servers[0], servers[1]) if on == [1, 0] else (servers[1], servers[0])
        send_audio(first, tone_bytes(2.0))
        shutdown = asyncio.run_coroutine_threadsafe(draining.server.shutdown(), draining.loop)
        # The third of these finds the other instance with more sessions, so least_conn offers
        # it to the draining one first: 503, and nginx takes the next.
        later = [open_session(url, uid=f"later{i}") for i in range(3)]
        assert all(reply["message"] == "SERVER_READY" for _, reply in later)
        assert other.status()["current_clients"] == 3
        messages = receive_all(first, wait_s=20)
        assert first.close_code == 1001 and final_text(messages) == expected_text(2.0)
        shutdown.result(timeout(30))
        for ws, _ in later:
            ws.close()


def test_the_stock_whisperlive_client_through_the_proxy(tmp_path: Path) -> None:
    from tests.integration.test_rest import wav_bytes

    audio = tmp_path / "tone.wav"
    audio.write_bytes(wav_bytes(3.0))
    with two_servers(4, 4) as servers, nginx(tmp_path, [s.port for s in servers]) as port:
        proc = run_stock_client(port, audio, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Server Ready!" in proc.stdout and expected_text(3.0) in proc.stdout
