"""Stored alerts with fills whose slippage, latency and profit are known, for the tests of the admin
API, the dashboard, the command line and Telegram (``seed_executions``).

Strategy ``trend``:

* ``BUY``: buy 2 AAPL, alert ``price`` 190, filled 1 @ 190.40 and 1 @ 190.60 (average 190.50: a
  cost of +0.50 a share, +1.00 USD, +26.3 bps); its take-profit (limit 192) sold 2 @ 192.10
  (-0.10 a share: better than its price), realizing +3.20. Signal at T, arrival T + 0.4 s, first
  fill T + 1.2 s (IB's time; recorded much later, so not refined).
* ``SELL``: sell 1 ESZ6 (multiplier 50), alert ``price`` 5000, filled @ 4999.75 (a cost of 0.25
  points = +12.50 USD, +0.5 bps); signal T, first fill T + 2 s; a later exit realized -1.50.

Strategy ``opts``: an alert on the underlying with ``optionType`` (``price`` is the stock's) whose
option filled @ 4.10: no reference price for the option.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.models import Alert, AlertStatus, Fill, Order

BUY_ID = "01JSLIPBUY0000000000000000"
SELL_ID = "01JSLIPSELL000000000000000"
OPTION_ID = "01JSLIPOPTION0000000000000"
D = Decimal


def _contract(symbol: str, sec_type: str, multiplier: str) -> dict[str, Any]:
    return {"con_id": 1, "symbol": symbol, "sec_type": sec_type, "exchange": "SMART", "currency": "USD",
            "local_symbol": symbol, "min_tick": "0.01", "multiplier": multiplier}  # fmt: skip


def _alert(session: Session, alert_id: str, strategy: str, ticker: str, action: str, payload: dict[str, Any],
           plan: dict[str, Any], signal: datetime) -> None:  # fmt: skip
    session.add(Alert(id=alert_id, status=AlertStatus.FILLED, strategy=strategy, ticker=ticker, action=action,
                      payload={"ticker": ticker, "action": action, **payload}, plan=plan, signal_time=signal,
                      received_at=signal + timedelta(seconds=0.4)))  # fmt: skip
    session.flush()


def _order(
    session: Session, alert_id: str, leg: str, action: str, kind: str, qty: str, **prices: Decimal
) -> int:
    order = Order(alert_id=alert_id, leg=leg, order_ref=f"tv2ib:{alert_id}:{leg}", action=action, order_type=kind,
                  quantity=D(qty), status="Filled", **prices)  # fmt: skip
    session.add(order)
    session.flush()
    return order.id


def _fill(session: Session, alert_id: str, order_id: int, leg: str, n: int, side: str, qty: str, price: str,
          at: datetime, realized: str = "0", fee: str = "1") -> None:  # fmt: skip
    session.add(Fill(exec_id=f"exec.{alert_id}.{leg}.{n}", alert_id=alert_id, order_id=order_id, leg=leg,
                     order_ref=f"tv2ib:{alert_id}:{leg}", side=side, quantity=D(qty), price=D(price), time=at,
                     commission=D(fee), commission_currency="USD", realized_pnl=D(realized)))  # fmt: skip


def seed_executions(sessions: sessionmaker[Session], now: datetime | None = None) -> datetime:
    """The alerts of the module docstring; returns their signal time T, 35 s before ``now`` (every
    fill is in the last 35 s: today's UTC day). Within 40 s after midnight UTC, the real clock is
    first waited past that (at most 40 s), so the fills never straddle two days."""
    if now is None:
        clock = datetime.now(UTC)
        since_midnight = clock - clock.replace(hour=0, minute=0, second=0, microsecond=0)
        if since_midnight < timedelta(seconds=40):
            time.sleep((timedelta(seconds=40) - since_midnight).total_seconds())
    t = (now or datetime.now(UTC)) - timedelta(seconds=35)
    with sessions.begin() as s:
        _alert(s, BUY_ID, "trend", "AAPL", "buy", {"price": 190, "time": None},
               {"contract": _contract("AAPL", "STK", "")}, t)  # fmt: skip
        entry = _order(s, BUY_ID, "entry", "BUY", "MKT", "2")
        tp = _order(s, BUY_ID, "tp", "SELL", "LMT", "2", limit_price=D(192))
        _fill(s, BUY_ID, entry, "entry", 1, "BOT", "1", "190.40", t + timedelta(seconds=1.2))
        _fill(s, BUY_ID, entry, "entry", 2, "BOT", "1", "190.60", t + timedelta(seconds=1.5))
        _fill(s, BUY_ID, tp, "tp", 1, "SLD", "2", "192.10", t + timedelta(seconds=20), realized="3.2")

        _alert(
            s,
            SELL_ID,
            "trend",
            "ES1!",
            "sell",
            {"price": 5000},
            {"contract": _contract("ES", "FUT", "50")},
            t,
        )
        sell = _order(s, SELL_ID, "entry", "SELL", "MKT", "1")
        _fill(s, SELL_ID, sell, "entry", 1, "SLD", "1", "4999.75", t + timedelta(seconds=2))
        close = _order(s, SELL_ID, "sl", "BUY", "STP", "1", stop_price=D(5010))
        _fill(s, SELL_ID, close, "sl", 1, "BOT", "1", "5010", t + timedelta(seconds=30), realized="-1.5")

        _alert(s, OPTION_ID, "opts", "AAPL", "buy", {"price": 190, "optionType": "call"},
               {"contract": _contract("AAPL", "OPT", "100"), "option": {"rule": "at the money"}}, t)  # fmt: skip
        option = _order(s, OPTION_ID, "entry", "BUY", "LMT", "1", limit_price=D("4.15"))
        _fill(s, OPTION_ID, option, "entry", 1, "BOT", "1", "4.10", t + timedelta(seconds=3))
    return t
