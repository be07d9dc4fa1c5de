"""Helpers shared by the notifier tests."""

from __future__ import annotations

from typing import Any

OWNER_CHATS = ("111", "222")
STRANGER = 999


def fill_event(n: int, **extra: Any) -> dict[str, Any]:
    """A realistic fill event (contract of /tmp/contracts.md) numbered ``n``."""
    event = {
        "type": "fill",
        "exec_id": f"0000e0d5.6553f1a2.01.{n:04d}",
        "alert_id": "01JD0000000000000000000001",
        "strategy": "trend <fast> & slow",
        "leg": "entry",
        "symbol": "ES",
        "local_symbol": "ESZ6",
        "sec_type": "FUT",
        "side": "BOT",
        "quantity": 1,
        "price": 5012.25,
        "cum_quantity": 1,
        "order_quantity": 1,
        "order_ref": "tv2ib:01JD0000000000000000000001:entry",
        "time": "2026-11-22T08:00:00+00:00",
        "commission": 2.25,
        "commission_currency": "USD",
        "realized_pnl": None,
        "account": "DU123",
        "seq": n,
    }
    event.update(extra)
    return event
