"""An option's prices: its tick rule, the marketable limit of an entry, the spread filter, and the
take-profit and stop-loss measured on the premium (pure).

* **Tick rules** (:data:`TICK_RULES`), as :class:`~worker.decision.rounding.PriceGrid` bands. US
  equity options: ``standard`` classes trade in 0.05 below 3.00 and 0.10 from 3.00; classes in the
  penny program (``penny_pilot``) in 0.01 below 3.00 and 0.05 from 3.00; a few (``penny``: SPY,
  QQQ, IWM) in 0.01 at every price. IB's market rule for the contract, when the worker has it, is
  the grid to pass instead (the functions take any grid).
* **Entry** (:func:`marketable_limit`): a limit at the mid moved N ticks toward the side that fills
  (up for a BUY, down for a SELL), never past the far side of the quote: a BUY pays at most the
  ask, a SELL receives at least the bid. The mid is first put on the grid on the passive side, so
  0 ticks is a limit at the mid or better.
* **Spread filter** (:func:`spread_refusal`): no entry when (ask - bid) / mid exceeds the percent.
* **Exits** (:func:`premium_exits`): ``takeProfit`` / ``stopLoss`` ``percent`` and ``amount`` are
  measured on the premium (an amount is per share of premium, as quoted). A long option's target
  is above the entry, its stop below; a short option's the other way round. Rounded on the grid the
  safe way (worker/decision/rounding.py): a target never closer, a stop never further.

Pure: the worker calls it through worker/execution/option_orders.py (docs/contracts.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from core.payload import StopLoss, TakeProfit
from worker.decision.numbers import price as fmt
from worker.decision.option_choice import OptionRefusal
from worker.decision.options import Side
from worker.decision.rounding import PriceGrid, limit_direction, protective_stop_direction

D = Decimal
TickRule = Literal["standard", "penny_pilot", "penny"]
TICK_RULES: dict[TickRule, PriceGrid] = {
    "standard": PriceGrid(D("0.05"), ((D(0), D("0.05")), (D(3), D("0.10")))),
    "penny_pilot": PriceGrid(D("0.01"), ((D(0), D("0.01")), (D(3), D("0.05")))),
    "penny": PriceGrid(D("0.01")),
}
MAX_ENTRY_TICKS = 100  # the entry's ticks from the mid (a setting): beyond, the far side caps it anyway
_EPSILON = D("1e-12")  # smaller than any tick: one step off a grid price


def tick_grid(rule: TickRule) -> PriceGrid:
    """The grid of a named tick rule."""
    return TICK_RULES[rule]


def step(grid: PriceGrid, price: Decimal, ticks: int, way: Literal["up", "down"]) -> Decimal:
    """``price`` (on the grid) moved ``ticks`` grid steps up or down, each step the increment of the
    band it lands in (2.99 + 1 tick is 3.00 under the penny program, 3.00 + 1 tick is 3.05)."""
    for _ in range(ticks):
        price = grid.round(price + _EPSILON, "up") if way == "up" else grid.round(price - _EPSILON, "down")
    return price


def _quote_problem(bid: Decimal | None, ask: Decimal | None, what: str) -> OptionRefusal | None:
    if bid is None or ask is None:
        return OptionRefusal(None, f"no quote for {what}: IB gave no {'bid' if bid is None else 'ask'}")
    if ask <= 0 or bid < 0:
        return OptionRefusal(None, f"no usable quote for {what} (bid {fmt(bid)}, ask {fmt(ask)})")
    if bid > ask:
        return OptionRefusal(None, f"the quote for {what} is crossed (bid {fmt(bid)} above ask {fmt(ask)})")
    return None


def spread_refusal(
    bid: Decimal | None, ask: Decimal | None, max_percent: Decimal, what: str
) -> OptionRefusal | None:
    """A refusal when the quote is missing or its spread is wider than ``max_percent`` of the mid
    (TradersPost's spread filter); None when the entry may go."""
    problem = _quote_problem(bid, ask, what)
    if problem is not None:
        return problem
    assert bid is not None and ask is not None
    mid = (bid + ask) / 2
    percent = (ask - bid) / mid * 100
    if percent > max_percent:
        return OptionRefusal(None, (
            f"the spread of {what} is too wide: {fmt(ask - bid)} (bid {fmt(bid)}, ask {fmt(ask)}) is "
            f"{percent:.1f}% of the mid {fmt(mid)}, above the {max_percent.normalize():f}% allowed"
        ))  # fmt: skip
    return None


@dataclass(frozen=True)
class EntryLimit:
    """An option entry's limit price and how it was set (for the plan's notes)."""

    price: Decimal
    mid: Decimal
    why: str


def marketable_limit(
    bid: Decimal | None, ask: Decimal | None, side: Side, ticks: int, grid: PriceGrid, what: str
) -> EntryLimit | OptionRefusal:
    """The entry's limit: the mid, ``ticks`` grid steps toward the side that fills, never past the
    far side of the quote, on the grid (see the module)."""
    if not 0 <= ticks <= MAX_ENTRY_TICKS:
        raise ValueError(f"ticks must be from 0 to {MAX_ENTRY_TICKS}, got {ticks}")  # a setting's bound
    problem = _quote_problem(bid, ask, what)
    if problem is not None:
        return problem
    assert bid is not None and ask is not None
    mid = (bid + ask) / 2
    floor = grid.increment_at(D(0))  # the smallest price IB takes
    if side == "BUY":
        raw = step(grid, grid.round(mid, "down"), ticks, "up")
        cap = grid.round(ask, "up")
        limit = min(max(raw, floor), cap)  # a bid of 0 can put the mid below the smallest price
        edge = f"capped at the ask {fmt(cap)}" if raw > cap else ""
        edge = f"raised to the smallest price {fmt(floor)}" if raw < floor else edge
    else:
        limit = step(grid, grid.round(mid, "up"), ticks, "down")
        bottom = max(grid.round(bid, "down"), floor)
        capped, limit = limit < bottom, max(limit, bottom)
        at_bid = "the bid" if bottom == grid.round(bid, "down") else "the smallest price"
        edge = f"held at {at_bid} {fmt(bottom)}" if capped else ""
    how = f"{'plus' if side == 'BUY' else 'minus'} {ticks} tick{'s' if ticks != 1 else ''}"
    why = f"{side} limit {fmt(limit)}: the mid {fmt(mid)} (bid {fmt(bid)}, ask {fmt(ask)}) {how} ({grid.describe()})"
    return EntryLimit(limit, mid, why + (f", {edge}" if edge else ""))


@dataclass(frozen=True)
class PremiumExits:
    """The take-profit and stop-loss prices of an option position (None: not asked for)."""

    take_profit: Decimal | None
    stop_loss: Decimal | None
    notes: tuple[str, ...] = ()


def _offset(spec: TakeProfit | StopLoss, name: str, entry: Decimal) -> tuple[Decimal, str] | OptionRefusal:
    """``(distance from the entry, how it was given)``, or why the spec is refused for an option."""
    absolute = "limitPrice" if isinstance(spec, TakeProfit) else "stopPrice"
    if getattr(spec, "limit_price" if isinstance(spec, TakeProfit) else "stop_price") is not None:
        return OptionRefusal(f"{name}.{absolute}", (
            f"{name}.{absolute} is a price on the underlying's chart; an option's {name} is measured "
            f"on its premium: use {name}.percent or {name}.amount"
        ))  # fmt: skip
    if isinstance(spec, StopLoss) and spec.type != "stop":
        return OptionRefusal(
            f"{name}.type",
            f"a {spec.type} {name} is not yet made for options: use a stop with percent or amount",
        )
    if spec.percent is not None:
        return entry * spec.percent / 100, f"{name}.percent={spec.percent.normalize():f}"
    if spec.amount is not None:
        return spec.amount, f"{name}.amount={spec.amount.normalize():f}"
    return OptionRefusal(
        f"{name}.ticks",
        f"{name}.ticks is not yet made for options (their tick changes at 3.00): use percent or amount",
    )


def premium_exits(
    entry: Decimal, side: Side, take_profit: TakeProfit | None, stop_loss: StopLoss | None, grid: PriceGrid
) -> PremiumExits | OptionRefusal:
    """The exits of a position opened by ``side`` at the premium ``entry``, on the option's grid
    and strictly on their side of the entry; a refusal names the field when one cannot be placed."""
    exit_side = "SELL" if side == "BUY" else "BUY"
    gain = 1 if side == "BUY" else -1  # which way the premium moves for a profit
    prices: dict[str, Decimal | None] = {"takeProfit": None, "stopLoss": None}
    notes: list[str] = []
    for name, spec, away, rounding in (
        ("takeProfit", take_profit, gain, limit_direction(exit_side)),
        ("stopLoss", stop_loss, -gain, protective_stop_direction(exit_side)),
    ):
        if spec is None:
            continue
        found = _offset(spec, name, entry)
        if isinstance(found, OptionRefusal):
            return found
        offset, how = found
        raw = entry + away * offset
        rounded = grid.round(raw, rounding) if raw > 0 else raw
        if rounded <= 0:
            return OptionRefusal(how.split("=")[0], (
                f"{how} puts the {name} at {fmt(raw)}{f' ({fmt(rounded)} on the grid)' if raw > 0 else ''}: "
                f"an option's premium does not go to 0 or below"
            ))  # fmt: skip
        if (rounded - entry) * away <= 0:
            return OptionRefusal(how.split("=")[0], (
                f"{how} is less than a tick ({grid.describe()}) from the entry {fmt(entry)}: "
                f"the {name} would land on it"
            ))  # fmt: skip
        if rounded != raw:
            notes.append(f"{name} {fmt(raw)} rounded {rounding} to {fmt(rounded)} ({grid.describe()})")
        prices[name] = rounded
    return PremiumExits(prices["takeProfit"], prices["stopLoss"], tuple(notes))
