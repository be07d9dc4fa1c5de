"""Quantity sizing (issue 11): the alert's ``quantity`` + ``quantityType`` → the order quantity that
:func:`worker.decision.positions.decide` reads. Pure logic, no I/O: the executor hands in IB's contract
facts, its position, a reference price and the account's figures (docs/sizing.md has the worked
examples).

Modes (TradersPost names; ``mult`` is the contract's multiplier, 1 for stocks and forex):

* ``fixed_quantity`` and ``percent_of_position`` from the alert: not sized here. A fixed quantity
  is TradingView's order quantity (``{{strategy.order.contracts}}``: a reversal long 10 -> short 10
  arrives as ``sell 20``) and ``decide`` reads it as before; a percent of the position is
  computed by ``decide`` against IB's position.
* ``dollar_amount``: notional ÷ (reference × mult), the notional in the contract's currency.
* ``risk_dollar_amount``: risk ÷ (|reference − stop| × mult), the risk in the contract's currency.
* ``risk_percent``: (pct % of NetLiquidation) ÷ (|reference − stop| × mult).
* ``percent_of_equity``: (pct % of NetLiquidation) ÷ (reference × mult).

Every result is rounded DOWN to the contract's size increment and must reach its minimum size.

What a sized quantity means (one place: :func:`order_quantity`): it is the size of the position
the alert OPENS. From flat that is the order; for the opening part of a reversal the order is the
whole current position (its closing part) plus the sized quantity; for an ``add`` it is the
addition. For an alert that only reduces (an ``exit`` with an amount; a ``sell`` with
``sentiment: bullish`` while long) it is the amount to close, capped at the position.
``positionSize`` wins over every quantity (nothing is sized) and an exit without a quantity, or
``sentiment: flat``, closes everything (nothing is sized).

Exits are never blocked by sizing: when the opening part of a reversal cannot be sized (zero, no
NetLiquidation, no stop-loss for a risk mode) the position is closed and nothing opens, the reason
stated; when a reducing amount cannot be worked out the whole position is closed, and a reducing
amount below the minimum size closes the minimum size. An alert that only opens or adds is refused
(:class:`SizingRefused`) with the rule and its numbers.

Currencies: NetLiquidation is in the account's base currency. When the contract trades in another
currency the percent modes convert with IB's own ``ExchangeRate`` account value for that currency
and refuse when IB reported none. The dollar modes' amounts are in the contract's currency (the
currency its price is quoted in: USD for AAPL, MES and EUR.USD), so they need no conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from core.payload import AlertPayload, StopLoss
from worker.decision.model import Instrument, PlanRejected
from worker.decision.numbers import decimal_of
from worker.decision.offsets import offset_price
from worker.decision.positions import is_exit
from worker.decision.rounding import limit_direction, protective_stop_direction, round_to_tick
from worker.errors import Refused
from worker.recording.snapshots import AccountFigures

SIZED_TYPES = ("dollar_amount", "risk_dollar_amount", "risk_percent", "percent_of_equity")
RISK_TYPES = ("risk_dollar_amount", "risk_percent")
EQUITY_TYPES = ("risk_percent", "percent_of_equity")  # read IB's NetLiquidation
HUNDRED = Decimal(100)


class SizingRefused(Refused):
    """The quantity cannot be sized; the message names the rule and its numbers."""


class _CannotSize(Exception):  # noqa: N818 - internal: why an amount cannot be worked out
    pass


@dataclass(frozen=True)
class Sizing:
    """A sized quantity and how it was reached (stored as ``plan["sizing"]``)."""

    rule: str  # the quantityType that produced it
    source: str  # "alert" or "strategy default"
    role: str  # open, add, reverse (its opening part), reduce: what the quantity is the size of
    text: str  # one line for the trader: the rule with its numbers
    quantity: Decimal | None  # the sized quantity on the size grid (None: percent_of_position)
    order_quantity: Decimal | None  # the TradingView order quantity :func:`decide` reads
    percent_of_position: Decimal | None = None  # a strategy default of percent_of_position
    inputs: dict[str, str] = field(default_factory=dict)  # every number used, as strings

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "source": self.source,
            "role": self.role,
            "text": self.text,
            "inputs": dict(self.inputs),
            "quantity": None if self.quantity is None else _plain(self.quantity),
            "order_quantity": None if self.order_quantity is None else _plain(self.order_quantity),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Sizing:
        """The sizing as :meth:`to_json` stored it (``percent_of_position`` is not stored: None)."""
        inputs = {str(k): str(v) for k, v in (doc.get("inputs") or {}).items()}
        return cls(str(doc["rule"]), str(doc["source"]), str(doc["role"]), str(doc["text"]),
                   decimal_of(doc.get("quantity")), decimal_of(doc.get("order_quantity")), inputs=inputs)  # fmt: skip


def size_alert(
    payload: AlertPayload,
    inst: Instrument,
    *,
    position: Decimal,
    market_price: Decimal | None,
    figures: AccountFigures | None,
    default: tuple[str, Decimal] | None = None,
    market_source: str = "IB price",
) -> Sizing | None:
    """The alert's quantity sized against ``position`` (IB's, signed), or None when nothing is to
    be sized (``positionSize``, a fixed quantity or a percent of the position from the alert, a
    closing alert without quantity, no quantity and no ``default``).

    ``default`` is the strategy's ``(quantity_type, quantity)`` from the risk file, used only when
    the alert has no quantity and no ``positionSize`` (and never for an exit). ``market_price`` is
    IB's price, the reference when the alert has neither a limit price nor ``price``.
    Raises :class:`SizingRefused` for an opening that cannot be sized."""
    asked = _what_to_size(payload, position, default)
    if asked is None:
        return None
    rule, amount, source = asked
    role, side = _role(payload, position)
    prefix = f"sizing ({source}): " if source != "alert" else "sizing: "
    if rule == "percent_of_position":  # a default: decide takes the percent of IB's position
        text = f"{prefix}{_plain(amount)}% of the position"
        return Sizing(rule, source, role, text, None, None, percent_of_position=amount,
                      inputs={"percent": _plain(amount)})  # fmt: skip
    inputs: dict[str, str] = {"amount": _plain(amount), "position": _plain(position)}
    try:
        if rule == "fixed_quantity":  # a default: the size the alert opens, like the sized modes
            raw, calc = amount, f"fixed {_plain(amount)}"
        else:
            raw, calc = _compute(rule, amount, payload, inst, side, role, market_price, market_source,
                                 figures, inputs)  # fmt: skip
    except _CannotSize as exc:
        return _fallback(rule, source, role, position, prefix + str(exc), inputs)
    qty = floor_to_increment(raw, inst.size_increment)
    inputs.update(raw_quantity=_plain(raw), size_increment=_plain(inst.size_increment),
                  min_size=_plain(inst.min_size))  # fmt: skip
    shown = "" if rule == "fixed_quantity" else f" = {_raw(raw, inst.size_increment)}"
    text = f"{prefix}{calc}{shown} → {_plain(qty)}"
    if qty < inst.min_size or qty <= 0:
        return _below_minimum(rule, source, role, position, inst, f"{text}: below the minimum size "
                              f"{_plain(inst.min_size)}", inputs)  # fmt: skip
    return _sized(rule, source, role, position, qty, text, inputs)


def _what_to_size(payload: AlertPayload, position: Decimal,
                  default: tuple[str, Decimal] | None) -> tuple[str, Decimal, str] | None:  # fmt: skip
    """(rule, amount, source) of what the alert asks sized, None when nothing is to be sized."""
    action = payload.action
    if action == "cancel" or (payload.position_size is not None and action != "exit"):
        return None
    if payload.sentiment == "flat" or (action == "exit" and payload.quantity is None):
        return None  # closes the whole position
    if action == "exit" and position == 0:
        return None  # nothing to exit: decide says so
    if payload.quantity is not None:
        rule = payload.quantity_type or "fixed_quantity"
        # not sized: TradingView's order quantity, or decide's percent of the position
        return (rule, payload.quantity, "alert") if rule in SIZED_TYPES else None
    if default is not None and action in ("buy", "sell", "add"):
        # via str: a float from YAML keeps the digits written, not its binary expansion
        return default[0], Decimal(str(default[1])), "strategy default"
    return None


def _below_minimum(rule: str, source: str, role: str, position: Decimal, inst: Instrument, below: str,
                   inputs: dict[str, str]) -> Sizing:  # fmt: skip
    """A sized quantity below the contract's minimum: a reduce closes the minimum (an exit is never
    blocked), a reversal only closes, an opening is refused."""
    if role == "reduce":  # an exit is never blocked: close the smallest amount IB takes
        qty = min(inst.min_size, abs(position))
        return _sized(rule, source, role, position, qty,
                      f"{below}; closes the minimum size {_plain(qty)} (exits are never blocked by sizing)",
                      inputs)  # fmt: skip
    if role == "reverse":
        return _fallback(rule, source, role, position, below, inputs)
    raise SizingRefused(f"{below}; nothing sent")


def _role(payload: AlertPayload, position: Decimal) -> tuple[str, str]:
    """What a sized quantity is the size of, and the side of the order it sizes."""
    if payload.action == "exit":
        return "reduce", "SELL" if position > 0 else "BUY"
    if payload.action == "add":
        return "add", "SELL" if position < 0 else "BUY"
    sign = 1 if payload.action == "buy" else -1
    side = "BUY" if sign > 0 else "SELL"
    wanted = {"bullish": 1, "bearish": -1}.get(payload.sentiment or "")
    if wanted is not None and wanted * sign < 0:  # a sell that must leave a long (or flat): reduces
        return "reduce", side
    if position * sign < 0:
        return "reverse", side
    return "open", side


def order_quantity(role: str, position: Decimal, sized: Decimal) -> Decimal:
    """THE conversion from a sized quantity to the TradingView order quantity :func:`decide` reads:
    the opening size itself (from flat, an add), the whole position plus it (a reversal: its
    closing part is the position), or the amount to close capped at the position (a reduce)."""
    if role == "reverse":
        return abs(position) + sized
    if role == "reduce":
        return min(sized, abs(position))
    return sized


def _sized(rule: str, source: str, role: str, position: Decimal, qty: Decimal, text: str,
           inputs: dict[str, str]) -> Sizing:  # fmt: skip
    order = order_quantity(role, position, qty)
    if role == "reverse":
        text += f"; reversal: close {_plain(abs(position))}, then open {_plain(qty)} (order {_plain(order)})"
    elif role == "reduce" and order < qty:
        text += f"; capped at the position {_plain(abs(position))}"
    return Sizing(rule, source, role, text, qty, order, inputs={**inputs, "quantity": _plain(qty)})


def _fallback(rule: str, source: str, role: str, position: Decimal, why: str,
              inputs: dict[str, str]) -> Sizing:  # fmt: skip
    """The amount could not be sized: refused for an opening; a reversal only closes; a reduce
    closes the whole position (exits are never blocked by sizing)."""
    if role == "reverse":
        text = f"{why}; the opening part of the reversal is not sent: the position is only closed"
        return Sizing(rule, source, role, text, Decimal(0), abs(position), inputs=inputs)
    if role == "reduce":
        text = f"{why}; the whole position is closed (exits are never blocked by sizing)"
        return Sizing(rule, source, role, text, abs(position), abs(position), inputs=inputs)
    raise SizingRefused(f"{why}; nothing sent")


def _compute(rule: str, amount: Decimal, payload: AlertPayload, inst: Instrument, side: str, role: str,
             market_price: Decimal | None, market_source: str, figures: AccountFigures | None,
             inputs: dict[str, str]) -> tuple[Decimal, str]:  # fmt: skip
    """The unrounded quantity of ``rule`` and its calculation as text; :class:`_CannotSize`."""
    if rule not in SIZED_TYPES:
        raise _CannotSize(f"quantityType {rule!r} is not a sizing rule")
    if amount <= 0:
        raise _CannotSize(f"{rule} must be positive, got {_plain(amount)}")
    if rule in EQUITY_TYPES and amount > HUNDRED:
        raise _CannotSize(f"{rule} must be at most 100, got {_plain(amount)}")
    multiplier = _multiplier(inst)
    reference, how = reference_price(payload, inst, side, market_price, market_source)
    if reference is None:
        raise _CannotSize(f"{rule} needs a price: the alert has none and IB gave none ({how})")
    ccy = inst.currency or "?"
    tick = inst.min_tick
    inputs.update(reference_price=_plain(reference), reference_source=how, multiplier=_plain(multiplier),
                  currency=ccy)  # fmt: skip
    if rule in EQUITY_TYPES:
        budget, head = _of_net_liquidation(amount, figures, ccy, inputs)
    else:
        budget, head = amount, f"{_money(amount)} {ccy}"
    if rule in RISK_TYPES:
        stop, distance = stop_distance(payload.stop_loss, reference, inst, side, role, rule)
        inputs.update(stop_price="" if stop is None else _plain(stop), stop_distance=_plain(distance),
                      risk_budget=_plain(budget))  # fmt: skip
        if stop is None:
            between = f"trailing {_price(distance, tick)}"
        elif stop < reference:
            between = f"{_price(reference, tick)} − {_price(stop, tick)}"
        else:
            between = f"{_price(stop, tick)} − {_price(reference, tick)}"
        return budget / (distance * multiplier), f"{head} risk ÷ ({between}) × {_plain(multiplier)}"
    inputs["notional"] = _plain(budget)
    raw = budget / (reference * multiplier)
    return raw, f"{head} ÷ ({_price(reference, tick)} × {_plain(multiplier)})"


def _of_net_liquidation(
    percent: Decimal, figures: AccountFigures | None, ccy: str, inputs: dict[str, str]
) -> tuple[Decimal, str]:
    """``percent`` of NetLiquidation in the contract's currency, and its text. Never a guess: no
    NetLiquidation, or another currency without IB's rate for it, cannot be sized."""
    account = (figures.account if figures is not None else "") or "the account"
    net_liq = figures.net_liquidation if figures is not None else None
    if figures is None or net_liq is None:
        raise _CannotSize(f"IB has not reported NetLiquidation for {account} yet")
    if net_liq <= 0:
        raise _CannotSize(f"NetLiquidation of {account} is {_money(net_liq)}: nothing to size from")
    base = figures.currency
    if not base:
        raise _CannotSize(f"IB has not reported the base currency of {account}")
    share = net_liq * percent / HUNDRED
    inputs.update(percent=_plain(percent), net_liquidation=_plain(net_liq), account_currency=base)
    head = f"{_plain(percent)}% of {_money(net_liq)} {base} NetLiquidation = {_money(share)} {base}"
    if base == ccy:
        return share, head
    rate = figures.exchange_rates.get(ccy)
    if rate is None or rate <= 0:
        raise _CannotSize(
            f"{head}, but the contract trades in {ccy} and IB reported no {ccy} exchange rate "
            f"for {account} (base {base}); tv2ib does not guess a rate"
        )
    converted = share / rate  # IB's rate: one unit of ccy is worth ``rate`` in the base currency
    inputs.update(exchange_rate=_plain(rate))
    return converted, f"{head} = {_money(converted)} {ccy} (IB rate {ccy} {_plain(rate)} {base})"


