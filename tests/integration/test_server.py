"""The WhisperLive-compatible protocol against a real server on port 0 (scripted backend)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import struct
import threading
import time
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import free_port, record, timeout
from tests.integration.conftest import (
    expected_text,
    final_text,
    open_session,
    raw_http,
    receive_all,
    receive_transcript,
    running_server,
    send_audio,
    stream_tone,
    timeline_backend,
    tone_bytes,
    tone_session,
    ws_connect,
)
from whisper_streaming import ScriptedBackend, Transcription
from whisper_streaming.backends import timeline_from_text
from whisper_streaming.backends.base import InferenceRequest, RequestKind
from whisper_streaming.exceptions import BackendError
from whisper_streaming.server.protocols.whisperlive import TranscriptAccumulator

TIME = re.compile(r"^\d+\.\d{3}$")


def test_protocol_messages_are_exactly_as_specified() -> None:
    """SERVER_READY, language, segments with 3-decimal string times, final completed, close 1000."""
    with running_server() as srv:
        ws, ready = open_session(srv.url, uid="u-1", model="tiny.en")
        assert ready == {"uid": "u-1", "message": "SERVER_READY", "backend": "scripted"}
        send_audio(ws, tone_bytes(4.0))
        ws.send(b"END_OF_AUDIO")
        messages = receive_all(ws)
        assert ws.close_code == 1000
    assert all(m["uid"] == "u-1" for m in messages)
    languages = [m for m in messages if "language" in m]
    assert languages == [{"uid": "u-1", "language": "en", "language_prob": 1.0}]
    seg_messages = [m for m in messages if "segments" in m]
    assert seg_messages
    for m in seg_messages:
        assert set(m) == {"uid", "segments"}
        for seg in m["segments"]:
            assert set(seg) == {"start", "end", "text", "completed"}
            assert TIME.match(seg["start"]) and TIME.match(seg["end"])
            assert float(seg["start"]) <= float(seg["end"])
            assert isinstance(seg["text"], str) and isinstance(seg["completed"], bool)
        # Only the last segment of a message may be incomplete.
        assert all(s["completed"] for s in m["segments"][:-1])
    assert all(s["completed"] for s in seg_messages[-1]["segments"])
    assert final_text(messages) == expected_text(4.0)


def test_word_timestamps_on_request() -> None:
    """With word_timestamps, each segment carries its words with numeric times."""
    with running_server() as srv:
        ws, _ = open_session(srv.url, word_timestamps=True)
        send_audio(ws, tone_bytes(2.0))
        ws.send(b"END_OF_AUDIO")
        messages = receive_all(ws)
    seg = [s for m in messages for s in m.get("segments", [])][-1]
    assert seg["words"] and set(seg["words"][0]) == {"word", "start", "end", "probability"}


def test_int16_audio_format() -> None:
    """audio_format int16 is accepted."""
    with running_server() as srv:
        ws, _ = open_session(srv.url, audio_format="int16")
        pcm = (np.frombuffer(tone_bytes(2.0), "<f4") * 32767).astype("<i2").tobytes()
        send_audio(ws, pcm)
        ws.send(b"END_OF_AUDIO")
        assert final_text(receive_all(ws)) == expected_text(2.0)


def test_unserved_model_gets_warning_then_ready() -> None:
    """Asking for another model gives WARNING, then SERVER_READY with the server's model."""
    with running_server() as srv:
        ws, first = open_session(srv.url, uid="u", model="large-v3")
        assert first["status"] == "WARNING" and "large-v3" in first["message"]
        assert json.loads(ws.recv(timeout(5)))["message"] == "SERVER_READY"
        ws.close()


def test_client_over_max_clients_gets_wait_and_others_keep_working() -> None:
    """The third client gets WAIT (minutes as a float) and is closed; the first two finish."""
    with running_server(max_clients=2, max_connection_time_s=120) as srv:
        a, ra = open_session(srv.url, uid="a")
        b, rb = open_session(srv.url, uid="b")
        assert ra["message"] == rb["message"] == "SERVER_READY"
        c, rc = open_session(srv.url, uid="c")
        assert rc["uid"] == "c" and rc["status"] == "WAIT"
        assert isinstance(rc["message"], float) and 0 < rc["message"] <= 2.0
        with pytest.raises(ConnectionClosed):
            c.recv(timeout(5))
        assert srv.status()["current_clients"] == 2
        for ws in (a, b):
            send_audio(ws, tone_bytes(2.0))
            ws.send(b"END_OF_AUDIO")
        assert final_text(receive_all(a)) == final_text(receive_all(b)) == expected_text(2.0)


def test_burst_of_connections_never_overshoots_max_clients() -> None:
    """Fifty clients connecting at once: exactly max_clients are admitted, the others WAIT."""
    replies: list[dict[str, Any]] = []
    lock = threading.Lock()
    with running_server(max_clients=4) as srv:
        held = []

        def attempt(i: int) -> None:
            ws, reply = open_session(srv.url, uid=f"c{i}")
            with lock:
                replies.append(reply)
                held.append(ws)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout(30))
        assert srv.status()["current_clients"] == 4
        for ws in held:
            ws.close()
    assert len(replies) == 50
    assert sum(r.get("message") == "SERVER_READY" for r in replies) == 4
    assert sum(r.get("status") == "WAIT" for r in replies) == 46


