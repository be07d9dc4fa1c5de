"""``action: update``: move the working stop-loss and take-profit of a position without trading it
(pure, typed). tv2ib's own action: TradersPost's dialect has none for it.

The alert gives ``stopLoss`` and/or ``takeProfit`` in the usual forms. An absolute price
(``stopPrice`` / ``limitPrice``) is that price; ``percent`` / ``amount`` / ``ticks`` are measured
from the alert's ``price`` when it gives one (the bar's close: "trail my stop 1 % under the close"),
else from the market price IB gives now. Each new price is put on the contract's grid the safe way
(a target never closer, a stop never further) and checked against the market:

* a stop on the wrong side of the market (at or above it for a long, at or below it for a short)
  would trigger at once: refused;
* a take-profit on the wrong side (at or below the market for a long) would fill at once: refused;
* without a market price, the check is made against the alert's ``price``; with neither, refused.

An exit the position does not have yet is added (a take-profit to a position opened without one).
An update that changes nothing, or one for a flat position, ends with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from core.payload import AlertPayload
from worker.decision.model import Instrument, PlanRejected
from worker.decision.numbers import price as fmt
from worker.decision.offsets import offset_price, require_positive
from worker.decision.positions import describe
from worker.decision.rounding import limit_direction, protective_stop_direction

NAMES = {"tp": "take-profit", "sl": "stop-loss"}


@dataclass(frozen=True)
class ExitUpdate:
    """The exits' new prices (by role: ``tp``, ``sl``), and the sentence that says what moved.
    ``prices`` empty: nothing to change (``message`` says why)."""

    prices: Mapping[str, Decimal]
    message: str
    notes: tuple[str, ...] = ()


def plan_update(
    payload: AlertPayload, position: Decimal, inst: Instrument, market: Decimal | None,
    current: Mapping[str, Decimal],
) -> ExitUpdate:  # fmt: skip
    """The new exit prices for ``position`` (raises :class:`PlanRejected` with the reason)."""
    held = f"{describe(position)} {inst.local_symbol or inst.symbol}"
    if position == 0:
        return ExitUpdate(
            {}, f"update: no open position in {inst.local_symbol or inst.symbol}; nothing to update"
        )
    exit_side = "SELL" if position > 0 else "BUY"
    sign = 1 if position > 0 else -1  # a long's target is above, its stop below
    reference = payload.price if payload.price is not None else market
    check = market if market is not None else payload.price
    if check is None:
        raise PlanRejected(f"update: IB gave no market price for {inst.symbol} and the alert no price: "
                           "a new stop or target cannot be checked against the market")  # fmt: skip
    tick = inst.grid.increment_at(reference) if reference is not None else inst.min_tick
    prices: dict[str, Decimal] = {}
    notes: list[str] = []
    for role, spec in (("tp", payload.take_profit), ("sl", payload.stop_loss)):
        if spec is None:
            continue
        away = sign if role == "tp" else -sign
        raw, how = offset_price(spec, "takeProfit" if role == "tp" else "stopLoss", reference, tick, away)
        rounding = limit_direction(exit_side) if role == "tp" else protective_stop_direction(exit_side)
        price = inst.grid.round(raw, rounding)
        require_positive(NAMES[role], how, price)
        if (price - check) * away <= 0:
            where = "above" if away > 0 else "below"
            act = "fill" if role == "tp" else "trigger"
            raise PlanRejected(
                f"update: the {NAMES[role]} {fmt(price)} ({how}) is not {where} the market {fmt(check)} "
                f"for {held}: it would {act} at once"
            )
        notes.append(f"{NAMES[role]} from {how}: {raw} -> {price}")
        prices[role] = price
    moved = {role: price for role, price in prices.items() if current.get(role) != price}
    if not moved:
        shown = ", ".join(f"{NAMES[r]} {fmt(p)}" for r, p in sorted(prices.items()))
        return ExitUpdate({}, f"update: the exits of {held} are already there ({shown}); nothing to update")
    parts = [
        f"{NAMES[role]} {fmt(current[role])} -> {fmt(price)}" if role in current
        else f"{NAMES[role]} {fmt(price)} added"
        for role, price in sorted(moved.items(), reverse=True)
    ]  # fmt: skip
    return ExitUpdate(moved, f"update: {', '.join(parts)} ({held})", tuple(notes))
