"""The wire protocols as sans-I/O adapters: client messages in, actions out; session events in,
typed messages out. No socket, no clock, no thread."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_streaming.backends.base import Word
from whisper_streaming.config import ProcessorOptions
from whisper_streaming.exceptions import ProtocolError
from whisper_streaming.server.protocols import MAX_AUDIO_FRAME_BYTES
from whisper_streaming.server.protocols import json_v1 as jp
from whisper_streaming.server.protocols import whisperlive as wl
from whisper_streaming.server.protocols.base import (
    Audio,
    Begin,
    EndReason,
    Finish,
    Send,
    ServerInfo,
)
from whisper_streaming.server.scheduler import Timing
from whisper_streaming.server.session import SessionError, UpdateEvent
from whisper_streaming.streaming.processor import TranscriptUpdate

INFO = ServerInfo("s-1", "faster_whisper", "tiny.en", False, ProcessorOptions())
MULTI = ServerInfo("s-1", "faster_whisper", "small", True, ProcessorOptions())


def words(*spec: tuple[str, float, float]) -> tuple[Word, ...]:
    return tuple(Word(f" {w}", s, e, 0.9) for w, s, e in spec)


def sentence(i: int) -> tuple[Word, ...]:
    """One sentence (completes a segment) at ``i`` seconds."""
    return words((f"w{i}.", float(i), i + 0.5))


def event(update: TranscriptUpdate, inference_s: float = 0.2) -> UpdateEvent:
    return UpdateEvent(update, Timing(0.0, inference_s, 1), 0.0)


def whisperlive_adapter(**config: object) -> wl.WhisperLiveAdapter:
    adapter = wl.WhisperLiveAdapter()
    adapter.configure(json.dumps({"uid": "u1", **config}))
    return adapter


def completed(messages: list[wl.Segments]) -> list[str]:
    """What a WhisperLive client keeps from these messages."""
    acc = wl.TranscriptAccumulator()
    for m in messages:
        acc.add(m.segments)
    return [s["text"].strip() for s in acc.segments]


# -- WhisperLive --------------------------------------------------------------------------


def test_whisperlive_config_becomes_warnings_a_stream_and_server_ready() -> None:
    adapter = whisperlive_adapter(
        model="large-v3",
        language="de",
        task="translate",
        use_vad=False,
        initial_prompt="Names: Ada.",
        hotwords="x",
    )
    actions = adapter.opened(INFO)
    sent = [a.message for a in actions if isinstance(a, Send)]
    assert [type(m) for m in sent] == [wl.WarningMessage] * 4 + [wl.ServerReady]
    texts = [m.message for m in sent if isinstance(m, wl.WarningMessage)]
    assert "'large-v3' is not served here" in texts[0]
    assert "language 'de' ignored" in texts[1] and "cannot translate" in texts[2]
    assert "hotwords" in texts[3]
    (begin,) = [a for a in actions if isinstance(a, Begin)]
    options = begin.options
    assert (options.language, options.task, options.use_vad) == ("en", "transcribe", False)
    assert options.initial_prompt == "Names: Ada."
    assert isinstance(actions[-1], Send) and actions[-1].message == wl.ServerReady(
        "u1", INFO.backend
    )


def test_a_multilingual_model_keeps_the_clients_language_and_task() -> None:
    adapter = whisperlive_adapter(model="small", language="de", task="translate")
    actions = adapter.opened(MULTI)
    assert not any(
        isinstance(a, Send) and isinstance(a.message, wl.WarningMessage) for a in actions
    )
    (begin,) = [a for a in actions if isinstance(a, Begin)]
    assert (begin.options.language, begin.options.task) == ("de", "translate")


def test_whisperlive_audio_end_of_audio_and_bad_frames() -> None:
    adapter = whisperlive_adapter(audio_format="int16")
    adapter.opened(INFO)
    (audio,) = adapter.receive(np.array([16384, -16384], "<i2").tobytes(), 0.0)
    assert isinstance(audio, Audio) and audio.samples.tolist() == [0.5, -0.5]
    with pytest.raises(ProtocolError) as info:
        adapter.receive(b"\x00\x01\x02", 0.0)  # not a whole int16 sample
    assert info.value.code == "bad_audio"
    with pytest.raises(ProtocolError, match="unexpected text message"):
        adapter.receive('{"uid": "u1"}', 0.0)
    assert adapter.receive(wl.END_OF_AUDIO, 0.0) == [Finish(last=True)]
    assert adapter.receive(np.zeros(4, "<i2").tobytes(), 0.0) == []  # after the end: not audio


def test_a_burst_of_segments_reaches_a_client_that_keeps_the_last_n() -> None:
    """One update that completes more segments than send_last_n_segments (piled-up audio
    decoded at once): the older ones are sent first, n at a time, so the client keeps them all."""
    adapter = whisperlive_adapter(send_last_n_segments=3)
    adapter.opened(INFO)
    committed = tuple(w for i in range(8) for w in sentence(i))
    messages = adapter.event(event(TranscriptUpdate(committed=committed, utterance_end=True)))
    segs = [m for m in messages if isinstance(m, wl.Segments)]
    assert all(len(m.segments) <= 3 for m in segs)
    assert completed(segs) == [f"w{i}." for i in range(8)]


def test_a_stale_partial_is_replaced_before_its_segments_complete() -> None:
    """The stock client writes its last incomplete segment after the completed ones unless the
    texts are equal: before the final split, the last segment is sent as incomplete."""
    adapter = whisperlive_adapter()
    adapter.opened(INFO)
    partial = words(("one", 0.0, 0.4), ("two.", 0.5, 0.9), ("three.", 1.0, 1.4))
    first = adapter.event(event(TranscriptUpdate(partial=partial)))
    assert len(first) == 1 and isinstance(first[0], wl.Segments)
    assert [s.completed for s in first[0].segments] == [False]
    final = adapter.event(event(TranscriptUpdate(committed=partial, final=True)))
    preview, last = final
    assert isinstance(preview, wl.Segments) and isinstance(last, wl.Segments)
    assert [(s.text, s.completed) for s in preview.segments] == [
        (" one two.", True),
        (" three.", False),
    ]
    assert [s.completed for s in last.segments] == [True, True]


def test_an_unchanged_segments_message_is_not_sent_twice() -> None:
    adapter = whisperlive_adapter()
    adapter.opened(INFO)
    update = TranscriptUpdate(partial=words(("hello", 0.0, 0.5)))
    assert len(adapter.event(event(update))) == 1
    assert adapter.event(event(update)) == []
    language = TranscriptUpdate(partial=update.partial, language="en", language_probability=0.9)
    assert adapter.event(event(language)) == [wl.Language("u1", "en", 0.9)]


def test_whisperlive_words_errors_and_farewells() -> None:
    adapter = whisperlive_adapter(word_timestamps=True)
    adapter.opened(INFO)
    *_, message = adapter.event(event(TranscriptUpdate(committed=sentence(2), final=True)))
    assert isinstance(message, wl.Segments)
    assert message.segments[0].words == (wl.WireWord(" w2.", 2.0, 2.5, 0.9),)
    assert adapter.event(SessionError("inference_failed", "gone")) == [wl.Error("u1", "gone")]
    assert adapter.farewell(EndReason.TIME_LIMIT) == wl.Disconnect("u1")
    assert adapter.farewell(EndReason.IDLE) == wl.Disconnect("u1")
    assert adapter.farewell(EndReason.SHUTDOWN) is None
    assert adapter.wait(1.234) == wl.Wait("u1", 1.234)


@pytest.mark.parametrize(
    "message",
    [
        wl.ServerReady("u", "faster_whisper"),
        wl.Wait("u", 1.5),
        wl.Error(None, "no configuration"),
        wl.WarningMessage("u", "careful"),
        wl.Disconnect("u"),
        wl.Language("u", "en", 0.98),
        wl.Segments(
            "u",
            (
                wl.WireSegment(0.0, 1.25, " a b", True, (wl.WireWord(" a", 0.0, 0.5, 0.9),)),
                wl.WireSegment(1.25, 2.0, " c", False),
            ),
        ),
    ],
)
def test_whisperlive_messages_parse_back(message: wl.ServerMessage) -> None:
    assert wl.parse_server_message(message.serialize()) == message


def test_whisperlive_times_are_strings_on_the_wire() -> None:
    """WhisperLive's own server sends segment times as strings; its client expects that."""
    raw = wl.Segments("u", (wl.WireSegment(0.0, 1.5, " a", True),)).serialize()
    assert json.loads(raw)["segments"][0] == {
        "start": "0.000",
        "end": "1.500",
        "text": " a",
        "completed": True,
    }


