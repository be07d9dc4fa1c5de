"""The durable outbox on real SQLite and PostgreSQL: dedup, atomicity with the fact, order, switches,
and the sender lease."""

from __future__ import annotations

import threading

import pytest
from notify_helpers import OWNER_CHATS, fill_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core import events
from core.models import Control, Notice
from worker.notify import enqueue_notices, lease, notice_rows


def _notices(sessions: sessionmaker[Session]) -> list[Notice]:
    with sessions() as session:
        return list(session.scalars(select(Notice).order_by(Notice.id)))


def test_one_row_per_chat_and_replay_adds_nothing(
    any_sessions: sessionmaker[Session], tg_settings: Settings
) -> None:
    with any_sessions.begin() as session:
        assert enqueue_notices(session, fill_event(1), tg_settings) == 2
        # The same event twice in one transaction (e.g. execDetails replayed during reconciliation).
        assert enqueue_notices(session, fill_event(1), tg_settings) == 0
    with any_sessions.begin() as session:  # a worker restart replays the execution
        assert enqueue_notices(session, fill_event(1), tg_settings) == 0
    rows = _notices(any_sessions)
    assert [r.chat_id for r in rows] == list(OWNER_CHATS)
    assert {r.dedup_key for r in rows} == {f"fill:0000e0d5.6553f1a2.01.0001:{c}" for c in OWNER_CHATS}
    assert all(r.sent_at is None and r.kind == "fill" and not r.silent for r in rows)


def test_notice_commits_and_rolls_back_with_the_fact(
    any_sessions: sessionmaker[Session], tg_settings: Settings
) -> None:
    with pytest.raises(RuntimeError), any_sessions.begin() as session:
        session.add(Control(key="fact-1", value="x"))
        enqueue_notices(session, fill_event(2), tg_settings)
        raise RuntimeError("recording failed after the notice was added")
    assert _notices(any_sessions) == []
    # A duplicate notice inside the transaction must not disturb the caller's own writes.
    with any_sessions.begin() as session:
        enqueue_notices(session, fill_event(3), tg_settings)
    with any_sessions.begin() as session:
        session.add(Control(key="fact-2", value="y"))
        assert enqueue_notices(session, fill_event(3), tg_settings) == 0
        session.add(Control(key="fact-3", value="z"))
    with any_sessions() as session:
        assert session.get(Control, "fact-2") is not None and session.get(Control, "fact-3") is not None
        session.execute(Control.__table__.delete().where(Control.key.like("fact-%")))
        session.commit()


def test_switches_off_and_silent(any_sessions: sessionmaker[Session], tg_env: dict[str, str]) -> None:
    settings = Settings.from_mapping({**tg_env, "NOTIFY": "fill=silent,order_rejected=off"})
    with any_sessions.begin() as session:
        assert enqueue_notices(session, fill_event(4), settings) == 2
        rejected = events.order_rejected(
            None, strategy=None, leg=None, symbol="ES", order_ref="r", error_code=201, reason="x"
        )
        assert enqueue_notices(session, rejected, settings) == 0
        assert enqueue_notices(session, {"type": "order_status", "status": "Filled"}, settings) == 0
    assert [r.silent for r in _notices(any_sessions)] == [True, True]
    everything_off = Settings.from_mapping({**tg_env, "NOTIFY": "*=off,alarm=on"})
    with any_sessions.begin() as session:
        assert enqueue_notices(session, fill_event(5), everything_off) == 0
        assert enqueue_notices(session, {"type": "alarm", "title": "t"}, everything_off) == 2


def test_without_token_the_log_is_the_chat(
    any_sessions: sessionmaker[Session], base_env: dict[str, str]
) -> None:
    settings = Settings.from_mapping({**base_env, "TELEGRAM_CHAT_ID": "111"})
    with any_sessions.begin() as session:
        assert enqueue_notices(session, fill_event(6), settings) == 1
    assert [r.chat_id for r in _notices(any_sessions)] == [notice_rows.LOG_CHAT]


