"""ClientManager admission, wait estimates and status."""

import pytest

from whisper_streaming.server.client_manager import ClientManager


def test_admission_limit_and_wait_estimate() -> None:
    """Over max_clients the answer is a wait until the earliest session's time limit."""
    now = [1000.0]
    manager = ClientManager(max_clients=2, max_connection_time_s=600, clock=lambda: now[0])
    assert manager.try_admit("a").admitted
    now[0] += 120
    assert manager.try_admit("b").admitted
    refused = manager.try_admit("c")
    assert not refused.admitted
    assert refused.wait_minutes == pytest.approx(8.0)  # a started 2 min ago, limit 10 min
    status = manager.get_status()
    assert status["current_clients"] == 2 and status["max_clients"] == 2
    assert status["estimated_wait_time_minutes"] == pytest.approx(8.0)
    manager.release("a")
    manager.release("a")  # idempotent
    assert manager.try_admit("c").admitted
    assert manager.total_refused == 1


def test_deadline_and_duplicate_ids() -> None:
    """Admission returns the session deadline; an id cannot be admitted twice."""
    manager = ClientManager(max_clients=1, max_connection_time_s=30, clock=lambda: 5.0)
    assert manager.try_admit("a").deadline == 35.0
    with pytest.raises(KeyError):
        manager.try_admit("a")
    assert manager.estimated_wait_minutes() == pytest.approx(0.5)
