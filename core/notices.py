"""Writing notices: rows of the ``notices`` table, the durable outbox that ``worker.notify`` delivers.

The worker composes its notices from events (``worker/notify/compose.py``) and writes them through
:func:`enqueue_draft` inside the transaction that records the fact. App code that decides a fact
itself (the relay's sweep ending an alert nobody took) writes its notice the same way, without
importing ``worker/``: a notice row is plain data, and the notifier delivers every row it finds,
whoever wrote it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.settings import Settings
from core.models import Notice, utcnow
from core.notice_text import fit, simulator_marked_text

MAX_DEDUP_KEY = 128  # Notice.dedup_key column width


@dataclass(frozen=True)
class NoticeDraft:
    """A notice ready for the outbox: its kind (for the on/silent/off switch), HTML text and the
    key that makes the same event never produce it twice (None: not deduplicated)."""

    kind: str
    text: str
    dedup_key: str | None
    silent: bool = False


def simulator_marked(draft: NoticeDraft) -> NoticeDraft:
    """``draft`` with the SIMULATOR line before its text (core/notice_text.py)."""
    return NoticeDraft(draft.kind, simulator_marked_text(draft.text), draft.dedup_key, draft.silent)


LOG_CHAT = "log"  # the pseudo chat whose notices go to the "tv2ib.notices" logger


def target_chats(settings: Settings) -> tuple[str, ...]:
    """The chats every notice goes to: the configured chat ids, or the log without a bot token."""
    if settings.telegram_bot_token and settings.telegram_chat_ids:
        return tuple(settings.telegram_chat_ids)
    return (LOG_CHAT,)


# Alarms about money at risk right now: a position without its protective orders, a position that
# is not what the strategy believes. ``*=off`` (quiet the chatter) does not silence them; only
# naming the kind in ``NOTIFY`` does (``unprotected=off``).
MONEY_ALARM_KINDS = frozenset({"unprotected", "position_drift", "daily_loss"})


def mode_of(settings: Settings, kind: str) -> str:
    """on | silent | off for ``kind`` (``NOTIFY`` setting; ``*`` is the default, itself ``on``;
    the kinds in :data:`MONEY_ALARM_KINDS` are ``on`` unless named)."""
    modes: Mapping[str, str] = settings.notify_modes
    if kind in MONEY_ALARM_KINDS:
        return modes.get(kind) or "on"
    return modes.get(kind) or modes.get("*") or "on"


def enqueue_draft(
    session: Session | Connection, draft: NoticeDraft, settings: Settings, *, simulator: bool = False
) -> int:
    """Write ``draft`` once per target chat (insert-or-ignore on the dedup key), in the caller's
    transaction: an ORM session, or a Core connection (intake's path). Every row fits Telegram's
    limit, whoever composed it; ``simulator``: the deployment trades ibsim, and the text says so
    on its first line."""
    mode = mode_of(settings, draft.kind)
    if mode == "off":
        return 0
    text = simulator_marked_text(draft.text) if simulator else fit(draft.text)
    silent = draft.silent or mode == "silent"
    added = 0
    for chat_id in target_chats(settings):
        key = None if draft.dedup_key is None else f"{draft.dedup_key}:{chat_id}"[:MAX_DEDUP_KEY]
        row = {
            "chat_id": chat_id,
            "kind": draft.kind[:32],
            "text": text,
            "silent": silent,
            "dedup_key": key,
            "created_at": utcnow(),
            "attempts": 0,
        }
        added += _insert_or_ignore(session, row)
    return added


def _insert_or_ignore(session: Session | Connection, row: dict[str, Any]) -> int:
    if row["dedup_key"] is None:
        session.execute(insert(Notice).values(**row))
        return 1
    bind = session if isinstance(session, Connection) else session.get_bind()
    dialect = bind.dialect.name
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


def alert_rejected_draft(
    alert_id: str,
    reason: str,
    *,
    action: str | None,
    ticker: str | None,
    strategy: str | None,
    account: str | None = None,
) -> NoticeDraft:
    """The notice of an alert refused outside the worker, worded like the worker's own
    ``alert_rejected`` notice and sharing its dedup key (``rejected:<alert id>``): an alert is
    reported refused once, whoever refused it."""
    esc = html.escape
    head = f"🚫 <b>Alert refused</b> · {esc(action) + ' ' if action else ''}{esc(ticker or '?')}"
    origin = f"alert <code>{esc(alert_id)}</code>"
    if strategy:
        origin = f"strategy <b>{esc(strategy[:200])}</b> · {origin}"
    lines = [head, esc(reason[:1500]), origin]
    if account:  # a fan-out child names its account, as the worker's notice does
        lines.append(f"account {esc(account)}")
    return NoticeDraft("alert_rejected", "\n".join(lines), f"rejected:{alert_id}")
