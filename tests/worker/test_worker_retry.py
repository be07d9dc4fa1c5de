"""The one retry primitive (worker/retry.py): pure logic, no sleeping longer than a few ms."""

from __future__ import annotations

import threading

import pytest

from worker.retry import backoff_delay, retry


def test_backoff_doubles_from_base_up_to_the_cap() -> None:
    assert [backoff_delay(n, 0.5, 5.0, jitter=False) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_keeps_half_to_all_of_the_delay() -> None:
    delays = [backoff_delay(3, 0.25, 5.0) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 1


def test_retries_only_the_named_exceptions_until_fn_returns() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "up"

    assert retry(flaky, on=(ConnectionError,), what="test", base=0.001, cap=0.001) == "up"
    assert len(calls) == 3

    def broken() -> None:
        raise ValueError("permanent")

    with pytest.raises(ValueError):
        retry(broken, on=(ConnectionError,), what="test", base=0.001)


def test_attempts_cap_the_calls_and_the_last_error_is_raised() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionError(f"down {len(calls)}")

    with pytest.raises(ConnectionError, match="down 4"):
        retry(down, on=(ConnectionError,), what="test", base=0.001, cap=0.001, attempts=4)
    assert len(calls) == 4


def test_a_set_stop_event_ends_the_retries_with_the_last_error() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        if len(calls) == 2:
            stop.set()  # e.g. SIGTERM while Redis is down
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        retry(down, on=(ConnectionError,), what="test", base=0.001, stop=stop)
    assert len(calls) == 2