def test_disconnect_at_time_limit_after_final_segments() -> None:
    """At max_connection_time the pending text is finalized, then DISCONNECT, then close."""
    with running_server(max_connection_time_s=2.0) as srv:
        ws, _ = open_session(srv.url, uid="t")
        send_audio(ws, tone_bytes(1.5))
        started = time.monotonic()
        messages = receive_all(ws)
        elapsed = time.monotonic() - started
    assert messages[-1] == {"uid": "t", "message": "DISCONNECT"}
    assert final_text(messages) == expected_text(1.5)
    assert elapsed < timeout(10)


def test_quiet_period_finalizes_pending_text() -> None:
    """A client that stops sending (no END_OF_AUDIO) gets completed segments after quiet_flush_s."""
    with running_server(quiet_flush_s=0.5) as srv:
        ws, _ = open_session(srv.url)
        send_audio(ws, tone_bytes(2.0))
        deadline = time.monotonic() + timeout(10)
        messages: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            messages.append(json.loads(ws.recv(timeout(10))))
            segs = messages[-1].get("segments", [])
            if (
                segs
                and all(s["completed"] for s in segs)
                and final_text(messages) == expected_text(2.0)
            ):
                break
        else:
            pytest.fail(f"pending text was not finalized: {messages[-1:]}")
        ws.close()


def test_idle_session_is_ended() -> None:
    """No audio at all for idle_timeout_s ends the session with DISCONNECT."""
    with running_server(idle_timeout_s=0.5) as srv:
        ws, _ = open_session(srv.url, uid="idle")
        messages = receive_all(ws, wait_s=10)
        assert messages[-1] == {"uid": "idle", "message": "DISCONNECT"}
        assert srv.wait_for_clients(0) == 0


def test_abrupt_disconnect_frees_the_slot_and_others_carry_on() -> None:
    """A client vanishing mid-stream releases its session; another client is unaffected."""
    with running_server(max_clients=2) as srv:
        good, _ = open_session(srv.url, uid="good")
        bad, _ = open_session(srv.url, uid="bad")
        send_audio(bad, tone_bytes(1.0))
        bad.socket.shutdown(socket.SHUT_RDWR)  # no closing handshake
        bad.socket.close()
        send_audio(good, tone_bytes(2.0))
        good.send(b"END_OF_AUDIO")
        assert final_text(receive_all(good)) == expected_text(2.0)
        assert srv.wait_for_clients(0) == 0
        again, reply = open_session(srv.url, uid="again")
        assert reply["message"] == "SERVER_READY"
        again.close()


@pytest.mark.parametrize(
    ("first", "needle"),
    [
        ("this is not json", "not valid JSON"),
        (json.dumps({"language": "en"}), "uid"),
        (json.dumps(["uid"]), "JSON object"),
        (json.dumps({"uid": "x", "task": "dance"}), "task"),
        (b"\x00\x00\x80\x3f" * 100, "before any audio"),
        # Hostile input: each used to end the handler with a traceback and no answer.
        ('{"uid": "deep", "x": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
        ('{"uid": "big", "send_last_n_segments": 1' + "0" * 5000 + "}", "not valid JSON"),
        (json.dumps({"uid": "long", "pad": "x" * 70_000}), "too long"),
        (json.dumps({"uid": "x", "language": ["a" * 500]}), "'language'"),
    ],
)
def test_bad_first_message_gets_error_and_close(first: str | bytes, needle: str) -> None:
    """A malformed first message or audio before the config gets a clear ERROR and a close."""
    with running_server() as srv:
        other, _ = open_session(srv.url, uid="other")
        ws = ws_connect(srv.url)
        ws.send(first)
        reply = json.loads(ws.recv(timeout(5)))
        assert reply["status"] == "ERROR" and needle in reply["message"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout(5))
        assert ws.close_code == 1008
        send_audio(other, tone_bytes(2.0))
        other.send(b"END_OF_AUDIO")
        assert final_text(receive_all(other)) == expected_text(2.0)


def test_garbage_frames_get_errors_and_the_session_goes_on() -> None:
    """Text frames, odd byte counts and NaN samples each get ERROR; good audio still works."""
    with running_server() as srv:
        ws, _ = open_session(srv.url, uid="g")
        for junk in ("hello", b"\x01\x02\x03", np.array([np.nan] * 4, "<f4").tobytes()):
            ws.send(junk)
            reply = json.loads(ws.recv(timeout(5)))
            assert reply["uid"] == "g" and reply["status"] == "ERROR"
        send_audio(ws, tone_bytes(2.0))
        ws.send(b"END_OF_AUDIO")
        assert final_text(receive_all(ws)) == expected_text(2.0)


def test_too_many_garbage_frames_close_the_connection() -> None:
    """A client that keeps sending garbage is closed with 1008; others carry on."""
    with running_server(max_bad_frames=3) as srv:
        other, _ = open_session(srv.url, uid="other")
        ws, _ = open_session(srv.url, uid="junk")
        for _ in range(3):
            ws.send(b"\x01")
        messages = receive_all(ws, wait_s=5)
        assert [m["status"] for m in messages] == ["ERROR"] * 3
        assert ws.close_code == 1008
        send_audio(other, tone_bytes(1.0))
        other.send(b"END_OF_AUDIO")
        assert final_text(receive_all(other)) == expected_text(1.0)


def test_oversized_frame_is_refused_with_1009() -> None:
    """A frame over max_message_bytes closes that connection with 1009."""
    with running_server(max_message_bytes=64 * 1024) as srv:
        ws, _ = open_session(srv.url)
        ws.send(b"\x00" * (128 * 1024))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout(5))
        assert ws.close_code == 1009


