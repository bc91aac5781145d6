"""A session's event queue: a slow reader gets the latest partial and every committed word."""

from __future__ import annotations

import asyncio

from whisper_streaming.backends.base import Word
from whisper_streaming.server import session as session_module
from whisper_streaming.server.session import EventQueue, SessionError, UpdateEvent
from whisper_streaming.streaming.processor import TranscriptUpdate


def partial(text: str) -> UpdateEvent:
    return UpdateEvent(TranscriptUpdate(partial=(Word(text, 0.0, 0.1),)), None, 0.0)


def committed(text: str) -> UpdateEvent:
    return UpdateEvent(TranscriptUpdate(committed=(Word(text, 0.0, 0.1),)), None, 0.0)


def test_partials_waiting_are_replaced_and_commits_kept() -> None:
    async def main() -> list[object]:
        queue = EventQueue()
        for event in (
            partial(" a"),
            partial(" ab"),
            committed(" a"),
            partial(" b"),
            SessionError("x", "y"),
            partial(" c"),
            partial(" cd"),
        ):
            queue.put_nowait(event)
        return [await queue.get() for _ in range(len(queue))]

    got = asyncio.run(main())
    texts = [
        e.update.partial_text or e.update.committed_text if isinstance(e, UpdateEvent) else e.code
        for e in got
    ]
    assert texts == ["ab", "a", "b", "x", "cd"]


def test_a_queue_of_commits_nobody_reads_overflows() -> None:
    queue = EventQueue()
    for i in range(session_module.MAX_QUEUED_EVENTS):
        queue.put_nowait(committed(f" w{i}"))
    assert not queue.overflowed
    queue.put_nowait(committed(" more"))
    assert queue.overflowed
