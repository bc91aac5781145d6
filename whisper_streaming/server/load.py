"""How much of the model's capacity the live sessions use (pure; the clock is injected).

Admission asks this before it takes a new session: would one more real-time session push the
running ones past real time? A session's cost is the model time spent on its decodes per second
of wall time, over a recent window. Only real-time sessions count (their audio arrives at about
the speed of speech): a client that sends a file as fast as it can uses every idle moment of the
model by design, and yields to the others under the fair scheduler, so it says nothing about
whether a live speaker would keep up.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LoadEstimate", "LoadMeter"]

REALTIME_MAX_SPEED = 1.5
"""A session whose audio arrives faster than this (seconds of audio per second) is not live."""


@dataclass(frozen=True, slots=True)
class LoadEstimate:
    """The model time real-time sessions use, in worker-seconds per second."""

    realtime_sessions: int
    used: float
    capacity: float  # workers

    @property
    def per_session(self) -> float:
        """What one more real-time session would add (the mean of the running ones)."""
        return self.used / self.realtime_sessions if self.realtime_sessions else 0.0

    @property
    def with_one_more(self) -> float:
        """The share of capacity used if one more real-time session came."""
        return (self.used + self.per_session) / self.capacity


class _Job:
    __slots__ = ("events", "since")

    def __init__(self, now: float) -> None:
        self.since = now
        self.events: deque[tuple[float, float, float]] = deque()  # (time, busy_s, audio_s)


class LoadMeter:
    """Model time and audio per session over the last ``window_s`` seconds.

    Args:
        capacity: decodes the model runs at once (the scheduler's workers).
        window_s: how far back to look.
        min_age_s: a session younger than this is not measured yet.
        clock: monotonic clock (for tests).
    """

    def __init__(
        self,
        capacity: float,
        *,
        window_s: float = 20.0,
        min_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = max(1.0, capacity)
        self.window_s = window_s
        self.min_age_s = min_age_s
        self._clock = clock
        self._jobs: dict[str, _Job] = {}

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            job = self._jobs[job_id] = _Job(self._clock())
        return job

    def busy(self, job_id: str, seconds: float) -> None:
        """The model spent ``seconds`` on this session's decode."""
        self._add(job_id, seconds, 0.0)

    def audio(self, job_id: str, seconds: float) -> None:
        """This session received ``seconds`` of audio."""
        self._add(job_id, 0.0, seconds)

    def _add(self, job_id: str, busy_s: float, audio_s: float) -> None:
        now = self._clock()
        job = self._job(job_id)
        job.events.append((now, busy_s, audio_s))
        self._prune(job, now)

    def forget(self, job_id: str) -> None:
        """The session ended."""
        self._jobs.pop(job_id, None)

    def _prune(self, job: _Job, now: float) -> None:
        while job.events and job.events[0][0] < now - self.window_s:
            job.events.popleft()

    def estimate(self) -> LoadEstimate:
        """The real-time sessions' use of the model now."""
        now = self._clock()
        used = 0.0
        count = 0
        for job in self._jobs.values():
            self._prune(job, now)
            span = min(self.window_s, now - job.since)
            if span < self.min_age_s:
                continue
            audio_s = sum(e[2] for e in job.events)
            if audio_s / span > REALTIME_MAX_SPEED or audio_s == 0.0:
                continue  # a file sent at full speed, or a session that sends nothing
            used += sum(e[1] for e in job.events) / span
            count += 1
        return LoadEstimate(count, used, self.capacity)

    def overloaded(self, max_load: float) -> LoadEstimate | None:
        """The estimate, when one more real-time session would use more than ``max_load`` of
        the capacity; else None."""
        load = self.estimate()
        if load.realtime_sessions and load.with_one_more > max_load:
            return load
        return None