def reference_price(payload: AlertPayload, inst: Instrument, side: str, market_price: Decimal | None,
                    market_source: str = "IB price") -> tuple[Decimal | None, str]:  # fmt: skip
    """The entry reference the planner uses: a limit order's limit price (on the tick grid, in the
    safe direction; an exit is a market order), a stop entry's stop price, else the alert's
    ``price``, else IB's price."""
    if payload.order_type == "limit" and not is_exit(payload):
        asked = payload.limit_price or payload.price
        if asked is not None and asked > 0:
            return inst.grid.round(asked, limit_direction(side)), "limit price"
    if payload.order_type in ("stop", "stop_limit") and payload.stop_price is not None:
        return payload.stop_price, "stop price"
    if payload.price is not None:
        return payload.price, "alert price"
    if market_price is not None and market_price > 0:
        return market_price, market_source
    return None, "no market data"


def stop_distance(
    spec: StopLoss | None, reference: Decimal, inst: Instrument, side: str, role: str, rule: str
) -> tuple[Decimal | None, Decimal]:
    """The planned stop-loss price (None for a trailing stop) and its distance from ``reference``,
    computed with the planner's own offset and rounding code so that the risk is the one planned.
    The stop protects a position on ``side`` (an opening) or the position being reduced."""
    if spec is None:
        raise _CannotSize(f"{rule} needs a stopLoss: the risk is the distance from the entry to the stop")
    long = side == "BUY" if role != "reduce" else side == "SELL"
    tick = inst.grid.increment_at(reference)  # IB's price band at the entry (the planner's unit too)
    if spec.type == "trailing_stop":
        if spec.trail_amount is not None:
            distance = spec.trail_amount
        elif spec.trail_percent is not None:
            distance = reference * spec.trail_percent / HUNDRED
        else:
            raise _CannotSize("a trailing stop-loss needs trailAmount or trailPercent")
        # a trail wider by up to a tick risks more: size on the distance rounded up to the grid
        distance = round_to_tick(distance, tick, "up")
        if distance <= 0:
            raise _CannotSize(f"the trailing stop-loss distance is {_plain(distance)}")
        return None, distance
    away = -1 if long else 1
    try:
        raw, _how = offset_price(spec, "stopLoss", reference, tick, away)
    except PlanRejected as exc:
        raise _CannotSize(str(exc)) from exc
    stop = inst.grid.round(raw, protective_stop_direction("SELL" if long else "BUY"))
    distance = (reference - stop) if long else (stop - reference)
    if distance <= 0:
        where = "below" if long else "above"
        raise _CannotSize(
            f"the stop-loss {_plain(stop)} is not {where} the entry reference {_plain(reference)}"
        )
    return stop, distance