# -- JSON ---------------------------------------------------------------------------------


def json_adapter() -> jp.JsonAdapter:
    adapter = jp.JsonAdapter()
    assert adapter.opened(INFO) == [Send(jp.Ready("s-1", INFO.backend, INFO.model))]
    return adapter


def start(rate: int = 16000, **config: object) -> str:
    return json.dumps({"type": "start_recording", "config": {"sample_rate": rate, **config}})


STOP = json.dumps({"type": "stop_recording"})


def test_json_recordings_begin_stream_and_stop() -> None:
    adapter = json_adapter()
    assert adapter.receive('{"type": "ping"}', 0.0) == [Send(jp.Pong())]
    with pytest.raises(ProtocolError) as info:
        adapter.receive(b"\x00\x00", 0.0)
    assert info.value.code == "not_started"
    (begin,) = adapter.receive(start(48000, prompt="Ada"), 0.0)
    assert isinstance(begin, Begin) and begin.sample_rate == 48000 and begin.name == ".1"
    assert begin.options.initial_prompt == "Ada" and begin.options.language == "en"
    with pytest.raises(ProtocolError) as info:
        adapter.receive(start(), 0.0)
    assert info.value.code == "already_started"
    (audio,) = adapter.receive(np.array([16384], "<i2").tobytes(), 0.0)
    assert isinstance(audio, Audio) and audio.samples.tolist() == [0.5]
    assert adapter.receive(STOP, 10.0) == [Finish()]
    # The sender's last buffers, just after stop: ignored, not errors.
    assert adapter.receive(b"\x00\x00", 10.5) == []
    assert adapter.trailing_frames == 1
    with pytest.raises(ProtocolError):
        adapter.receive(b"\x00\x00", 12.0)
    with pytest.raises(ProtocolError) as info:
        adapter.receive(STOP, 12.0)  # already stopping
    assert info.value.code == "not_started"
    messages = adapter.event(event(TranscriptUpdate(committed=sentence(0), final=True)))
    assert [type(m) for m in messages] == [jp.Transcription, jp.Stopped]
    (again,) = adapter.receive(start(), 13.0)
    assert isinstance(again, Begin) and again.name == ".2"


