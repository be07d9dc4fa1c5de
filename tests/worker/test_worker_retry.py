"""The one retry primitive (worker/retry.py) and the consumer's wait for Redis built on it."""

from __future__ import annotations

import logging
import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry
from support import free_port, wait_until

from worker.consumer import Consumer
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


def test_the_consumer_waits_out_a_redis_outage_with_backoff_and_stops_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis down (a port nothing listens on): the consumer logs each retry with a doubling delay
    (0.4 s, 0.8 s, ...), never raises, and returns once stopping is set."""
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=RedisRetry(NoBackoff(), 0))
    stopping = threading.Event()
    consumer = Consumer(dead, "tv2ib:orders:test", "w1", {}, stopping)
    thread = threading.Thread(target=consumer.run, daemon=True)

    def retries() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Redis unavailable")]

    with caplog.at_level(logging.WARNING):
        thread.start()
        wait_until(lambda: len(retries()) >= 2, 10)
        stopping.set()
        thread.join(10)
    assert not thread.is_alive(), "the consumer did not stop while Redis was down"
    assert retries()[0].endswith("retry in 0.4s") and retries()[1].endswith("retry in 0.8s"), retries()
