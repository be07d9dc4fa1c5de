"""The notices of the recorder's facts: a fill, an order IB refused, an alert refused or failed.
(``alert_status`` and ``order_status`` are for the dashboard only: no notice.)"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from core.events import AlertRejectedEvent, BreakEvenEvent, FillEvent, OrderRejectedEvent
from core.ids import exit_leg_parts
from core.notices import NoticeDraft
from worker.notify.registry import composer
from worker.notify.wording import (
    SIDE_NAMES,
    esc,
    leg_name,
    num,
    origin_text,
    shorten,
    signed,
    symbol_text,
    with_account,
)


def fill_key(exec_id: str | None) -> str | None:
    """One notice per execution, whoever records it twice."""
    return f"fill:{exec_id}" if exec_id else None


CLOSING_LEGS = frozenset({"tp", "sl", "exit", "flatten"})


def _realized(event: FillEvent) -> Decimal | None:
    """The realized PnL worth showing: IB reports 0 (or an unset huge double) for a fill that opens
    a position; a closing leg shows even a breakeven 0."""
    raw: Any = event["realized_pnl"]
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or abs(value) >= Decimal("1e300"):
        return None
    if value == 0 and str(event["leg"] or "") not in CLOSING_LEGS and exit_leg_parts(event["leg"]) is None:
        return None
    return value


@composer("fill")
def _fill(event: FillEvent) -> NoticeDraft:
    side = SIDE_NAMES.get(str(event["side"] or "").upper(), str(event["side"] or "?"))
    icon = "🟢" if side == "BUY" else "🔴" if side == "SELL" else "⚪"
    symbol = esc(symbol_text(event["symbol"], event["local_symbol"], event["sec_type"]))
    lines = [
        f"{icon} <b>{side} {num(event['quantity'])} {symbol} @ {num(event['price'])}</b> · {esc(leg_name(event['leg']))}"
    ]
    cum, total = event["cum_quantity"], event["order_quantity"]
    if cum is not None and total is not None:
        try:
            final = Decimal(str(cum)) >= Decimal(str(total))
        except (InvalidOperation, ValueError):
            final = True
        word = "filled" if final else "partial fill"
        lines.append(f"{word} {num(cum)}/{num(total)}")
    origin = origin_text(event["strategy"], event["alert_id"], event["order_ref"])
    if origin:
        lines.append(origin)
    money = []
    if event["commission"] is not None:
        currency = event["commission_currency"]
        money.append(f"commission {num(event['commission'])}{' ' + esc(currency) if currency else ''}")
    if _realized(event) is not None:
        money.append(f"realized PnL <b>{signed(event['realized_pnl'])}</b>")
    if money:
        lines.append(" · ".join(money))
    return NoticeDraft("fill", with_account(lines, event.get("account")), fill_key(event["exec_id"]))


# Legs whose rejection is the alert's rejection (a refused take-profit or stop-loss is its own news).
ALERT_LEGS = frozenset({"entry", "exit"})


def _rejection_key(alert_id: str | None) -> str:
    return f"rejected:{alert_id}"


@composer("order_rejected")
def _order_rejected(event: OrderRejectedEvent) -> NoticeDraft:
    code = event["error_code"]
    head = f"⛔ <b>Order rejected</b> · {esc(symbol_text(event['symbol']))} {esc(leg_name(event['leg']))}"
    lines = [
        head,
        f"IB{' ' + esc(code) if code not in (None, '') else ''}: {esc(shorten(str(event['reason'] or 'no reason given'), 1500))}",
    ]
    origin = origin_text(event["strategy"], event["alert_id"], event["order_ref"])
    if origin:
        lines.append(origin)
    ref = event["order_ref"] or f"{event['alert_id']}:{event['leg']}"
    key = f"order_rejected:{ref}:{code}"
    if event["alert_id"] and str(event["leg"] or "entry") in ALERT_LEGS:
        # The alert's own order refused: the worker also reports the alert as rejected. Both share
        # one key, so the trader gets one notice (whichever the worker records first).
        key = _rejection_key(event["alert_id"])
    return NoticeDraft("order_rejected", with_account(lines, event.get("account")), key)


@composer("alert_rejected")
def _alert_rejected(event: AlertRejectedEvent) -> NoticeDraft:
    status = str(event["status"] or "rejected")
    word = "failed" if status == "failed" else "refused"
    action = esc(event["action"] or "")
    ticker = esc(event["ticker"] or "?")
    lines = [
        f"🚫 <b>Alert {word}</b> · {action + ' ' if action else ''}{ticker}",
        esc(shorten(str(event["reason"] or "no reason given"), 1500)),
    ]
    origin = origin_text(event["strategy"], event["alert_id"], None)
    if origin:
        lines.append(origin)
    return NoticeDraft(
        "alert_rejected", with_account(lines, event.get("account")), _rejection_key(event["alert_id"])
    )


@composer("break_even")
def _break_even(event: BreakEvenEvent) -> NoticeDraft:
    """``stopLoss.breakEven``: the stop moved to the entry (once per position's record)."""
    old = f"from {num(event['old_stop'])} " if event["old_stop"] is not None else ""
    lines = [
        f"🛡️ <b>Stop moved to break-even</b> · {esc(symbol_text(event['symbol']))} {esc(event['position'])}: "
        f"stop {old}to <b>{num(event['new_stop'])}</b>",
        esc(shorten(event["why"], 500)),
        f"alert <code>{esc(event['alert_id'])}</code>",
    ]
    key = f"break_even:{event['account'][:40]}:{event['con_id']}:{event['alert_id']}"
    return NoticeDraft("break_even", with_account(lines, event.get("account")), key)