def test_json_partials_change_clear_and_are_not_repeated() -> None:
    adapter = json_adapter()
    adapter.receive(start(), 0.0)
    assert adapter.event(event(TranscriptUpdate())) == []  # nothing to clear yet
    hello = TranscriptUpdate(partial=words(("hello", 0.0, 0.5)))
    assert adapter.event(event(hello)) == [jp.Partial("hello", 0.0, 0.5)]
    assert adapter.event(event(hello)) == []
    committed = TranscriptUpdate(committed=hello.partial)
    messages = adapter.event(event(committed, inference_s=0.25))
    assert messages == [
        jp.Transcription(
            0, "hello", 0.0, 0.5, 0.9, 250.0, (jp.TranscriptWord("hello", 0.0, 0.5, 0.9),)
        ),
        jp.Partial("", None, None),
    ]
    assert adapter.event(event(TranscriptUpdate())) == []


def test_json_word_timestamps_off_errors_and_farewells() -> None:
    adapter = json_adapter()
    adapter.receive(start(word_timestamps=False), 0.0)
    (message,) = adapter.event(event(TranscriptUpdate(committed=sentence(1))))
    assert isinstance(message, jp.Transcription) and message.words is None
    assert adapter.event(SessionError("inference_failed", "x")) == [
        jp.Error("inference_failed", "x")
    ]
    assert adapter.farewell(EndReason.TIME_LIMIT) == jp.Error(
        "time_limit", "maximum connection time reached"
    )
    assert adapter.farewell(EndReason.IDLE) == jp.Error("idle_timeout", "no audio for too long")
    assert adapter.farewell(EndReason.END_OF_AUDIO) is None


@pytest.mark.parametrize(
    "message",
    [
        jp.Ready("s", "faster_whisper", "tiny.en"),
        jp.Wait(0.5),
        jp.Error("bad_audio", "odd byte count"),
        jp.Pong(),
        jp.Stopped(),
        jp.Language("en", None),
        jp.Partial("hi", 0.0, 0.4),
        jp.Partial("", None, None),
        jp.Transcription(3, "hi", 0.0, 0.4, 0.9, 12.5, (jp.TranscriptWord("hi", 0.0, 0.4, 0.9),)),
        jp.Transcription(4, "yo", 1.0, 1.4, 0.8, 10.0),
    ],
)
def test_json_messages_parse_back(message: jp.ServerMessage) -> None:
    assert jp.parse_server_message(message.serialize()) == message


def test_parsing_a_message_of_no_protocol_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        jp.parse_server_message('{"type": "transcription", "text": "no times"}')
    with pytest.raises(ProtocolError):
        wl.parse_server_message('{"uid": "u", "something": 1}')


def test_each_protocol_caps_its_audio_frames_with_a_clear_error() -> None:
    """A frame over MAX_AUDIO_FRAME_BYTES is refused (saying how much audio it held), not decoded;
    the session goes on."""
    big = bytes(MAX_AUDIO_FRAME_BYTES + 4)
    wl_adapter = whisperlive_adapter()
    wl_adapter.opened(INFO)
    with pytest.raises(ProtocolError, match=r"~16 s of audio\) is over the limit") as info:
        wl_adapter.receive(big, 0.0)
    assert info.value.code == "frame_too_large"
    assert isinstance(wl_adapter.receive(bytes(MAX_AUDIO_FRAME_BYTES), 0.0)[0], Audio)
    json_side = json_adapter()
    json_side.receive(start(48000), 0.0)
    with pytest.raises(ProtocolError, match=r"~11 s of audio") as info:
        json_side.receive(big, 0.0)
    assert info.value.code == "frame_too_large"