def floor_to_increment(raw: Decimal, increment: Decimal) -> Decimal:
    """``raw`` rounded DOWN to a whole number of ``increment`` (never more than asked)."""
    if raw <= 0:
        return Decimal(0)
    if increment <= 0:
        return raw
    steps = (raw / increment).to_integral_value(rounding=ROUND_FLOOR)
    result = steps * increment
    exponent = increment.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < 0:
        return result.quantize(increment.normalize())
    return result


def _multiplier(inst: Instrument) -> Decimal:
    """The contract's multiplier (IB sends "" for stocks and forex: 1)."""
    text = (inst.multiplier or "").strip()
    if not text:
        return Decimal(1)
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise _CannotSize(f"the contract's multiplier {text!r} is not a number") from exc
    if not value.is_finite() or value <= 0:
        raise _CannotSize(f"the contract's multiplier {text!r} is not a positive number")
    return value


def _plain(value: Decimal) -> str:
    """A number as plain text, without exponent or trailing zeros; long fractions cut to 8 places."""
    value = Decimal(value)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        value = value.quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
    text = format(value.normalize(), "f")
    return text


def _raw(value: Decimal, increment: Decimal) -> str:
    """An unrounded quantity, cut (never rounded up) to 4 decimals or the increment's, if finer."""
    places = max(4, -int(increment.normalize().as_tuple().exponent))
    return _plain(Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN))


def _money(value: Decimal) -> str:
    """Money with thousands separators and cents: ``1,003,211.00``."""
    return f"{Decimal(value):,.2f}"


def _price(value: Decimal, tick: Decimal) -> str:
    """A price with at least the tick's decimals and thousands separators: ``190.00``, ``6,000.25``."""
    places = max(0, -int(tick.normalize().as_tuple().exponent))
    value = Decimal(value)
    exponent = value.normalize().as_tuple().exponent
    places = max(places, -int(exponent) if isinstance(exponent, int) and exponent < 0 else 0)
    return f"{value:,.{min(places, 8)}f}"
