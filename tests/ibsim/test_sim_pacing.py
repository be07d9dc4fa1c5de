"""The pacing bucket of a session (pure logic, with a fake clock)."""

from __future__ import annotations

import pytest
from ibsim_helpers import FakeClock

import ibsim.session
from ibsim.session import Session


class _Writer:
    def get_extra_info(self, name: str) -> None:
        return None


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(1000.0)
    monkeypatch.setattr(ibsim.session.time, "monotonic", fake)
    return fake


def session() -> Session:
    return Session(server=None, reader=None, writer=_Writer())  # type: ignore[arg-type]


def test_a_burst_above_the_limit_is_refused(clock: FakeClock) -> None:
    s = session()
    results = [s.over_pace(50) for _ in range(60)]
    assert results[:50] == [0] * 50
    assert all(r > 50 for r in results[50:])
    clock.now += 0.1  # five tokens back
    assert [s.over_pace(50) for _ in range(6)] == [0, 0, 0, 0, 0, 66]  # 66 received in this second


def test_a_client_at_45_per_second_is_never_refused_even_when_bunched(clock: FakeClock) -> None:
    s = session()
    for second in range(10):
        # 45 messages a second, delivered in three bunches (a busy loop or the network)
        for bunch in range(3):
            clock.now = 1000.0 + second + bunch * 0.3
            assert [s.over_pace(50) for _ in range(15)] == [0] * 15
