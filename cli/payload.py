"""Build the JSON a TradingView alert would send (docs/design.md "Alert payload") from command options."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


class PayloadError(ValueError):
    """An option value that cannot become an alert field; the message names the option."""


def number(option: str, raw: str | float | int) -> int | float:
    """A finite JSON number from an option value (an int when whole)."""
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise PayloadError(f"{option} must be a number, got {raw!r}") from None
    if not value.is_finite():
        raise PayloadError(f"{option} must be a finite number, got {raw!r}")
    return int(value) if value == value.to_integral_value() else float(value)


def price_or_percent(option: str, raw: str) -> dict[str, int | float]:
    """``195`` → ``{"limitPrice": 195}``-style absolute price; ``2%`` → ``{"percent": 2}``."""
    text = raw.strip()
    if text.endswith("%"):
        return {"percent": number(option, text[:-1])}
    return {"price": number(option, text)}


def build_alert(
    ticker: str,
    action: str,
    quantity: str | None = None,
    *,
    take_profit: str | None = None,
    stop_loss: str | None = None,
    limit: str | None = None,
    stop: str | None = None,
    quantity_type: str | None = None,
    position_size: str | None = None,
    strategy: str | None = None,
    account: str | None = None,
    alert_id: str | None = None,
    price: str | None = None,
) -> dict[str, Any]:
    """The alert body (without the secret): what ``tv2ib send`` posts to ``/webhook``.

    The entry is a market order unless ``limit`` / ``stop`` (both: stop-limit) are given. ``--tp`` and
    ``--sl`` take an absolute price (``195``) or a percent of the entry (``2%``). The server validates
    everything else, so its field errors are the ones a TradingView alert would get.
    """
    body: dict[str, Any] = {"ticker": ticker, "action": action.lower()}
    if quantity is not None:
        body["quantity"] = number("QUANTITY", quantity)
    if quantity_type:
        body["quantityType"] = quantity_type
    if position_size is not None:
        body["positionSize"] = number("--position-size", position_size)
    if limit is not None and stop is not None:
        body.update(
            orderType="stop_limit", limitPrice=number("--limit", limit), stopPrice=number("--stop", stop)
        )
    elif limit is not None:
        body.update(orderType="limit", limitPrice=number("--limit", limit))
    elif stop is not None:
        body.update(orderType="stop", stopPrice=number("--stop", stop))
    else:
        body["orderType"] = "market"
    if price is not None:
        body["price"] = number("--price", price)
    if take_profit is not None:
        target = price_or_percent("--tp", take_profit)
        body["takeProfit"] = {"limitPrice": target["price"]} if "price" in target else target
    if stop_loss is not None:
        target = price_or_percent("--sl", stop_loss)
        body["stopLoss"] = {
            "type": "stop",
            **({"stopPrice": target["price"]} if "price" in target else target),
        }
    if strategy:
        body["strategy"] = strategy
    if account:
        body["account"] = account
    if alert_id:
        body["id"] = alert_id
    return body
