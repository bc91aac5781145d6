"""Shared inference: worker tasks drive one model, fairly, off the event loop.

Sessions with work wait in a round-robin queue. A free worker takes the next sessions (up to the
batch size), asks each for its request *at that moment*, so a request never goes stale in the
queue (newer audio is simply included), runs the batch on a thread, and hands each session its
result. A session is queued at most once and has at most one request in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from ..backends.base import ASRBackend, InferenceRequest, Transcription
from ..exceptions import BackendError
from .load import LoadMeter

__all__ = ["InferenceJob", "Scheduler", "Timing"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Timing:
    """Where the time of one request went, in seconds."""

    queued_s: float  # from being queued to a worker taking the session
    inference_s: float  # the model call (the whole batch)
    batch_size: int


class InferenceJob(Protocol):
    """What the scheduler needs from a session."""

    @property
    def job_id(self) -> str: ...

    def next_request(self) -> InferenceRequest | None:
        """The request to run now, or None."""
        ...

    def deliver(
        self, request: InferenceRequest, result: Transcription | BaseException, timing: Timing
    ) -> None:
        """The request's result, or the exception the backend raised."""
        ...

    def has_work(self) -> bool:
        """Whether next_request() would return a request."""
        ...


MAX_WORKER_DEATHS = 3
"""A session in the batch of this many dying workers is not scheduled again (it kills them)."""


class Scheduler:
    """Runs sessions' requests on a shared backend.

    Args:
        backend: the shared model.
        workers: parallel model calls (default: ``backend.max_concurrency``).
        max_batch_size: requests per model call (more than 1 uses ``transcribe_batch``).
    """

    def __init__(
        self, backend: ASRBackend, *, workers: int | None = None, max_batch_size: int = 1
    ) -> None:
        self.backend = backend
        self.workers = workers or max(1, int(getattr(backend, "max_concurrency", 1)))
        self.max_batch_size = max(1, max_batch_size)
        self._ready: OrderedDict[str, tuple[InferenceJob, float]] = OrderedDict()
        self._busy: set[str] = set()
        self._wakeup: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False
        self.load = LoadMeter(self.workers)  # what live sessions use of the model
        self._deaths: dict[str, int] = {}  # workers that died with the session in their batch
        self.restarts = 0  # workers replaced after an unexpected error

    @property
    def queued(self) -> int:
        """Sessions waiting for a worker."""
        return len(self._ready)

    @property
    def alive_workers(self) -> int:
        """Worker tasks running now (a dead one is restarted at once; see :meth:`start`)."""
        return sum(not task.done() for task in self._tasks)

    async def start(self) -> None:
        """Start the worker tasks (on the running loop). A worker that dies of an unexpected
        error is logged and replaced, so the shared model keeps serving."""
        if self._tasks:
            return
        self._stopping = False
        self._wakeup = asyncio.Condition()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="inference")
        self._tasks = [self._spawn(i) for i in range(self.workers)]

    def _spawn(self, index: int) -> asyncio.Task[None]:
        task = asyncio.create_task(self._worker(index))
        task.add_done_callback(lambda t: self._on_worker_done(index, t))
        return task

    def _on_worker_done(self, index: int, task: asyncio.Task[None]) -> None:
        if self._stopping or task.cancelled():
            return
        exc = task.exception()
        logger.error("inference worker %d died; restarting it", index, exc_info=exc)
        self.restarts += 1
        if task in self._tasks:
            self._tasks[self._tasks.index(task)] = self._spawn(index)

    async def stop(self) -> None:
        """Stop the workers; requests in flight finish first."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def notify(self, job: InferenceJob) -> None:
        """The job may have work: queue it unless it is queued or running already."""
        if job.job_id in self._ready or job.job_id in self._busy or not job.has_work():
            return
        self._ready[job.job_id] = (job, time.monotonic())
        if self._wakeup is not None:
            asyncio.get_running_loop().create_task(self._notify_all())

    def remove(self, job: InferenceJob) -> None:
        """Forget the job (its session ended); a request in flight is discarded on delivery."""
        self._ready.pop(job.job_id, None)
        self._deaths.pop(job.job_id, None)
        self.load.forget(job.job_id)

    async def _notify_all(self) -> None:
        assert self._wakeup is not None
        async with self._wakeup:
            self._wakeup.notify_all()

    async def _take(self) -> list[tuple[InferenceJob, float]]:
        assert self._wakeup is not None
        async with self._wakeup:
            await self._wakeup.wait_for(lambda: bool(self._ready))
            taken: list[tuple[InferenceJob, float]] = []
            while self._ready and len(taken) < self.max_batch_size:
                job_id, entry = self._ready.popitem(last=False)
                self._busy.add(job_id)
                taken.append(entry)
            return taken

    async def _worker(self, index: int) -> None:
        while True:
            taken = await self._take()
            try:
                await self._serve(taken)
            except BaseException:
                self._orphaned([job for job, _ in taken])
                raise
            finally:  # whatever happened, these sessions can be scheduled again
                for job, _ in taken:
                    self._busy.discard(job.job_id)

    def _orphaned(self, jobs: list[InferenceJob]) -> None:
        """This worker is dying with these sessions taken: schedule them again after a pause
        (they would wait for their next audio otherwise, and after the end of audio there is
        none), unless a session was in the batch of ``MAX_WORKER_DEATHS`` dying workers: then
        it is the cause, and it is left to its own timeout."""
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        for job in jobs:
            deaths = self._deaths[job.job_id] = self._deaths.get(job.job_id, 0) + 1
            if deaths >= MAX_WORKER_DEATHS:
                logger.error(
                    "session %s was in %d dying workers' batches; not scheduled again",
                    job.job_id,
                    deaths,
                )
                continue
            loop.call_later(0.5 * deaths, self.notify, job)

    async def _serve(self, taken: list[tuple[InferenceJob, float]]) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        batch: list[tuple[InferenceJob, InferenceRequest, float]] = []
        for job, queued_at in taken:
            try:
                request = job.next_request()
            except Exception:  # a broken session must not stop the worker
                logger.exception("session %s failed to build a request", job.job_id)
                request = None
            if request is None:
                self._busy.discard(job.job_id)
            else:
                batch.append((job, request, started - queued_at))
        if not batch:
            return
        requests = [request for _, request, _ in batch]
        results = await loop.run_in_executor(self._executor, self._run, requests)
        elapsed = time.monotonic() - started
        if len(results) != len(batch):  # a backend's transcribe_batch broke its contract
            error = BackendError(f"backend returned {len(results)} results for {len(batch)}")
            results = [error] * len(batch)
        for (job, request, queued_s), result in zip(batch, results, strict=True):
            self._busy.discard(job.job_id)
            self.load.busy(job.job_id, elapsed / len(batch))
            try:
                job.deliver(request, result, Timing(queued_s, elapsed, len(batch)))
                self.notify(job)
            except Exception:
                logger.exception("session %s failed to take its result", job.job_id)

    def _run(self, requests: Sequence[InferenceRequest]) -> list[Transcription | BaseException]:
        """On a worker thread: one model call; a failing batch is retried request by request."""
        if len(requests) > 1:
            try:
                return list(self.backend.transcribe_batch(requests))
            except Exception:
                logger.warning("batch of %d failed; retrying one by one", len(requests))
        results: list[Transcription | BaseException] = []
        for request in requests:
            try:
                results.append(self.backend.transcribe(request))
            except Exception as exc:
                results.append(exc)
        return results
