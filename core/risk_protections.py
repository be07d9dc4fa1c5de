"""The risk file's protections: after losses, entries lock for a time (freqtrade's protections are
the model). Their values, from the YAML node to what the rules use; the locks themselves are the
worker's (worker/risk/protections.py).

* ``stop_out_cooldown_minutes: 30``: no new entry on a ticker for 30 minutes after one of the
  strategy's positions in it was closed by its stop-loss (a fill of an ``sl`` leg);
* ``stop_loss_guard: {stop_outs: 3, within_minutes: 120, lock_minutes: 60, lock: ticker}``: 3
  stop-outs within 120 minutes lock the ticker (``lock: strategy``: every ticker of the strategy)
  for 60 minutes;
* ``drawdown_pause: {max_drawdown: 1500, within_minutes: 1440, pause_minutes: 240}``: when the
  strategy's realized PnL over the last 1440 minutes falls 1,500 (base currency) below its peak
  in that window, entries stop for 240 minutes;
* ``daily_profit_target: 2000``: once the strategy's realized PnL of the trading day reaches 2,000,
  new entries lock until the next trading day.

They count per strategy (each strategy's fills on each account) and combine like the limits
(core/risk_rules.py): a strategy's or an account's value replaces the default's; where both set
one, the tighter holds, field by field (:func:`tighter`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml

from core.risk_values import Construct, bounded, number_text, shown

MAX_MINUTES = Decimal(10080)  # a week: every window and lock (the worker keeps two weeks of fills)
MAX_STOP_OUTS = 1000
LOCK_SCOPES = ("ticker", "strategy")

#: the Control rows of the locks a worker announced, one per account (worker/risk/lock_watch.py;
#: read by the dashboard and ``tv2ib status``: core/services.py ``active_locks``)
LOCKS_KEY_PREFIX = "risk:locks:"

PROTECTION_KEYS = ("stop_out_cooldown_minutes", "stop_loss_guard", "drawdown_pause", "daily_profit_target")


@dataclass(frozen=True)
class StopLossGuard:
    """``stop_outs`` stop-outs within ``within_minutes`` lock the ticker (or the strategy) for
    ``lock_minutes``."""

    stop_outs: int
    within_minutes: Decimal
    lock_minutes: Decimal
    lock: str = "ticker"  # ticker | strategy

    def to_json(self) -> dict[str, Any]:
        return {"stop_outs": self.stop_outs, "within_minutes": str(self.within_minutes),
                "lock_minutes": str(self.lock_minutes), "lock": self.lock}  # fmt: skip


@dataclass(frozen=True)
class DrawdownPause:
    """The strategy's realized PnL ``max_drawdown`` below its peak within ``within_minutes``
    stops its entries for ``pause_minutes``."""

    max_drawdown: Decimal
    within_minutes: Decimal
    pause_minutes: Decimal

    def to_json(self) -> dict[str, Any]:
        return {"max_drawdown": str(self.max_drawdown), "within_minutes": str(self.within_minutes),
                "pause_minutes": str(self.pause_minutes)}  # fmt: skip


def _text(node: yaml.Node) -> str:
    return number_text(node)


def _minutes(text: str, above_zero: bool = True) -> Decimal:
    return bounded(text, above_zero=above_zero, maximum=MAX_MINUTES)


def cooldown(node: yaml.Node, _construct: Construct) -> Decimal:
    """Minutes after a stop-out, 0 (none: a strategy's way out of the default's) to a week."""
    return _minutes(_text(node), above_zero=False)


def money(node: yaml.Node, _construct: Construct) -> Decimal:
    return bounded(_text(node))


def _fields(
    node: yaml.Node, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, yaml.Node]:
    wanted = ", ".join(required + optional)
    if not isinstance(node, yaml.MappingNode):
        raise ValueError(f"must be a mapping with {wanted}")
    fields: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = str(getattr(key, "value", ""))
        if not isinstance(key, yaml.ScalarNode) or name not in required + optional or name in fields:
            raise ValueError(f"must be a mapping with {wanted}; got {shown(name)}")
        fields[name] = value
    missing = [k for k in required if k not in fields]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)} (it takes {wanted})")
    return fields


def _field(name: str, node: yaml.Node, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(_text(node))
    except ValueError as exc:
        raise ValueError(f"{name} {exc}") from None


def _count(text: str) -> int:
    number = bounded(text, maximum=Decimal(MAX_STOP_OUTS))
    if number != number.to_integral_value():
        raise ValueError(f"must be a whole number, got {text[:40]}")
    return int(number)


def stop_loss_guard(node: yaml.Node, construct: Construct) -> StopLossGuard:
    fields = _fields(node, ("stop_outs", "within_minutes", "lock_minutes"), ("lock",))
    scope = "ticker"
    if "lock" in fields:
        scope = construct(fields["lock"])
        if scope not in LOCK_SCOPES:
            raise ValueError(f"lock must be ticker or strategy, got {shown(scope)}")
    return StopLossGuard(_field("stop_outs", fields["stop_outs"], _count),
                         _field("within_minutes", fields["within_minutes"], _minutes),
                         _field("lock_minutes", fields["lock_minutes"], _minutes), str(scope))  # fmt: skip


def drawdown_pause(node: yaml.Node, _construct: Construct) -> DrawdownPause:
    fields = _fields(node, ("max_drawdown", "within_minutes", "pause_minutes"))
    return DrawdownPause(_field("max_drawdown", fields["max_drawdown"], bounded),
                         _field("within_minutes", fields["within_minutes"], _minutes),
                         _field("pause_minutes", fields["pause_minutes"], _minutes))  # fmt: skip


def tighter(key: str, a: Any, b: Any) -> Any:
    """The tighter of two values of protection ``key``: the longer cooldown, the lower target; a
    guard or a pause field by field (fewer stop-outs, a longer window and lock, ``strategy`` over
    ``ticker``; a smaller drawdown)."""
    if isinstance(a, StopLossGuard) and isinstance(b, StopLossGuard):
        return StopLossGuard(min(a.stop_outs, b.stop_outs), max(a.within_minutes, b.within_minutes),
                             max(a.lock_minutes, b.lock_minutes),
                             "strategy" if "strategy" in (a.lock, b.lock) else "ticker")  # fmt: skip
    if isinstance(a, DrawdownPause) and isinstance(b, DrawdownPause):
        return DrawdownPause(min(a.max_drawdown, b.max_drawdown), max(a.within_minutes, b.within_minutes),
                             max(a.pause_minutes, b.pause_minutes))  # fmt: skip
    return max(a, b) if key == "stop_out_cooldown_minutes" else min(a, b)


PARSERS: dict[str, Callable[[yaml.Node, Construct], Any]] = {
    "stop_out_cooldown_minutes": cooldown,
    "stop_loss_guard": stop_loss_guard,
    "drawdown_pause": drawdown_pause,
    "daily_profit_target": money,
}
assert tuple(PARSERS) == PROTECTION_KEYS
