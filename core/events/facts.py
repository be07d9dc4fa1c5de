"""The facts of the database, as events: the recorder's (an alert's status, an alert or order
refused, an order's state at IB, a fill), emitted after their transaction commits, and the web
app's (an operator paused or resumed trading). They reach the Redis channel (the dashboard's
stream, ``tv2ib tail``) and the notices."""

from decimal import Decimal
from typing import Literal, NotRequired, TypedDict, TypeVar

from core.models import Order


class AlertStatusEvent(TypedDict):
    """An alert moved to ``status`` (``reason``: why it ended, for terminal states)."""

    type: Literal["alert_status"]
    alert_id: str
    status: str
    reason: str | None


class AlertRejectedEvent(TypedDict):
    """An alert was refused (``rejected``) or could not be processed (``failed``)."""

    type: Literal["alert_rejected"]
    alert_id: str
    strategy: str | None
    ticker: str | None
    action: str | None
    status: str
    reason: str | None
    # the account of a fan-out child (one alert of several accounts): its notice names it
    account: NotRequired[str]


class OrderStatusEvent(TypedDict):
    """An alert's order changed state or filled quantity at IB."""

    type: Literal["order_status"]
    alert_id: str
    leg: str
    order_ref: str
    ib_order_id: int | None
    perm_id: int | None
    status: str
    filled: float | None
    remaining: float | None
    avg_fill_price: float | None


class OrderRejectedEvent(TypedDict):
    """IB refused an order (``error_code`` is IB's code, ``reason`` its text). ``alert_id`` and
    ``strategy`` are None for an order that no alert made (placed in TWS)."""

    type: Literal["order_rejected"]
    alert_id: str | None
    strategy: str | None
    leg: str | None
    symbol: str | None
    order_ref: str
    error_code: int
    reason: str
    account: NotRequired[str]  # as in AlertRejectedEvent: set for a fan-out child's order


class FillEvent(TypedDict):
    """One execution with its commission report (once per ``exec_id``)."""

    type: Literal["fill"]
    exec_id: str
    alert_id: str | None
    strategy: str | None
    leg: str | None
    symbol: str | None
    local_symbol: str | None
    sec_type: str | None
    side: str
    quantity: float | None
    price: float | None
    cum_quantity: float | None
    order_quantity: float | None
    order_ref: str | None
    time: str | None
    commission: float | None
    commission_currency: str | None
    realized_pnl: float | None
    account: str | None


class PausedEvent(TypedDict):
    """An operator paused (``paused`` true) or resumed trading; ``by`` says who (``api``,
    ``dashboard``, ``telegram:<user id>``)."""

    type: Literal["paused"]
    paused: bool
    by: str


_Refusal = TypeVar("_Refusal", AlertRejectedEvent, OrderRejectedEvent)


def _of_account(event: _Refusal, account: str | None) -> _Refusal:
    """A refusal with the account of a fan-out child (its notice names it); without, as it is."""
    if account:
        event["account"] = account
    return event


def _float(value: Decimal | None) -> float | None:
    # Quantities and prices are Decimal in the database and numbers in JSON.
    return None if value is None else float(value)


def alert_status(alert_id: str, status: str, reason: str | None) -> AlertStatusEvent:
    return {"type": "alert_status", "alert_id": alert_id, "status": status, "reason": reason}


def alert_rejected(
    alert_id: str,
    *,
    strategy: str | None,
    ticker: str | None,
    action: str | None,
    status: str,
    reason: str | None,
    account: str | None = None,
) -> AlertRejectedEvent:
    event: AlertRejectedEvent = {
        "type": "alert_rejected",
        "alert_id": alert_id,
        "strategy": strategy,
        "ticker": ticker,
        "action": action,
        "status": status,
        "reason": reason,
    }
    return _of_account(event, account)


def order_status(order: Order, remaining: Decimal | None) -> OrderStatusEvent:
    """The state of an alert's ``order`` row as just recorded (``remaining``: IB's, not stored)."""
    assert order.alert_id is not None, "order_status events are for an alert's orders"
    return {
        "type": "order_status",
        "alert_id": order.alert_id,
        "leg": order.leg,
        "order_ref": order.order_ref,
        "ib_order_id": order.ib_order_id,
        "perm_id": order.perm_id,
        "status": order.status,
        "filled": _float(order.filled_quantity),
        "remaining": _float(remaining),
        "avg_fill_price": _float(order.avg_fill_price),
    }


def order_rejected(
    alert_id: str | None,
    *,
    strategy: str | None,
    leg: str | None,
    symbol: str | None,
    order_ref: str,
    error_code: int,
    reason: str,
    account: str | None = None,
) -> OrderRejectedEvent:
    event: OrderRejectedEvent = {
        "type": "order_rejected",
        "alert_id": alert_id,
        "strategy": strategy,
        "leg": leg,
        "symbol": symbol,
        "order_ref": order_ref,
        "error_code": error_code,
        "reason": reason,
    }
    return _of_account(event, account)


def fill(
    exec_id: str,
    *,
    alert_id: str | None,
    strategy: str | None,
    leg: str | None,
    symbol: str | None,
    local_symbol: str | None,
    sec_type: str | None,
    side: str,
    quantity: float | None,
    price: float | None,
    cum_quantity: float | None,
    order_quantity: float | None,
    order_ref: str | None,
    time: str | None,
    commission: float | None,
    commission_currency: str | None,
    realized_pnl: float | None,
    account: str | None,
) -> FillEvent:
    return {
        "type": "fill",
        "exec_id": exec_id,
        "alert_id": alert_id,
        "strategy": strategy,
        "leg": leg,
        "symbol": symbol,
        "local_symbol": local_symbol,
        "sec_type": sec_type,
        "side": side,
        "quantity": quantity,
        "price": price,
        "cum_quantity": cum_quantity,
        "order_quantity": order_quantity,
        "order_ref": order_ref,
        "time": time,
        "commission": commission,
        "commission_currency": commission_currency,
        "realized_pnl": realized_pnl,
        "account": account,
    }


def paused(is_paused: bool, by: str) -> PausedEvent:
    return {"type": "paused", "paused": is_paused, "by": by}
