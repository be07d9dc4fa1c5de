"""The account's own figures as IB last reported them (NetLiquidation, funds, PnL).

ib_async keeps the account's values current from the ``reqAccountUpdates`` subscription it opens
at connect (for the worker's account), so reading them costs no round trip. Sizing
(``percent_of_equity``, ``risk_percent``), the risk gate (gross exposure, daily loss) and the
margin check all read the same :class:`AccountFigures` snapshot, taken once per alert and stored
with the plan, so the numbers a decision names are the numbers it used.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from worker.recording.snapshots import AccountFigures

# IB reports most values per currency and once as "BASE" (the account's base currency). A value
# tagged with the base currency's code is the same figure; BASE is preferred when both exist.
_TAGS = {
    "NetLiquidation": "net_liquidation",
    "AvailableFunds": "available_funds",
    "ExcessLiquidity": "excess_liquidity",
    "BuyingPower": "buying_power",
    "GrossPositionValue": "gross_position_value",
    "InitMarginReq": "init_margin",
    "MaintMarginReq": "maint_margin",
    "UnrealizedPnL": "unrealized_pnl",
    "RealizedPnL": "realized_pnl",
}


def figures_from_values(account: str, values: list[Any]) -> AccountFigures:
    """Pure: ib_async ``AccountValue`` rows (``tag``, ``value``, ``currency``, ``account``) →
    :class:`AccountFigures` for ``account``."""
    found: dict[str, tuple[int, Decimal]] = {}
    currency = ""
    # sizing (issue 11): real IB sends ("Currency", "BASE", "BASE") and per-currency rows of every
    # tag in alphabetical order, so neither names the base currency; the account totals
    # (NetLiquidation) are reported in it, so their currency is the base currency.
    base_currency = ""
    rates: dict[str, Decimal] = {}
    for row in values:
        if account and getattr(row, "account", account) not in (account, "All", ""):
            continue
        if row.tag == "Currency" and row.currency == "BASE" and row.value != "BASE":
            currency = str(row.value)
        if row.tag == "NetLiquidation" and row.currency not in ("", "BASE"):
            base_currency = row.currency
        if row.tag == "ExchangeRate" and row.currency not in ("", "BASE"):
            rate = _finite(row.value)
            if rate is not None and rate > 0:
                rates[row.currency] = rate
        field_name = _TAGS.get(row.tag)
        if field_name is None:
            continue
        try:
            number = float(row.value)
        except (TypeError, ValueError):
            continue
        if math.isnan(number) or math.isinf(number):
            continue
        rank = 2 if row.currency == "BASE" else 1 if row.currency else 0
        if field_name not in found or rank > found[field_name][0]:
            found[field_name] = (rank, Decimal(str(row.value)))
        if not currency and row.currency and row.currency != "BASE":
            currency = row.currency
    return AccountFigures(account=account, currency=base_currency or currency, exchange_rates=rates,
                          **{name: value for name, (_rank, value) in found.items()})  # fmt: skip


def _finite(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None
