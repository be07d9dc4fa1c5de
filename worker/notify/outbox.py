"""The durable outbox: Notice rows written in the caller's transaction, read and marked by the sender.

A notice is durable exactly when the fact it reports is: the worker calls :func:`enqueue_notices`
inside the transaction that records the fill (or rejection), so both commit or neither does.
``dedup_key`` is unique (per chat: ``<event key>:<chat id>``), and the insert is an
insert-or-ignore, so an event replayed after a worker restart or by reconciliation never produces
a second notice. No I/O other than the insert: the IB loop never waits on Telegram.

Order: the sender delivers each chat's notices in id order. Ids are taken at insert time, so two
transactions committing in the opposite order of their inserts could deliver out of commit order;
the worker records facts through one writer thread, which rules that out within a worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Notice, utcnow
from config.settings import Settings
from worker.notify.compose import MAX_DEDUP_KEY, NoticeDraft, compose_safely

log = logging.getLogger(__name__)

LOG_CHAT = "log"  # the pseudo chat whose notices go to the "tv2ib.notices" logger


def target_chats(settings: Settings) -> tuple[str, ...]:
    """The chats every notice goes to: the configured chat ids, or the log without a bot token."""
    if settings.telegram_bot_token and settings.telegram_chat_ids:
        return tuple(settings.telegram_chat_ids)
    return (LOG_CHAT,)


def mode_of(settings: Settings, kind: str) -> str:
    """on | silent | off for ``kind`` (``NOTIFY`` setting; ``*`` is the default, itself ``on``)."""
    modes: Mapping[str, str] = settings.notify_modes
    return modes.get(kind) or modes.get("*") or "on"


def enqueue_notices(session: Session, event: Mapping[str, Any], settings: Settings) -> int:
    """Add the notice rows for ``event`` to the caller's transaction; returns how many were added.

    Never raises for formatting problems (a malformed event still yields a notice saying so) and
    respects the per-kind switch. Database errors propagate: the caller's transaction is failing
    anyway. Idempotent per event: a replayed event adds nothing.
    """
    draft = compose_safely(event)
    if draft is None:
        return 0
    return enqueue_draft(session, draft, settings)


def enqueue_draft(session: Session, draft: NoticeDraft, settings: Settings) -> int:
    """Write ``draft`` once per target chat (insert-or-ignore on the dedup key)."""
    mode = mode_of(settings, draft.kind)
    if mode == "off":
        return 0
    silent = draft.silent or mode == "silent"
    added = 0
    for chat_id in target_chats(settings):
        key = None if draft.dedup_key is None else f"{draft.dedup_key}:{chat_id}"[:MAX_DEDUP_KEY]
        row = {
            "chat_id": chat_id,
            "kind": draft.kind[:32],
            "text": draft.text,
            "silent": silent,
            "dedup_key": key,
            "created_at": utcnow(),
            "attempts": 0,
        }
        added += _insert_or_ignore(session, row)
    return added


def _insert_or_ignore(session: Session, row: dict[str, Any]) -> int:
    if row["dedup_key"] is None:
        session.execute(insert(Notice).values(**row))
        return 1
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        # One statement, no savepoint: the caller's transaction is never disturbed.
        stmt = (
            dialect_insert(Notice)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(Notice.id)  # rowcount is unreliable with RETURNING; count the ids back
        )
        return len(session.execute(stmt).all())
    # Other databases: check, then insert inside a savepoint so a concurrent duplicate only
    # rolls back the savepoint, never the caller's transaction.
    if session.scalar(select(Notice.id).where(Notice.dedup_key == row["dedup_key"])) is not None:
        return 0
    try:
        with session.begin_nested():
            session.execute(insert(Notice).values(**row))
    except IntegrityError:
        return 0
    return 1


# --- the sender's side ---------------------------------------------------------------------------


def pending_chats(session: Session) -> list[str]:
    """Chats that have unsent notices."""
    rows = session.scalars(select(Notice.chat_id).where(Notice.sent_at.is_(None)).group_by(Notice.chat_id))
    return list(rows)


def pending(session: Session, chat_id: str, limit: int = 100) -> list[Notice]:
    """The oldest unsent notices of ``chat_id``, in id (= commit) order."""
    query = (
        select(Notice)
        .where(Notice.chat_id == chat_id, Notice.sent_at.is_(None))
        .order_by(Notice.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def pending_count(session: Session, chat_id: str | None = None) -> int:
    """How many notices wait (for one chat or all)."""
    query = select(func.count(Notice.id)).where(Notice.sent_at.is_(None))
    if chat_id is not None:
        query = query.where(Notice.chat_id == chat_id)
    return int(session.scalar(query) or 0)


def mark_sent(session: Session, ids: Sequence[int], at: datetime | None = None) -> int:
    """Mark notices delivered (only those still unsent); returns how many changed."""
    if not ids:
        return 0
    result = session.execute(
        update(Notice)
        .where(Notice.id.in_(list(ids)), Notice.sent_at.is_(None))
        .values(sent_at=at or utcnow(), attempts=Notice.attempts + 1)
    )
    return result.rowcount or 0


def record_failure(session: Session, ids: Iterable[int], error: str) -> None:
    """Count a failed attempt on notices that stay in the outbox."""
    ids = list(ids)
    if ids:
        session.execute(
            update(Notice)
            .where(Notice.id.in_(ids), Notice.sent_at.is_(None))
            .values(attempts=Notice.attempts + 1, last_error=error[:2000])
        )


def give_up(session: Session, ids: Iterable[int], error: str) -> None:
    """Take notices out of the queue that Telegram refuses for good (e.g. a malformed text), so
    they never block the chat's later notices; ``last_error`` keeps why."""
    ids = list(ids)
    if ids:
        session.execute(
            update(Notice)
            .where(Notice.id.in_(ids), Notice.sent_at.is_(None))
            .values(sent_at=utcnow(), attempts=Notice.attempts + 1, last_error=f"given up: {error}"[:2000])
        )


def prune(session: Session, older_than: datetime, limit: int = 5000) -> int:
    """Delete delivered notices sent before ``older_than`` (at most ``limit`` per call).

    The retention must outlast any replay of the events they deduplicate: IB reports executions
    for a few days at most, so weeks are plenty. Unsent notices are never pruned.
    """
    ids = list(
        session.scalars(
            select(Notice.id).where(Notice.sent_at.is_not(None), Notice.sent_at < older_than).limit(limit)
        )
    )
    if not ids:
        return 0
    session.execute(delete(Notice).where(Notice.id.in_(ids)))
    return len(ids)
