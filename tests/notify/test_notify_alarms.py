"""Alarms of the Notifier (log transport, real database, real Redis): IB lost longer than N seconds
and restored, short blips ignored, Redis lost and back, worker stopping, the daily summary."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from support import wait_until

from config.settings import Settings
from core.models import Notice
from worker.notify import Notifier


def kinds(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return [n.kind for n in session.scalars(select(Notice).order_by(Notice.id))]


def texts(sessions: sessionmaker[Session], kind: str) -> list[str]:
    with sessions() as session:
        return [
            n.text for n in session.scalars(select(Notice).where(Notice.kind == kind).order_by(Notice.id))
        ]


def all_sent(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return all(n.sent_at is not None for n in session.scalars(select(Notice)))


def test_ib_lost_longer_than_n_seconds_alarms_then_restored(
    base_env: dict[str, str], sqlite_sessions: sessionmaker[Session], start_notifier: Callable[..., Notifier]
) -> None:
    settings = Settings.from_mapping({**base_env, "IB_ALARM_AFTER_SECONDS": "0.5", "IB_ACCOUNT": "DU9"})
    notifier = start_notifier(settings, sqlite_sessions)
    notifier.ib_connection_changed(False, "1100 Connectivity between IB and TWS has been lost")
    assert wait_until(lambda: "ib_lost" in kinds(sqlite_sessions), 5)
    notifier.ib_connection_changed(False, "reconnect attempt failed")  # still down: no second alarm
    time.sleep(0.7)
    notifier.ib_connection_changed(True, "1102 restored, data kept")
    assert wait_until(lambda: kinds(sqlite_sessions) == ["ib_lost", "ib_restored"], 5)
    [lost] = texts(sqlite_sessions, "ib_lost")
    assert "1100 Connectivity" in lost and "account DU9" in lost
    [restored] = texts(sqlite_sessions, "ib_restored")
    assert "after 1 s" in restored or "after 2 s" in restored
    assert wait_until(lambda: all_sent(sqlite_sessions), 5)


def test_short_ib_blip_sends_nothing(
    base_env: dict[str, str], sqlite_sessions: sessionmaker[Session], start_notifier: Callable[..., Notifier]
) -> None:
    settings = Settings.from_mapping({**base_env, "IB_ALARM_AFTER_SECONDS": "1"})
    notifier = start_notifier(settings, sqlite_sessions)
    for _ in range(3):
        notifier.ib_connection_changed(False, "1100")
        time.sleep(0.2)
        notifier.ib_connection_changed(True, "1102")
    time.sleep(1.3)
    assert kinds(sqlite_sessions) == []


def test_ib_down_before_start_still_alarms(
    base_env: dict[str, str], sqlite_sessions: sessionmaker[Session]
) -> None:
    settings = Settings.from_mapping({**base_env, "IB_ALARM_AFTER_SECONDS": "0.3"})
    notifier = Notifier(settings, sqlite_sessions, None)
    notifier.ib_connection_changed(False, "cannot connect: 502")  # the worker reports before start()
    notifier.start()
    try:
        assert wait_until(lambda: kinds(sqlite_sessions) == ["ib_lost"], 5)
    finally:
        notifier.stop(2.0)


def _dead_redis() -> redis.Redis:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # No client-side retries: each ping fails at once (production clients may retry for seconds).
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=0.2,
        socket_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
    )


def test_redis_lost_and_back(
    base_env: dict[str, str],
    sqlite_sessions: sessionmaker[Session],
    redis_client: redis.Redis,
    start_notifier: Callable[..., Notifier],
) -> None:
    settings = Settings.from_mapping({**base_env, "REDIS_ALARM_AFTER_SECONDS": "0.3"})
    notifier = start_notifier(settings, sqlite_sessions, _dead_redis(), redis_ping_seconds=0.1)
    assert wait_until(lambda: kinds(sqlite_sessions) == ["redis_lost"], 5)
    notifier.redis = redis_client  # the server is reachable again
    assert wait_until(lambda: kinds(sqlite_sessions) == ["redis_lost", "redis_restored"], 5)


def test_worker_stopping_is_durable_at_once(
    base_env: dict[str, str], sqlite_sessions: sessionmaker[Session], start_notifier: Callable[..., Notifier]
) -> None:
    notifier = start_notifier(Settings.from_mapping(base_env), sqlite_sessions)
    notifier.worker_stopping("SIGTERM: warm shutdown")
    assert kinds(sqlite_sessions) == ["worker_stopped"]  # written synchronously, before any send
    assert "SIGTERM: warm shutdown" in texts(sqlite_sessions, "worker_stopped")[0]
    # stop() returns as soon as the outbox is flushed; the generous budget only matters on a loaded
    # machine, where the lease, the send and the commit can take more than a second or two.
    notifier.stop(10.0)
    assert all_sent(sqlite_sessions)


def test_daily_summary_once_per_day_across_restarts(
    base_env: dict[str, str], sqlite_sessions: sessionmaker[Session], start_notifier: Callable[..., Notifier]
) -> None:
    settings = Settings.from_mapping({**base_env, "DAILY_SUMMARY_TIME": "00:00"})
    first = start_notifier(settings, sqlite_sessions)
    assert wait_until(lambda: kinds(sqlite_sessions) == ["daily_summary"], 5)
    [text] = texts(sqlite_sessions, "daily_summary")
    assert "trades (executions): 0" in text and "fees: 0" in text
    first.stop(2.0)
    second = start_notifier(settings, sqlite_sessions)  # a restart the same day
    assert wait_until(lambda: second.is_leader, 5)
    time.sleep(0.5)
    assert kinds(sqlite_sessions) == ["daily_summary"]


def test_daily_summary_breaks_down_by_strategy(any_sessions: sessionmaker[Session]) -> None:
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from core.ids import new_alert_id
    from core.models import Alert, Fill
    from worker.notify import summary
    from worker.notify.compose import compose

    # A day of its own: the PostgreSQL database is shared by the whole run.
    now = datetime(2001, 2, 3, 12, 0, tzinfo=UTC)
    with any_sessions.begin() as session:
        for strategy, pnls in {"trend <a>": [None, "100"], "revert": [None, "-30.5"]}.items():
            alert = Alert(id=new_alert_id(), status="filled", strategy=strategy)
            session.add(alert)
            session.flush()
            for i, pnl in enumerate(pnls):
                session.add(
                    Fill(
                        exec_id=f"sumtest.{alert.id}.{i}",
                        alert_id=alert.id,
                        side="BOT",
                        price=Decimal(1),
                        quantity=Decimal(1),
                        commission=Decimal("1.5"),
                        realized_pnl=None if pnl is None else Decimal(pnl),
                        time=now,
                    )  # fmt: skip
                )
        session.add(
            Fill(
                exec_id="sumtest.manual",
                side="SLD",
                price=Decimal(1),
                quantity=Decimal(1),
                commission=Decimal(1),
                time=now,
            )
        )
        session.add(Fill(exec_id="sumtest.yesterday", side="SLD", price=Decimal(1), quantity=Decimal(1), commission=Decimal(9),
                         realized_pnl=Decimal(999), time=now - timedelta(days=1)))  # fmt: skip
    event = summary.daily_summary_event(any_sessions, now)
    assert event["fills"] == 5 and event["realized_pnl"] == 69.5 and event["commissions"] == 7
    rows = {row["strategy"]: row for row in event["strategies"]}
    assert rows["trend <a>"] == {"strategy": "trend <a>", "fills": 2, "realized_pnl": 100, "commissions": 3}
    assert rows["revert"]["realized_pnl"] == -30.5 and rows[None]["fills"] == 1
    text = compose(event).text
    assert "trend &lt;a&gt;: +100 · 2 exec · fees 3" in text and "manual / unknown: 0 · 1 exec" in text
    with any_sessions.begin() as session:
        session.execute(Fill.__table__.delete().where(Fill.exec_id.like("sumtest.%")))
        session.execute(Alert.__table__.delete().where(Alert.strategy.in_(["trend <a>", "revert"])))


def test_a_restart_after_an_unclean_exit_is_reported(
    base_env: dict[str, str], sqlite_sessions: sessionmaker[Session], start_notifier: Callable[..., Notifier]
) -> None:
    from worker.notify import lease

    settings = Settings.from_mapping({**base_env, "IB_ACCOUNT": "DU7"})
    # The previous process of this worker held the lease and never released it (SIGKILL).
    assert lease.try_acquire(sqlite_sessions, "DU7:1", ttl=15)
    start_notifier(settings, sqlite_sessions)
    assert wait_until(lambda: kinds(sqlite_sessions) == ["alarm"], 5)
    assert "Worker restarted after an unclean exit" in texts(sqlite_sessions, "alarm")[0]


def test_a_clean_restart_reports_nothing(
    base_env: dict[str, str], sqlite_sessions: sessionmaker[Session], start_notifier: Callable[..., Notifier]
) -> None:
    settings = Settings.from_mapping({**base_env, "IB_ACCOUNT": "DU7"})
    first = start_notifier(settings, sqlite_sessions)
    assert wait_until(lambda: first.is_leader, 5)
    first.stop(2.0)
    second = start_notifier(settings, sqlite_sessions)
    assert wait_until(lambda: second.is_leader, 5)
    time.sleep(0.3)
    assert kinds(sqlite_sessions) == []
