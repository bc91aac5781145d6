"""Scheduler: fairness, coalescing, batching, failure isolation (asyncio, scripted backend)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np

from whisper_streaming import ScriptedBackend, Transcription
from whisper_streaming.backends.base import InferenceRequest
from whisper_streaming.exceptions import BackendError
from whisper_streaming.server.scheduler import Scheduler, Timing


class FakeJob:
    """A session with ``pending`` samples of work; each request takes all of it."""

    def __init__(self, tag: int, pending: int = 0) -> None:
        self.tag = tag
        self.pending = pending
        self.results: list[Transcription | BaseException] = []
        self.sizes: list[int] = []
        self.done = asyncio.Event()

    @property
    def job_id(self) -> str:
        return f"job{self.tag}"

    def has_work(self) -> bool:
        return self.pending > 0

    def next_request(self) -> InferenceRequest | None:
        if not self.pending:
            return None
        audio = np.full(self.pending, float(self.tag), np.float32)
        self.sizes.append(self.pending)
        self.pending = 0
        return InferenceRequest(audio, 0.0)

    def deliver(
        self, request: InferenceRequest, result: Transcription | BaseException, timing: Timing
    ) -> None:
        self.results.append(result)
        self.done.set()


class RecordingBackend(ScriptedBackend):
    """Records the tag of each request, the thread it ran on, and batch sizes."""

    def __init__(self, delay_s: float = 0.0, fail_tag: int | None = None) -> None:
        super().__init__(delay_s=delay_s)
        self.order: list[int] = []
        self.threads: set[str] = set()
        self.batches: list[int] = []
        self.fail_tag = fail_tag

    def transcribe(self, request: InferenceRequest) -> Transcription:
        tag = int(request.audio[0])
        self.order.append(tag)
        self.threads.add(threading.current_thread().name)
        super().transcribe(request)
        if tag == self.fail_tag:
            raise BackendError(f"tag {tag} fails")
        return Transcription(language="en")

    def transcribe_batch(self, requests: Sequence[InferenceRequest]) -> list[Transcription]:
        self.batches.append(len(requests))
        if any(int(r.audio[0]) == self.fail_tag for r in requests):
            raise BackendError("batch with a failing request")
        return [self.transcribe(r) for r in requests]


async def _drain(scheduler: Scheduler, jobs: list[FakeJob], rounds: int) -> None:
    for _ in range(rounds):
        for job in jobs:
            job.pending += 100
            scheduler.notify(job)
        await asyncio.sleep(0)
    while any(j.pending for j in jobs) or scheduler.queued:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)


def test_sessions_are_served_round_robin_off_the_loop() -> None:
    """With one worker, sessions with work take turns; inference runs on worker threads."""

    async def main() -> RecordingBackend:
        backend = RecordingBackend(delay_s=0.01)
        scheduler = Scheduler(backend, workers=1)
        await scheduler.start()
        jobs = [FakeJob(1), FakeJob(2), FakeJob(3)]
        for job in jobs:
            job.pending = 100
            scheduler.notify(job)
        for _ in range(5):
            while not all(j.done.is_set() for j in jobs):
                await asyncio.sleep(0.005)
            for job in jobs:
                job.done.clear()
                job.pending = 100
                scheduler.notify(job)
        await asyncio.sleep(0.2)
        await scheduler.stop()
        return backend

    backend = asyncio.run(main())
    assert backend.order[:6] == [1, 2, 3, 1, 2, 3]
    assert backend.threads and all(name.startswith("inference") for name in backend.threads)


def test_newer_audio_joins_the_unstarted_request() -> None:
    """A session is queued once; audio arriving while it waits goes into the same request."""

    async def main() -> tuple[FakeJob, FakeJob]:
        backend = RecordingBackend(delay_s=0.2)
        scheduler = Scheduler(backend, workers=1)
        await scheduler.start()
        hog, late = FakeJob(1, pending=100), FakeJob(2)
        scheduler.notify(hog)
        await asyncio.sleep(0.05)  # hog is now running
        for _ in range(5):  # late gets audio five times while it waits
            late.pending += 100
            scheduler.notify(late)
        assert scheduler.queued == 1
        await late.done.wait()
        await scheduler.stop()
        return hog, late

    hog, late = asyncio.run(main())
    assert late.sizes == [500]


def test_batches_use_transcribe_batch() -> None:
    """With max_batch_size, ready sessions share one model call."""

    async def main() -> RecordingBackend:
        backend = RecordingBackend(delay_s=0.01)
        scheduler = Scheduler(backend, workers=1, max_batch_size=4)
        await scheduler.start()
        jobs = [FakeJob(i, pending=100) for i in range(1, 5)]
        for job in jobs:
            scheduler.notify(job)
        await asyncio.gather(*(j.done.wait() for j in jobs))
        await scheduler.stop()
        return backend

    backend = asyncio.run(main())
    assert backend.batches == [4]


def test_a_failing_request_only_fails_its_session() -> None:
    """A batch that raises is retried one by one; only the guilty session gets the error."""

    async def main() -> list[FakeJob]:
        backend = RecordingBackend(fail_tag=2)
        scheduler = Scheduler(backend, workers=1, max_batch_size=3)
        await scheduler.start()
        jobs = [FakeJob(i, pending=100) for i in (1, 2, 3)]
        for job in jobs:
            scheduler.notify(job)
        await asyncio.gather(*(j.done.wait() for j in jobs))
        await scheduler.stop()
        return jobs

    jobs = asyncio.run(main())
    assert isinstance(jobs[1].results[0], BackendError)
    assert isinstance(jobs[0].results[0], Transcription)
    assert isinstance(jobs[2].results[0], Transcription)


def test_removed_session_is_not_served() -> None:
    """A session removed while queued never reaches the model."""

    async def main() -> RecordingBackend:
        backend = RecordingBackend(delay_s=0.1)
        scheduler = Scheduler(backend, workers=1)
        await scheduler.start()
        first, gone = FakeJob(1, pending=100), FakeJob(2, pending=100)
        scheduler.notify(first)
        await asyncio.sleep(0.02)
        scheduler.notify(gone)
        scheduler.remove(gone)
        await first.done.wait()
        await asyncio.sleep(0.15)
        await scheduler.stop()
        return backend

    assert asyncio.run(main()).order == [1]


class _Fatal(BaseException):
    """An error no handler in the worker expects."""


class DeadlyJob(FakeJob):
    def next_request(self) -> InferenceRequest | None:
        raise _Fatal("boom")


def test_a_dead_worker_is_replaced_and_the_others_are_served() -> None:
    """A worker killed by an unexpected error is logged and restarted; the session that killed
    it can be scheduled again and the other sessions are still served."""

    async def main() -> tuple[Scheduler, FakeJob, int]:
        scheduler = Scheduler(RecordingBackend(), workers=1)
        await scheduler.start()
        deadly = DeadlyJob(9, pending=100)
        scheduler.notify(deadly)
        await asyncio.sleep(0.05)
        alive = scheduler.alive_workers
        job = FakeJob(1, pending=100)
        scheduler.notify(job)
        await asyncio.wait_for(job.done.wait(), 5)
        deadly.pending = 0
        assert deadly.job_id not in scheduler._busy
        await scheduler.stop()
        return scheduler, job, alive

    scheduler, job, alive = asyncio.run(main())
    assert scheduler.restarts == 1 and alive == 1
    assert isinstance(job.results[0], Transcription)
    assert scheduler.alive_workers == 0  # stopped
