"""Intake's fast paths store exactly what its transactional path stores.

A fresh valid alert goes through one statement on PostgreSQL and one DB-API transaction on SQLite
(app/webhook/fast_path.py); an alert whose key is claimed (an expired claim, a duplicate) goes
through the SQLAlchemy transaction. The worker, the API and the dashboard read both kinds of rows, so the
stored values (timestamps' form, JSON, the audit row, the claim) must not tell them apart.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text

from app.webhook.store import make_fast_engine, record_valid
from core.context import AppContext
from core.models import DedupClaim

PAYLOAD = {"ticker": "AAPL", "action": "buy", "quantity": 1.5, "strategy": "s1", "extras": {"n": None}}


def _shape(value: Any) -> Any:
    """A stored value with its digits masked (its form), or its type and zone when not text."""
    if isinstance(value, str):
        return re.sub(r"\d", "9", value)
    if isinstance(value, datetime):
        return (datetime, value.tzinfo is not None)
    return value


def _stored(ctx: AppContext, alert_id: str) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        alert = conn.execute(text("SELECT * FROM alerts WHERE id = :i"), {"i": alert_id}).mappings().one()
        events = conn.execute(
            text("SELECT alert_id, at, status, message FROM alert_events WHERE alert_id = :i"),
            {"i": alert_id},
        ).all()
        claims = conn.execute(
            text("SELECT alert_id, expires_at FROM dedup_claims WHERE alert_id = :i"), {"i": alert_id}
        ).all()
    row = {k: _shape(v) for k, v in alert.items() if k not in ("id", "idempotency_key")}
    row["events"] = [(e.alert_id == alert_id, _shape(e.at), e.status, e.message) for e in events]
    row["claims"] = [_shape(c.expires_at) for c in claims]
    return row


def test_a_fresh_alert_is_stored_alike_by_the_fast_and_the_transactional_path(ctx):
    with ctx.engine.begin() as conn:  # an expired claim: the fast path leaves it to the transaction
        conn.execute(
            insert(DedupClaim),
            {"key": "k-slow", "alert_id": "gone", "expires_at": datetime(2020, 1, 1, tzinfo=UTC)},
        )
    fast_engine = make_fast_engine(ctx.engine)
    try:
        common = dict(payload=PAYLOAD, raw_body='{"a": 1}', client_ip="1.2.3.4", window_seconds=60)
        fast = record_valid(
            ctx.engine,
            fast_engine=fast_engine,
            idempotency_key="k-fast",
            signal_time=datetime.now(UTC),
            **common,
        )
        slow = record_valid(
            ctx.engine,
            fast_engine=fast_engine,
            idempotency_key="k-slow",
            signal_time=datetime.now(UTC),
            **common,
        )
    finally:
        if fast_engine is not None:
            fast_engine.dispose()
    assert (fast.status, fast.duplicate_of) == (slow.status, slow.duplicate_of) == ("received", None)
    fast_row = _stored(ctx, fast.alert_id)
    assert fast_row["events"] == [(True, fast_row["events"][0][1], "received", "received")]
    assert len(fast_row["claims"]) == 1
    assert fast_row == _stored(ctx, slow.alert_id)
