"""The rules of one alert (:class:`RiskRules`) and how the risk file's sections combine into them:
``defaults``, the alert's strategy, the order's account. No section undoes a safety rule of another.

* **Switches** ``dry_run``, ``flatten_on_daily_loss`` and ``require_approval``: ``true`` in any
  section wins. A block copied from ``defaults`` (``dry_run: false``) into an account section
  cannot send a paper strategy's orders for real.
* **deny**: the lists add up (a symbol denied anywhere is denied).
* **allow**: every list applies; a symbol must be on each section's list (a section without
  ``allow`` allows every symbol, so it adds no condition).
* **Limits** (every number, and ``trading_hours`` ordered regular < extended < always): a strategy
  or an account section replaces the default, higher or lower (a strategy trading bigger than the
  default is the trader's choice); when both the strategy and the account set one, the tighter
  holds. A limit written for a strategy or an account therefore always holds: copying the defaults
  into an account section cannot raise a small strategy's limit. ``flatten_before_close`` (minutes)
  is one too: more minutes (flat earlier) is the tighter, ``false`` (0, never) the loosest.
  ``approval_timeout`` is a limit too: the shorter holds.
* ``allow_ignore_trading_windows`` (an alert's ``ignoreTradingWindows`` may skip ``trading_hours``)
  combines like a limit, ``false`` the tighter: a strategy's or an account's value replaces the
  default, and ``false`` in either of those two sections wins over ``true`` in the other.
* ``default_sizing`` is not a limit: the most specific section's (account, then strategy, then
  defaults); the limits above still bound what it sizes.
* The protections (``stop_out_cooldown_minutes``, ``stop_loss_guard``, ``drawdown_pause``,
  ``daily_profit_target``: core/risk_protections.py) combine like limits; where a strategy and an
  account both set one, the tighter holds field by field (a longer cooldown, fewer stop-outs, a
  smaller drawdown, a lower target...), and the source names both when the result mixes them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.risk_protections import PROTECTION_KEYS, DrawdownPause, StopLossGuard, tighter
from core.risk_values import DefaultSizing


@dataclass(frozen=True)
class RiskRules:
    """The limits that apply to one (strategy, account); None: no such limit.

    Money limits are in the account's base currency (as IB reports NetLiquidation); quantity
    limits in the traded contract's units (shares, contracts, currency units)."""

    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_quantity: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    max_open_orders: int | None = None
    max_orders_per_minute: int | None = None
    daily_loss_limit: Decimal | None = None
    flatten_on_daily_loss: bool = False
    # close the strategy's positions this many minutes before their exchange's close (0: never)
    flatten_before_close: int | None = None
    allow: tuple[str, ...] | None = None  # the most specific section's list (all of them: allow_lists)
    deny: tuple[str, ...] = ()
    trading_hours: str = "always"
    # an alert's ``ignoreTradingWindows: true`` may skip ``trading_hours`` (else it is refused)
    allow_ignore_trading_windows: bool = False
    max_price_deviation_percent: Decimal | None = None
    dry_run: bool = False
    # the strategy's openings wait for a trader's approval, at most ``approval_timeout`` seconds
    # (core/approval.py); exits and flattens never wait
    require_approval: bool = False
    approval_timeout: Decimal | None = None
    default_sizing: DefaultSizing | None = None
    # the protections (core/risk_protections.py; the locks: worker/risk/protections.py)
    stop_out_cooldown_minutes: Decimal | None = None  # 0: none
    stop_loss_guard: StopLossGuard | None = None
    drawdown_pause: DrawdownPause | None = None
    daily_profit_target: Decimal | None = None
    #: key -> where its value came from: "defaults", 'strategy "trend"', 'account "DU111"'
    sources: Mapping[str, str] = field(default_factory=dict)
    #: every section's allow list with its source: a symbol must be on each (empty: only ``allow``)
    allow_layers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: the alert named a strategy the file does not know (it gets no strategy section): the name
    unknown_strategy: str | None = None
    notes: tuple[str, ...] = ()  # warnings for the plan (the unknown strategy)
    #: the alert's strategy as it named it (None: it named none); the protections count per strategy
    strategy: str | None = None

    def source_of(self, key: str) -> str:
        return self.sources.get(key, "defaults")

    def allow_lists(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(source, symbols) of every allow list that applies; a symbol must be on each."""
        if self.allow_layers:
            return self.allow_layers
        return ((self.source_of("allow"), self.allow),) if self.allow is not None else ()

    def to_json(self) -> dict[str, Any]:
        """The rules in force, for the plan (only the keys that are set)."""
        return dict(self._json)

    @functools.cached_property
    def _json(self) -> dict[str, Any]:  # the rules never change: built once (every alert's plan has them)
        doc: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("sources", "allow_layers", "unknown_strategy", "notes", "strategy"):
                continue
            if value is None or value == () or value is False:
                continue
            if f.name == "trading_hours" and value == "always":
                continue
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, (DefaultSizing, StopLossGuard, DrawdownPause)):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            doc[f.name] = value
        if len(self.allow_layers) > 1:  # a symbol must be on each of them
            doc["allow_layers"] = [{"source": s, "symbols": list(v)} for s, v in self.allow_layers]
        if doc:
            doc["sources"] = {k: v for k, v in self.sources.items() if k in doc}
        return doc


# the risk file's keys: RiskRules' fields up to the bookkeeping that starts at ``sources``
_FIELDS = [f.name for f in dataclasses.fields(RiskRules)]
RULE_KEYS = tuple(_FIELDS[: _FIELDS.index("sources")])
SWITCHES = ("dry_run", "flatten_on_daily_loss", "require_approval")
_HOURS = {"regular": 0, "extended": 1, "always": 2}  # narrower first
Layer = tuple[str, Mapping[str, Any]]  # (where: "defaults", 'strategy "trend"', ...), its rules


def _tightness(key: str, value: Any) -> Any:
    if key == "flatten_before_close":  # flat earlier is tighter; 0 (never) the loosest
        return -value if value else 1
    return _HOURS[value] if key == "trading_hours" else value


def _tightest(key: str, present: list[tuple[str, Any]]) -> tuple[str, Any]:
    """A protection's (source, value): the sections after defaults replace it; of those the
    tighter holds (core/risk_protections.py ``tighter``); a mix of two names both."""
    specific = [(where, value) for where, value in present if where != "defaults"] or present
    value = specific[0][1]
    for _where, other in specific[1:]:
        value = tighter(key, value, other)
    same = [where for where, v in specific if v == value]
    return (same[-1] if same else " + ".join(where for where, _ in specific)), value


def merge(layers: Sequence[Layer]) -> RiskRules:
    """The rules of ``layers`` (defaults first, then the strategy's, then the account's)."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    allow_layers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    for key in RULE_KEYS:
        present = [(where, layer[key]) for where, layer in layers if key in layer]
        if not present:
            continue
        if key in SWITCHES:
            on = [where for where, value in present if value]
            merged[key], sources[key] = bool(on), (on or [present[-1][0]])[0]
        elif key == "deny":
            merged[key] = tuple(dict.fromkeys(s for _, symbols in present for s in symbols))
            sources[key] = " + ".join(where for where, _ in present)
        elif key == "allow":
            allow_layers = tuple(present)
            sources[key], merged[key] = present[-1]
        elif key in PROTECTION_KEYS:
            sources[key], merged[key] = _tightest(key, present)
        elif key == "default_sizing":
            sources[key], merged[key] = present[-1]
        else:  # a limit: the sections after defaults replace it; of those, the tighter holds
            specific = [(where, value) for where, value in present if where != "defaults"] or present
            # reversed: on a tie the account (the most specific) is named as the source
            sources[key], merged[key] = min(reversed(specific), key=lambda p: _tightness(key, p[1]))
    return RiskRules(**merged, sources=sources, allow_layers=allow_layers)
