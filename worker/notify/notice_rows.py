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

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from config.settings import Settings
from core.models import Notice, utcnow
from core.notices import LOG_CHAT, enqueue_draft, mode_of, target_chats
from worker.notify.compose import compose_safely

log = logging.getLogger(__name__)

# Writing a notice row lives in core/notices.py so that app/ code (the relay's sweep) can add one
# without importing worker/; these names stay importable from here.
__all__ = ["LOG_CHAT", "enqueue_draft", "enqueue_notices", "mode_of", "target_chats"]


def enqueue_notices(
    session: Session, event: Mapping[str, Any], settings: Settings, *, simulator: bool = False
) -> int:
    """Add the notice rows for ``event`` to the caller's transaction; returns how many were added.

    Never raises for formatting problems (a malformed event still yields a notice saying so) and
    respects the per-kind switch. Database errors propagate: the caller's transaction is failing
    anyway. Idempotent per event: a replayed event adds nothing. ``simulator``: the worker trades
    ibsim, and the notice says so first (whatever its kind).
    """
    draft = compose_safely(event)
    if draft is None:
        return 0
    return enqueue_draft(session, draft, settings, simulator=simulator)


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