def test_pending_in_order_and_marked_once(any_sessions: sessionmaker[Session], tg_settings: Settings) -> None:
    for n in range(5):
        with any_sessions.begin() as session:
            enqueue_notices(session, fill_event(10 + n), tg_settings)
    with any_sessions() as session:
        rows = notice_rows.pending(session, "111")
        assert [r.text.count("ESZ6") for r in rows] == [1] * 5
        ids = [r.id for r in rows]
        assert ids == sorted(ids)
        assert notice_rows.pending_chats(session) == sorted(OWNER_CHATS) or set(
            notice_rows.pending_chats(session)
        ) == set(OWNER_CHATS)
    with any_sessions.begin() as session:
        assert notice_rows.mark_sent(session, ids[:2]) == 2
        assert notice_rows.mark_sent(session, ids[:3]) == 1  # already sent rows are not touched again
    with any_sessions() as session:
        assert [r.id for r in notice_rows.pending(session, "111")] == ids[3:]
        assert notice_rows.pending_count(session, "111") == 2
        assert notice_rows.pending_count(session) == 7


def test_concurrent_replays_insert_once(any_sessions: sessionmaker[Session], tg_settings: Settings) -> None:
    """Two threads record the same execution at the same time: one notice per chat."""
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def record() -> None:
        try:
            barrier.wait(5)
            with any_sessions.begin() as session:
                enqueue_notices(session, fill_event(42), tg_settings)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    with any_sessions() as session:
        assert session.scalar(select(func.count(Notice.id))) == 2


def test_lease_is_exclusive_until_it_expires(any_sessions: sessionmaker[Session]) -> None:
    assert lease.try_acquire(any_sessions, "A", ttl=10, now=1000)
    assert not lease.try_acquire(any_sessions, "B", ttl=10, now=1005)
    assert lease.try_acquire(any_sessions, "A", ttl=10, now=1008)  # renewal
    assert not lease.try_acquire(any_sessions, "B", ttl=10, now=1015)
    assert lease.try_acquire(any_sessions, "B", ttl=10, now=1019)  # A's lease expired at 1018
    assert lease.holder(any_sessions)[0] == "B"
    lease.release(any_sessions, "A")  # not the holder: nothing happens
    assert lease.holder(any_sessions)[0] == "B"
    lease.release(any_sessions, "B")
    assert lease.holder(any_sessions) is None
    assert lease.try_acquire(any_sessions, "A", ttl=10, now=1020)
    lease.release(any_sessions, "A")


def test_prune_deletes_only_old_delivered_notices(
    any_sessions: sessionmaker[Session], tg_settings: Settings
) -> None:
    from datetime import UTC, datetime, timedelta

    for n in range(3):
        with any_sessions.begin() as session:
            enqueue_notices(session, fill_event(60 + n), tg_settings)
    with any_sessions() as session:
        ids = [r.id for r in notice_rows.pending(session, "111")]
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with any_sessions.begin() as session:
        notice_rows.mark_sent(session, ids[:1], at=long_ago)
        notice_rows.mark_sent(session, ids[1:2])
    with any_sessions.begin() as session:
        assert notice_rows.prune(session, datetime.now(UTC) - timedelta(days=30)) == 1
    with any_sessions() as session:
        remaining = {r.id for r in session.scalars(select(Notice).where(Notice.chat_id == "111"))}
    assert remaining == set(ids[1:])


def test_an_alert_rejected_because_ib_refused_its_order_makes_one_notice(
    any_sessions: sessionmaker[Session], tg_settings: Settings
) -> None:
    alert_rejected = events.alert_rejected(
        "01R", strategy=None, ticker="AAPL", action=None, status="rejected", reason="IB: no"
    )
    order_rejected = events.order_rejected(
        "01R",
        strategy=None,
        leg="entry",
        symbol=None,
        order_ref="tv2ib:01R:entry",
        error_code=201,
        reason="no",
    )
    sl_rejected = events.OrderRejectedEvent(**{**order_rejected, "leg": "sl", "order_ref": "tv2ib:01R:sl"})
    with any_sessions.begin() as session:
        assert enqueue_notices(session, order_rejected, tg_settings) == 2
        assert enqueue_notices(session, alert_rejected, tg_settings) == 0
        assert enqueue_notices(session, sl_rejected, tg_settings) == 2
    assert [n.kind for n in _notices(any_sessions)] == ["order_rejected"] * 2 + ["order_rejected"] * 2
