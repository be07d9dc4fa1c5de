"""What an alert asks for, read from its payload (pure): its kind, its position intent, and
whether it needs IB's price before it can be decided."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from core.payload import AlertPayload
from worker.decision.model import PlanRejected
from worker.decision.positions import Decision, PositionIntent, is_exit
from worker.decision.sizing import Sizing


def alert_kind(payload: AlertPayload) -> str:
    """``cancel`` (cancel resting entries), ``update`` (move the position's exits:
    worker/decision/exit_update.py) or ``position`` (buy, sell, add, exit: a move of the position
    decided by :func:`worker.decision.positions.decide`)."""
    action = payload.action
    if action in ("cancel", "update"):
        return action
    if action in ("buy", "sell", "add", "exit"):
        return "position"
    raise PlanRejected(f"unknown action {action!r}")


def intent_of(payload: AlertPayload, sizing: Sizing | None = None) -> PositionIntent:
    """What the alert asks for in position terms (quantities checked, not yet sized to IB's rules).

    ``sizing`` (worker/decision/sizing.py, issue 11) is the alert's dollar / risk / equity quantity (or the
    strategy's default) already turned into the order quantity :func:`decide` reads."""
    alert_kind(payload)
    if sizing is not None:
        quantity, percent = sizing.order_quantity, sizing.percent_of_position
    else:
        quantity, percent = _unsized_quantity(payload)
    return PositionIntent(action=payload.action, quantity=quantity, percent_of_position=percent,
                          position_size=payload.position_size, sentiment=payload.sentiment)  # fmt: skip


def _unsized_quantity(payload: AlertPayload) -> tuple[Decimal | None, Decimal | None]:
    """(quantity, percent of the position) of an alert sizing had nothing to do for."""
    qtype = payload.quantity_type or "fixed_quantity"
    # nothing to size: positionSize wins, a flat sentiment closes, an exit while flat does nothing
    # (worker/decision/sizing.py returns None for these; the executor always sizes first)
    unsized = payload.position_size is not None or payload.sentiment == "flat" or payload.action == "exit"
    if (
        qtype not in ("fixed_quantity", "percent_of_position")
        and payload.quantity is not None
        and not unsized
    ):
        raise PlanRejected(
            f"quantityType {qtype!r} needs sizing (worker/decision/sizing.py) before the decision"
        )
    qty = payload.quantity if qtype in ("fixed_quantity", "percent_of_position") else None
    if qty is not None and qty <= 0:
        raise PlanRejected(f"quantity must be positive, got {qty}")
    if qtype == "percent_of_position" and qty is not None:
        if qty > 100:
            raise PlanRejected(f"percent_of_position must be at most 100, got {qty}")
        return None, qty
    return qty, None


def entry_side(payload: AlertPayload) -> str:
    """BUY for ``buy``, SELL for ``sell``."""
    return "BUY" if payload.action == "buy" else "SELL"


def needs_market_reference(payload: AlertPayload) -> bool:
    """True when an opening order (or exits re-priced by the alert) needs IB's price: a market
    order without ``price``/``signalPrice``; an ``extendedHours`` market close (it goes as a
    marketable limit around that price, worker/decision/order_types.py); and an exit whose amount is sized
    (an ``exit`` with a ``dollar_amount`` needs a price to turn the amount into a quantity)."""
    if payload.action == "cancel" or payload.price is not None:
        return False
    if payload.extended_hours and payload.order_type == "market":
        return True
    if payload.action == "exit" and payload.sentiment != "flat":
        return payload.quantity is not None and (payload.quantity_type or "fixed_quantity") not in (
            "fixed_quantity", "percent_of_position")  # fmt: skip
    if payload.action not in ("buy", "sell", "add") or is_exit(payload):
        return False
    if payload.order_type == "limit":
        return False
    return payload.price is None


def has_relative_exits(payload: AlertPayload) -> bool:
    """Pure: the alert's take-profit / stop-loss needs a reference price (percent, amount, ticks)."""
    tp, sl = payload.take_profit, payload.stop_loss
    relative_tp = tp is not None and tp.limit_price is None
    relative_tp = relative_tp or any(level.limit_price is None for level in payload.take_profit_levels or ())
    relative_sl = (
        sl is not None and sl.stop_price is None and sl.trail_amount is None and sl.trail_percent is None
    )
    return relative_tp or relative_sl


def close_without_reference(
    decision: Decision, payload: AlertPayload, market: Decimal | None, source: str
) -> tuple[Decision, bool]:
    """Pure: a data problem never blocks a close. Without IB's price for relative exits, a reversal
    only closes ("close, then no open", the reason in its decision) and a reduce keeps its exits'
    prices; returns the decision and whether the alert's exits cannot be priced. An open from flat
    is left alone: the planner refuses it, saying why."""
    if market is not None or decision.close_qty <= 0:
        return decision, False
    if not needs_market_reference(payload) or not has_relative_exits(payload):
        return decision, False
    why = f"no reference price for the relative take-profit / stop-loss ({source})"
    if decision.open_qty > 0:
        return replace(decision, target=Decimal(0), reason=f"{decision.reason}; not reversed: {why}"), True
    return replace(decision, reason=f"{decision.reason}; the exits keep their prices: {why}"), True