def test_backend_failure_in_one_session_does_not_affect_another() -> None:
    """Inference errors reach only the session whose audio caused them."""
    healthy = timeline_backend()

    def responder(request: InferenceRequest) -> Transcription:
        if float(np.max(np.abs(request.audio))) > 0.9:
            raise BackendError("poisoned audio")
        return healthy.transcribe(request)

    with running_server(ScriptedBackend(responder=responder, max_concurrency=2)) as srv:
        poisoned, _ = open_session(srv.url, uid="p")
        fine, _ = open_session(srv.url, uid="f")
        send_audio(poisoned, tone_bytes(2.0, amplitude=0.95))
        send_audio(fine, tone_bytes(2.0))
        poisoned.send(b"END_OF_AUDIO")
        fine.send(b"END_OF_AUDIO")
        bad_messages = receive_all(poisoned)
        good_messages = receive_all(fine)
    errors = [m for m in bad_messages if m.get("status") == "ERROR"]
    assert errors and "poisoned audio" in errors[0]["message"]
    assert poisoned.close_code == 1000
    assert not [m for m in good_messages if m.get("status") == "ERROR"]
    assert final_text(good_messages) == expected_text(2.0)


def test_shutdown_flushes_sessions_and_closes_with_1001() -> None:
    """On shutdown, mid-stream, each of four sessions gets its final segments, then a 1001."""
    with running_server(max_clients=4) as srv:
        sessions = [open_session(srv.url, uid=f"s{i}")[0] for i in range(4)]
        for i, ws in enumerate(sessions):
            send_audio(ws, tone_bytes(2.0 + i))
        time.sleep(0.3)
        srv.call(srv.server.shutdown(), 60)
        for i, ws in enumerate(sessions):
            messages = receive_all(ws, wait_s=10)
            assert ws.close_code == 1001
            assert final_text(messages) == expected_text(2.0 + i)
            assert all(s["completed"] for s in messages[-1]["segments"])


