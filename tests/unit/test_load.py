"""The load meter behind admission: live sessions' model time, files sent at full speed left out."""

from __future__ import annotations

from whisper_streaming.server.load import LoadMeter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def live(meter: LoadMeter, clock: Clock, job: str, *, seconds: int, busy_per_s: float) -> None:
    """``job`` streams in real time for ``seconds``; each second costs ``busy_per_s`` of model."""
    for _ in range(seconds):
        clock.now += 1.0
        meter.audio(job, 1.0)
        meter.busy(job, busy_per_s)


def test_live_sessions_model_time_decides_and_files_do_not_count() -> None:
    clock = Clock()
    meter = LoadMeter(1, window_s=20.0, min_age_s=5.0, clock=clock)
    assert meter.overloaded(0.9) is None  # nothing measured: admit
    meter.audio("a", 0.0)
    meter.audio("b", 0.0)
    meter.audio("file", 0.0)
    for _ in range(30):
        clock.now += 1.0
        for job in ("a", "b"):
            meter.audio(job, 1.0)
            meter.busy(job, 0.35)
        meter.audio("file", 8.0)  # a file sent at 8x real time, using the rest of the model
        meter.busy("file", 0.3)
    load = meter.estimate()
    assert load.realtime_sessions == 2
    assert abs(load.used - 0.7) < 0.05 and abs(load.per_session - 0.35) < 0.03
    over = meter.overloaded(0.9)
    assert over is not None and abs(over.with_one_more - 1.05) < 0.08
    assert meter.overloaded(1.2) is None  # 1.05 of capacity with one more
    meter.forget("b")
    assert meter.overloaded(0.9) is None  # 0.35 + 0.35


def test_a_young_or_silent_session_is_not_measured() -> None:
    clock = Clock()
    meter = LoadMeter(2, min_age_s=5.0, clock=clock)
    meter.audio("new", 0.0)
    live(meter, clock, "new", seconds=3, busy_per_s=2.0)
    assert meter.estimate().realtime_sessions == 0  # 3 s old
    meter.busy("silent", 0.0)
    clock.now += 10
    meter.busy("silent", 0.0)
    load = meter.estimate()
    assert load.realtime_sessions == 1 and load.capacity == 2.0  # "new", not "silent"


def test_old_measurements_leave_the_window() -> None:
    clock = Clock()
    meter = LoadMeter(1, window_s=10.0, min_age_s=2.0, clock=clock)
    meter.audio("a", 0.0)
    live(meter, clock, "a", seconds=10, busy_per_s=0.9)
    assert meter.overloaded(0.9) is not None
    live(meter, clock, "a", seconds=10, busy_per_s=0.1)  # the model got faster (a GPU freed)
    assert meter.overloaded(0.9) is None
