"""Prices a take-profit, a stop-loss or a trail is given as, turned into numbers (pure).

The planner (worker/decision/planner.py, worker/decision/exits.py) and sizing
(worker/decision/sizing.py, which sizes on the stop the planner will place) share these rules, so
the risk a sizing computes is the risk the plan sends.
"""

from __future__ import annotations

from decimal import Decimal

from core.payload import StopLoss, TakeProfit
from worker.decision.model import Plan, PlanRejected
from worker.decision.rounding import round_to_tick


def offset_price(
    spec: TakeProfit | StopLoss, name: str, reference: Decimal | None, tick: Decimal, away: int,
    missing: str = "",
) -> tuple[Decimal, str]:  # fmt: skip
    """The raw (unrounded) price of a take-profit / stop-loss spec; ``away`` is +1 above, -1 below."""
    absolute = spec.limit_price if isinstance(spec, TakeProfit) else spec.stop_price
    if absolute is not None:
        key = "limitPrice" if isinstance(spec, TakeProfit) else "stopPrice"
        if absolute <= 0:
            raise PlanRejected(f"{name}.{key} must be positive, got {absolute}")
        return absolute, f"{name}.{key}"
    if reference is None:
        # ``missing``: why IB gave no price (no subscription, no delayed data; worker/ib/market_data.py)
        raise PlanRejected(
            f"{name} is relative but no reference price is known" + (f" ({missing})" if missing else "")
        )
    if spec.percent is not None:
        if spec.percent <= 0:
            raise PlanRejected(f"{name}.percent must be positive, got {spec.percent}")
        return reference * (1 + away * spec.percent / 100), f"{name}.percent={spec.percent}"
    if spec.amount is not None:
        if spec.amount <= 0:
            raise PlanRejected(f"{name}.amount must be positive, got {spec.amount}")
        return reference + away * spec.amount, f"{name}.amount={spec.amount}"
    ticks = spec.ticks
    if ticks is not None:
        if ticks <= 0 or ticks != ticks.to_integral_value():
            raise PlanRejected(f"{name}.ticks must be a positive whole number, got {ticks}")
        return reference + away * ticks * tick, f"{name}.ticks={ticks}"
    raise PlanRejected(f"{name} needs one of limitPrice/stopPrice, percent, amount or ticks")


def trail(
    amount: Decimal | None, percent: Decimal | None, tick: Decimal, what: str, plan: Plan
) -> tuple[Decimal | None, Decimal | None]:
    """``(trailAmount on the tick grid, trailPercent)``: exactly one is set. An amount rounds down
    to the tick (IB refuses an off-grid trail; the smaller trail follows the price closer)."""
    if (amount is None) == (percent is None):
        raise PlanRejected(f"{what} needs exactly one of trailAmount or trailPercent")
    if percent is not None:
        if not 0 < percent < 100:
            raise PlanRejected(f"{what}: trailPercent must be above 0 and below 100, got {percent}")
        return None, percent
    assert amount is not None
    if amount <= 0:
        raise PlanRejected(f"{what}: trailAmount must be positive, got {amount}")
    rounded = round_to_tick(amount, tick, "down")
    if rounded <= 0:
        raise PlanRejected(f"{what}: trailAmount {amount} is below the contract's tick {tick}")
    if rounded != amount:
        plan.notes.append(f"{what}: trailAmount {amount} rounded down to {rounded} (tick {tick})")
    return rounded, None


def require_positive(what: str, how: str, price: Decimal) -> None:
    if price <= 0:
        raise PlanRejected(
            f"{what} from {how} comes to {price}: a price must be above 0; nothing was sent to IB"
        )