def test_http_methods_and_malformed_requests() -> None:
    """Other methods than GET get 405 with Allow: GET (HEAD too); a path the file system
    refuses 404; requests that are not HTTP 400; the server serves normally afterwards."""
    with running_server() as srv:
        for method in (b"POST", b"DELETE", b"PUT"):
            for path in (b"/health", b"/", b"/metrics"):
                request = (
                    method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                )
                status, answer = raw_http(srv.port, request)
                assert status == 405, answer[:200]
                allow = [
                    line.split(b":", 1)[1].decode()
                    for line in answer.split(b"\r\n\r\n")[0].split(b"\r\n")
                    if line.lower().startswith(b"allow:")
                ]
                assert allow and {m.strip() for m in allow[0].split(",")} == {"GET", "HEAD"}
        long_name = b"/static/" + b"a" * 5000 + b".js"
        assert raw_http(srv.port, b"GET " + long_name + b" HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 404
        # Repeated headers a browser never sends: refused as malformed (the WebSocket handshake
        # refuses two Origin headers, the HTTP parser two Host headers), never a 500.
        upgrade = (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        )
        two_origins = upgrade + b"Origin: http://localhost\r\nOrigin: http://evil.example\r\n\r\n"
        assert raw_http(srv.port, two_origins)[0] == 400
        two_hosts = upgrade + b"Host: y\r\nOrigin: http://10.1.1.1:9\r\n\r\n"
        assert raw_http(srv.port, two_hosts)[0] == 400
        for garbage in (b"GET\r\n\r\n", b"GET / HTTP/1.1\r\nno colon here\r\n\r\n"):
            assert raw_http(srv.port, garbage)[0] == 400
        assert stream_tone(srv.url, "after") == expected_text(2.0)


def test_health_endpoint_and_unknown_paths() -> None:
    """GET /health answers JSON; unknown paths get 404."""
    import urllib.error
    import urllib.request

    with running_server() as srv:
        base = f"http://127.0.0.1:{srv.port}"
        with urllib.request.urlopen(base + "/health", timeout=timeout(5)) as resp:
            health = json.loads(resp.read())
        assert health["status"] == "ok" and health["backend"] == "scripted"
        assert health["workers"] >= 1 and health["worker_restarts"] == 0
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/nope", timeout=timeout(5))
        assert err.value.code == 404
        err.value.close()
        # With no inference worker able to run, /health says so (load balancers stop sending).
        scheduler = srv.server.context.scheduler  # type: ignore[union-attr]
        srv.call(scheduler.stop())
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/health", timeout=timeout(5))
        assert err.value.code == 503
        assert json.loads(err.value.read())["status"] == "degraded"
        err.value.close()


def test_burst_of_completed_segments_reaches_the_client_whole() -> None:
    """One update that completes more than send_last_n_segments segments (piled-up audio decoded
    at once) still delivers every segment: the client's transcript has every word."""
    from whisper_streaming.backends import timeline_from_text
    from whisper_streaming.client import TranscriptionClient

    sentences = timeline_from_text(" ".join(f"word{i}." for i in range(40)), start_s=0.1)
    backend = ScriptedBackend(timeline=sentences, model_name="tiny.en")
    with running_server(backend) as srv:
        client = TranscriptionClient("127.0.0.1", srv.port, use_vad=False, fast=True, show=None)
        audio = np.asarray(np.frombuffer(tone_bytes(sentences[-1].end + 0.5), "<f4"))
        asyncio.run(client.transcribe_samples(audio))
    assert client.text == " ".join(w.word.strip() for w in sentences)
    assert len(client.segments) == 40


def _stock_client_srt_text(messages: list[dict[str, Any]]) -> str:
    """What WhisperLive 0.10.0's client writes to its SRT: its process_segments() bookkeeping
    (completed segments that start after the last kept one; the last incomplete segment seen),
    then write_srt_file(), which appends that incomplete segment unless its text is the last
    completed segment's."""
    transcript: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for m in messages:
        segments = m.get("segments", [])
        text: list[str] = []
        for i, seg in enumerate(segments):
            if not text or text[-1] != seg["text"]:
                text.append(seg["text"].strip())
                if i == len(segments) - 1 and not seg["completed"]:
                    last = seg
                elif seg["completed"] and (
                    not transcript or float(seg["start"]) >= float(transcript[-1]["end"])
                ):
                    transcript.append(seg)
    if last is not None and (not transcript or transcript[-1]["text"] != last["text"]):
        transcript.append(last)
    return " ".join(s["text"].strip() for s in transcript)


def test_stock_client_transcript_has_no_stale_partial() -> None:
    """An utterance shown as one partial segment, then finalized as several segments, reaches
    the stock client's SRT once (the partial it kept is replaced before the final message)."""
    with running_server() as srv:
        ws, _ = open_session(srv.url)
        send_audio(ws, tone_bytes(9.0))
        ws.send(b"END_OF_AUDIO")
        messages = receive_all(ws)
    finals = [
        m for m in messages if m.get("segments") and all(s["completed"] for s in m["segments"])
    ]
    assert len(finals[-1]["segments"]) >= 2, "the final decode should complete several segments"
    assert _stock_client_srt_text(messages) == final_text(messages) == expected_text(9.0)


def test_a_backlog_longer_than_the_shutdown_timeout_still_gets_its_whole_transcript() -> None:
    """After END_OF_AUDIO the server waits for the final transcript for as long as the session
    advances, not for a fixed time: 90 s sent at once, decodes of 0.4 s each, a 1 s
    shutdown_timeout_s, and every word still arrives before the normal close."""
    backend = timeline_backend(delay_s=0.4)
    with running_server(backend, shutdown_timeout_s=1.0) as srv:
        ws, _ = open_session(srv.url)
        send_audio(ws, tone_bytes(90.0), frame_bytes=2**20)
        ws.send(b"END_OF_AUDIO")
        started = time.monotonic()
        messages = receive_all(ws, wait_s=60)
        waited = time.monotonic() - started
        assert ws.close_code == 1000
    assert not [m for m in messages if m.get("status") == "ERROR"]
    assert final_text(messages) == expected_text(90.0)
    assert waited > 1.0  # the backlog took longer than the old fixed wait


class _StuckFinal(ScriptedBackend):
    """Hears the timeline, but its end-of-utterance decodes hang."""

    def transcribe(self, request: InferenceRequest) -> Transcription:
        if request.final:
            time.sleep(3.0)
        return super().transcribe(request)


def test_a_final_transcript_that_cannot_come_is_reported_not_silently_cut() -> None:
    """A session that stops advancing after END_OF_AUDIO (here a final decode that hangs past
    final_stall_s) gets an ERROR naming the audio that was not transcribed and close 1011,
    never a clean 1000 over a truncated transcript."""
    from tests.integration.conftest import TIMELINE

    backend = _StuckFinal(timeline=TIMELINE, model_name="tiny.en")
    with running_server(backend, final_stall_s=1.0) as srv:
        ws, _ = open_session(srv.url)
        send_audio(ws, tone_bytes(4.0))
        ws.send(b"END_OF_AUDIO")
        messages = receive_all(ws)
        assert ws.close_code == 1011
    errors = [m["message"] for m in messages if m.get("status") == "ERROR"]
    assert len(errors) == 1 and "final transcript incomplete" in errors[0], messages
    assert "of 4.0 s received" in errors[0]


def test_a_client_faster_than_the_model_is_held_back_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Audio sent much faster than it is decoded: past max_backlog_s the server stops reading
    the socket (TCP slows the client), so the session never holds more than the limit and a
    frame, and the transcript is still complete."""
    from whisper_streaming.server.session import StreamSession

    backlogs: list[float] = []
    feed = StreamSession.feed

    async def recording_feed(self: StreamSession, samples: Any, convert: Any = None) -> None:
        await feed(self, samples, convert)
        backlogs.append(self.backlog_s)

    monkeypatch.setattr(StreamSession, "feed", recording_feed)
    backend = timeline_backend(delay_s=0.1)
    with running_server(backend, max_backlog_s=40.0) as srv:
        ws, _ = open_session(srv.url)
        send_audio(ws, tone_bytes(200.0))
        ws.send(b"END_OF_AUDIO")
        messages = receive_all(ws, wait_s=60)
        assert ws.close_code == 1000
    assert max(backlogs) <= 40.0 + 0.3, max(backlogs)
    assert len(backlogs) == 782  # every frame was taken
    assert final_text(messages) == expected_text(200.0)


def test_a_decode_that_fails_a_few_times_is_retried_without_bothering_the_client() -> None:
    """Two failures of each final decode in a row: retried after a backoff, no ERROR, the
    transcript complete."""
    healthy = timeline_backend()
    failures: dict[tuple[float, float], int] = {}

    def flaky(request: InferenceRequest) -> Transcription:
        if request.final:
            key = (request.offset_s, request.duration_s)
            failures[key] = failures.get(key, 0) + 1
            if failures[key] <= 2:
                raise BackendError("temporary failure")
        return healthy.transcribe(request)

    with running_server(ScriptedBackend(responder=flaky)) as srv:
        messages = tone_session(srv.url, seconds=3.0)
    assert not [m for m in messages if m.get("status") == "ERROR"], messages
    assert final_text(messages) == expected_text(3.0)
    assert failures and all(n == 3 for n in failures.values()), failures


def test_a_window_that_keeps_failing_is_given_up_once_with_a_clear_error() -> None:
    """Piled-up audio whose first 30 s window always fails: a few retries with backoff (not a
    hot loop), then one ERROR naming the audio that was lost; the rest is transcribed."""
    timeline = timeline_from_text(" ".join(f"w{i}" for i in range(140)), start_s=0.1)
    healthy = ScriptedBackend(timeline=timeline, delay_s=0.05)
    calls: list[float] = []

    def broken_window(request: InferenceRequest) -> Transcription:
        if request.kind is RequestKind.CATCH_UP and request.offset_s < 1.0:
            calls.append(time.monotonic())
            raise BackendError("window failed")
        return healthy.transcribe(request)

    with running_server(ScriptedBackend(responder=broken_window)) as srv:
        messages = tone_session(srv.url, seconds=70.0, wait_s=60)
    errors = [m["message"] for m in messages if m.get("status") == "ERROR"]
    assert len(errors) == 1 and "was not transcribed" in errors[0], errors
    assert 2 <= len(calls) <= 4, len(calls)  # the first try and its retries
    assert calls[-1] - calls[0] >= 1.5  # with backoff in between
    lost_until = float(errors[0].split("audio ")[1].split("-")[1].split(" s")[0])
    assert 10.0 <= lost_until <= 31.0
    after = " ".join(w.word.strip() for w in timeline if lost_until + 1.0 < w.start and w.end <= 69)
    assert after.count(" ") > 60 and after in final_text(messages)


def _raw_ws(port: int, path: str, receive_buffer: int | None = None) -> socket.socket:
    """A WebSocket opened by hand on a plain socket (no client library, so no client threads
    in this process): the handshake, with its response read. ``receive_buffer`` shrinks the
    socket's receive window (SO_RCVBUF, set before connecting)."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(timeout(5))
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer[:100]
    return sock


def _frame(payload: bytes | str) -> bytes:
    """One masked client frame (text for str, binary for bytes)."""
    data = payload.encode() if isinstance(payload, str) else payload
    head = bytes([0x81 if isinstance(payload, str) else 0x82])
    n = len(data)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    masked = np.frombuffer(data, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)
    return head + mask + masked.tobytes()


def _vanish(sock: socket.socket, how: int) -> None:
    """Drop a connection without a closing handshake: a TCP reset, a half-open close (FIN,
    then silence), or a plain close."""
    if how == 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif how == 1:
        sock.shutdown(socket.SHUT_WR)
    sock.close()


def test_a_hundred_abrupt_disconnects_leak_nothing() -> None:
    """100 clients vanish mid-stream (reset, half-open, closed without END_OF_AUDIO), over both
    protocols: the sessions go back to 0 and the server's threads, file descriptors and asyncio
    tasks go back to where they were; a real stream is then served normally."""

    def census(srv: Any) -> tuple[int, int, int]:
        async def tasks() -> int:
            return len(asyncio.all_tasks())

        fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
        return threading.active_count(), fds, int(srv.call(tasks()))

    with running_server(max_clients=4) as srv:
        stream_tone(srv.url, "warm-up")  # the first session's one-off allocations
        before = census(srv)
        rss_before = _rss_mb()
        for i in range(100):
            if i % 2:
                sock = _raw_ws(srv.port, "/")
                sock.sendall(_frame(json.dumps({"uid": f"gone-{i}", "use_vad": False})))
                sock.sendall(_frame(tone_bytes(0.5)))
            else:
                sock = _raw_ws(srv.port, "/ws/transcribe")
                sock.sendall(_frame(json.dumps({"type": "start_recording", "config": {}})))
                sock.sendall(_frame(np.zeros(8000, "<i2").tobytes()))
            time.sleep(0.01)
            _vanish(sock, i % 3)
            if i % 4 == 3:
                assert srv.wait_for_clients(0) == 0, i
        assert srv.wait_for_clients(0) == 0

        def settled(now: tuple[int, int, int]) -> bool:
            # One more thread is allowed: an executor the first sessions started. Fewer is
            # fine: what earlier tests left behind may finish meanwhile.
            return now[0] <= before[0] + 1 and now[1] <= before[1] and now[2] <= before[2]

        deadline = time.monotonic() + timeout(10)
        while not settled(after := census(srv)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert settled(after), (before, after)
        rss_after = _rss_mb()
        assert rss_after - rss_before < 20, (rss_before, rss_after)
        assert stream_tone(srv.url, "after") == expected_text(2.0)
    record("disconnects", {"count": 100, "rss_mb_before": rss_before, "rss_mb_after": rss_after})


def test_sigterm_flushes_open_sessions_and_the_process_exits() -> None:
    """The server as users run it (the CLI, a process of its own): SIGTERM while two sessions
    stream ends both with 1001 after their final messages, and the process exits 0."""
    import signal
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    command = [sys.executable, "-m", "whisper_streaming", "serve", "--backend", "scripted"]
    command += ["--batch-size", "2"]  # two sessions may share a model call
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-vad", "--log-level", "WARNING"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout(60)
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        url = f"ws://127.0.0.1:{port}/"
        sessions = [open_session(url, uid=f"t{i}")[0] for i in range(2)]
        for ws in sessions:
            send_audio(ws, tone_bytes(1.0))
        proc.send_signal(signal.SIGTERM)
        for ws in sessions:
            messages = receive_all(ws, wait_s=20)
            assert ws.close_code == 1001, ws.close_code
            assert messages and all(m.get("status") != "ERROR" for m in messages), messages
        assert proc.wait(timeout(30)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
    assert "Traceback" not in stderr, stderr[-2000:]


def test_a_crash_in_a_send_task_ends_that_session_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug that kills one session's sender ends that session at once (an error message,
    close 1011) instead of at the end of its stream; another session goes on untouched."""
    from whisper_streaming.server.protocols import whisperlive

    real = whisperlive.Segments.serialize

    def serialize(self: whisperlive.Segments) -> str:
        if self.uid == "crash":
            raise RuntimeError("injected fault")
        return real(self)

    monkeypatch.setattr(whisperlive.Segments, "serialize", serialize)
    with running_server() as srv:
        crash, _ = open_session(srv.url, uid="crash")
        fine, _ = open_session(srv.url, uid="fine")
        send_audio(crash, tone_bytes(1.0))
        started = time.monotonic()
        messages = receive_all(crash, wait_s=10)
        assert crash.close_code == 1011 and time.monotonic() - started < timeout(5)
        assert any("internal server error" in m.get("message", "") for m in messages), messages
        send_audio(fine, tone_bytes(2.0))
        fine.send(b"END_OF_AUDIO")
        assert final_text(receive_all(fine)) == expected_text(2.0)
        assert srv.wait_for_clients(0) == 0


def test_initial_prompt_is_used_and_unsupported_options_are_named() -> None:
    """WhisperLive's initial_prompt conditions the decodes (before any text is committed);
    options this server lacks, turned on by the client, get a WARNING naming them (and speaker
    labels, which this server has only with --diarization, one saying so)."""
    backend = timeline_backend()
    with running_server(backend) as srv:
        ws, first = open_session(
            srv.url,
            uid="prompted",
            initial_prompt="Quick brown foxes.",
            hotwords="fox",
            enable_diarization=True,
            enable_translation=False,  # off: no warning for it
        )
        assert first["status"] == "WARNING", first
        assert "--diarization" in first["message"]
        second = json.loads(ws.recv(timeout(10)))
        assert second["status"] == "WARNING", second
        assert "not supported by this server, ignored: hotwords" == second["message"]
        assert json.loads(ws.recv(timeout(10)))["message"] == "SERVER_READY"
        send_audio(ws, tone_bytes(1.0))
        ws.send(b"END_OF_AUDIO")
        assert final_text(receive_all(ws)) == expected_text(1.0)
    session = [r for r in backend.requests if r.request_id > 0]  # not the warm-up decode
    assert session and session[0].prompt == "Quick brown foxes.", session[0].prompt


def _health(port: int) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout(5)) as r:
            return r.status, json.loads(r.read())["status"]
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())["status"]


def test_health_is_readiness_full_and_draining_instances_say_503() -> None:
    """/health answers 503 "full" while every slot is taken and 503 "draining" from the
    moment a shutdown starts, while the open session still gets its finals and a new WebSocket
    gets 503 before the upgrade (a proxy then tries another instance); /health/live stays 200."""
    import urllib.request

    from websockets.exceptions import InvalidStatus

    with running_server(timeline_backend(delay_s=0.3), max_clients=1) as srv:
        assert _health(srv.port) == (200, "ok")
        ws, _ = open_session(srv.url, uid="only")
        assert _health(srv.port) == (503, "full")
        send_audio(ws, tone_bytes(2.0))
        ws.send(b"END_OF_AUDIO")
        assert final_text(receive_all(ws)) == expected_text(2.0)
        assert srv.wait_for_clients(0) == 0 and _health(srv.port) == (200, "ok")

        ws, _ = open_session(srv.url, uid="drained")
        send_audio(ws, tone_bytes(2.0))
        shutdown = asyncio.run_coroutine_threadsafe(srv.server.shutdown(), srv.loop)
        deadline = time.monotonic() + timeout(5)
        while _health(srv.port) != (503, "draining"):
            assert time.monotonic() < deadline, _health(srv.port)
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(srv.url)
        assert refused.value.response.status_code == 503
        url = f"http://127.0.0.1:{srv.port}/health/live"
        with urllib.request.urlopen(url, timeout=timeout(5)) as resp:
            assert resp.status == 200
        messages = receive_all(ws, wait_s=20)
        assert ws.close_code == 1001 and final_text(messages) == expected_text(2.0)
        shutdown.result(timeout(30))


def test_a_new_session_waits_while_live_ones_use_the_model_but_not_for_a_file() -> None:
    """Admission by load (--max-load): a live session whose decodes take half the model's time
    leaves no room for a second one at 0.9 (WAIT, though --max-clients has room); a client
    sending a file at full speed does not count, so it never keeps a live session out."""
    # One worker; a decode every 0.5 s of audio takes 0.25 s: half the model per live session.
    backend = timeline_backend(delay_s=0.25)
    with running_server(backend, max_clients=8, max_load=0.9) as srv:
        fast, _ = open_session(srv.url, uid="file")
        send_audio(fast, tone_bytes(30.0))  # as fast as it is taken
        live, _ = open_session(srv.url, uid="live")
        started = time.monotonic()
        frame = tone_bytes(0.1)
        for i in range(70):  # 7 s in real time
            live.send(frame)
            time.sleep(max(0.0, started + (i + 1) * 0.1 - time.monotonic()))
        late, reply = open_session(srv.url, uid="late")
        assert reply["status"] == "WAIT", reply
        assert late.close_code is None or late.close_code == 1013
        status = srv.status()
        assert status["current_clients"] == 2 and status["total_refused"] == 1, status
        for ws in (live, fast):
            ws.send(b"END_OF_AUDIO")
        assert final_text(receive_all(live)) == expected_text(7.0)
        assert final_text(receive_all(fast)) == expected_text(30.0)
        # Nobody live any more: admitted again.
        assert stream_tone(srv.url, "after") == expected_text(2.0)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_a_long_stream_sent_as_fast_as_taken_is_complete_with_bounded_memory() -> None:
    """A long stream (20 minutes here; an hour under make stress) sent as fast as the server
    takes it: the server stops reading while the backlog is over max_backlog_s (TCP slows the
    client), so the session's buffer and the process's memory stay bounded, and every word
    arrives."""
    seconds = float(os.environ.get("WHISPER_STREAMING_LONG_STREAM_S", "1200"))
    words = int(seconds * 2)  # one word per 0.5 s
    timeline = timeline_from_text(" ".join(f"w{i}" for i in range(words)), word_s=0.4, gap_s=0.1)
    backend = ScriptedBackend(timeline=timeline, model_name="tiny.en", keep_requests=10)
    with running_server(backend, max_backlog_s=40.0) as srv:
        ws, _ = open_session(srv.url, uid="long")
        kept: list[TranscriptAccumulator] = []
        reader = threading.Thread(target=lambda: kept.append(receive_transcript(ws)))
        reader.start()
        frame = tone_bytes(0.5)
        rss_before = _rss_mb()
        rss_max = rss_before
        started = time.monotonic()
        for i in range(int(seconds * 2)):
            ws.send(frame)
            if i % 200 == 0:
                rss_max = max(rss_max, _rss_mb())
        ws.send(b"END_OF_AUDIO")
        reader.join(timeout(300))
        elapsed = time.monotonic() - started
        buffer = srv.server.context.metrics.buffer_seconds  # type: ignore[union-attr]
        buckets = {
            s.labels["le"]: s.value
            for s in buffer.collect()[0].samples
            if s.name.endswith("_bucket")
        }
    text = kept[0].text.split()
    assert text == [f"w{i}" for i in range(words)], (len(text), words)
    # No decode ever found more than the backlog limit (+ one 30 s window) in the buffer.
    assert buckets["60.0"] == buckets["+Inf"] > 0, buckets
    assert rss_max - rss_before < 60, (rss_before, rss_max)
    record(
        "long_stream",
        {
            "audio_s": seconds,
            "wall_s": round(elapsed, 1),
            "rss_mb_before": round(rss_before),
            "rss_mb_max": round(rss_max),
            "buffer_seconds_buckets": buckets,
        },
    )


def _long_timeline_backend(seconds: float) -> tuple[ScriptedBackend, list[str]]:
    """A backend that hears one word per 0.5 s for ``seconds``, and those words."""
    words = [f"w{i}" for i in range(int(seconds * 2))]
    timeline = timeline_from_text(" ".join(words), word_s=0.4, gap_s=0.1)
    return ScriptedBackend(timeline=timeline, model_name="tiny.en", keep_requests=10), words


def _paced_session_s(url: str, uid: str, expected: str, seconds: float = 3.0) -> float:
    """Stream a tone in real time; how long the final transcript (``expected``) took after
    END_OF_AUDIO."""
    ws, _ = open_session(url, uid=uid)
    frame = tone_bytes(0.1)
    started = time.monotonic()
    for i in range(int(seconds * 10)):
        ws.send(frame)
        time.sleep(max(0.0, started + (i + 1) * 0.1 - time.monotonic()))
    ws.send(b"END_OF_AUDIO")
    ended = time.monotonic()
    assert final_text(receive_all(ws)) == expected
    return time.monotonic() - ended


def test_a_client_that_never_reads_stays_bounded_and_others_keep_their_pace() -> None:
    """A fast writer that never reads (a tiny receive window) sends 20 minutes of audio (an
    hour under make stress):
    the server stops reading it at the backlog limit and holds its unsent messages in the
    socket's buffers and at most MAX_QUEUED_EVENTS more (then drops it: unit-tested in
    test_event_queue), so its memory stays bounded; a live session beside it finishes as fast
    as it does alone."""
    seconds = float(os.environ.get("WHISPER_STREAMING_LONG_STREAM_S", "1200"))
    backend, words = _long_timeline_backend(seconds)
    expected = " ".join(words[:6])  # the words of the first 3 s
    with running_server(backend, max_backlog_s=40.0, max_clients=4) as srv:
        alone_s = _paced_session_s(srv.url, "alone", expected)
        rss_before = _rss_mb()
        sock = _raw_ws(srv.port, "/", receive_buffer=4096)
        sock.settimeout(timeout(10))
        config = {"uid": "never-reads", "use_vad": False, "word_timestamps": True}
        sock.sendall(_frame(json.dumps(config)))
        beside: list[float] = []
        pacer = threading.Thread(
            target=lambda: beside.append(_paced_session_s(srv.url, "paced", expected))
        )
        pacer.start()
        frame = _frame(tone_bytes(0.5))
        rss_max = rss_before
        sent_s = 0.0
        try:
            for i in range(int(seconds * 2)):  # never reading a byte
                sock.sendall(frame)
                sent_s += 0.5
                if i % 100 == 0:
                    rss_max = max(rss_max, _rss_mb())
            cut_off = False
        except (ConnectionError, TimeoutError, OSError):
            cut_off = True
        pacer.join(timeout(60))
        sock.close()
        assert srv.wait_for_clients(0) == 0
    assert beside and beside[0] <= alone_s + 1.0, (alone_s, beside)
    assert rss_max - rss_before < 60, (rss_before, rss_max)
    record(
        "slow_reader",
        {
            "audio_sent_s": sent_s,
            "cut_off": cut_off,
            "rss_mb_before": round(rss_before),
            "rss_mb_max": round(rss_max),
            "paced_session_final_after_end_s": {"alone": alone_s, "beside": beside[0]},
        },
    )


def test_an_inference_worker_that_dies_under_load_is_replaced_and_no_session_notices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three sessions stream while a bug kills one of the two inference workers before it
    served the sessions it took: it is logged and restarted, those sessions are scheduled again,
    and every session gets its whole transcript."""
    from whisper_streaming.server.scheduler import Scheduler

    real = Scheduler._serve
    calls = 0

    async def dying(self: Scheduler, taken: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the worker dies before serving the sessions it took
            raise RuntimeError("injected worker fault")
        await real(self, taken)

    monkeypatch.setattr(Scheduler, "_serve", dying)
    backend = timeline_backend(delay_s=0.02, max_concurrency=2)
    with running_server(backend, max_clients=4) as srv:
        results: dict[str, str] = {}
        threads = [
            threading.Thread(target=lambda u=uid: results.update({u: stream_tone(srv.url, u, 3.0)}))
            for uid in ("a", "b", "c")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout(60))
        scheduler = srv.server.context.scheduler  # type: ignore[union-attr]
        assert scheduler.restarts == 1 and scheduler.alive_workers == 2
    assert calls > 3
    assert results == {uid: expected_text(3.0) for uid in ("a", "b", "c")}, results
